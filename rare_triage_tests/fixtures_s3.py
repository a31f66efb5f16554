"""A real S3 API server (moto in server mode) on 127.0.0.1 for tests, and helpers to fill it.

Register with ``pytest_plugins = ["rare_triage_tests.fixtures_s3"]`` in conftest, or import
``s3_server`` into a test module. Credentials are dummy values, never real ones.
"""

import socket
from collections.abc import Iterator
from typing import Any, Final

import boto3
import pytest
from moto.server import ThreadedMotoServer
from pyarrow import fs

ACCESS_KEY: Final = "rare-triage-test-access-key"
SECRET_KEY: Final = "rare-triage-test-secret-key"
REGION: Final = "us-east-1"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL (``http://127.0.0.1:<port>``) of a moto S3 server running for the session."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def frozen_endpoint() -> Iterator[str]:
    """Endpoint URL of a frozen S3 server: a socket on 127.0.0.1 that accepts connections and never answers.

    The kernel completes the TCP handshake for the listen backlog; nothing ever reads or writes, so every
    request waits for its read timeout.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        host, port = listener.getsockname()
        yield f"http://{host}:{port}"


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the test server."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


def make_bucket(endpoint: str, name: str) -> None:
    """Create bucket ``name`` on the test server."""
    s3_client(endpoint).create_bucket(Bucket=name)


def put_object(endpoint: str, bucket: str, key: str, body: bytes) -> None:
    """Upload ``body`` to ``s3://bucket/key`` on the test server."""
    s3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=body)


def arrow_s3_filesystem(endpoint: str) -> fs.S3FileSystem:
    """A ``pyarrow.fs.S3FileSystem`` pointed at the test server."""
    host_port = endpoint.split("://", 1)[1]
    return fs.S3FileSystem(
        endpoint_override=host_port, scheme="http", access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION
    )
