"""The manifest: everything the serving side needs besides the ONNX graph, and where the model came from.

It travels next to `model.onnx` so a model and its contract always move together. The serving side
reads `input_schema` to build the float32 input, `class_labels` to name the probability columns and
`thresholds` / `needs_review` to decide; a reviewer reads the provenance fields to walk back to the
MLflow run, the Dagster run and the training partitions. Large tables (the phenotype encoding) are files of
their own next to it, listed in `files` with their sha256 and size (see `sidecar.py`).
"""

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rare_triage.lib.deployment.onnx_export.feature_spec import FeatureSpec

if TYPE_CHECKING:  # a type only: reading a manifest (the `status` command) needs no pandas
    from rare_triage.lib.deployment.model_bundle import ModelBundle

MODEL_NAME = "rare-triage"
MANIFEST_FORMAT = 2
PHENOTYPE_ENCODING = "phenotype_encoding"
REQUIRED_TABLES = (PHENOTYPE_ENCODING,)
# The version folder's own files: no table may take their name.
RESERVED_FILE_NAMES = frozenset({"model.onnx", "manifest.json"})
FILE_ENTRY_FIELDS: dict[str, type] = {"file": str, "sha256": str, "size_bytes": int}
_TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")  # one plain name: no '/', no leading dot
_SHA256 = re.compile(r"[0-9a-f]{64}")
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
    "files": dict,
    "mlflow_run_id": (str, type(None)),
    "mlflow_model_version": (str, type(None)),
    "dagster_run_id": (str, type(None)),
    "training_partitions": list,
    "data_fingerprint": str,
    "code_revision": str,
    "created_at": str,
}


class ManifestError(ValueError):
    """A manifest lacks a field, has a wrong type, or disagrees with its ONNX or table files."""


class ManifestFormatError(ManifestError):
    """A manifest of another format (e.g. written before the tables moved to files of their own)."""

    def __init__(self, found: object) -> None:
        super().__init__(f"manifest format {found!r} is not {MANIFEST_FORMAT}")
        self.found = found


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
    model: "ModelBundle",
    onnx_bytes: bytes,
    spec: FeatureSpec,
    *,
    files: Mapping[str, Mapping[str, Any]],
    checks: Mapping[str, bool],
    dagster_run_id: str | None,
    parity: Mapping[str, Any] | None = None,
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The manifest of `onnx_bytes` exported from `model`; `checks` maps each blocking check to its outcome.

    `files` lists the table files written next to it (`sidecar.build_sidecar` gives each entry).
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
        "files": {name: dict(entry) for name, entry in files.items()},
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
    """Raise ManifestError naming the field when the manifest is incomplete or does not describe `onnx_bytes`.

    A manifest of another format raises ManifestFormatError before any other field is looked at.
    """
    if "format" not in manifest:
        raise ManifestError("manifest: missing field 'format'")
    if manifest["format"] != MANIFEST_FORMAT:
        raise ManifestFormatError(manifest["format"])
    for name, kind in REQUIRED_FIELDS.items():
        if name not in manifest:
            raise ManifestError(f"manifest: missing field {name!r}")
        if not isinstance(manifest[name], kind):
            raise ManifestError(f"manifest: field {name!r} has type {type(manifest[name]).__name__}")
    validate_files(manifest["files"])
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


def validate_file_name(name: object) -> str:
    """`name` if it is one plain file name of the version folder (no '/', no '..', not the ONNX or manifest file)."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or ".." in name or name in RESERVED_FILE_NAMES:
        raise ManifestError(
            f"manifest: field 'files': file name {name!r} is not a plain name of [A-Za-z0-9._-] (no '/', no '..', "
            f"no leading dot, not {' or '.join(sorted(RESERVED_FILE_NAMES))})"
        )
    return name


def validate_files(files: Mapping[str, Any]) -> None:
    """Raise ManifestError naming `files` and the table when an entry is not {file, sha256, size_bytes}."""
    missing = [name for name in REQUIRED_TABLES if name not in files]
    if missing:
        raise ManifestError(f"manifest: field 'files' lacks the tables {missing}")
    seen: set[str] = set()
    for table, entry in files.items():
        where = f"manifest: field 'files': table {table!r}"
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise ManifestError(f"{where}: a table name is lowercase letters, digits and '_'")
        if not isinstance(entry, Mapping) or set(entry) != set(FILE_ENTRY_FIELDS):
            raise ManifestError(f"{where}: an entry is exactly {sorted(FILE_ENTRY_FIELDS)}")
        for key, kind in FILE_ENTRY_FIELDS.items():
            if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
                raise ManifestError(f"{where}: {key} has type {type(entry[key]).__name__}")
        if entry["file"] in seen:
            raise ManifestError(f"{where}: file {entry['file']!r} is listed twice")
        seen.add(validate_file_name(entry["file"]))
        if not _SHA256.fullmatch(entry["sha256"]):
            raise ManifestError(f"{where}: sha256 {entry['sha256']!r} is not 64 lowercase hex digits")
        if entry["size_bytes"] < 0:
            raise ManifestError(f"{where}: size_bytes {entry['size_bytes']} is negative")


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
