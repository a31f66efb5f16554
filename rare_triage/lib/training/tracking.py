"""MLflow helpers: code revision, training-data fingerprint, flat metrics, PNG and table artifacts, model
logging with skops (signature and a synthetic input example), one nested run per cross-validated candidate, the
registration of a new version (tag `gates=pending`, no alias), the gate verdicts on a version (`gate.<check>`, summed
up as `gates=failed` and `failed_gates`) and the alias `challenger`, given only to a version that passed every
gate."""

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
import numpy as np
import pandas as pd
import skops.io
from mlflow import MlflowClient
from mlflow.models import ModelSignature, infer_signature

from rare_triage.lib import schema
from rare_triage.lib.paths import PROJECT_ROOT
from rare_triage.lib.training.candidates import CandidateSpec, ModelParams
from rare_triage.lib.training.cross_validation import CandidateResult
from rare_triage.lib.training.report import json_safe

CODE_REVISION_ENV = "RARE_TRIAGE_CODE_REVISION"
CHALLENGER_ALIAS = "challenger"
CHAMPION_ALIAS = "champion"
# Gate verdicts on a registered version: `gate.<check>` = passed / failed, one per blocking check (set by the check),
# summed up in `gates` (pending at registration, failed as soon as one check failed, passed when publication found
# every blocking check passed) and `failed_gates` (the failed check names, sorted, comma-separated).
GATE_TAG_PREFIX = "gate."
GATES_TAG = "gates"
FAILED_GATES_TAG = "failed_gates"
GATES_PENDING, GATES_PASSED, GATES_FAILED = "pending", "passed", "failed"
_SUMMARY_ROUNDS = 10  # re-reads after writing the summary: checks running in parallel tag the same version
_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-./ ]")
# Distributions the served pipeline needs to load (versions pinned from what is installed).
MODEL_REQUIREMENTS = ("scikit-learn", "xgboost-cpu", "numpy", "scipy", "pandas", "skops")
INPUT_EXAMPLE_ROWS = 3
# The run holding the model keeps these few numbers as metrics (the chosen model on the validation window, its
# thresholds and its cross-validation scores); everything else goes to the metrics/ JSON artifacts.
HEADLINE_VALIDATION_METRICS = (
    "orphan_recall",
    "orphan_precision",
    "orphan_pr_auc",
    "orphan_roc_auc",
    "non_orphan_flag_rate",
    "orphan_recall_flag_or_review",
    "review_rate",
    "macro_f1",
    "brier_orphan",
    "ece_orphan",
)
HEADLINE_POLICY_METRICS = ("orphan_threshold", "review_threshold")
CANDIDATE_METRICS = (
    "orphan_pr_auc",
    "orphan_roc_auc",
    "macro_f1_argmax",
    "flag_rate_at_target_recall",
    "fit_seconds",
    "predict_seconds",
    "rows_per_fit_second",
)
HEADLINE_CV_METRICS = ("orphan_pr_auc", "flag_rate_at_target_recall")
MAX_HEADLINE_METRICS = len(HEADLINE_VALIDATION_METRICS) + len(HEADLINE_POLICY_METRICS) + len(HEADLINE_CV_METRICS)
CANDIDATE_RUN_KIND = "cv_candidate"
_FAMILY_PARAM_PREFIX = {"logistic_regression": "lr_", "random_forest": "rf_", "xgboost": "xgb_"}
_COMMON_PARAMS = ("seed", "n_jobs", "phenotype_unknown_as_absent")


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


def model_signature(pipeline: Any, inputs: pd.DataFrame, output_rows: int = 100) -> ModelSignature:
    """Inputs: the feature columns and their types, inferred over the whole training frame (a column with a missing
    value anywhere is optional); outputs: the `predict_proba` matrix (one column per label)."""
    return infer_signature(inputs, np.asarray(pipeline.predict_proba(inputs.head(output_rows))))


def input_example(inputs: pd.DataFrame, rows: int = INPUT_EXAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """A few rows of model inputs in which every cell comes from a different, randomly drawn training row: real
    values and types of each feature, and no row is one encounter's features."""
    if inputs.empty:
        raise ValueError("input example: the training inputs have no row")
    rng = np.random.default_rng(seed)
    n = min(rows, len(inputs))
    cells = {column: inputs[column].to_numpy()[rng.choice(len(inputs), size=n, replace=False)] for column in inputs}
    return pd.DataFrame(cells, columns=inputs.columns).astype(inputs.dtypes.to_dict())


def log_pipeline(
    pipeline: Any,
    name: str = "model",
    signature: ModelSignature | None = None,
    example: pd.DataFrame | None = None,
) -> Any:
    """Log a fitted scikit-learn pipeline with skops, trusting exactly the types it contains (we built it), with
    its signature and input example when given; the pyfunc flavour predicts probabilities (what the signature
    describes and what the thresholds apply to)."""
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    return mlflow.sklearn.log_model(
        pipeline,
        name=name,
        serialization_format="skops",
        skops_trusted_types=trusted,
        pip_requirements=model_requirements(),
        signature=signature,
        input_example=example,
        pyfunc_predict_fn="predict_proba",
    )


def candidate_params(spec: CandidateSpec, params: ModelParams) -> dict[str, Any]:
    """What defines one candidate: its family, imbalance strategy, two-stage flag and its family's hyper-parameters
    (the sampler's ratio only for a sampler)."""
    prefix = _FAMILY_PARAM_PREFIX[spec.model]
    values = params.as_dict()
    chosen = {k: v for k, v in values.items() if k.startswith(prefix) or k in _COMMON_PARAMS}
    if spec.imbalance not in ("class_weight", "none"):
        chosen["oversampling_ratio"] = values["oversampling_ratio"]
    return {"model": spec.model, "imbalance": spec.imbalance, "two_stage": spec.two_stage, **chosen}


def candidate_metrics(result: CandidateResult) -> dict[str, float]:
    """The out-of-fold scores and costs of one candidate (finite values only)."""
    return flat_metrics({name: getattr(result, name) for name in CANDIDATE_METRICS})


def log_candidate_runs(
    results: Iterable[CandidateResult],
    *,
    chosen: str,
    params: ModelParams,
    search: Mapping[str, Any],
    tags: Mapping[str, str],
) -> dict[str, str]:
    """One run per cross-validated candidate, nested under the active run (same experiment), with its parameters
    and out-of-fold metrics under the same names for every candidate, so MLflow's run comparison lines them up.
    `search` holds what every candidate shares (folds, rows, selection metric). Returns candidate -> run id."""
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("mlflow: candidate runs are nested under an active run; none is active")
    run_ids: dict[str, str] = {}
    for result in results:
        spec = result.spec
        run_tags = {
            **tags,
            "run_kind": CANDIDATE_RUN_KIND,
            "candidate": spec.name,
            "chosen": str(spec.name == chosen).lower(),
            "servable": str(spec.servable).lower(),
        }
        with mlflow.start_run(
            experiment_id=parent.info.experiment_id, run_name=spec.name, nested=True, tags=run_tags
        ) as child:
            log_params({"candidate": spec.name, **candidate_params(spec, params), **search})
            mlflow.log_metrics(candidate_metrics(result))
            run_ids[spec.name] = child.info.run_id
    return run_ids


def headline_metrics(
    validation: Mapping[str, Any], policy: Mapping[str, Any], chosen_cv: CandidateResult | None
) -> dict[str, float]:
    """The few numbers the training run keeps as metrics: the chosen model's validation metrics, thresholds and
    cross-validation scores."""
    values: dict[str, Any] = {
        **{f"validation.{k}": validation[k] for k in HEADLINE_VALIDATION_METRICS if k in validation},
        **{f"policy.{k}": policy[k] for k in HEADLINE_POLICY_METRICS if k in policy},
    }
    if chosen_cv is not None:
        values.update({f"cv.{k}": getattr(chosen_cv, k) for k in HEADLINE_CV_METRICS})
    return flat_metrics(values)


def log_headline_metrics(headline: Mapping[str, float], model_id: str | None, validation: Any | None) -> None:
    """Log the headline metrics on the active run, tied to the logged model (`model_id`, shown on the model's page)
    and the `validation.*` ones to the validation dataset they were measured on."""
    on_validation = {k: v for k, v in headline.items() if k.startswith("validation.")}
    rest = {k: v for k, v in headline.items() if k not in on_validation}
    if on_validation:
        mlflow.log_metrics(on_validation, model_id=model_id, dataset=validation)
    if rest:
        mlflow.log_metrics(rest, model_id=model_id)


def log_metric_details(sections: Mapping[str, Any], file_name: str = "metrics/details.json") -> None:
    """Every number of the run, by section, as one JSON artifact (NaN as null) instead of one metric each."""
    mlflow.log_dict(json_safe(sections), file_name)


def log_result_table(frame: pd.DataFrame, file_name: str) -> None:
    """A table as an MLflow table artifact (JSON, rendered as a table by the MLflow UI)."""
    mlflow.log_table(frame, file_name)


def register_version(
    client: MlflowClient, model_info: Any, registered_model_name: str, run_id: str, tags: Mapping[str, str]
) -> str:
    """Register a logged model (the ModelInfo of `log_pipeline`) as a new version tagged `gates=pending`; no alias is
    touched: `challenger` waits until every blocking gate passed (`set_challenger`), `champion` is promotion's."""
    try:
        client.get_registered_model(registered_model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(registered_model_name, description="rare-triage encounter triage model")
    version = client.create_model_version(
        registered_model_name,
        source=model_info.model_uri,
        run_id=run_id,
        tags={**{k: str(v) for k, v in tags.items()}, GATES_TAG: GATES_PENDING},
        model_id=getattr(model_info, "model_id", None),  # a tracking server needs it for models:/<id> sources
    )
    return str(version.version)


def gate_tags(verdicts: Mapping[str, bool]) -> dict[str, str]:
    """`gate.<check>` = passed / failed for each check name -> passed."""
    return {f"{GATE_TAG_PREFIX}{name}": GATES_PASSED if passed else GATES_FAILED for name, passed in verdicts.items()}


def failed_gates(tags: Mapping[str, str]) -> list[str]:
    """The checks a version's `gate.<check>` tags say failed, sorted."""
    return sorted(
        k.removeprefix(GATE_TAG_PREFIX) for k, v in tags.items() if k.startswith(GATE_TAG_PREFIX) and v == GATES_FAILED
    )


def _summary(tags: Mapping[str, str]) -> dict[str, str | None]:
    """What `gates` and `failed_gates` should say given the `gate.<check>` tags (None: no such tag)."""
    failed = failed_gates(tags)
    if failed:
        return {GATES_TAG: GATES_FAILED, FAILED_GATES_TAG: ",".join(failed)}
    if tags.get(GATES_TAG) == GATES_FAILED:  # the failed checks were evaluated again and passed: judged afresh
        return {GATES_TAG: GATES_PENDING, FAILED_GATES_TAG: None}
    return {GATES_TAG: tags.get(GATES_TAG), FAILED_GATES_TAG: tags.get(FAILED_GATES_TAG)}


def refresh_gate_summary(client: MlflowClient, name: str, version: str) -> list[str]:
    """Bring `gates` / `failed_gates` of a version in line with its `gate.<check>` tags, and take `challenger` off it
    when a check failed (a failed version never holds it; no other version gets it here). Returns the failed checks.

    Checks of one run may tag the same version at once: the summary is read back after each write until it agrees
    with the tags read (whoever writes last has read every verdict written before)."""
    for _ in range(_SUMMARY_ROUNDS):
        current = client.get_model_version(name, version)
        tags = dict(current.tags or {})
        wanted = _summary(tags)
        holds_challenger = CHALLENGER_ALIAS in (current.aliases or [])
        failed = wanted[GATES_TAG] == GATES_FAILED
        if all(tags.get(k) == v for k, v in wanted.items()) and not (failed and holds_challenger):
            return failed_gates(tags)
        for key, value in wanted.items():
            if value is None:
                if key in tags:
                    client.delete_model_version_tag(name, version, key)
            elif tags.get(key) != value:
                client.set_model_version_tag(name, version, key, value)
        if failed and holds_challenger:
            client.delete_registered_model_alias(name, CHALLENGER_ALIAS)
    raise RuntimeError(
        f"model registry {name} version {version}: the gate summary tags did not settle after {_SUMMARY_ROUNDS} rounds"
    )


def record_gate_verdicts(
    client: MlflowClient, name: str, version: str | None, verdicts: Mapping[str, bool]
) -> list[str]:
    """Tag `gate.<check>` for each verdict on a version and refresh its summary (no-op without a version); returns
    the checks that failed on it so far."""
    if version is None:
        return []
    set_version_tags(client, name, version, gate_tags(verdicts))
    return failed_gates(dict(client.get_model_version(name, version).tags or {}))


def set_challenger(client: MlflowClient, name: str, version: str | None) -> bool:
    """Every blocking gate passed on `version`: tag `gates=passed` (no `failed_gates`) and point `challenger` at it.
    Refused (ValueError) when one of its `gate.<check>` tags says failed. False without a version."""
    if version is None:
        return False
    tags = dict(client.get_model_version(name, version).tags or {})
    failed = failed_gates(tags)
    if failed:
        raise ValueError(f"model registry {name} version {version}: gates {failed} failed; it cannot be challenger")
    if FAILED_GATES_TAG in tags:
        client.delete_model_version_tag(name, version, FAILED_GATES_TAG)
    client.set_model_version_tag(name, version, GATES_TAG, GATES_PASSED)
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, version)
    return True


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
    """Tag a registered model version (no-op without a version), so the promotion gate can read the numbers. Gate
    verdicts (`gate.<check>`) also refresh the version's summary (`refresh_gate_summary`): a failed check marks it
    `gates=failed` and names itself in `failed_gates` whichever asset check wrote it."""
    if version is None:
        return
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    if any(str(key).startswith(GATE_TAG_PREFIX) for key in tags):
        refresh_gate_summary(client, name, version)
