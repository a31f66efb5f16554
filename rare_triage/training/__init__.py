"""Training domain: temporal windows, candidate search, evaluation, external validation, MLflow, gates."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from rare_triage import constants as c
from rare_triage.training.assets import training_set, triage_model
from rare_triage.training.checks import (
    behaviour_gate,
    external_validation_gate,
    orphan_pr_auc_gate,
    orphan_recall_gate,
    subgroup_recall_gate,
)
from rare_triage.training.evaluation_assets import external_validation, model_evaluation
from rare_triage.training.resources import MlflowTracking

TRAINING_ASSETS = [training_set, triage_model, model_evaluation, external_validation]
TRAINING_JOB_NAME = "training_job"
# the training group with its gates; hpo_reference_tables and encounter_features are read, not rebuilt
training_job = dg.define_asset_job(TRAINING_JOB_NAME, selection=dg.AssetSelection.groups(c.GROUP_TRAINING))
TRAINING_JOBS = [training_job]
TRAINING_CHECKS = [
    orphan_recall_gate,
    orphan_pr_auc_gate,
    subgroup_recall_gate,
    behaviour_gate,
    external_validation_gate,
]


def training_resources(environ: Mapping[str, str]) -> dict[str, Any]:
    """The MLflow resource: local sqlite under RARE_TRIAGE_HOME unless RARE_TRIAGE_MLFLOW_TRACKING_URI is set.

    (The "duckdb" resource the training_set reads is built with the warehouse in rare_triage.resources.)
    """
    return {
        c.MLFLOW: MlflowTracking(
            tracking_uri=environ.get("RARE_TRIAGE_MLFLOW_TRACKING_URI") or None,
            registry_uri=environ.get("RARE_TRIAGE_MLFLOW_REGISTRY_URI") or None,
            artifact_location=environ.get("RARE_TRIAGE_MLFLOW_ARTIFACT_LOCATION") or None,
        )
    }


TRAINING_RESOURCES_LOCAL = {c.MLFLOW: MlflowTracking()}

__all__ = [
    "TRAINING_ASSETS",
    "TRAINING_CHECKS",
    "TRAINING_JOBS",
    "TRAINING_RESOURCES_LOCAL",
    "training_resources",
]
