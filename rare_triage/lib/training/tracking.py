"""MLflow helpers: code revision, training-data fingerprint, flat metrics, PNG and table artifacts, model
logging with skops and the registration of a new version under the alias `challenger`."""

import hashlib
import importlib.metadata
import math
import numbers
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import skops.io
from mlflow import MlflowClient

from rare_triage.lib import schema
from rare_triage.lib.paths import PROJECT_ROOT

CODE_REVISION_ENV = "RARE_TRIAGE_CODE_REVISION"
CHALLENGER_ALIAS = "challenger"
CHAMPION_ALIAS = "champion"
_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-./ ]")
# Distributions the served pipeline needs to load (versions pinned from what is installed).
MODEL_REQUIREMENTS = ("scikit-learn", "xgboost-cpu", "numpy", "scipy", "pandas", "skops")


def code_revision(environ: Mapping[str, str] | None = None, repo_dir: Path = PROJECT_ROOT) -> str:
    """`git rev-parse HEAD` of the project, else $RARE_TRIAGE_CODE_REVISION, else "unknown"."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        result = None
    if result is not None and result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", result.stdout.strip()):
        return result.stdout.strip()
    env = os.environ if environ is None else environ
    return env.get(CODE_REVISION_ENV) or "unknown"


def asset_run_tags(dagster_run_id: str, asset: str) -> dict[str, str]:
    """The tags every asset's MLflow run carries: the Dagster run and asset, and the code revision."""
    return {"dagster_run_id": dagster_run_id, "dagster_asset": asset, "code_revision": code_revision()}


def data_fingerprint(frames: Iterable[pd.DataFrame]) -> str:
    """sha256 over the sorted (encounter_key, label) pairs of the frames: same rows and labels, same hash."""
    pairs: list[str] = []
    for frame in frames:
        keys = frame["encounter_key"].astype(str)
        labels = frame[schema.LABEL_COLUMN].astype(str)
        pairs.extend(keys + "\t" + labels)
    digest = hashlib.sha256()
    for pair in sorted(pairs):
        digest.update(pair.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def flat_metrics(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Finite numbers only, keys made MLflow-safe (nested dicts flattened with '.')."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = _METRIC_KEY.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping):
            out.update(flat_metrics(value, prefix=f"{name}."))
        elif isinstance(value, numbers.Real) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def log_png(png: bytes, file_name: str) -> None:
    """Store PNG bytes as an artifact of the active run under plots/."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / file_name
        path.write_bytes(png)
        mlflow.log_artifact(str(path), artifact_path="plots")


def log_table(frame: pd.DataFrame, file_name: str) -> None:
    """Store a table as a CSV artifact of the active run under tables/."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / file_name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="tables")


def model_requirements() -> list[str]:
    """pip requirements of the logged model, pinned to the installed versions (skips MLflow's slow inference)."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in MODEL_REQUIREMENTS]


def log_pipeline(pipeline: Any, name: str = "model") -> Any:
    """Log a fitted scikit-learn pipeline with skops, trusting exactly the types it contains (we built it)."""
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    return mlflow.sklearn.log_model(
        pipeline,
        name=name,
        serialization_format="skops",
        skops_trusted_types=trusted,
        pip_requirements=model_requirements(),
    )


def register_challenger(
    client: MlflowClient, model_info: Any, registered_model_name: str, run_id: str, tags: Mapping[str, str]
) -> str:
    """Register a logged model (the ModelInfo of `log_pipeline`) as a new version and point the `challenger`
    alias at it; `champion` is never touched."""
    try:
        client.get_registered_model(registered_model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(registered_model_name, description="rare-triage encounter triage model")
    version = client.create_model_version(
        registered_model_name,
        source=model_info.model_uri,
        run_id=run_id,
        tags={k: str(v) for k, v in tags.items()},
        model_id=getattr(model_info, "model_id", None),  # a tracking server needs it for models:/<id> sources
    )
    client.set_registered_model_alias(registered_model_name, CHALLENGER_ALIAS, version.version)
    return str(version.version)


def log_params(params: Mapping[str, Any]) -> None:
    """Log parameters of the active run (values as text, cut to MLflow's 6,000-character limit)."""
    mlflow.log_params({_METRIC_KEY.sub("_", str(k)): str(v)[:6000] for k, v in params.items()})


def log_metrics(values: Mapping[str, Any], prefix: str = "") -> None:
    """Log the finite numbers of a (nested) mapping as metrics of the active run."""
    metrics = flat_metrics(values, prefix)
    if metrics:
        mlflow.log_metrics(metrics)


def log_json(value: Any, file_name: str) -> None:
    """Store a JSON-serialisable value as an artifact of the active run."""
    mlflow.log_dict(value, file_name)


def set_version_tags(client: MlflowClient, name: str, version: str | None, tags: Mapping[str, Any]) -> None:
    """Tag a registered model version (no-op without a version), so the promotion gate can read the numbers."""
    if version is None:
        return
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
