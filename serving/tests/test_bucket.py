"""Bucket access: a local folder and a real S3 API server; every failure is ObjectMissingError (the bucket answered,
nothing there) or BucketUnavailableError (cannot tell now)."""

import time
from pathlib import Path

import pytest

from serving.bucket import (
    COPY_CHUNK_BYTES,
    BucketUnavailableError,
    LocalBucket,
    ObjectExistsError,
    ObjectMissingError,
    S3Bucket,
    open_bucket,
)
from serving.tests.s3_support import admin_client, s3_options, serving_bucket


def fill(root: Path) -> None:
    for key, data in {"models/a/x.json": b"x", "models/a/y.json": b"y", "predictions/p.txt": b"p"}.items():
        path = root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_local_bucket_reads(bucket_root: Path) -> None:
    fill(bucket_root)
    (bucket_root / "models" / ".x.json.tmp").write_bytes(b"half-written")
    bucket = LocalBucket(bucket_root)

    assert bucket.get_bytes("models/a/x.json") == b"x"
    assert bucket.exists("models/a/y.json")
    assert not bucket.exists("models/a/z.json")
    assert bucket.list("models/") == ["models/a/x.json", "models/a/y.json"]
    assert bucket.list() == ["models/a/x.json", "models/a/y.json", "predictions/p.txt"]
    with pytest.raises(ObjectMissingError, match=r"models/a/z.json: no such object"):
        bucket.get_bytes("models/a/z.json")
    with pytest.raises(ObjectMissingError):
        bucket.get_bytes("models/a")  # a folder is no object


def test_a_missing_local_folder_is_unavailable_not_empty(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path / "nowhere")

    for read in (
        lambda: bucket.get_bytes("k"),
        lambda: bucket.exists("k"),
        bucket.list,
        lambda: bucket.put_new("k", b""),
    ):
        with pytest.raises(BucketUnavailableError, match=r"bucket folder .*nowhere does not exist"):
            read()
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../up", "a/.hidden", "a/b/"])
def test_keys_are_relative_and_plain(bucket_root: Path, key: str) -> None:
    with pytest.raises(ValueError, match="bucket key"):
        LocalBucket(bucket_root).get_bytes(key)


def test_local_put_new_never_replaces(bucket_root: Path) -> None:
    bucket = LocalBucket(bucket_root)

    bucket.put_new("predictions/env=dev/dt=2026-12-01/a.txt", b"first")
    with pytest.raises(ObjectExistsError):
        bucket.put_new("predictions/env=dev/dt=2026-12-01/a.txt", b"second")

    assert bucket.get_bytes("predictions/env=dev/dt=2026-12-01/a.txt") == b"first"
    assert [p.name for p in (bucket_root / "predictions" / "env=dev" / "dt=2026-12-01").iterdir()] == ["a.txt"]


def test_local_put_new_file_copies_the_file_and_never_replaces(bucket_root: Path, tmp_path: Path) -> None:
    bucket = LocalBucket(bucket_root)
    source = tmp_path / "closed.txt"
    source.write_bytes(b"x" * (3 * COPY_CHUNK_BYTES + 17))  # more than one chunk

    bucket.put_new_file("predictions/closed.txt", source)
    with pytest.raises(ObjectExistsError):
        bucket.put_new_file("predictions/closed.txt", source)

    assert bucket.get_bytes("predictions/closed.txt") == source.read_bytes()
    assert [p.name for p in (bucket_root / "predictions").iterdir()] == ["closed.txt"]  # no temporary file left


def test_open_bucket_by_uri(bucket_root: Path) -> None:
    assert isinstance(open_bucket(str(bucket_root)), LocalBucket)
    assert open_bucket(bucket_root.as_uri()).uri == str(bucket_root)
    s3 = open_bucket("s3://name/some/prefix")
    assert isinstance(s3, S3Bucket)
    assert (s3.bucket, s3.prefix, s3.uri) == ("name", "some/prefix", "s3://name/some/prefix")
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_bucket("gs://name")


@pytest.mark.integration
def test_s3_bucket_reads_and_writes(s3_endpoint: str, s3_bucket_name: str, tmp_path: Path) -> None:
    client = admin_client(s3_endpoint)
    for key in ("pre/models/a/x.json", "pre/models/a/y.json", "other/z.json"):
        client.put_object(Bucket=s3_bucket_name, Key=key, Body=key.encode())
    bucket = serving_bucket(s3_endpoint, s3_bucket_name, "pre")

    assert bucket.get_bytes("models/a/x.json") == b"pre/models/a/x.json"
    assert bucket.exists("models/a/y.json")
    assert not bucket.exists("models/a/z.json")
    assert bucket.list("models/") == ["models/a/x.json", "models/a/y.json"]
    with pytest.raises(ObjectMissingError, match=r"s3://.*/pre/models/a/z.json: no such object"):
        bucket.get_bytes("models/a/z.json")
    bucket.put_new("predictions/p.txt", b"lines")
    with pytest.raises(ObjectExistsError):
        bucket.put_new("predictions/p.txt", b"other")
    assert client.get_object(Bucket=s3_bucket_name, Key="pre/predictions/p.txt")["Body"].read() == b"lines"
    source = tmp_path / "closed.txt"
    source.write_bytes(b"line\n" * 100_000)
    bucket.put_new_file("predictions/closed.txt", source)
    with pytest.raises(ObjectExistsError):
        bucket.put_new_file("predictions/closed.txt", source)
    assert (
        client.get_object(Bucket=s3_bucket_name, Key="pre/predictions/closed.txt")["Body"].read() == source.read_bytes()
    )


@pytest.mark.integration
def test_s3_missing_bucket_is_unavailable(s3_endpoint: str) -> None:
    bucket = serving_bucket(s3_endpoint, "no-such-bucket-here")

    with pytest.raises(BucketUnavailableError, match="NoSuchBucket"):
        bucket.get_bytes("models/x")
    with pytest.raises(BucketUnavailableError, match="NoSuchBucket"):
        bucket.list("models/")


@pytest.mark.integration
def test_s3_refused_endpoint_is_unavailable_at_once(refused_endpoint: str) -> None:
    bucket = serving_bucket(refused_endpoint, "b", timeout_s=1.0, attempts=2)
    started = time.monotonic()

    with pytest.raises(
        BucketUnavailableError, match=rf"s3 endpoint {refused_endpoint}: get .* failed \(connect timeout 1 s"
    ):
        bucket.get_bytes("models/x")

    assert time.monotonic() - started < 5


@pytest.mark.integration
def test_s3_frozen_endpoint_gives_up_within_its_limits(frozen_endpoint: str) -> None:
    bucket = open_bucket("s3://b", s3_options(frozen_endpoint, timeout_s=0.5, attempts=2))
    started = time.monotonic()

    with pytest.raises(BucketUnavailableError, match=r"read timeout 0.5 s, 2 attempts"):
        bucket.exists("models/x")

    # two attempts of at most 0.5 s each, plus the standard retry back-off (under a second)
    assert time.monotonic() - started < 4
