"""The gates of the issue as blocking asset checks: a model that fails one is neither exported nor published.

Each check also tags the registered model version (`gate.<check>` = passed / failed, summed up as `gates` and
`failed_gates`) so the promotion gate and whoever browses the registry read the verdicts there. A version that failed
a gate never holds the alias `challenger`: published_model gives it only after every blocking check passed.
"""

import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import dagster as dg

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.defs.training.config import (
    ExternalValidationGateConfig,
    OrphanPrAucGateConfig,
    OrphanRecallGateConfig,
    RobustnessGateConfig,
    SubgroupRecallGateConfig,
)
from rare_triage.lib.training import gates, tracking
from rare_triage.lib.training.evaluate import ModelEvaluation
from rare_triage.lib.training.external import ENCODING_PHENOTYPE_ONLY, ExternalValidation
from rare_triage.lib.training.report import json_safe


class _OfModelVersion(Protocol):
    """What a gated asset holds: the registered model version it judged."""

    @property
    def mlflow_model_version(self) -> str | None: ...


ConfigT = TypeVar("ConfigT", bound=dg.Config)
AssetT = TypeVar("AssetT", bound=_OfModelVersion)


def _result(mlflow: MlflowTracking, version: str | None, name: str, gate: gates.GateResult) -> dg.AssetCheckResult:
    client, model = mlflow.client(), mlflow.registered_model_name
    tracking.record_gate_verdicts(client, model, version, {name: gate.passed})
    if version is not None:  # `gates` / `failed_gates` follow the verdicts; a failed version loses `challenger`
        tracking.refresh_gate_summary(client, model, version)
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


def gate_check(
    *,
    name: str,
    asset: dg.AssetKey,
    asset_type: type[AssetT],
    description: str,
    config_type: type[ConfigT] | None,
    evaluate: Callable[[ConfigT, AssetT], gates.GateResult],
) -> dg.AssetChecksDefinition:
    """The blocking check `name` of `asset`: `evaluate(config, asset value)` is its verdict (config is None when
    `config_type` is), tagged `gate.<name>` on the model version the asset judged.

    Dagster reads the check function's parameters from its `__signature__`, as for a plain
    `def check(config: config_type, mlflow: MlflowTracking, <asset name>: asset_type)` (no `config` without a
    config type), and passes them by keyword.
    """
    input_name = asset.path[-1]
    names = ("config", "mlflow", input_name) if config_type is not None else ("mlflow", input_name)
    annotations = {"config": config_type, "mlflow": MlflowTracking, input_name: asset_type}
    signature = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotations[n]) for n in names],
        return_annotation=dg.AssetCheckResult,
    )

    def check(**arguments: Any) -> dg.AssetCheckResult:
        judged: AssetT = arguments[input_name]
        gate = evaluate(arguments.get("config"), judged)  # type: ignore[arg-type]  # None only without config
        return _result(arguments["mlflow"], judged.mlflow_model_version, name, gate)

    check.__name__ = check.__qualname__ = name
    check.__signature__ = signature  # type: ignore[attr-defined]
    return dg.asset_check(asset=asset, name=name, blocking=True, description=description)(check)


orphan_recall_gate = gate_check(
    name=c.ORPHAN_RECALL_GATE,
    asset=c.MODEL_EVALUATION,
    asset_type=ModelEvaluation,
    description="Orphan recall on the test window at the chosen threshold: its one-sided 95% Wilson lower bound "
    ">= min_recall (default 0.90), so that a version whose recall is below 0.90 cannot pass by a lucky window.",
    config_type=OrphanRecallGateConfig,
    evaluate=lambda config, evaluation: gates.orphan_recall_gate(
        evaluation.metrics, config.min_recall, config.confidence
    ),
)

orphan_pr_auc_gate = gate_check(
    name=c.ORPHAN_PR_AUC_GATE,
    asset=c.MODEL_EVALUATION,
    asset_type=ModelEvaluation,
    description="Orphan PR-AUC on the test window >= min_prevalence_multiple (default 5) x orphan prevalence.",
    config_type=OrphanPrAucGateConfig,
    evaluate=lambda config, evaluation: gates.orphan_pr_auc_gate(evaluation.metrics, config.min_prevalence_multiple),
)

subgroup_recall_gate = gate_check(
    name=c.SUBGROUP_RECALL_GATE,
    asset=c.MODEL_EVALUATION,
    asset_type=ModelEvaluation,
    description="No age band or sex with >= min_orphans (20) orphan cases is shown to have orphan recall < "
    "min_recall (0.80): the one-sided upper Wilson bound of its recall at confidence (0.95) is below it.",
    config_type=SubgroupRecallGateConfig,
    evaluate=lambda config, evaluation: gates.subgroup_recall_gate(
        evaluation.subgroups, config.min_recall, config.min_orphans, config.attributes, config.confidence
    ),
)

behaviour_gate = gate_check(
    name=c.BEHAVIOUR_GATE,
    asset=c.MODEL_EVALUATION,
    asset_type=ModelEvaluation,
    description="Behavioural tests: pseudonymous ids change nothing, an added red-flag phenotype does not lower "
    "the orphan probability on average, all vitals missing still scores, and the non-orphan flag rate does not "
    "depend on whether k-anonymity generalised a row (generalised against other test non-orphans, two-proportion z "
    "test, |z| <= 3).",
    config_type=None,
    evaluate=lambda _config, evaluation: gates.behaviour_gate(evaluation.behaviour),
)

robustness_gate = gate_check(
    name=c.ROBUSTNESS_GATE,
    asset=c.MODEL_EVALUATION,
    asset_type=ModelEvaluation,
    description="Non-orphan test flag rate with 1 random extra vocabulary term <= max_ratio_plus_1 (1.5) x the base "
    "rate, with 2 <= max_ratio_plus_2 (2.0) x, and with any single vocabulary term added alone <= "
    "max_single_term_ratio (2.5) x (base rate 0: the rates against limit x 1/n).",
    config_type=RobustnessGateConfig,
    evaluate=lambda config, evaluation: gates.robustness_gate(
        evaluation.robustness,
        evaluation.robustness_per_term,
        max_ratio_plus_1=config.max_ratio_plus_1,
        max_ratio_plus_2=config.max_ratio_plus_2,
        max_single_term_ratio=config.max_single_term_ratio,
    ),
)

external_validation_gate = gate_check(
    name=c.EXTERNAL_VALIDATION_GATE,
    asset=c.EXTERNAL_VALIDATION,
    asset_type=ExternalValidation,
    description="Like with like: real published cases flagged >= 0.93 at the threshold that flags 5% of the "
    "validation non-orphans encoded as the cases are (phenotype, age and sex only), and >= 0.88 at 2%.",
    config_type=ExternalValidationGateConfig,
    evaluate=lambda config, external: gates.external_validation_gate(
        [external.operating_point(ENCODING_PHENOTYPE_ONLY, rate) for rate in config.flag_rates], config.goals()
    ),
)
