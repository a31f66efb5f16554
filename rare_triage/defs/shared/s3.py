"""The S3 connection fields the bucket, the lake and the landing zone share: endpoint, credentials and limits."""

import dagster as dg

from rare_triage.lib.s3_options import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_READ_TIMEOUT_S,
    S3Options,
)


class S3Connection(dg.Config):
    """Mixed into a resource that reaches `s3://` URIs; unused for local folders."""

    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str = "us-east-1"
    s3_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    s3_read_timeout: float = DEFAULT_READ_TIMEOUT_S
    s3_max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def s3_options(self) -> S3Options:
        """Endpoint, credentials and limits of the S3 clients."""
        return S3Options(
            self.s3_endpoint_url,
            self.s3_access_key_id,
            self.s3_secret_access_key,
            self.s3_region,
            connect_timeout=self.s3_connect_timeout,
            read_timeout=self.s3_read_timeout,
            max_attempts=self.s3_max_attempts,
        )
