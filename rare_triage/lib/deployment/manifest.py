"""The manifest: everything the serving side needs besides the ONNX graph, and where the model came from.

It travels next to `model.onnx` so a model and its contract always move together. The serving side
reads `input_schema` to build the float32 input, `class_labels` to name the probability columns and
`thresholds` / `needs_review` to decide; a reviewer reads the provenance fields to walk back to the
MLflow run, the Dagster run and the training partitions.
"""

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.deployment.onnx_export.feature_spec import FeatureSpec

MODEL_NAME = "rare-triage"
MANIFEST_FORMAT = 1
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": int,
    "model_name": str,
    "version": str,
    "onnx": dict,
    "input_schema": dict,
    "class_labels": list,
    "thresholds": dict,
    "needs_review": dict,
    "metrics": dict,
    "checks_passed": bool,
    "checks": dict,
    "vocabulary": list,
    "systems": list,
    "hpo_release": str,
    "phenotype_encoding": dict,
    "mlflow_run_id": (str, type(None)),
    "mlflow_model_version": (str, type(None)),
    "dagster_run_id": (str, type(None)),
    "training_partitions": list,
    "data_fingerprint": str,
    "code_revision": str,
    "created_at": str,
}


class ManifestError(ValueError):
    """A manifest lacks a field, has a wrong type, or disagrees with its ONNX file."""


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def model_version(onnx_sha256: str, mlflow_model_version: str | None) -> str:
    """Content-addressed version: `v<MLflow model version>-<first 12 hex of the ONNX sha256>`.

    `v0-` when the model is not registered. The same ONNX bytes always get the same version, so a
    re-run publishes nothing new; the MLflow part makes versions readable and sortable by humans.
    """
    if len(onnx_sha256) != 64 or any(ch not in "0123456789abcdef" for ch in onnx_sha256):
        raise ManifestError(f"onnx sha256: {onnx_sha256!r} is not 64 lowercase hex digits")
    registry = mlflow_model_version or "0"
    if not registry.isdigit():
        raise ManifestError(f"mlflow_model_version: {registry!r} is not a number")
    return f"v{registry}-{onnx_sha256[:12]}"


def build_manifest(
    model: ModelBundle,
    onnx_bytes: bytes,
    spec: FeatureSpec,
    *,
    checks: Mapping[str, bool],
    dagster_run_id: str | None,
    parity: Mapping[str, Any] | None = None,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The manifest of `onnx_bytes` exported from `model`; `checks` maps each blocking check to its outcome.

    `checks_passed` is true only when `checks` is non-empty and every one passed.
    """
    digest = sha256_hex(onnx_bytes)
    when = (created_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    manifest = {
        "format": MANIFEST_FORMAT,
        "model_name": MODEL_NAME,
        "version": model_version(digest, model.mlflow_model_version),
        "onnx": {
            "file": "model.onnx",
            "sha256": digest,
            "size_bytes": len(onnx_bytes),
            "input": spec.input_name,
            "outputs": list(spec.outputs),
            "probabilities_output": "probabilities",
        },
        "input_schema": spec.to_dict(),
        "class_labels": list(spec.class_labels),
        "thresholds": dict(model.thresholds),
        "needs_review": dict(model.needs_review),
        "metrics": {k: float(v) if math.isfinite(float(v)) else None for k, v in model.metrics.items()},
        "checks_passed": bool(checks) and all(checks.values()),
        "checks": {name: bool(ok) for name, ok in checks.items()},
        "parity": dict(parity) if parity is not None else None,
        "vocabulary": [dict(v) for v in model.vocabulary],
        "systems": [dict(s) for s in model.systems],
        "hpo_release": model.hpo_release,
        "phenotype_encoding": dict(model.phenotype_encoding),
        "mlflow_run_id": model.mlflow_run_id,
        "mlflow_model_version": model.mlflow_model_version,
        "dagster_run_id": dagster_run_id,
        "training_partitions": sorted(model.training_partitions),
        "data_fingerprint": model.data_fingerprint,
        "code_revision": model.code_revision,
        "created_at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    validate_manifest(manifest)
    return manifest


def validate_manifest(manifest: Mapping[str, Any], onnx_bytes: bytes | None = None) -> None:
    """Raise ManifestError naming the field when the manifest is incomplete or does not describe `onnx_bytes`."""
    for name, kind in REQUIRED_FIELDS.items():
        if name not in manifest:
            raise ManifestError(f"manifest: missing field {name!r}")
        if not isinstance(manifest[name], kind):
            raise ManifestError(f"manifest: field {name!r} has type {type(manifest[name]).__name__}")
    if manifest["format"] != MANIFEST_FORMAT:
        raise ManifestError(f"manifest: format {manifest['format']} is not {MANIFEST_FORMAT}")
    digest = manifest["onnx"].get("sha256")
    if manifest["version"] != model_version(str(digest), manifest["mlflow_model_version"]):
        raise ManifestError(f"manifest: version {manifest['version']!r} does not match onnx.sha256 {digest!r}")
    try:
        spec = FeatureSpec.from_dict(manifest["input_schema"])
    except ValueError as exc:
        raise ManifestError(f"manifest: input_schema: {exc}") from exc
    if list(spec.class_labels) != manifest["class_labels"]:
        raise ManifestError("manifest: class_labels differ from input_schema.class_labels")
    if onnx_bytes is not None and sha256_hex(onnx_bytes) != digest:
        raise ManifestError(f"manifest {manifest['version']}: onnx.sha256 does not match the ONNX bytes")


def manifest_to_bytes(manifest: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, UTF-8, trailing newline): equal manifests give equal bytes and hashes.

    Strict JSON: NaN and infinities are refused (a JSON parser on the serving side would reject them).
    """
    try:
        text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ManifestError(f"manifest {manifest.get('version')}: {exc} (NaN or infinity in a field)") from exc
    return (text + "\n").encode("utf-8")


def manifest_from_bytes(data: bytes) -> dict[str, Any]:
    """Parse and validate a stored manifest."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest: not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ManifestError("manifest: top level is not an object")
    validate_manifest(manifest)
    return manifest
