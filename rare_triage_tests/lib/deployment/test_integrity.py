"""Files edited in the bucket after publication are refused by promotion and rollback; a missing bucket folder is
an error, not an empty bucket."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rare_triage.lib.deployment.bucket import BucketNotFoundError, LocalBucket
from rare_triage.lib.deployment.manifest import manifest_to_bytes
from rare_triage.lib.deployment.model_bundle import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL
from rare_triage.lib.deployment.promotion import promote, registry_version, rollback
from rare_triage.lib.deployment.publication import (
    IntegrityError,
    Pointer,
    PublishedVersion,
    RecordedHashes,
    inspect_version,
    manifest_key,
    move_pointer,
    pointer_key,
    publish_model,
    read_pointer,
    sidecar_key,
)
from rare_triage.lib.deployment.registry_hashes import hash_tags, recorded_in_tags, tags_to_set
from rare_triage_tests.helpers.published_model_factory import manifest_for, release_for

RECALL, SHARE = METRIC_ORPHAN_RECALL, METRIC_EXTERNAL_VALIDATION_SHARE
TABLE = "phenotype_encoding.json"


def _publish(bucket: LocalBucket, onnx: bytes, registry: str, **metrics: float) -> PublishedVersion:
    return publish_model(bucket, release_for(onnx, registry, **metrics))


def _registry(*published: PublishedVersion) -> Callable[[str], RecordedHashes | None]:
    """The registry's hash tags as publication records them, keyed by registry version (the injected lookup)."""
    tags = {registry_version(p.version): hash_tags(p) for p in published}
    return lambda number: recorded_in_tags(tags.get(number, {}), f"model registry version {number}")


def _tamper(bucket: LocalBucket, version: str, **changes: Any) -> None:
    """Rewrite a stored manifest in place: still valid, same ONNX, other thresholds or metrics."""
    manifest = manifest_for(b"two", "2") | changes
    manifest["version"] = version
    (bucket.root / manifest_key(version)).write_bytes(manifest_to_bytes(manifest))


@pytest.fixture
def served(tmp_path: Path) -> tuple[LocalBucket, PublishedVersion, PublishedVersion]:
    """prod serves version 1, dev serves version 2 (better metrics)."""
    bucket = LocalBucket(tmp_path / "bucket")
    one = _publish(bucket, b"one", "1")
    two = _publish(bucket, b"two", "2", **{RECALL: 0.93, SHARE: 0.82})
    move_pointer(bucket, "prod", one.version)
    move_pointer(bucket, "dev", two.version)
    return bucket, one, two


def test_promotion_refuses_a_dev_manifest_edited_after_publication(
    served: tuple[LocalBucket, PublishedVersion, PublishedVersion],
) -> None:
    bucket, one, two = served
    _tamper(bucket, two.version, thresholds={"orphan": 0.01}, metrics={RECALL: 0.99, SHARE: 0.99})

    with pytest.raises(
        IntegrityError, match=rf"version {two.version}: manifest\.json .* recorded by pointer .*dev\.json"
    ):
        promote(bucket, tolerance=0.0)

    assert read_pointer(bucket, "prod").version == one.version  # type: ignore[union-attr]


def test_the_registry_catches_a_manifest_whose_pointer_was_rewritten_too(
    served: tuple[LocalBucket, PublishedVersion, PublishedVersion],
) -> None:
    bucket, one, two = served
    _tamper(bucket, two.version, metrics={RECALL: 0.99, SHARE: 0.99})
    dev = read_pointer(bucket, "dev")
    assert dev is not None
    forged = Pointer(**{**vars(dev), "manifest_sha256": inspect_version(bucket, two.version).published.manifest_sha256})  # type: ignore[union-attr]
    bucket.put_bytes(pointer_key("dev"), forged.to_bytes(), if_absent=False)

    with pytest.raises(IntegrityError, match="recorded by model registry version 2"):
        promote(bucket, tolerance=0.0, registry=_registry(one, two))
    assert read_pointer(bucket, "prod").version == one.version  # type: ignore[union-attr]


def test_the_champion_is_verified_before_the_gate_reads_it(
    served: tuple[LocalBucket, PublishedVersion, PublishedVersion],
) -> None:
    bucket, one, _ = served
    manifest = manifest_for(b"one", "1", **{RECALL: 0.10, SHARE: 0.10})  # a champion made to look bad
    (bucket.root / manifest_key(one.version)).write_bytes(manifest_to_bytes(manifest))

    with pytest.raises(IntegrityError, match=rf"version {one.version}: .* recorded by pointer .*prod\.json"):
        promote(bucket, tolerance=0.0)


def _tamper_table(bucket: LocalBucket, version: str) -> None:
    """Rewrite a version's phenotype encoding in place: valid JSON, another information content."""
    path = bucket.root / sidecar_key(version, TABLE)
    path.write_bytes(path.read_bytes().replace(b"0.912", b"0.001"))


@pytest.mark.parametrize("edited", ["challenger", "champion"])
def test_promotion_refuses_a_table_file_edited_after_publication(
    served: tuple[LocalBucket, PublishedVersion, PublishedVersion], edited: str
) -> None:
    bucket, one, two = served
    version = two.version if edited == "challenger" else one.version
    _tamper_table(bucket, version)

    with pytest.raises(
        IntegrityError, match=rf"^version {version}: {version}/phenotype_encoding\.json .* does not match its manifest"
    ):
        promote(bucket, tolerance=0.0, registry=_registry(one, two))
    assert read_pointer(bucket, "prod").version == one.version  # type: ignore[union-attr]


def test_rollback_refuses_a_tampered_or_missing_table_file(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    one, two = _publish(bucket, b"one", "1"), _publish(bucket, b"two", "2")
    move_pointer(bucket, "prod", one.version)
    move_pointer(bucket, "prod", two.version)
    registry = _registry(one, two)
    _tamper_table(bucket, one.version)

    with pytest.raises(IntegrityError, match=rf"version {one.version}: {one.version}/phenotype_encoding\.json"):
        rollback(bucket, "prod", one.version, registry=registry)
    (bucket.root / sidecar_key(one.version, TABLE)).unlink()
    with pytest.raises(IntegrityError, match=r"incomplete in .*phenotype_encoding\.json, listed in its manifest, is"):
        rollback(bucket, "prod", one.version, registry=registry)
    assert read_pointer(bucket, "prod").version == two.version  # type: ignore[union-attr]


def test_an_intact_promotion_records_the_hashes_it_verified(
    served: tuple[LocalBucket, PublishedVersion, PublishedVersion],
) -> None:
    bucket, one, two = served

    result = promote(bucket, tolerance=0.0, registry=_registry(one, two))

    assert result.promoted and result.pointer is not None
    assert (result.pointer.manifest_sha256, result.pointer.onnx_sha256) == (two.manifest_sha256, two.onnx_sha256)
    assert (result.pointer.previous_version, result.pointer.previous_manifest_sha256) == (
        one.version,
        one.manifest_sha256,
    )


def test_rollback_verifies_against_every_record_and_refuses_an_unrecorded_version(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    one, two, three = (_publish(bucket, data, str(n)) for n, data in ((1, b"one"), (2, b"two"), (3, b"three")))
    move_pointer(bucket, "prod", one.version)
    move_pointer(bucket, "prod", two.version)

    with pytest.raises(IntegrityError, match=rf"version {three.version}: no recorded hashes"):
        rollback(bucket, "prod", three.version)  # never served, no registry: its manifest could be anything
    assert rollback(bucket, "prod", three.version, registry=_registry(three)).version == three.version
    assert rollback(bucket, "prod", two.version).version == two.version  # prod's previous version, recorded there

    _tamper(bucket, one.version, thresholds={"orphan": 0.5})
    with pytest.raises(IntegrityError, match="recorded by model registry version 1"):
        rollback(bucket, "prod", one.version, registry=_registry(one))
    assert read_pointer(bucket, "prod").version == two.version  # type: ignore[union-attr]


def test_pointers_written_before_the_previous_hash_still_read(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    version = _publish(bucket, b"one", "1")
    pointer = move_pointer(bucket, "dev", version.version)
    old_format = {k: v for k, v in vars(pointer).items() if k != "previous_manifest_sha256"}
    bucket.put_bytes(pointer_key("dev"), Pointer(**old_format).to_bytes(), if_absent=False)

    assert read_pointer(bucket, "dev") == pointer


def test_registry_tags_are_set_once_and_never_silently_replaced(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    one = _publish(bucket, b"one", "1")

    assert tags_to_set({}, one, "registry version 1") == hash_tags(one)
    assert tags_to_set(hash_tags(one), one, "registry version 1") == {}
    conflicting = hash_tags(one) | {"bucket_manifest_sha256": "0" * 64}
    with pytest.raises(IntegrityError, match=r"registry version 1 already records other values for \['bucket_man"):
        tags_to_set(conflicting, one, "registry version 1")
    assert recorded_in_tags({"other": "tag"}, "registry version 1") is None
    assert (registry_version("v12-0123456789ab"), registry_version("v0-0123456789ab")) == ("12", None)


def test_a_missing_bucket_folder_is_an_error_for_moves_but_publication_creates_it(tmp_path: Path) -> None:
    missing = LocalBucket(tmp_path / "mistyped")

    with pytest.raises(BucketNotFoundError, match=rf"bucket folder {tmp_path / 'mistyped'} does not exist"):
        promote(missing, tolerance=0.0)
    with pytest.raises(BucketNotFoundError, match="does not exist"):
        rollback(missing, "prod", "v1-0123456789ab")
    assert not (tmp_path / "mistyped").exists()

    published = _publish(missing, b"one", "1")

    missing.check_exists()
    assert inspect_version(missing, published.version).problems == []


def test_an_unparseable_manifest_is_a_problem_naming_the_version(tmp_path: Path) -> None:
    bucket = LocalBucket(tmp_path)
    version = _publish(bucket, b"one", "1").version
    pointer = move_pointer(bucket, "dev", version)
    (tmp_path / manifest_key(version)).write_bytes(b"\x00\xff garbage \x89PNG")

    check = inspect_version(bucket, version, [pointer.record()])

    assert check.manifest is None
    assert any("does not match the hash recorded by pointer" in p for p in check.problems)
    assert any("manifest: not valid UTF-8 JSON" in p for p in check.problems)
    with pytest.raises(IntegrityError, match=rf"version {version}: .*not valid UTF-8 JSON"):
        promote(bucket, tolerance=0.0)
