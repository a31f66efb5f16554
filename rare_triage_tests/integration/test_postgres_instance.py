"""The shared-deployment instance configuration runs the daily job against a real PostgreSQL."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from rare_triage.definitions import build_definitions
from rare_triage.lib.paths import PROJECT_ROOT
from rare_triage_tests.helpers.materialize import local_environ

pytestmark = pytest.mark.integration


def test_runs_and_check_results_are_stored_in_postgres(
    postgres_url: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    environ = {
        **local_environ(tmp_path),
        "DAGSTER_HOME": str(dagster_home),
        "RARE_TRIAGE_DEPLOYMENT": "shared",
        "RARE_TRIAGE_HMAC_KEY": "ab" * 32,
        "RARE_TRIAGE_PG_USER": postgres_url["user"],
        "RARE_TRIAGE_PG_PASSWORD": postgres_url["password"],
        "RARE_TRIAGE_PG_HOST": postgres_url["host"],
        "RARE_TRIAGE_PG_PORT": postgres_url["port"],
        "RARE_TRIAGE_PG_DB": postgres_url["db"],
    }
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    defs = build_definitions()
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert defs.resolve_job_def("reference_job").execute_in_process(instance=instance).success
        result = defs.resolve_job_def("daily_ingest_job").execute_in_process(
            instance=instance, partition_key="2025-04-01"
        )
        assert result.success
        runs = instance.get_runs()
        assert {r.job_name for r in runs} == {"reference_job", "daily_ingest_job"}
        record = instance.get_latest_materialization_event(dg.AssetKey("encounter_features"))
        assert record is not None and record.run_id == result.run_id
        evaluations = instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        )
        assert len(evaluations) == 9
