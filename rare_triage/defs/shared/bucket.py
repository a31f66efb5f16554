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

from rare_triage.defs.shared.s3 import S3Connection
from rare_triage.lib.deployment.bucket import Bucket, bucket_from_uri, s3_client
from rare_triage.lib.paths import rare_triage_home
from rare_triage.lib.s3_options import s3_limits_from_environ


class ModelBucketResource(dg.ConfigurableResource, S3Connection):
    """Where published models live: `uri` is a local folder or `s3://bucket/prefix` on `s3_endpoint_url`."""

    uri: str

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
