"""The code location loaded with all its state in a temporary home, and a small training run through it: the jobs of
`make run` (reference, daily ingest, train and publish), with the gates opened by run configuration only, for tests
that need a really trained, exported and published model."""

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import pytest

from rare_triage.definitions import build_definitions

# variables that would move part of the state out of RARE_TRIAGE_HOME, or change the deployment or the source
STATE_VARIABLES = (
    "RARE_TRIAGE_DEPLOYMENT",
    "RARE_TRIAGE_LAKE_URI",
    "RARE_TRIAGE_WAREHOUSE",
    "RARE_TRIAGE_MLFLOW_TRACKING_URI",
    "RARE_TRIAGE_MLFLOW_REGISTRY_URI",
    "RARE_TRIAGE_MLFLOW_ARTIFACT_LOCATION",
    "RARE_TRIAGE_BUCKET_URI",
    "RARE_TRIAGE_LANDING_URI",
    "RARE_TRIAGE_SEED",
)
# every training gate passes on a few small days: the tests using this check privacy or skew, not the gates
OPEN_GATES = {
    "model_evaluation_orphan_recall_gate": {"config": {"min_recall": 0.0}},
    "model_evaluation_orphan_pr_auc_gate": {"config": {"min_prevalence_multiple": 0.0}},
    "model_evaluation_subgroup_recall_gate": {"config": {"min_recall": 0.0}},
    "model_evaluation_robustness_gate": {
        "config": {"max_ratio_plus_1": 1e9, "max_ratio_plus_2": 1e9, "max_single_term_ratio": 1e9}
    },
    "external_validation_external_validation_gate": {"config": {"min_shares": [0.0, 0.0]}},
}


def small_training_config(
    candidate: str, *, validation_days: int, test_days: int, external_validation: Mapping[str, Any]
) -> dict[str, Any]:
    """Run configuration of `train_and_publish_job`: one candidate, 2 CV folds, the gates open."""
    return {
        "ops": {
            "training_set": {
                "config": {"validation_days": validation_days, "test_days": test_days, "min_window_orphans": 0}
            },
            "triage_model": {"config": {"candidates": [candidate], "cv_folds": 2, "n_jobs": 1}},
            "model_evaluation": {"config": {"behaviour_sample": 200}},
            "external_validation": {"config": dict(external_validation)},
            **OPEN_GATES,
        }
    }


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """The failed blocking checks and failed steps of a run, for assertion messages."""
    failed_checks = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    return failed_checks + [str(e.message) for e in result.all_events if e.is_step_failure]


@contextlib.contextmanager
def code_location_in(home: Path, environ: Mapping[str, str]) -> Iterator[tuple[dg.Definitions, dg.DagsterInstance]]:
    """The definitions loaded with RARE_TRIAGE_HOME = `home` and `environ` set (the code location reads its
    environment when it loads, MLflow its default store when a run opens it), a Dagster instance in
    `home/dagster_home`; the environment and the mlflow module's store (process-global) restored on exit."""
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    previous_uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        with (
            pytest.MonkeyPatch.context() as env,
            dg.DagsterInstance.local_temp(tempdir=str(home / "dagster_home")) as instance,
        ):
            for name in STATE_VARIABLES:
                env.delenv(name, raising=False)
            env.setenv("RARE_TRIAGE_HOME", str(home))
            for name, value in environ.items():
                env.setenv(name, value)
            yield build_definitions(), instance
    finally:
        mlflow.set_tracking_uri(previous_uris[0])
        mlflow.set_registry_uri(previous_uris[1])
