"""Format-2 published versions for the tests, laid out in a bucket exactly as the platform publishes them:

    models/rare-triage/<version>/{model.onnx, phenotype_encoding.json, manifest.json}   manifest written last
    models/rare-triage/env/<env>.json                                                  pointer, moved last

Written through a `put(key, bytes)` callable, so the same helper fills a folder or an S3 bucket.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from serving.tests.onnx_fixture import linear_softmax_model

MODELS = "models/rare-triage"
SMALL_MODEL = Path(__file__).parent / "fixtures" / "small_model"
CLASS_LABELS = ["none", "common_mild", "common_acute", "common_chronic", "orphan"]
CATEGORICAL = {"sex": ["*", "F", "M", "U"], "age_band": ["*", "0-9", "10-19", "20-29", "30-39"]}
# Columns the serving encoder computes (serving.encoding.encoder), so a release drives `Encoder` as published.
NUMERIC = ["age_years", "temperature_c", "n_present_terms", "phenotype_ic_max"]
N_FEATURES = len(CATEGORICAL) + len(NUMERIC)


@cache
def _small_model(name: str) -> str:
    return (SMALL_MODEL / name).read_text(encoding="utf-8")


def small_model_columns() -> list[dict[str, Any]]:
    """The columns of fixtures/small_model/ (every feature the encoder computes, 30 in all), in its order."""
    return list(json.loads(_small_model("manifest.json"))["input_schema"]["columns"])


MAX_FEATURES = len(small_model_columns())

Put = Callable[[str, bytes], None]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """The platform's canonical manifest bytes: sorted keys, indent 2, UTF-8, trailing newline."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def input_schema(n_features: int = N_FEATURES) -> dict[str, Any]:
    """Two categorical columns and four numeric ones; past `N_FEATURES` (up to `MAX_FEATURES`), the other columns
    of fixtures/small_model/ in its order, so every column is one the encoder computes."""
    if not 1 <= n_features <= MAX_FEATURES:
        raise ValueError(f"n_features: {n_features} is not in 1..{MAX_FEATURES}")
    columns: list[dict[str, Any]] = [
        {
            "index": index,
            "name": name,
            "type": "categorical",
            "missing_code": -1,
            "categories": [{"code": code, "value": value} for code, value in enumerate(values)],
        }
        for index, (name, values) in enumerate(CATEGORICAL.items())
    ]
    columns += [{"index": len(CATEGORICAL) + i, "name": name, "type": "numeric"} for i, name in enumerate(NUMERIC)]
    taken = {column["name"] for column in columns}
    columns += [column for column in small_model_columns() if column["name"] not in taken]
    columns = [{**column, "index": index} for index, column in enumerate(columns[:n_features])]
    return {
        "input_name": "features",
        "dtype": "float32",
        "shape": [None, len(columns)],
        "columns": columns,
        "class_labels": list(CLASS_LABELS),
        "outputs": ["label", "probabilities"],
        "unknown_code": -1,
    }


def phenotype_encoding(seed: int = 0) -> dict[str, Any]:
    """The phenotype encoding of fixtures/small_model/ (14 HPO terms of release 2025-01-16, four vocabulary terms,
    three organ systems), valid for `serving.encoding.Encoder`; the same for every seed (its format has no room
    for one)."""
    del seed
    encoding: dict[str, Any] = json.loads(_small_model("phenotype_encoding.json"))
    return encoding


@dataclass(frozen=True)
class Release:
    """One version's bytes: the ONNX file, the manifest (as a dict, bytes derived) and the table files."""

    onnx_bytes: bytes = field(repr=False)
    manifest: dict[str, Any]
    tables: dict[str, bytes] = field(repr=False)  # file name -> bytes

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def manifest_bytes(self) -> bytes:
        return canonical_json(self.manifest)


def build_release(
    *,
    seed: int = 0,
    mlflow_model_version: str = "1",
    onnx_bytes: bytes | None = None,
    n_features: int = N_FEATURES,
    encoding: Mapping[str, Any] | None = None,
) -> Release:
    """A consistent format-2 version: manifest hashes match the ONNX file and the phenotype-encoding file."""
    onnx_bytes = (
        onnx_bytes if onnx_bytes is not None else linear_softmax_model(n_features, len(CLASS_LABELS), seed=seed)
    )
    table = (json.dumps(encoding or phenotype_encoding(seed), sort_keys=True, separators=(",", ":")) + "\n").encode()
    digest = sha256_hex(onnx_bytes)
    manifest = {
        "format": 2,
        "model_name": "rare-triage",
        "version": f"v{mlflow_model_version}-{digest[:12]}",
        "onnx": {
            "file": "model.onnx",
            "sha256": digest,
            "size_bytes": len(onnx_bytes),
            "input": "features",
            "outputs": ["label", "probabilities"],
            "probabilities_output": "probabilities",
        },
        "input_schema": input_schema(n_features),
        "class_labels": list(CLASS_LABELS),
        "thresholds": {"orphan": 0.3, "needs_review": 0.2},
        "needs_review": {"label": "needs_review", "rule": "review_threshold <= orphan_probability < orphan_threshold"},
        "metrics": {"orphan_recall": 0.96},
        "checks_passed": True,
        "checks": {"onnx_parity": True},
        "parity": None,
        "vocabulary": [
            {"hpo_id": "HP:0001945", "label": "Fever"},
            {"hpo_id": "HP:0001954", "label": "Recurrent fever"},
            {"hpo_id": "HP:0001250", "label": "Seizure"},
            {"hpo_id": "HP:0002027", "label": "Abdominal pain"},
        ],
        "systems": [
            {"hpo_id": "HP:0025142", "label": "Constitutional symptom"},
            {"hpo_id": "HP:0000707", "label": "Abnormality of the nervous system"},
            {"hpo_id": "HP:0025031", "label": "Abnormality of the digestive system"},
        ],
        "hpo_release": "2025-01-16",
        "files": {
            "phenotype_encoding": {
                "file": "phenotype_encoding.json",
                "sha256": sha256_hex(table),
                "size_bytes": len(table),
            }
        },
        "mlflow_run_id": "0123456789abcdef",
        "mlflow_model_version": mlflow_model_version,
        "dagster_run_id": "run-1",
        "training_partitions": ["2026-11-01"],
        "data_fingerprint": "fingerprint",
        "code_revision": "abc1234",
        "created_at": "2026-12-01T10:00:00Z",
    }
    return Release(onnx_bytes, manifest, {"phenotype_encoding.json": table})


def version_key(version: str, file: str) -> str:
    return f"{MODELS}/{version}/{file}"


def pointer_key(env: str) -> str:
    return f"{MODELS}/env/{env}.json"


def pointer_bytes(env: str, version: str, manifest_sha256: str, onnx_sha256: str) -> bytes:
    """An env pointer as the platform writes it."""
    pointer = {
        "env": env,
        "version": version,
        "manifest_sha256": manifest_sha256,
        "onnx_sha256": onnx_sha256,
        "updated_at": dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).isoformat(timespec="seconds"),
        "previous_version": None,
        "previous_manifest_sha256": None,
    }
    return (json.dumps(pointer, indent=2, sort_keys=True) + "\n").encode()


def publish(put: Put, release: Release, env: str = "dev", *, move_pointer: bool = True) -> None:
    """Write the version's files (manifest last) and, with `move_pointer`, point `env` at it."""
    put(version_key(release.version, "model.onnx"), release.onnx_bytes)
    for name, data in release.tables.items():
        put(version_key(release.version, name), data)
    put(version_key(release.version, "manifest.json"), release.manifest_bytes)
    if move_pointer:
        point(put, env, release)


def point(put: Put, env: str, release: Release) -> None:
    """Move `env`'s pointer to `release`, recording its hashes."""
    put(
        pointer_key(env),
        pointer_bytes(env, release.version, sha256_hex(release.manifest_bytes), sha256_hex(release.onnx_bytes)),
    )


def folder_put(root: Path) -> Put:
    """A `put` writing into a local bucket folder (created if needed)."""

    def put(key: str, data: bytes) -> None:
        path = root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return put
