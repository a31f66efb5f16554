"""Shared fixtures of the service's tests (model store, bucket, prediction log): a published local bucket, a real
S3 API server (moto in server mode) on 127.0.0.1, and endpoints that refuse or never answer.

The S3 credentials are dummy values for the local server, never real ones.
"""

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from serving.bucket import LocalBucket
from serving.tests.published import Release, build_release, folder_put, publish
from serving.tests.s3_support import admin_client


@pytest.fixture
def bucket_root(tmp_path: Path) -> Path:
    """An empty local bucket folder."""
    root = tmp_path / "bucket"
    root.mkdir()
    return root


@pytest.fixture
def release() -> Release:
    """A consistent format-2 version (seed 0)."""
    return build_release(seed=0)


@pytest.fixture
def published(bucket_root: Path, release: Release) -> LocalBucket:
    """A local bucket where `dev` points at `release`."""
    publish(folder_put(bucket_root), release, "dev")
    return LocalBucket(bucket_root)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a moto S3 server on 127.0.0.1 for the session, stopped at the end."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket_name(s3_endpoint: str) -> str:
    """A new, empty bucket on the test server."""
    name = f"serving-{uuid.uuid4().hex[:12]}"
    admin_client(s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def refused_endpoint() -> str:
    """An endpoint on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        host, port = probe.getsockname()
    return f"http://{host}:{port}"


@pytest.fixture
def frozen_endpoint() -> Iterator[str]:
    """An endpoint on 127.0.0.1 that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        host, port = listener.getsockname()
        yield f"http://{host}:{port}"
