"""The manifest: complete, canonical, content-addressed, checked against its ONNX bytes, its table files listed."""

import dataclasses
import datetime as dt
import hashlib
import json

import pytest

from rare_triage.lib.deployment.manifest import (
    MANIFEST_FORMAT,
    REQUIRED_FIELDS,
    ManifestError,
    ManifestFormatError,
    manifest_from_bytes,
    manifest_to_bytes,
    model_version,
    validate_manifest,
)
from rare_triage.lib.deployment.onnx_export import FeatureSpec
from rare_triage.lib.deployment.release import build_release
from rare_triage.lib.deployment.sidecar import sidecar_bytes
from rare_triage_tests.helpers.published_model_factory import PHENOTYPE_ENCODING, SPEC, manifest_for, trained_model

ONNX = b"fake onnx bytes"
DIGEST = hashlib.sha256(ONNX).hexdigest()


def test_manifest_carries_contract_and_provenance() -> None:
    manifest = manifest_for(ONNX)

    assert set(REQUIRED_FIELDS) <= set(manifest)
    assert manifest["version"] == f"v1-{DIGEST[:12]}"
    assert manifest["onnx"] == {
        "file": "model.onnx",
        "sha256": DIGEST,
        "size_bytes": len(ONNX),
        "input": "features",
        "outputs": ["label", "probabilities"],
        "probabilities_output": "probabilities",
    }
    assert FeatureSpec.from_dict(manifest["input_schema"]) == SPEC
    assert manifest["class_labels"] == list(SPEC.class_labels)
    assert manifest["training_partitions"] == ["2025-01-01", "2025-01-02"]
    assert (manifest["mlflow_run_id"], manifest["mlflow_model_version"]) == ("run-abc", "1")
    assert manifest["dagster_run_id"] == "dagster-run-1"
    assert manifest["created_at"] == "2025-03-01T12:00:00Z"
    assert manifest["vocabulary"] == [{"hpo_id": "HP:0001945", "label": "Fever"}]
    assert manifest["checks_passed"] is True
    assert manifest["format"] == MANIFEST_FORMAT == 2
    assert "phenotype_encoding" not in manifest
    table = sidecar_bytes(PHENOTYPE_ENCODING)
    assert manifest["files"] == {
        "phenotype_encoding": {
            "file": "phenotype_encoding.json",
            "sha256": hashlib.sha256(table).hexdigest(),
            "size_bytes": len(table),
        }
    }


def test_checks_passed_needs_at_least_one_check_and_all_of_them() -> None:
    model = trained_model()
    mixed = build_release(model, ONNX, SPEC, checks={"parity": True, "size": False}, dagster_run_id=None).manifest
    none = build_release(model, ONNX, SPEC, checks={}, dagster_run_id=None).manifest

    assert mixed["checks_passed"] is False
    assert none["checks_passed"] is False


def test_version_is_content_addressed() -> None:
    assert model_version(DIGEST, "12") == f"v12-{DIGEST[:12]}"
    assert model_version(DIGEST, None) == f"v0-{DIGEST[:12]}"
    assert (
        manifest_for(ONNX)["version"]
        == manifest_for(ONNX, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))["version"]
    )
    assert manifest_for(b"other")["version"] != manifest_for(ONNX)["version"]
    with pytest.raises(ManifestError, match="not 64 lowercase hex"):
        model_version("abc", "1")
    with pytest.raises(ManifestError, match="mlflow_model_version: 'latest' is not a number"):
        model_version(DIGEST, "latest")


def test_manifest_bytes_are_canonical_and_round_trip() -> None:
    manifest = manifest_for(ONNX)
    reordered = dict(reversed(list(manifest.items())))

    assert manifest_to_bytes(manifest) == manifest_to_bytes(reordered)
    assert manifest_from_bytes(manifest_to_bytes(manifest)) == manifest


def test_a_manifest_is_refused_for_other_onnx_bytes() -> None:
    with pytest.raises(ManifestError, match=r"onnx\.sha256 does not match the ONNX bytes"):
        validate_manifest(manifest_for(ONNX), b"tampered")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("thresholds"), "missing field 'thresholds'"),
        (lambda m: m.update(checks_passed="yes"), "field 'checks_passed' has type str"),
        (lambda m: m.update(version="v1-000000000000"), r"does not match onnx\.sha256"),
        (lambda m: m.update(format=99), "manifest format 99 is not 2"),
        (lambda m: m.pop("format"), "missing field 'format'"),
        (lambda m: m.update(class_labels=["a"]), "class_labels differ"),
        (lambda m: m["input_schema"].pop("columns"), "input_schema: input schema: malformed"),
        (lambda m: m.pop("files"), "missing field 'files'"),
        (lambda m: m.update(files=[]), "field 'files' has type list"),
        (lambda m: m.update(files={}), r"field 'files' lacks the tables \['phenotype_encoding'\]"),
        (lambda m: _entry(m).pop("sha256"), "field 'files': table 'phenotype_encoding': an entry is exactly"),
        (lambda m: _entry(m).update(url="s3://elsewhere"), "table 'phenotype_encoding': an entry is exactly"),
        (lambda m: _entry(m).update(sha256="ABC"), "table 'phenotype_encoding': sha256 'ABC' is not 64 lowercase"),
        (lambda m: _entry(m).update(sha256=DIGEST.upper()), "is not 64 lowercase hex"),
        (lambda m: _entry(m).update(sha256=DIGEST + "\n"), "is not 64 lowercase hex"),
        (lambda m: _entry(m).update(size_bytes="12"), "table 'phenotype_encoding': size_bytes has type str"),
        (lambda m: _entry(m).update(size_bytes=True), "size_bytes has type bool"),
        (lambda m: _entry(m).update(size_bytes=-1), "size_bytes -1 is negative"),
        (lambda m: m["files"].update({"Drift Profile": _entry(m)}), "table 'Drift Profile': a table name is"),
        (lambda m: m["files"].update(copy=dict(_entry(m))), "file 'phenotype_encoding.json' is listed twice"),
    ],
)
def test_invalid_manifests_name_the_field(change: object, message: str) -> None:
    manifest = manifest_for(ONNX)
    change(manifest)  # type: ignore[operator]
    with pytest.raises(ManifestError, match=message):
        manifest_from_bytes(json.dumps(manifest).encode())


def _entry(manifest: dict) -> dict:
    return manifest["files"]["phenotype_encoding"]


@pytest.mark.parametrize(
    "name",
    ["../env/prod.json", "a/b.json", "..", "a..json", ".hidden.json", "a.json\n", "model.onnx", "manifest.json", "", 7],
)
def test_table_file_names_are_plain_names_of_the_version_folder(name: object) -> None:
    manifest = manifest_for(ONNX)
    _entry(manifest)["file"] = name
    with pytest.raises(ManifestError, match=r"field 'files': .*is not a plain name|file has type int"):
        validate_manifest(manifest)


def test_a_format_1_manifest_is_named_by_its_format() -> None:
    old = manifest_for(ONNX) | {"format": 1, "phenotype_encoding": PHENOTYPE_ENCODING}
    old.pop("files")

    with pytest.raises(ManifestFormatError, match=r"^manifest format 1 is not 2$") as caught:
        manifest_from_bytes(json.dumps(old).encode())
    assert caught.value.found == 1


def test_unreadable_manifest_bytes_are_refused() -> None:
    with pytest.raises(ManifestError, match="not valid UTF-8 JSON"):
        manifest_from_bytes(b"\xff{")
    with pytest.raises(ManifestError, match="top level is not an object"):
        manifest_from_bytes(b"[1]")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"feature_columns": ["sex", "spo2", "age"]}, "feature_columns: must be exactly"),
        ({"categories": {}}, "categories: keys"),
        ({"class_labels": ["orphan", "none"]}, "class_labels: expected"),
        ({"vocabulary": [{"hpo_id": "HP:1"}]}, "lacks hpo_id or label"),
    ],
)
def test_trained_model_bundle_rejects_inconsistent_fields(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(trained_model(), **change)


def test_non_finite_metrics_become_null_and_stray_nans_are_refused() -> None:
    manifest = build_release(
        trained_model(test_brier=float("nan")), ONNX, SPEC, checks={"parity": True}, dagster_run_id=None
    ).manifest
    assert manifest["metrics"]["test_brier"] is None
    strict = json.loads(manifest_to_bytes(manifest), parse_constant=lambda name: pytest.fail(f"{name} in manifest"))
    assert strict["metrics"]["test_brier"] is None

    manifest["thresholds"] = {"orphan": float("nan")}
    with pytest.raises(ManifestError, match="NaN or infinity"):
        manifest_to_bytes(manifest)
