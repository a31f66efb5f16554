"""Publishing to the bucket: immutable version folders, verified pointers, and failures that never move a pointer."""

import dataclasses
import datetime as dt
import hashlib
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from rare_triage.lib.deployment.bucket import Bucket, LocalBucket, S3Bucket
from rare_triage.lib.deployment.manifest import ManifestError, manifest_to_bytes
from rare_triage.lib.deployment.publication import (
    IntegrityError,
    ListedVersion,
    inspect_version,
    list_versions,
    manifest_key,
    model_key,
    move_pointer,
    pointer_key,
    publish_model,
    published_versions,
    read_pointer,
    served_model,
    sidecar_key,
)
from rare_triage_tests.fixtures_s3 import make_bucket, s3_client, s3_server
from rare_triage_tests.helpers.published_model_factory import (
    PHENOTYPE_ENCODING,
    manifest_for,
    publish_format_1,
    release_for,
)

__all__ = ["s3_server"]  # pytest fixture used by name below

ONNX_1, ONNX_2 = b"onnx model one", b"onnx model two"
TABLE = "phenotype_encoding.json"


class UploadInterruptedError(ConnectionError):
    """The simulated network failure."""


class FailingPutClient:
    """A real boto3 client whose `fail_at`-th put_object raises, as a connection lost mid-publication would."""

    def __init__(self, client: Any, fail_at: int) -> None:
        self._client, self._fail_at, self.puts = client, fail_at, 0

    def put_object(self, **kwargs: Any) -> Any:
        self.puts += 1
        if self.puts == self._fail_at:
            raise UploadInterruptedError(f"connection reset while uploading {kwargs['Key']}")
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _new_s3_bucket(endpoint: str) -> tuple[Any, str]:
    name = f"models-{uuid.uuid4().hex[:12]}"
    make_bucket(endpoint, name)
    return s3_client(endpoint), name


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def bucket(request: pytest.FixtureRequest, tmp_path: Path) -> Bucket:
    if request.param == "local":
        return LocalBucket(tmp_path)
    client, name = _new_s3_bucket(request.getfixturevalue("s3_server"))
    return S3Bucket(client, name, prefix="rare")


def test_publish_then_point_dev_at_the_verified_version(bucket: Bucket) -> None:
    release = release_for(ONNX_1)
    manifest = release.manifest

    published = publish_model(bucket, release)
    pointer = move_pointer(bucket, "dev", published.version, now=dt.datetime(2025, 3, 2, tzinfo=dt.UTC))

    version = manifest["version"]
    assert published.version == version
    assert published.already_published is False
    assert bucket.list("models/") == [
        "models/rare-triage/env/dev.json",
        f"models/rare-triage/{version}/manifest.json",
        f"models/rare-triage/{version}/model.onnx",
        f"models/rare-triage/{version}/phenotype_encoding.json",
    ]
    assert published.sidecar_keys == (sidecar_key(version, "phenotype_encoding.json"),)
    stored_table = bucket.get_bytes(sidecar_key(version, "phenotype_encoding.json"))
    assert stored_table == release.sidecars["phenotype_encoding.json"]
    assert manifest["files"]["phenotype_encoding"] == {
        "file": "phenotype_encoding.json",
        "sha256": hashlib.sha256(stored_table).hexdigest(),
        "size_bytes": len(stored_table),
    }
    assert published.onnx_sha256 == hashlib.sha256(ONNX_1).hexdigest()
    assert published.manifest_sha256 == hashlib.sha256(bucket.get_bytes(manifest_key(version))).hexdigest()
    assert read_pointer(bucket, "dev") == pointer
    assert (pointer.version, pointer.previous_version, pointer.updated_at) == (
        version,
        None,
        "2025-03-02T00:00:00+00:00",
    )
    served_pointer, served_manifest, served_bytes = served_model(bucket, "dev")
    assert (served_pointer, served_manifest, served_bytes) == (pointer, manifest, ONNX_1)
    assert inspect_version(bucket, version).tables == {"phenotype_encoding": PHENOTYPE_ENCODING}


def test_publishing_the_same_bytes_again_keeps_the_first_files(bucket: Bucket) -> None:
    first = publish_model(bucket, release_for(ONNX_1))
    stored = bucket.get_bytes(manifest_key(first.version))

    again = publish_model(bucket, release_for(ONNX_1, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))

    assert again.version == first.version
    assert again.already_published is True
    assert bucket.get_bytes(manifest_key(first.version)) == stored


def test_the_pointer_remembers_the_version_it_replaced(bucket: Bucket) -> None:
    later = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    two = publish_model(bucket, release_for(ONNX_2, mlflow_model_version="2", created_at=later)).version
    one = publish_model(bucket, release_for(ONNX_1)).version
    move_pointer(bucket, "dev", one)

    pointer = move_pointer(bucket, "dev", two)

    assert (pointer.version, pointer.previous_version) == (two, one)
    assert move_pointer(bucket, "dev", two) == pointer  # same version again: nothing moves, history kept
    assert list_versions(bucket) == [one, two]  # oldest first, by the manifests' created_at


@pytest.mark.integration
def test_an_upload_failing_half_way_leaves_the_previous_version_served(s3_server: str) -> None:
    client, name = _new_s3_bucket(s3_server)
    healthy = S3Bucket(client, name)
    served = publish_model(healthy, release_for(ONNX_1)).version
    move_pointer(healthy, "dev", served)
    release_2 = release_for(ONNX_2, mlflow_model_version="2")
    flaky_client = FailingPutClient(client, fail_at=3)  # model.onnx, the table file go through, manifest.json fails

    with pytest.raises(UploadInterruptedError, match=r"manifest\.json"):
        new = publish_model(S3Bucket(flaky_client, name), release_2)
        move_pointer(S3Bucket(flaky_client, name), "dev", new.version)

    half = release_2.version
    assert healthy.exists(model_key(half)) and not healthy.exists(manifest_key(half))
    assert healthy.exists(sidecar_key(half, "phenotype_encoding.json"))
    assert read_pointer(healthy, "dev").version == served  # type: ignore[union-attr]
    assert served_model(healthy, "dev")[2] == ONNX_1
    with pytest.raises(IntegrityError, match=f"version {half}: incomplete"):
        move_pointer(healthy, "dev", half)
    assert read_pointer(healthy, "dev").version == served  # type: ignore[union-attr]

    completed = publish_model(healthy, release_2)  # a retry completes the half-written version
    assert completed.already_published is False
    assert move_pointer(healthy, "dev", half).previous_version == served


@pytest.mark.integration
def test_a_tampered_model_file_is_never_pointed_at(s3_server: str) -> None:
    client, name = _new_s3_bucket(s3_server)
    bucket = S3Bucket(client, name)
    served = publish_model(bucket, release_for(ONNX_1)).version
    move_pointer(bucket, "dev", served)
    candidate = publish_model(bucket, release_for(ONNX_2, mlflow_model_version="2")).version
    client.put_object(Bucket=name, Key=model_key(candidate), Body=b"swapped behind our back")

    with pytest.raises(IntegrityError, match=r"onnx\.sha256 does not match the ONNX bytes"):
        move_pointer(bucket, "dev", candidate)
    with pytest.raises(IntegrityError, match=r"stored model\.onnx differs"):
        publish_model(bucket, release_for(ONNX_2, mlflow_model_version="2"))
    assert read_pointer(bucket, "dev").version == served  # type: ignore[union-attr]


def test_a_manifest_changed_after_the_pointer_moved_is_refused_when_served(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    version = publish_model(bucket, release_for(ONNX_1)).version
    move_pointer(bucket, "dev", version)
    edited = manifest_for(ONNX_1) | {"thresholds": {"orphan": 0.99}}
    (tmp_path / manifest_key(version)).write_bytes(manifest_to_bytes(edited))

    with pytest.raises(IntegrityError, match=r"manifest\.json .* does not match the hash recorded by pointer"):
        served_model(bucket, "dev")


def _tamper_table(bucket: Bucket, version: str) -> None:
    """Rewrite a version's phenotype encoding in place: still valid JSON, same size, another number."""
    key = sidecar_key(version, TABLE)
    bucket.put_bytes(key, bucket.get_bytes(key).replace(b"0.912", b"0.001"), if_absent=False)


def test_a_tampered_table_file_is_never_pointed_at_nor_served_nor_published_over(bucket: Bucket) -> None:
    served = publish_model(bucket, release_for(ONNX_1)).version
    move_pointer(bucket, "dev", served)
    candidate = publish_model(bucket, release_for(ONNX_2, mlflow_model_version="2")).version
    _tamper_table(bucket, candidate)

    problem = rf"{candidate}/phenotype_encoding\.json \(.*\) does not match its manifest entry"
    with pytest.raises(IntegrityError, match=rf"^version {candidate}: {problem}"):
        move_pointer(bucket, "dev", candidate)
    with pytest.raises(IntegrityError, match=r"stored phenotype_encoding\.json differs from the bytes to publish"):
        publish_model(bucket, release_for(ONNX_2, mlflow_model_version="2"))
    assert read_pointer(bucket, "dev").version == served  # type: ignore[union-attr]

    _tamper_table(bucket, served)
    with pytest.raises(IntegrityError, match=rf"env dev: version {served}: {served}/phenotype_encoding\.json"):
        served_model(bucket, "dev")


def test_a_version_missing_its_table_file_is_refused_until_publication_completes_it(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    version = publish_model(bucket, release_for(ONNX_1)).version
    (tmp_path / sidecar_key(version, TABLE)).unlink()

    missing = f"incomplete in {bucket.uri}: {version}/phenotype_encoding.json, listed in its manifest, is missing"
    assert inspect_version(bucket, version).problems == [missing]
    with pytest.raises(IntegrityError, match=rf"^version {version}: {re.escape(missing)}$"):
        move_pointer(bucket, "dev", version)
    assert read_pointer(bucket, "dev") is None

    assert publish_model(bucket, release_for(ONNX_1)).already_published is False  # the file is written again
    assert move_pointer(bucket, "dev", version).version == version


def test_a_release_whose_table_files_disagree_with_its_manifest_writes_nothing(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    release = release_for(ONNX_1)

    with pytest.raises(ManifestError, match=r"phenotype_encoding\.json \(.*\) does not match its manifest entry"):
        publish_model(bucket, dataclasses.replace(release, sidecars={TABLE: b'{"terms":{}}\n'}))
    with pytest.raises(IntegrityError, match=r"table files to publish \[\] are not the manifest's \['phenotype_enc"):
        publish_model(bucket, dataclasses.replace(release, sidecars={}))
    with pytest.raises(IntegrityError, match=r"to publish \['extra\.json', 'phenotype_encoding\.json'\] are not"):
        publish_model(bucket, dataclasses.replace(release, sidecars={**release.sidecars, "extra.json": b"{}\n"}))
    assert bucket.list() == []


def test_a_stored_manifest_naming_a_file_outside_its_folder_is_refused(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    version = publish_model(bucket, release_for(ONNX_1)).version
    forged = manifest_for(ONNX_1)
    forged["files"]["phenotype_encoding"]["file"] = "../env/prod.json"
    (tmp_path / manifest_key(version)).write_bytes(manifest_to_bytes(forged))

    check = inspect_version(bucket, version)

    assert check.manifest is None
    assert check.problems == [
        "manifest: field 'files': file name '../env/prod.json' is not a plain name of [A-Za-z0-9._-] (no '/', "
        "no '..', no leading dot, not manifest.json or model.onnx)"
    ]
    with pytest.raises(ValueError, match="is not a plain name"):
        sidecar_key(version, "../env/prod.json")


def test_a_format_1_version_is_listed_as_such_and_never_pointed_at(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    old = publish_format_1(bucket, ONNX_1)
    new = publish_model(bucket, release_for(ONNX_2, mlflow_model_version="2")).version

    assert inspect_version(bucket, old).problems == ["manifest format 1 is not 2"]
    with pytest.raises(IntegrityError, match=rf"^version {old}: manifest format 1 is not 2$"):
        move_pointer(bucket, "dev", old)
    assert published_versions(bucket) == [
        ListedVersion(old, f"version {old}: manifest format 1 is not 2", old_format=True),
        ListedVersion(new),
    ]
    assert list_versions(bucket) == [old, new]


def test_pointers_and_versions_are_validated(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    assert read_pointer(bucket, "prod") is None
    with pytest.raises(IntegrityError, match="incomplete"):
        move_pointer(bucket, "dev", "v1-0123456789ab")
    with pytest.raises(ValueError, match="env: 'Prod!'"):
        pointer_key("Prod!")
    with pytest.raises(ValueError, match="version: 'latest'"):
        model_key("latest")
    with pytest.raises(IntegrityError, match="env dev: no pointer"):
        served_model(bucket, "dev")
