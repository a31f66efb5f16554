"""The model of the serving benchmark: a published version in a bench bucket, and its native pipeline.

`publish_copy(source, env, dest)` publishes the version `env` serves in the source bucket into a new local bucket
with the platform's own publication code (`rare_triage.lib.deployment`): a format-2 version is copied as is; a
format-1 version (the phenotype encoding inside the manifest) gets it moved to its table file, as `build_release`
writes it today. The ONNX bytes, and so the version name, are the same.

`publish_copy(..., linear=True)` publishes instead a logistic-regression version of the same inputs: the
platform's `logistic_regression+class_weight` candidate fitted on synthetic rows of the version's columns,
exported by the platform's ONNX export, under the same manifest otherwise (encoder, policy): what the service
costs around a cheap model, as the platform may publish one. It has no MLflow run (no native pipeline).

`load_native(tracking_uri, run_id)` loads the scikit-learn pipeline of that version from MLflow, one thread per
step; `native_frame(encoder, matrix)` turns the serving encoder's matrix back into the DataFrame the pipeline
takes (categorical codes -> their values, the unknown / missing code -> a value outside the categories, which the
one-hot encoder ignores as the ONNX graph does).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib.deployment.bucket import LocalBucket
from rare_triage.lib.deployment.manifest import MANIFEST_FORMAT, PHENOTYPE_ENCODING, model_version, sha256_hex
from rare_triage.lib.deployment.onnx_export import FeatureSpec, export_pipeline_to_onnx
from rare_triage.lib.deployment.onnx_export.speed import single_threaded
from rare_triage.lib.deployment.publication import manifest_key, model_key, move_pointer, pointer_key, publish_model
from rare_triage.lib.deployment.release import Release
from rare_triage.lib.deployment.sidecar import build_sidecar

OUTSIDE_CATEGORIES = "__outside_categories__"


@dataclass(frozen=True)
class BenchModel:
    """The version published in the bench bucket and what the benchmark reports of it."""

    bucket: Path
    env: str
    version: str
    manifest: dict[str, Any]
    converted_from_format: int
    kind: str = "as published"

    def describe(self) -> str:
        size_mb = self.manifest["onnx"]["size_bytes"] / 1024 / 1024
        return (
            f"{self.version}, {self.kind} ({len(self.manifest['input_schema']['columns'])} inputs, "
            f"ONNX {size_mb:.1f} MB, manifest format {self.converted_from_format} -> {self.manifest['format']})"
        )


def _read_json(bucket: LocalBucket, key: str) -> dict[str, Any]:
    value = json.loads(bucket.get_bytes(key).decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{key}: not a JSON object")
    return value


def release_of(source: LocalBucket, env: str) -> tuple[Release, int]:
    """The release of the version `env` serves in `source` (format 2, the table in its own file) and the format
    the source manifest had."""
    version = str(_read_json(source, pointer_key(env))["version"])
    manifest = _read_json(source, manifest_key(version))
    onnx_bytes = source.get_bytes(model_key(version))
    found = int(manifest["format"])
    if found == MANIFEST_FORMAT:
        sidecars = {
            entry["file"]: source.get_bytes(f"{manifest_key(version).rsplit('/', 1)[0]}/{entry['file']}")
            for entry in manifest["files"].values()
        }
        return Release(onnx_bytes, manifest, sidecars), found
    if found != 1 or PHENOTYPE_ENCODING not in manifest:
        raise ValueError(f"{version}: manifest format {found} is neither 1 (with {PHENOTYPE_ENCODING}) nor 2")
    table = manifest.pop(PHENOTYPE_ENCODING)
    entry, data = build_sidecar(PHENOTYPE_ENCODING, table)
    manifest["format"] = MANIFEST_FORMAT
    manifest["files"] = {PHENOTYPE_ENCODING: entry}
    if manifest["version"] != model_version(manifest["onnx"]["sha256"], manifest["mlflow_model_version"]):
        raise ValueError(f"{version}: the version name does not match its ONNX file")
    return Release(onnx_bytes, manifest, {entry["file"]: data}), found


def synthetic_rows(spec: FeatureSpec, n: int, seed: int = 5) -> tuple[pd.DataFrame, np.ndarray]:
    """`n` rows of the spec's columns (each category drawn, numbers with gaps, flags 1 / 0 / unknown) and labels
    in which every class occurs."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for column in spec.columns:
        if column.kind == "categorical":
            data[column.name] = rng.choice(np.array(column.categories, dtype=object), size=n)
        elif column.name.startswith(("hpo_", "sys_")):
            data[column.name] = rng.choice(np.array([1.0, 0.0, np.nan]), size=n, p=[0.1, 0.1, 0.8])
        else:
            values = rng.normal(40.0, 20.0, size=n)
            values[rng.random(n) < 0.3] = np.nan
            data[column.name] = values
    labels = np.arange(n) % len(spec.class_labels)
    return pd.DataFrame(data, columns=spec.names), labels


def linear_release(release: Release) -> Release:
    """`release` with its ONNX graph replaced by the platform's logistic regression of the same inputs."""
    from rare_triage.lib.training.candidates import CandidateSpec, ModelParams, fit_candidate  # noqa: PLC0415
    from rare_triage.lib.training.columns import feature_roles  # noqa: PLC0415 - only the linear variant trains

    spec = FeatureSpec.from_dict(release.manifest["input_schema"])
    frame, labels = synthetic_rows(spec, 4000)
    candidate = CandidateSpec("logistic_regression", "class_weight")
    pipeline = fit_candidate(
        candidate, frame, labels, feature_roles(spec.names), ModelParams(n_jobs=1, lr_max_iter=200)
    )
    onnx_bytes = export_pipeline_to_onnx(pipeline, spec)
    digest = sha256_hex(onnx_bytes)
    manifest = {
        **release.manifest,
        "onnx": {**release.manifest["onnx"], "sha256": digest, "size_bytes": len(onnx_bytes)},
        "version": model_version(digest, None),
        "mlflow_run_id": None,
        "mlflow_model_version": None,
    }
    return Release(onnx_bytes, manifest, release.sidecars)


def publish_copy(source: Path, env: str, dest: Path, *, linear: bool = False) -> BenchModel:
    """Publish the version `env` serves in `source` (or its linear variant) into the bucket folder `dest` and
    point `env` at it."""
    release, found = release_of(LocalBucket(source), env)
    if linear:
        release = linear_release(release)
    bucket = LocalBucket(dest)
    published = publish_model(bucket, release)
    move_pointer(bucket, env, published.version)
    kind = "logistic regression of the same inputs (synthetic fit)" if linear else "as published"
    return BenchModel(dest, env, published.version, release.manifest, found, kind)


def load_native(tracking_uri: str, run_id: str) -> Any:
    """The version's scikit-learn pipeline from MLflow, every step held to one thread (the server has one core)."""
    import mlflow  # noqa: PLC0415 - heavy, and only the baseline server needs it

    mlflow.set_tracking_uri(tracking_uri)
    return single_threaded(mlflow.sklearn.load_model(f"runs:/{run_id}/model"))


@dataclass(frozen=True)
class FrameDecoder:
    """Matrix of the serving encoder -> the pipeline's DataFrame (the platform's feature columns, in order)."""

    names: tuple[str, ...]
    categories: dict[int, tuple[str, ...]]  # column index -> category values by code

    @classmethod
    def from_manifest(cls, manifest: Any) -> "FrameDecoder":
        columns = manifest["input_schema"]["columns"]
        return cls(
            tuple(column["name"] for column in columns),
            {
                int(column["index"]): tuple(str(category["value"]) for category in column["categories"])
                for column in columns
                if column["type"] == "categorical"
            },
        )

    def frame(self, matrix: np.ndarray) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for j, name in enumerate(self.names):
            values = matrix[:, j]
            categories = self.categories.get(j)
            if categories is None:
                data[name] = values.astype(np.float64)
            else:
                data[name] = np.array(
                    [categories[int(code)] if 0 <= code < len(categories) else OUTSIDE_CATEGORIES for code in values],
                    dtype=object,
                )
        return pd.DataFrame(data, columns=list(self.names))
