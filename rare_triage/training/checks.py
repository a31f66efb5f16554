"""The gates of the issue as blocking asset checks: a model that fails one is neither exported nor published.

Each check also tags the registered model version (`gate.<check>` = passed / failed) so the promotion gate
can read the verdicts from the MLflow registry.
"""

import dagster as dg

from rare_triage import constants as c
from rare_triage.lib.training import gates, tracking
from rare_triage.lib.training.evaluate import ModelEvaluation
from rare_triage.lib.training.external import ExternalValidation
from rare_triage.lib.training.report import json_safe
from rare_triage.training.config import (
    ExternalValidationGateConfig,
    OrphanPrAucGateConfig,
    OrphanRecallGateConfig,
    SubgroupRecallGateConfig,
)
from rare_triage.training.resources import MlflowTracking

ORPHAN_RECALL_GATE = "orphan_recall_gate"
ORPHAN_PR_AUC_GATE = "orphan_pr_auc_gate"
SUBGROUP_RECALL_GATE = "subgroup_recall_gate"
BEHAVIOUR_GATE = "behaviour_gate"
EXTERNAL_VALIDATION_GATE = "external_validation_gate"


def _result(mlflow: MlflowTracking, version: str | None, name: str, gate: gates.GateResult) -> dg.AssetCheckResult:
    tracking.set_version_tags(
        mlflow.client(), mlflow.registered_model_name, version, {f"gate.{name}": "passed" if gate.passed else "failed"}
    )
    metadata = {
        k: dg.MetadataValue.json(json_safe(v)) if isinstance(v, dict | list) else json_safe(v)
        for k, v in gate.metadata.items()
    }
    return dg.AssetCheckResult(
        passed=gate.passed,
        description=gate.description,
        metadata={k: ("nan" if v is None else v) for k, v in metadata.items()},
        severity=dg.AssetCheckSeverity.ERROR,
    )


@dg.asset_check(
    asset=c.MODEL_EVALUATION,
    name=ORPHAN_RECALL_GATE,
    blocking=True,
    description="Orphan recall on the test window at the chosen threshold >= min_recall (default 0.90).",
)
def orphan_recall_gate(
    config: OrphanRecallGateConfig, mlflow: MlflowTracking, model_evaluation: ModelEvaluation
) -> dg.AssetCheckResult:
    gate = gates.orphan_recall_gate(model_evaluation.metrics, config.min_recall)
    return _result(mlflow, model_evaluation.mlflow_model_version, ORPHAN_RECALL_GATE, gate)


@dg.asset_check(
    asset=c.MODEL_EVALUATION,
    name=ORPHAN_PR_AUC_GATE,
    blocking=True,
    description="Orphan PR-AUC on the test window >= min_prevalence_multiple (default 5) x orphan prevalence.",
)
def orphan_pr_auc_gate(
    config: OrphanPrAucGateConfig, mlflow: MlflowTracking, model_evaluation: ModelEvaluation
) -> dg.AssetCheckResult:
    gate = gates.orphan_pr_auc_gate(model_evaluation.metrics, config.min_prevalence_multiple)
    return _result(mlflow, model_evaluation.mlflow_model_version, ORPHAN_PR_AUC_GATE, gate)


@dg.asset_check(
    asset=c.MODEL_EVALUATION,
    name=SUBGROUP_RECALL_GATE,
    blocking=True,
    description="No age band or sex with >= min_orphans (20) orphan cases has orphan recall < min_recall (0.80).",
)
def subgroup_recall_gate(
    config: SubgroupRecallGateConfig, mlflow: MlflowTracking, model_evaluation: ModelEvaluation
) -> dg.AssetCheckResult:
    gate = gates.subgroup_recall_gate(
        model_evaluation.subgroups, config.min_recall, config.min_orphans, config.attributes
    )
    return _result(mlflow, model_evaluation.mlflow_model_version, SUBGROUP_RECALL_GATE, gate)


@dg.asset_check(
    asset=c.MODEL_EVALUATION,
    name=BEHAVIOUR_GATE,
    blocking=True,
    description="Behavioural tests: pseudonymous ids change nothing, an added red-flag phenotype does not lower "
    "the orphan probability on average, all vitals missing still scores.",
)
def behaviour_gate(mlflow: MlflowTracking, model_evaluation: ModelEvaluation) -> dg.AssetCheckResult:
    gate = gates.behaviour_gate(model_evaluation.behaviour)
    return _result(mlflow, model_evaluation.mlflow_model_version, BEHAVIOUR_GATE, gate)


@dg.asset_check(
    asset=c.EXTERNAL_VALIDATION,
    name=EXTERNAL_VALIDATION_GATE,
    blocking=True,
    description="Real published cases flagged orphan-compatible >= min_share (0.85) while the non-orphan test "
    "flag rate stays <= max_test_non_orphan_flag_rate (0.05).",
)
def external_validation_gate(
    config: ExternalValidationGateConfig, mlflow: MlflowTracking, external_validation: ExternalValidation
) -> dg.AssetCheckResult:
    gate = gates.external_validation_gate(
        external_validation.share_flagged,
        external_validation.test_non_orphan_flag_rate,
        config.min_share,
        config.max_test_non_orphan_flag_rate,
    )
    return _result(mlflow, external_validation.mlflow_model_version, EXTERNAL_VALIDATION_GATE, gate)
