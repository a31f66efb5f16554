"""Real-world landing days (empty or absent child tables, a bad line, a bad cell) read typed and flow to features."""

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rare_triage.defs.shared.resources import build_resources
from rare_triage.lib import schema
from rare_triage.lib.ingest.landing_zone import read_landing_day_with_rejects
from rare_triage_tests.fixtures import LANDING_FIXTURES
from rare_triage_tests.helpers.materialize import check_results, local_environ, materialize_day, materialize_reference
from rare_triage_tests.lib.ingest.fhir.test_read import assert_contract, bundle, encounter, hpo_observation, patient

CSV_DAY = "2024-03-07"  # header-only diagnoses.csv, no comorbidities.csv, one malformed line, one bad cell
FHIR_DAY = "2024-03-04"  # one FHIR Bundle without any Condition: no diagnosis, no problem-list comorbidity
EMPTY_DAY = "2024-03-05"  # its one encounter is quarantined: every anonymized table is empty
REJECT_DAY = "2024-03-06"  # a bulk NDJSON whose second encounter has no period.start, and an unreadable .json
HIDDEN_ENCOUNTER = "ENC-0042-HIDDEN"  # the rejected encounter's id: it must reach no quarantine row


def write_fhir_day(landing: Path) -> None:
    folder = landing / FHIR_DAY
    folder.mkdir(parents=True)
    document = bundle(patient(), encounter(), hpo_observation("o1", "HP:0001945"))
    (folder / "clinic.ndjson").write_text(json.dumps(document) + "\n")


def write_reject_day(landing: Path) -> None:
    folder = landing / REJECT_DAY
    folder.mkdir(parents=True)
    day = {"start": f"{REJECT_DAY}T10:00:00Z"}
    resources = [
        patient(),
        encounter("e1", period=day),
        encounter(HIDDEN_ENCOUNTER, period={"end": f"{REJECT_DAY}T11:00:00Z"}),  # line 3: no start
        encounter("e3", period=day),
        hpo_observation("o1", "HP:0001945"),
        hpo_observation("o2", "HP:0001945", encounter={"reference": f"Encounter/{HIDDEN_ENCOUNTER}"}),
        hpo_observation("o3", "HP:0002315", encounter={"reference": "Encounter/e3"}),
    ]
    (folder / "export.ndjson").write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    (folder / "broken.json").write_text('{"resourceType": "Bundle", "type": "collection", "entry": [')


@pytest.fixture(scope="module")
def landing_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dg.ExecuteInProcessResult]]:
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(LANDING_FIXTURES / CSV_DAY, home / "landing" / CSV_DAY)
    write_fhir_day(home / "landing")
    write_reject_day(home / "landing")
    shutil.copytree(LANDING_FIXTURES / EMPTY_DAY, home / "landing" / EMPTY_DAY)
    encounters = home / "landing" / EMPTY_DAY / "encounters.csv"
    encounters.write_text(encounters.read_text().replace("outpatient_specialist", "home_visit"))
    resources = build_resources(local_environ(home, RARE_TRIAGE_EHR_SOURCE="landing"))
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    days = (CSV_DAY, FHIR_DAY, EMPTY_DAY, REJECT_DAY)
    return home, {day: materialize_day(resources, instance, day) for day in days}


def test_empty_and_absent_child_tables_read_to_six_typed_tables() -> None:
    day = read_landing_day_with_rejects(LANDING_FIXTURES, dt.date.fromisoformat(CSV_DAY))
    assert_contract(day.tables)
    assert {t: len(f) for t, f in day.tables.items()} == {
        "patients": 3,
        "encounters": 3,
        "vitals": 4,
        "symptoms": 4,
        "diagnoses": 0,
        "comorbidities": 0,
    }
    assert [(r.table, r.line, r.column) for r in day.rejects] == [("symptoms", 4, "present"), ("vitals", 4, None)]


@pytest.mark.parametrize("day", [CSV_DAY, FHIR_DAY])
def test_the_day_materializes_raw_to_features_with_every_check_passing(
    landing_runs: tuple[Path, dict[str, dg.ExecuteInProcessResult]], day: str
) -> None:
    _, results = landing_runs
    result = results[day]
    assert result.success
    checks = check_results(result)
    failed = {name for name, passed in checks.items() if not passed}
    assert failed <= {"quarantine_rate"}, checks  # a 1-3 patient day ends mostly in the k-anonymity quarantine
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert {"raw_ehr_extract", "anonymized_encounters", "quarantined_records", "encounter_features"} <= materialized


@pytest.mark.parametrize("day", [CSV_DAY, FHIR_DAY])
def test_raw_parquet_keeps_typed_columns_when_a_table_is_empty(
    landing_runs: tuple[Path, dict[str, dg.ExecuteInProcessResult]], day: str
) -> None:
    home, _ = landing_runs
    folder = home / "lake" / "raw_ehr_extract" / f"partition_day={day}"
    for table in schema.RAW_TABLES:
        stored = pq.read_schema(folder / f"{table}.parquet")
        assert stored.names == list(schema.RAW_COLUMNS[table])
        assert not [f.name for f in stored if pa.types.is_null(f.type)], (day, table)
    assert pq.read_table(folder / "diagnoses.parquet").num_rows == 0
    assert pq.read_table(folder / "comorbidities.parquet").num_rows == 0


def test_rejected_rows_are_quarantined_and_counted_not_lost(
    landing_runs: tuple[Path, dict[str, dg.ExecuteInProcessResult]],
) -> None:
    home, results = landing_runs
    result = results[CSV_DAY]
    events = {m.asset_key.path[-1]: m.materialization for m in result.get_asset_materialization_events()}
    assert events["raw_ehr_extract"].metadata["rejected_rows"].value == {
        **dict.fromkeys(schema.RAW_TABLES, 0),
        "symptoms": 1,
        "vitals": 1,
    }
    counts = events["anonymized_encounters"].metadata["counts"].value
    assert counts["vitals"]["in"] == 5 and counts["symptoms"]["in"] == 5  # 4 read + 1 rejected, as received
    for table in schema.RAW_TABLES:
        assert counts[table]["in"] == counts[table]["valid"] + counts[table]["quarantined"] + counts[table]["held"]
    quarantine = pq.read_table(home / "lake" / "quarantined_records" / f"partition_day={CSV_DAY}" / "data.parquet")
    rejected = quarantine.to_pandas().query("reason.str.contains('rejected at ingest')", engine="python")
    reasons = sorted(rejected["reason"])
    assert reasons[0] == "symptoms.present: rejected at ingest: expected true/false (missing not allowed) (line 4)"
    assert re.fullmatch(r"vitals\.<line>: rejected at ingest: expected \d+ fields, got \d+ \(line 4\)", reasons[1])
    assert all(reason.endswith("(line 4)") for reason in rejected["reason"])
    for row in rejected["row_json"]:
        stored = json.loads(row)
        assert stored["line"] == 4 and stored["file"].startswith("fp:")  # the file name is an integrator's choice
    assert not any(".csv" in cell for cell in [*rejected["reason"], *rejected["row_json"]])


def test_a_day_whose_every_encounter_is_quarantined_stores_typed_empty_tables_and_empty_features(
    landing_runs: tuple[Path, dict[str, dg.ExecuteInProcessResult]],
) -> None:
    home, results = landing_runs
    assert results[EMPTY_DAY].success
    folder = home / "lake" / "anonymized_encounters" / f"partition_day={EMPTY_DAY}"
    for table in schema.ANON_TABLES:
        stored = pq.read_table(folder / f"{table}.parquet")
        assert stored.num_rows == 0
        assert not [f.name for f in stored.schema if pa.types.is_null(f.type)], table
    features = [
        m.materialization.metadata["encounters"].value
        for m in results[EMPTY_DAY].get_asset_materialization_events()
        if m.asset_key.path == ["encounter_features"]
    ]
    assert features == [0]


def test_the_fhir_import_counts_are_metadata_of_the_raw_extract(
    landing_runs: tuple[Path, dict[str, dg.ExecuteInProcessResult]],
) -> None:
    _, results = landing_runs
    raw = {m.asset_key.path[-1]: m.materialization for m in results[FHIR_DAY].get_asset_materialization_events()}
    counts = raw["raw_ehr_extract"].metadata["fhir_import"].value
    assert counts["encounters"] == 1 and counts["encounters_with_finding"] == 1
    assert counts["problem_list_seen"] == 0 and counts["comorbidity_rows"] == 0
    csv_raw = {m.asset_key.path[-1]: m.materialization for m in results[CSV_DAY].get_asset_materialization_events()}
    assert "fhir_import" not in csv_raw["raw_ehr_extract"].metadata  # no FHIR file that day


def test_a_bad_encounter_and_an_unreadable_file_are_quarantined_and_the_day_goes_on(
    landing_runs: tuple[Path, dict[str, dg.ExecuteInProcessResult]],
) -> None:
    home, results = landing_runs
    result = results[REJECT_DAY]
    assert result.success
    events = {m.asset_key.path[-1]: m.materialization for m in result.get_asset_materialization_events()}
    raw = events["raw_ehr_extract"].metadata
    assert raw["encounters"].value == 2  # e1 and e3 of the same file
    assert raw["rejected_rows"].value == {**dict.fromkeys(schema.RAW_TABLES, 0), "encounters": 2}
    fhir = raw["fhir_import"].value
    assert (fhir["encounters"], fhir["observations_left_out"], fhir["encounters_with_finding"]) == (2, 1, 2)
    counts = events["anonymized_encounters"].metadata["counts"].value
    assert counts["encounters"]["in"] == 4  # 2 read + 2 rejected, as received
    assert counts["encounters"]["quarantined"] >= 2
    for table in schema.RAW_TABLES:
        assert counts[table]["in"] == counts[table]["valid"] + counts[table]["quarantined"] + counts[table]["held"]
    quarantine = pq.read_table(home / "lake" / "quarantined_records" / f"partition_day={REJECT_DAY}" / "data.parquet")
    rejected = quarantine.to_pandas().query("reason.str.contains('rejected at ingest')", engine="python")
    assert sorted(rejected["reason"]) == [
        "encounters.<line>: rejected at ingest: not valid JSON: Expecting value (line 1)",
        "encounters.period.start: rejected at ingest: a full date is required (line 3)",
    ]
    cells = [*quarantine.to_pandas().astype(str).to_numpy().ravel()]
    assert not any(HIDDEN_ENCOUNTER in cell or "11:00" in cell or ".json" in cell for cell in cells)
