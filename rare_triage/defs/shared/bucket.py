"""The model bucket resource: a local folder by default, an S3-compatible bucket by configuration.

| variable | default | meaning |
|---|---|---|
| RARE_TRIAGE_BUCKET_URI | `$RARE_TRIAGE_HOME/bucket` | published models: a folder or `s3://bucket/prefix` |
| RARE_TRIAGE_S3_ENDPOINT_URL | (AWS) | S3-compatible endpoint, e.g. `http://127.0.0.1:9000` |
| AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION | | S3 credentials (read at run time) |
"""

from collections.abc import Mapping

import dagster as dg
from dagster_aws.s3 import S3Resource

from rare_triage.lib.deployment.bucket import Bucket, bucket_from_uri
from rare_triage.lib.paths import rare_triage_home


class ModelBucketResource(dg.ConfigurableResource):
    """Where published models live: `uri` is a local folder or `s3://bucket/prefix` (reached through `s3`)."""

    uri: str
    s3: S3Resource | None = None

    def get_bucket(self) -> Bucket:
        """The bucket behind `uri`."""
        if self.uri.startswith("s3://"):
            if self.s3 is None:
                raise ValueError(f"model bucket {self.uri}: an s3 resource (endpoint, credentials) is required")
            return bucket_from_uri(self.uri, self.s3.get_client())
        return bucket_from_uri(self.uri)


def build_bucket_resource(environ: Mapping[str, str]) -> ModelBucketResource:
    """The bucket of the environment: a folder by default, S3 when RARE_TRIAGE_BUCKET_URI is s3://..."""
    uri = environ.get("RARE_TRIAGE_BUCKET_URI", str(rare_triage_home(environ) / "bucket"))
    if not uri.startswith("s3://"):
        return ModelBucketResource(uri=uri)
    s3 = S3Resource(
        endpoint_url=environ.get("RARE_TRIAGE_S3_ENDPOINT_URL"),
        aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
        region_name=environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    return ModelBucketResource(uri=uri, s3=s3)
