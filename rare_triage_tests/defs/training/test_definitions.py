"""The training definitions load next to stand-ins of their upstream assets; names are a reviewed snapshot."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

import rare_triage.defs.training
from rare_triage.defs.jobs import training_job
from rare_triage.defs.shared import keys as c
from rare_triage_tests.defs.training.conftest import mlflow_resource
from rare_triage_tests.helpers.domains import domain_assets, domain_checks

TRAINING_ASSETS = domain_assets(rare_triage.defs.training)
TRAINING_CHECKS = domain_checks(rare_triage.defs.training)

UPSTREAM = [dg.AssetSpec(c.HPO_REFERENCE_TABLES), dg.AssetSpec(c.ENCOUNTER_FEATURES, partitions_def=c.DAILY_PARTITIONS)]


def _defs(tmp_path: Path) -> dg.Definitions:
    return dg.Definitions(
        assets=[*UPSTREAM, *TRAINING_ASSETS],
        asset_checks=TRAINING_CHECKS,
        jobs=[training_job],
        resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb")), c.MLFLOW: mlflow_resource(tmp_path)},
    )


def test_definitions_load(tmp_path: Path) -> None:
    dg.Definitions.validate_loadable(_defs(tmp_path))


def test_asset_and_check_snapshot(tmp_path: Path) -> None:
    graph = _defs(tmp_path).resolve_asset_graph()
    training = {k for k in graph.get_all_asset_keys() if graph.get(k).group_name == c.GROUP_TRAINING}
    assert training == {c.TRAINING_SET, c.TRIAGE_MODEL, c.MODEL_EVALUATION, c.EXTERNAL_VALIDATION}
    checks = {(k.asset_key, k.name, graph.get_check_spec(k).blocking) for k in graph.asset_check_keys}
    assert checks == {
        (c.MODEL_EVALUATION, "orphan_recall_gate", True),
        (c.MODEL_EVALUATION, "orphan_pr_auc_gate", True),
        (c.MODEL_EVALUATION, "subgroup_recall_gate", True),
        (c.MODEL_EVALUATION, "behaviour_gate", True),
        (c.MODEL_EVALUATION, "robustness_gate", True),
        (c.EXTERNAL_VALIDATION, "external_validation_gate", True),
    }
    assert graph.get(c.TRAINING_SET).parent_keys == {c.ENCOUNTER_FEATURES}
    assert graph.get(c.TRIAGE_MODEL).parent_keys == {c.TRAINING_SET, c.HPO_REFERENCE_TABLES}
    assert graph.get(c.EXTERNAL_VALIDATION).parent_keys == {
        c.TRAINING_SET,
        c.TRIAGE_MODEL,
        c.MODEL_EVALUATION,
        c.HPO_REFERENCE_TABLES,
    }


def test_training_job_runs_the_training_group_with_its_gates(tmp_path: Path) -> None:
    job = _defs(tmp_path).resolve_job_def(c.TRAINING_JOB)
    assert {node.name for node in job.graph.nodes} == {
        "training_set",
        "triage_model",
        "model_evaluation",
        "external_validation",
        "model_evaluation_orphan_recall_gate",
        "model_evaluation_orphan_pr_auc_gate",
        "model_evaluation_subgroup_recall_gate",
        "model_evaluation_behaviour_gate",
        "model_evaluation_robustness_gate",
        "external_validation_external_validation_gate",
    }
