"""The model bucket resource: a local folder by default, an S3-compatible bucket by configuration.

| variable | default | meaning |
|---|---|---|
| RARE_TRIAGE_BUCKET_URI | `$RARE_TRIAGE_HOME/bucket` | published models: a folder or `s3://bucket/prefix` |
| RARE_TRIAGE_S3_ENDPOINT_URL | (AWS) | S3-compatible endpoint, e.g. `http://127.0.0.1:9000` |
| AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION | | S3 credentials (read at run time) |
| RARE_TRIAGE_S3_CONNECT_TIMEOUT / _READ_TIMEOUT / _MAX_ATTEMPTS | 3 s, 30 s, 3 | limits of every S3 request |
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from rare_triage.lib.deployment.bucket import Bucket, bucket_from_uri, s3_client
from rare_triage.lib.lake_fs import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_TIMEOUT_S,
    S3Options,
    s3_limits_from_environ,
)
from rare_triage.lib.paths import rare_triage_home


class ModelBucketResource(dg.ConfigurableResource):
    """Where published models live: `uri` is a local folder or `s3://bucket/prefix` on `s3_endpoint_url`."""

    uri: str
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str = "us-east-1"
    s3_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    s3_read_timeout: float = DEFAULT_READ_TIMEOUT_S
    s3_max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def s3_options(self) -> S3Options:
        """Endpoint, credentials and limits of the S3 client."""
        return S3Options(
            self.s3_endpoint_url,
            self.s3_access_key_id,
            self.s3_secret_access_key,
            self.s3_region,
            connect_timeout=self.s3_connect_timeout,
            read_timeout=self.s3_read_timeout,
            max_attempts=self.s3_max_attempts,
        )

    def get_bucket(self) -> Bucket:
        """The bucket behind `uri`."""
        if self.uri.startswith("s3://"):
            return bucket_from_uri(self.uri, s3_client(self.s3_options()))
        return bucket_from_uri(self.uri)


def s3_settings(environ: Mapping[str, str], *, resolve_credentials: bool = False) -> dict[str, Any]:
    """The `s3_*` fields of a resource: endpoint, region and limits from `environ`; credentials as dg.EnvVar
    (read at run time) or, with `resolve_credentials` (outside a run, e.g. the CLI), read from `environ` now."""
    limits = s3_limits_from_environ(environ)
    if resolve_credentials:
        access: Any = environ.get("AWS_ACCESS_KEY_ID")
        secret: Any = environ.get("AWS_SECRET_ACCESS_KEY")
    else:
        access, secret = dg.EnvVar("AWS_ACCESS_KEY_ID"), dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    return {
        "s3_endpoint_url": environ.get("RARE_TRIAGE_S3_ENDPOINT_URL"),
        "s3_access_key_id": access,
        "s3_secret_access_key": secret,
        "s3_region": environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        **{f"s3_{name}": value for name, value in limits.items()},
    }


def build_bucket_resource(environ: Mapping[str, str], *, resolve_credentials: bool = False) -> ModelBucketResource:
    """The bucket of the environment: a folder by default, S3 when RARE_TRIAGE_BUCKET_URI is s3://..."""
    uri = environ.get("RARE_TRIAGE_BUCKET_URI", str(rare_triage_home(environ) / "bucket"))
    if not uri.startswith("s3://"):
        return ModelBucketResource(uri=uri)
    return ModelBucketResource(uri=uri, **s3_settings(environ, resolve_credentials=resolve_credentials))
