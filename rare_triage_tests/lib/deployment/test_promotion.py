"""The promotion gate, promotion from dev to prod, and rollback to an earlier version."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from rare_triage.lib.deployment.bucket import LocalBucket
from rare_triage.lib.deployment.model_bundle import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL
from rare_triage.lib.deployment.promotion import promote, promotion_gate, rollback
from rare_triage.lib.deployment.publication import IntegrityError, model_key, move_pointer, publish_model, read_pointer
from rare_triage_tests.helpers.published_model_factory import manifest_for, release_for

RECALL, SHARE = METRIC_ORPHAN_RECALL, METRIC_EXTERNAL_VALIDATION_SHARE


class AliasRecorder:
    """Stands in for the MLflow client: records which model versions became champion."""

    def __init__(self) -> None:
        self.versions: list[str] = []

    def __call__(self, manifest: Mapping[str, Any]) -> None:
        self.versions.append(manifest["mlflow_model_version"])


def _publish(bucket: LocalBucket, onnx: bytes, registry_version: str | None = "1", **kwargs: Any) -> str:
    return publish_model(bucket, release_for(onnx, registry_version, **kwargs)).version


@pytest.fixture
def bucket(tmp_path: Path) -> LocalBucket:
    return LocalBucket(tmp_path)


def test_first_promotion_moves_prod_and_sets_the_champion_alias(bucket: LocalBucket) -> None:
    version = _publish(bucket, b"one")
    move_pointer(bucket, "dev", version)
    alias = AliasRecorder()

    result = promote(bucket, tolerance=0.0, set_alias=alias)

    assert result.promoted and result.alias_set
    assert read_pointer(bucket, "prod").version == version  # type: ignore[union-attr]
    assert alias.versions == ["1"]
    assert "no champion yet: first promotion to prod" in result.gate.reasons


@pytest.mark.parametrize(
    ("challenger_metrics", "tolerance", "promoted", "reason"),
    [
        ({RECALL: 0.95, SHARE: 0.85}, 0.0, True, "orphan_recall: challenger 0.9500 >= champion 0.9000"),
        (
            {RECALL: 0.89, SHARE: 0.80},
            0.02,
            True,
            "orphan_recall: challenger 0.8900 >= champion 0.9000 - tolerance 0.02",
        ),
        (
            {RECALL: 0.85, SHARE: 0.90},
            0.02,
            False,
            "orphan_recall: challenger 0.8500 < champion 0.9000 - tolerance 0.02",
        ),
        ({RECALL: 0.95, SHARE: 0.70}, 0.05, False, "external_validation_share: challenger 0.7000 < champion 0.8000"),
    ],
)
def test_the_gate_compares_orphan_recall_and_external_share_with_a_tolerance(
    bucket: LocalBucket, challenger_metrics: dict[str, float], tolerance: float, promoted: bool, reason: str
) -> None:
    champion = _publish(bucket, b"champion", "1", **{RECALL: 0.90, SHARE: 0.80})
    move_pointer(bucket, "prod", champion)
    challenger = _publish(bucket, b"challenger", "2", **challenger_metrics)
    move_pointer(bucket, "dev", challenger)
    alias = AliasRecorder()

    result = promote(bucket, tolerance=tolerance, set_alias=alias)

    assert result.promoted is promoted
    assert any(r.startswith(reason) for r in result.gate.reasons), result.gate.reasons
    assert read_pointer(bucket, "prod").version == (challenger if promoted else champion)  # type: ignore[union-attr]
    assert alias.versions == (["2"] if promoted else [])


def test_a_challenger_whose_blocking_checks_failed_is_never_promoted(bucket: LocalBucket) -> None:
    version = _publish(bucket, b"unchecked", checks_passed=False, **{RECALL: 1.0, SHARE: 1.0})
    move_pointer(bucket, "dev", version)

    result = promote(bucket, tolerance=0.5)

    assert not result.promoted
    assert "blocking checks did not all pass" in result.gate.reasons[0]
    assert read_pointer(bucket, "prod") is None


def test_missing_metrics_fail_the_gate() -> None:
    challenger = manifest_for(b"c", "2")
    challenger["metrics"].pop(RECALL)
    champion = manifest_for(b"p", "1")
    champion["metrics"].pop(SHARE)

    gate = promotion_gate(challenger, champion, tolerance=0.0)

    assert not gate.passed
    assert "challenger has no metric 'orphan_recall'" in gate.reasons
    assert any("has no metric 'external_validation_share': cannot compare" in r for r in gate.reasons)
    with pytest.raises(ValueError, match=r"tolerance: 1\.5 must be in"):
        promotion_gate(challenger, None, tolerance=1.5)


def test_promoting_what_prod_already_serves_changes_nothing(bucket: LocalBucket) -> None:
    version = _publish(bucket, b"one")
    move_pointer(bucket, "dev", version)
    first = promote(bucket, tolerance=0.0)

    second = promote(bucket, tolerance=0.0)

    assert not second.promoted
    assert second.gate.reasons == [f"prod already serves {version}"]
    assert read_pointer(bucket, "prod") == first.pointer


def test_promotion_needs_a_dev_model_and_skips_the_alias_of_unregistered_models(bucket: LocalBucket) -> None:
    with pytest.raises(IntegrityError, match="env dev serves no model yet"):
        promote(bucket, tolerance=0.0)
    move_pointer(bucket, "dev", _publish(bucket, b"local only", registry_version=None))
    alias = AliasRecorder()

    result = promote(bucket, tolerance=0.0, set_alias=alias)

    assert result.promoted and not result.alias_set and alias.versions == []


def test_rollback_points_back_at_any_verified_earlier_version(bucket: LocalBucket, tmp_path: Path) -> None:
    old = _publish(bucket, b"old", "1")
    new = _publish(bucket, b"new", "2")
    move_pointer(bucket, "prod", old)
    move_pointer(bucket, "prod", new)
    alias = AliasRecorder()

    pointer = rollback(bucket, "prod", old, set_alias=alias)

    assert (pointer.version, pointer.previous_version) == (old, new)
    assert alias.versions == ["1"]

    (tmp_path / model_key(new)).write_bytes(b"corrupted")
    with pytest.raises(IntegrityError, match="does not match the ONNX bytes"):
        rollback(bucket, "prod", new, set_alias=alias)
    with pytest.raises(IntegrityError, match="incomplete"):
        rollback(bucket, "prod", "v9-0123456789ab", set_alias=alias)
    assert read_pointer(bucket, "prod").version == old  # type: ignore[union-attr]
    assert alias.versions == ["1"]
