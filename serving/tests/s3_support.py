"""Helpers for the S3 API test server of conftest.py: dummy credentials, short limits, a plain boto3 client."""

from typing import Any

import boto3

from serving.bucket import S3Bucket, open_bucket
from serving.settings import S3Options, Secret
from serving.tests.published import Put

ACCESS_KEY = "serving-test-access-key"
SECRET_KEY = "serving-test-secret-key"
REGION = "us-east-1"


def s3_options(endpoint: str, *, timeout_s: float = 5.0, attempts: int = 2) -> S3Options:
    """Options for the test server with the dummy credentials and short limits."""
    return S3Options(
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=Secret(SECRET_KEY),
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        max_attempts=attempts,
    )


def admin_client(endpoint: str) -> Any:
    """A boto3 client of the test server, for filling buckets behind the code under test."""
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )


def s3_put(endpoint: str, bucket: str, prefix: str = "") -> Put:
    """A `put(key, bytes)` writing into `s3://bucket/prefix` on the test server."""
    client = admin_client(endpoint)

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}" if prefix else key, Body=data)

    return put


def serving_bucket(endpoint: str, bucket: str, prefix: str = "", **limits: Any) -> S3Bucket:
    """The code under test's view of `s3://bucket/prefix`."""
    opened = open_bucket(f"s3://{bucket}/{prefix}".rstrip("/"), s3_options(endpoint, **limits))
    assert isinstance(opened, S3Bucket)
    return opened
