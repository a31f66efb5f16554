"""Declarative automation, evaluated on the code location's own conditions: a new raw day flows into governance
without a click, never past a failed blocking check; drift_report follows prediction_logs."""

import datetime as dt

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData

from rare_triage.definitions import build_definitions
from rare_triage.defs.ingest.checks import RAW_SCHEMA
from rare_triage.defs.shared import keys as c

DAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)).isoformat()
FAILED_DAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)).isoformat()
TODAY = dt.datetime.now(dt.UTC).date().isoformat()


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions()


def _raw_day(instance: dg.DagsterInstance, day: str, *, schema_passed: bool) -> None:
    """A raw day materialized, and its raw_schema check evaluated on that materialization (as the step does)."""
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=c.RAW_EHR_EXTRACT, partition=day))
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=c.RAW_EHR_EXTRACT, asset_partitions=[day]), limit=1
    ).records[0]
    target = AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=c.RAW_EHR_EXTRACT,
            check_name=RAW_SCHEMA,
            passed=schema_passed,
            blocking=True,
            partition=day,
            target_materialization_data=target,
        )
    )


def _requested(result: object, key: dg.AssetKey) -> set[str]:
    return set(result.get_requested_partitions(key))  # type: ignore[attr-defined]


def test_a_new_raw_day_flows_into_governance_once_its_blocking_checks_passed(defs: dg.Definitions) -> None:
    selection = dg.AssetSelection.assets(c.ANONYMIZED_ENCOUNTERS, c.QUARANTINED_RECORDS, c.PENDING_ENCOUNTERS)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=c.HPO_REFERENCE_TABLES))
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        assert first.total_requested == 0  # nothing new

        _raw_day(instance, FAILED_DAY, schema_passed=False)
        _raw_day(instance, DAY, schema_passed=True)
        after = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        assert _requested(after, c.ANONYMIZED_ENCOUNTERS) == {DAY}  # not FAILED_DAY: its raw_schema check failed
        assert _requested(after, c.QUARANTINED_RECORDS) == {DAY}  # the three outputs run together
        again = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=after.cursor
        )
        assert again.total_requested == 0  # requested once


def test_drift_report_follows_new_prediction_logs(defs: dg.Definitions) -> None:
    selection = dg.AssetSelection.assets(c.DRIFT_REPORT)
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        assert first.total_requested == 0
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=c.PREDICTION_LOGS, partition=TODAY))
        after = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        assert _requested(after, c.DRIFT_REPORT) == {TODAY}
