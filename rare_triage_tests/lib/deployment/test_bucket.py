"""The bucket contract, on a local directory and on a real S3 API server (moto) on 127.0.0.1."""

import uuid
from pathlib import Path

import pytest

from rare_triage.lib.deployment.bucket import (
    Bucket,
    LocalBucket,
    ObjectExistsError,
    ObjectNotFoundError,
    S3Bucket,
    bucket_from_uri,
    validate_key,
)
from rare_triage_tests.fixtures_s3 import make_bucket, s3_client, s3_server

__all__ = ["s3_server"]  # pytest fixture used by name below


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def bucket(request: pytest.FixtureRequest, tmp_path: Path) -> Bucket:
    if request.param == "local":
        return LocalBucket(tmp_path / "bucket")
    endpoint = request.getfixturevalue("s3_server")
    name = f"test-{uuid.uuid4().hex[:12]}"
    make_bucket(endpoint, name)
    return S3Bucket(s3_client(endpoint), name, prefix="team/models")


def test_objects_round_trip_and_list_by_prefix(bucket: Bucket) -> None:
    bucket.put_bytes("models/a/model.onnx", b"onnx")
    bucket.put_bytes("models/a/manifest.json", b"{}")
    bucket.put_bytes("predictions/env=dev/dt=2025-01-01/part.txt", b"line\n")

    assert isinstance(bucket, Bucket)
    assert bucket.get_bytes("models/a/model.onnx") == b"onnx"
    assert bucket.exists("models/a/manifest.json")
    assert not bucket.exists("models/b/manifest.json")
    assert bucket.list("models/") == ["models/a/manifest.json", "models/a/model.onnx"]
    assert len(bucket.list()) == 3


def test_an_existing_object_is_never_replaced_unless_asked(bucket: Bucket) -> None:
    bucket.put_bytes("models/a/model.onnx", b"first")

    with pytest.raises(ObjectExistsError, match="immutable"):
        bucket.put_bytes("models/a/model.onnx", b"second")
    assert bucket.get_bytes("models/a/model.onnx") == b"first"

    bucket.put_bytes("models/env/dev.json", b"1")
    bucket.put_bytes("models/env/dev.json", b"2", if_absent=False)
    assert bucket.get_bytes("models/env/dev.json") == b"2"


def test_a_missing_object_raises_a_key_error_naming_it(bucket: Bucket) -> None:
    with pytest.raises(ObjectNotFoundError, match=r"models/none/model\.onnx") as caught:
        bucket.get_bytes("models/none/model.onnx")
    assert isinstance(caught.value, KeyError)


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../escape", "a/../b", ".hidden", "a/./b", "spa ce", "a/"])
def test_keys_must_be_plain_relative_paths(key: str) -> None:
    with pytest.raises(ValueError, match="bucket key"):
        validate_key(key)


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    bucket.put_bytes("a/b.bin", b"x")
    with pytest.raises(ObjectExistsError):
        bucket.put_bytes("a/b.bin", b"y")
    bucket.put_bytes("a/c.bin", b"z", if_absent=False)

    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin", "c.bin"]


@pytest.mark.integration
def test_s3_keys_live_under_the_prefix(s3_server: str) -> None:
    name = f"test-{uuid.uuid4().hex[:12]}"
    make_bucket(s3_server, name)
    client = s3_client(s3_server)
    S3Bucket(client, name, prefix="/team/").put_bytes("x/y.json", b"{}")

    stored = [o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]]
    assert stored == ["team/x/y.json"]
    assert S3Bucket(client, name).list() == ["team/x/y.json"]
    assert S3Bucket(client, name, "team").list("x/") == ["x/y.json"]


def test_bucket_from_uri_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(bucket_from_uri(str(tmp_path)), LocalBucket)
    assert isinstance(bucket_from_uri(tmp_path.as_uri()), LocalBucket)
    s3 = bucket_from_uri("s3://models-bucket/rare/triage", s3_client="client")
    assert isinstance(s3, S3Bucket)
    assert (s3.bucket, s3.prefix, s3.uri) == ("models-bucket", "rare/triage", "s3://models-bucket/rare/triage")
    with pytest.raises(ValueError, match="an S3 client is required"):
        bucket_from_uri("s3://models-bucket")
    with pytest.raises(ValueError, match="unsupported scheme"):
        bucket_from_uri("gs://models-bucket")
