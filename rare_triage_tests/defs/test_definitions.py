"""The code location loads, with the asset keys, checks, jobs and groups reviewers expect."""

from pathlib import Path

import dagster as dg
import pytest

from rare_triage.definitions import build_definitions
from rare_triage.defs.ingest.sensors import landing_zone_sensor
from rare_triage.defs.shared.ownership import OWNER
from rare_triage.defs.shared.resources import build_resources
from rare_triage_tests.helpers.materialize import local_environ

DATA_ASSET_GROUPS = {
    "hpo_reference_tables": "reference",
    "raw_ehr_extract": "ingest",
    "anonymized_encounters": "governance",
    "quarantined_records": "governance",
    "encounter_features": "features",
}
DATA_CHECKS = {
    ("raw_ehr_extract", "raw_schema"),
    ("raw_ehr_extract", "raw_referential_integrity"),
    ("anonymized_encounters", "anonymized_schema"),
    ("anonymized_encounters", "no_identifiers"),
    ("anonymized_encounters", "k_anonymity"),
    ("quarantined_records", "quarantine_accounting"),
    ("quarantined_records", "quarantine_rate"),
    ("encounter_features", "features_schema"),
    ("encounter_features", "orphan_prevalence"),
}


@pytest.fixture
def defs(tmp_path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    for key, value in local_environ(tmp_path).items():
        monkeypatch.setenv(key, value)
    return build_definitions()


def test_definitions_load(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)


def test_data_assets_and_their_groups(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {k: groups[k] for k in DATA_ASSET_GROUPS} == DATA_ASSET_GROUPS


def test_data_checks(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks >= DATA_CHECKS


def test_jobs_schedule_and_sensor(defs: dg.Definitions) -> None:
    assert defs.resolve_job_def("daily_ingest_job").partitions_def is not None
    assert defs.resolve_job_def("reference_job")
    assert defs.resolve_schedule_def("daily_ingest_job_schedule")
    assert defs.resolve_sensor_def("landing_zone_sensor")


def test_every_asset_has_kinds_an_owner_and_a_code_reference(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        spec = graph.get(key)
        assert spec.kinds, f"{key.to_user_string()} has no kinds"
        assert spec.owners == [OWNER], key.to_user_string()
        references = spec.metadata["dagster/code_references"].code_references
        assert references and all(Path(ref.file_path).is_file() for ref in references), key.to_user_string()


def test_what_is_off_by_default_says_so_and_why(defs: dg.Definitions) -> None:
    stopped = [s for s in defs.sensors or [] if s.default_status == dg.DefaultSensorStatus.STOPPED]
    stopped += [s for s in defs.schedules or [] if s.default_status == dg.DefaultScheduleStatus.STOPPED]
    assert {s.name for s in stopped} == {"landing_zone_sensor", "daily_ingest_job_schedule"}
    for definition in stopped:
        assert "Off by default: the default EHR source is" in (definition.description or ""), definition.name
    automation = defs.resolve_sensor_def("automation_sensor").description or ""
    assert "No condition on purpose: raw_ehr_extract" in automation


def test_landing_sensor_requests_one_run_per_day_folder(tmp_path) -> None:
    for day in ("2025-03-01", "2025-03-02", "not-a-day"):
        (tmp_path / "landing" / day).mkdir(parents=True)
    resources = build_resources(local_environ(tmp_path, RARE_TRIAGE_EHR_SOURCE="landing"))
    context = dg.build_sensor_context(resources={"ehr_source": resources["ehr_source"]})
    result = landing_zone_sensor(context)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [
        ("2025-03-01", "landing-2025-03-01"),
        ("2025-03-02", "landing-2025-03-02"),
    ]


def test_landing_sensor_skips_when_the_source_is_synthetic(tmp_path) -> None:
    resources = build_resources(local_environ(tmp_path))
    result = landing_zone_sensor(dg.build_sensor_context(resources={"ehr_source": resources["ehr_source"]}))
    assert not result.run_requests
    assert "landing" in str(result.skip_reason)
