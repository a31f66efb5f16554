"""Landing zone day folders (CSV, Parquet, FHIR) on a local disk and on a real S3 API server."""

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rare_triage.lib.ingest.landing_zone import read_landing_day, read_landing_day_with_rejects
from rare_triage.lib.schema import RAW_TABLES
from rare_triage_tests.fixtures import LANDING_FIXTURES
from rare_triage_tests.fixtures_s3 import (  # noqa: F401 - s3_server is a pytest fixture
    arrow_s3_filesystem,
    make_bucket,
    put_object,
    s3_server,
)
from rare_triage_tests.lib.ingest.fhir.test_read import FIXTURES as FHIR_FIXTURES
from rare_triage_tests.lib.ingest.fhir.test_read import (
    assert_contract,
    condition,
    encounter,
    hpo_observation,
    loinc_observation,
    patient,
)

LANDING = LANDING_FIXTURES
CAREBUNDLE = FHIR_FIXTURES / "carebundle" / "carebundle_mixed_bulk.ndjson"
HL7 = FHIR_FIXTURES / "hl7_examples" / "hl7_r4_examples.ndjson"
CAREBUNDLE_DAY = dt.date(2026, 1, 1)
DAY = dt.date(2024, 3, 4)
SPARSE_DAY = dt.date(2024, 3, 5)


def copy_day(tmp_path: Path, day: dt.date = DAY) -> Path:
    """A writable copy of a fixture day under ``tmp_path/landing``; returns the landing root."""
    root = tmp_path / "landing"
    shutil.copytree(LANDING / day.isoformat(), root / day.isoformat())
    return root


def test_full_day_concatenates_csv_and_fhir_to_the_contract() -> None:
    tables = read_landing_day(LANDING, DAY)
    assert_contract(tables)
    assert {t: len(tables[t]) for t in RAW_TABLES} == {
        "patients": 3,
        "encounters": 3,
        "vitals": 10,
        "symptoms": 9,
        "diagnoses": 5,
        "comorbidities": 2,
    }
    patients = tables["patients"].set_index("patient_id")
    assert patients.loc["P-1001", "zip_code"] == "02100"  # leading zero kept
    assert patients.loc["P-1002", "email"] is pd.NA
    assert patients.loc["P-1002", "street_address"] == "51 boulevard de la Liberte, Bat B"
    assert patients.loc["P-2001", "mrn"] == "CHD-2290417"  # from the FHIR Bundle
    assert (tables["encounters"]["encounter_date"] == pd.Timestamp(DAY)).all()  # 14:32 normalised to the day
    symptoms = tables["symptoms"].set_index(["encounter_id", "hpo_id"])
    assert symptoms.loc[("E-5001", "HP:0002315"), "present"] == False  # noqa: E712 - numpy bool
    assert symptoms.loc[("E-5002", "HP:0002027"), "duration_days"] == 0.25
    assert tables["diagnoses"].set_index("encounter_id").loc["E-6001", "code"].tolist() == ["ORPHA:342", "M04.1"]


def test_prior_visits_come_from_csv_and_fhir_extension() -> None:
    visits = read_landing_day(LANDING, DAY)["encounters"].set_index("encounter_id")["prior_visits_365d"]
    assert visits["E-5001"] == 3
    assert pd.isna(visits["E-5002"])
    assert visits["E-6001"] == 5


def test_sparse_day_matches_headers_loosely_and_fills_missing_tables() -> None:
    tables = read_landing_day(LANDING, SPARSE_DAY)
    assert_contract(tables)
    assert tables["patients"]["given_name"].tolist() == ["Lea"]  # header " Given Name"
    assert tables["vitals"]["value"].tolist() == [36.9, 88.0]
    for table in ("symptoms", "diagnoses", "comorbidities"):
        assert tables[table].empty
    assert tables["encounters"]["prior_visits_365d"].isna().all()  # column absent from the CSV


def test_unknown_columns_are_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="rare_triage.lib.ingest.landing_zone"):
        tables = read_landing_day(LANDING, SPARSE_DAY)
    assert "source_system" not in tables["patients"].columns
    assert any("patients.csv" in m and "source_system" in m for m in caplog.messages)


def typed_vitals_parquet() -> pa.Table:
    return pa.table(
        {
            "Encounter_ID": pa.array(["E-5001", "E-5002"]),
            "loinc_code": pa.array(["9279-1", "59408-5"]),
            "value": pa.array([16, 95], pa.int32()),
            "unit": pa.array(["/min", "%"]),
            "device_id": pa.array(["MON-1", "MON-2"]),
        }
    )


def test_csv_parquet_and_fhir_in_one_folder_concatenate(tmp_path: Path) -> None:
    root = copy_day(tmp_path)
    folder = root / DAY.isoformat()
    pq.write_table(typed_vitals_parquet(), folder / "Vitals.parquet")
    shutil.copy(FHIR_FIXTURES / "transaction_pneumonia_emergency.json", folder / "mercy_general.json")
    (folder / "_SUCCESS").write_text("")
    (folder / "README.txt").write_text("extract of 2024-03-04")
    tables = read_landing_day(root, DAY)
    assert_contract(tables)
    assert len(tables["patients"]) == 4
    assert len(tables["encounters"]) == 4
    assert len(tables["vitals"]) == 10 + 2 + 4  # csv + parquet + both FHIR files
    added = tables["vitals"][tables["vitals"]["loinc_code"] == "9279-1"]
    assert ("E-5001", 16.0) in list(zip(added["encounter_id"], added["value"], strict=True))


def test_fhir_repeats_collapse_but_csv_repeats_reach_governance(tmp_path: Path) -> None:
    root = copy_day(tmp_path)
    folder = root / DAY.isoformat()
    patients = folder / "patients.csv"
    lines = patients.read_text().splitlines()
    patients.write_text("\n".join([*lines, lines[1]]) + "\n")  # P-1001 twice: an integrator error
    shutil.copy(folder / "ch_douai_bundles.ndjson", folder / "ch_douai_resent.ndjson")  # same Bundle twice
    ids = read_landing_day(root, DAY)["patients"]["patient_id"].tolist()
    assert sorted(ids) == ["P-1001", "P-1001", "P-1002", "P-2001"]


def test_parquet_with_native_types_is_coerced(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    folder = root / DAY.isoformat()
    folder.mkdir(parents=True)
    encounters = pa.table(
        {
            "encounter_id": ["E-1", "E-2"],
            "patient_id": ["P-1", "P-2"],
            # built from UTC instants: pyarrow's conversion of pytz-aware objects depends on process state
            "encounter_date": pa.array(
                [
                    pd.Timestamp("2024-03-04 08:15", tz="Europe/Paris").value // 1000,
                    pd.Timestamp("2024-03-04 23:50", tz="Europe/Paris").value // 1000,
                ],
                pa.timestamp("us", tz="Europe/Paris"),
            ),
            "centre_id": ["C01", "C02"],
            "centre_level": ["primary", "tertiary"],
            "region": ["Bretagne", "Bretagne"],
            "consultation_type": ["primary_care", "emergency"],
            "prior_visits_365d": pa.array([0, None], pa.int64()),
        }
    )
    patients = pa.table(
        {
            "patient_id": ["P-1", "P-2"],
            "birth_date": pa.array([dt.date(1950, 1, 31), None], pa.date32()),
            "zip_code": pa.array([29200, 35000], pa.int64()),
            "sex": ["F", "M"],
        }
    )
    symptoms = pa.table(
        {
            "encounter_id": ["E-1", "E-1"],
            "hpo_id": ["HP:0001945", "HP:0002013"],
            "present": [True, False],
            "severity": pa.array([5, None], pa.int64()),
            "duration_days": [1.5, None],
        }
    )
    diagnoses = pa.table({"encounter_id": ["E-1"], "code_system": ["ICD10"], "code": ["J11.1"], "rank": [1.0]})
    for name, table in (
        ("encounters", encounters),
        ("patients", patients),
        ("symptoms", symptoms),
        ("diagnoses", diagnoses),
    ):
        pq.write_table(table, folder / f"{name}.parquet")
    tables = read_landing_day(root, DAY)
    assert_contract(tables)
    assert tables["encounters"]["encounter_date"].tolist() == [pd.Timestamp("2024-03-04")] * 2  # local day kept
    assert tables["patients"]["zip_code"].tolist() == ["29200", "35000"]
    assert tables["patients"]["birth_date"].isna().tolist() == [False, True]
    assert tables["patients"]["mrn"].isna().all()  # optional column absent from the file
    assert tables["symptoms"]["present"].tolist() == [True, False]
    assert tables["diagnoses"]["rank"].tolist() == [1]
    assert tables["encounters"]["prior_visits_365d"].tolist() == [0, pd.NA]


def test_missing_day_folder_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"landing/2024-03-06"):
        read_landing_day(LANDING, dt.date(2024, 3, 6))


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    root = copy_day(tmp_path)
    (root / DAY.isoformat() / "vitals.csv").write_text("encounter_id,loinc_code,unit\nE-5001,8310-5,Cel\n")
    with pytest.raises(ValueError, match=r"vitals\.csv: table 'vitals' is missing required column\(s\) value"):
        read_landing_day(root, DAY)


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        ("vitals.csv", "", r"vitals\.csv: table 'vitals': cannot read as csv: no header row"),
        (
            "vitals.csv",
            b"encounter_id,loinc_code,value,unit\nE-5001,8310-5,38\xe9,Cel\n",
            r"cannot read as csv: not UTF-8",
        ),
        (
            "vitals.parquet",
            "not parquet",
            r"vitals\.parquet: table 'vitals': cannot read as parquet: not a Parquet file",
        ),
        ("vital_signs.csv", "encounter_id\nE-5001\n", r"vital_signs\.csv: file name does not name a raw table"),
        ("patients.csv", "patient_id,Patient ID\nP-1,P-1\n", r"duplicate column\(s\) patient_id"),
    ],
)
def test_bad_files_raise_naming_file_and_problem(
    tmp_path: Path, file_name: str, content: str | bytes, message: str
) -> None:
    root = copy_day(tmp_path)
    path = root / DAY.isoformat() / file_name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=message):
        read_landing_day(root, DAY)


@pytest.mark.parametrize(
    ("file_name", "content", "reject"),
    [
        (
            "vitals.csv",
            "encounter_id,loinc_code,value,unit\nE-5001,8310-5,38,4,Cel\n",
            (2, None, "expected 4 fields, got 5"),
        ),
        (
            "vitals.csv",
            "encounter_id,loinc_code,value,unit\nE-5001,8310-5,38.4\n",
            (2, None, "expected 4 fields, got 3"),
        ),
        (
            "vitals.csv",
            "encounter_id,loinc_code,value,unit\nE-5001,8310-5,high,Cel\n",
            (2, "value", "expected a number"),
        ),
        ("symptoms.csv", "encounter_id,hpo_id,present\nE-5001,HP:0001945,\n", (2, "present", "missing not allowed")),
        (
            "encounters.csv",
            "encounter_id,patient_id,encounter_date,centre_id,centre_level,region,consultation_type\n"
            "E-5001,P-1001,04/03/2024,C01,primary,Bretagne,primary_care\n",
            (2, "encounter_date", "expected an ISO date"),
        ),
        ("diagnoses.csv", "encounter_id,code_system,code,rank\nE-5001,ICD10,J06.9,1.5\n", (2, "rank", "whole number")),
    ],
)
def test_a_bad_line_or_cell_rejects_its_row_not_the_day(
    tmp_path: Path, file_name: str, content: str, reject: tuple[int, str | None, str]
) -> None:
    root = copy_day(tmp_path)
    (root / DAY.isoformat() / file_name).write_text(content)
    day = read_landing_day_with_rejects(root, DAY)
    assert_contract(day.tables)
    table = file_name.removesuffix(".csv")
    assert len(day.rejects) == 1
    found = day.rejects[0]
    assert (found.file.endswith(file_name), found.table, found.line, found.column) == (True, table, *reject[:2])
    assert reject[2] in found.rule
    assert day.reject_counts()[table] == 1
    assert "E-5001" not in day.tables[table]["encounter_id"].tolist()  # the row is left out, the day is read


def test_rejects_keep_the_good_rows_and_name_physical_lines(tmp_path: Path) -> None:
    root = copy_day(tmp_path)
    (root / DAY.isoformat() / "vitals.csv").write_text(
        "encounter_id,loinc_code,value,unit\n"
        "E-5001,8310-5,38.4,Cel\n"
        "\n"  # blank line 3: skipped, still counted in line numbers
        "E-5001,8867-4,fast,/min\n"  # line 4: bad cell
        'E-5001,"59408-5\n",97,%\n'  # lines 5-6: one record with a quoted newline
        "E-5002,8310-5,37.2,Cel,extra\n"  # line 7: a field too many
        "E-5002,8867-4,104,/min\n"
    )
    day = read_landing_day_with_rejects(root, DAY)
    vitals = day.tables["vitals"]
    assert vitals.loc[vitals["encounter_id"].isin(["E-5001", "E-5002"]), "value"].tolist() == [38.4, 97.0, 104.0]
    assert [(r.line, r.column) for r in day.rejects] == [(4, "value"), (7, None)]
    frame = day.rejects_frame()
    assert list(frame.columns) == ["file", "table", "line", "column", "rule"]
    assert frame["line"].tolist() == [4, 7]


def test_a_day_without_rejects_has_typed_empty_rejects() -> None:
    day = read_landing_day_with_rejects(LANDING, DAY)
    assert day.rejects == ()
    assert day.reject_counts() == dict.fromkeys(RAW_TABLES, 0)
    assert day.rejects_frame().empty and str(day.rejects_frame()["line"].dtype) == "Int64"


def test_rejects_are_logged_as_counts_without_content(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = copy_day(tmp_path)
    patients = root / DAY.isoformat() / "patients.csv"
    patients.write_text(patients.read_text().replace("1979-02-11", "11/02/1979"))
    with caplog.at_level("DEBUG"):
        day = read_landing_day_with_rejects(root, DAY)
    assert [(r.table, r.line, r.column) for r in day.rejects] == [("patients", 2, "birth_date")]
    assert "P-1001" not in day.tables["patients"]["patient_id"].tolist()
    assert any("patients.csv: rejected 1 row(s)" in m for m in caplog.messages)
    assert not any("1979" in m or "Sophie" in m for m in caplog.messages)


def test_an_unreadable_fhir_file_is_one_reject_and_the_day_is_read(tmp_path: Path) -> None:
    root = copy_day(tmp_path)
    (root / DAY.isoformat() / "broken.json").write_text('{"resourceType": "Bundle", "type": "collection", "entry": [')
    day = read_landing_day_with_rejects(root, DAY)
    assert [(Path(r.file).name, r.table, r.line, r.column) for r in day.rejects] == [
        ("broken.json", "encounters", 1, None)
    ]
    assert day.rejects[0].rule.startswith("not valid JSON: ")
    whole = read_landing_day(LANDING, DAY)  # the CSV files and the good FHIR file of the day are all read
    for table in RAW_TABLES:
        pd.testing.assert_frame_equal(day.tables[table], whole[table], obj=table)
    assert day.fhir_files == 2


def test_a_bad_encounter_rejects_that_encounter_not_the_day(tmp_path: Path) -> None:
    root = copy_day(tmp_path)
    bundles = root / DAY.isoformat() / "ch_douai_bundles.ndjson"
    lines = bundles.read_text().splitlines()
    broken = json.loads(lines[0])
    encounter = next(e["resource"] for e in broken["entry"] if e["resource"]["resourceType"] == "Encounter")
    del encounter["period"]
    bundles.write_text("\n".join([json.dumps(broken), *lines[1:]]) + "\n")
    day = read_landing_day_with_rejects(root, DAY)
    assert [(Path(r.file).name, r.table, r.line, r.column) for r in day.rejects] == [
        ("ch_douai_bundles.ndjson", "encounters", 1, "period.start")
    ]
    whole = read_landing_day(LANDING, DAY)
    assert set(day.tables["encounters"]["encounter_id"]) == set(whole["encounters"]["encounter_id"]) - {encounter["id"]}
    for table in ("vitals", "symptoms", "diagnoses", "comorbidities"):
        assert encounter["id"] not in set(day.tables[table]["encounter_id"])  # left out with it
    assert day.fhir.observations_left_out > 0


def bulk_day(tmp_path: Path, source: Path, split: bool) -> Path:
    """A landing day holding ``source``'s bare resources: as they are, or one NDJSON file per resource type."""
    root = tmp_path / ("split" if split else "whole")
    folder = root / CAREBUNDLE_DAY.isoformat()
    folder.mkdir(parents=True)
    if not split:
        shutil.copy(source, folder / source.name)
        return root
    per_type: dict[str, list[str]] = {}
    for line in source.read_text().splitlines():
        per_type.setdefault(json.loads(line)["resourceType"], []).append(line)
    for kind, lines in per_type.items():
        (folder / f"{kind}.ndjson").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("source", [CAREBUNDLE, HL7], ids=["carebundle", "hl7_examples"])
def test_a_bulk_export_split_per_resource_type_reads_as_the_single_file(tmp_path: Path, source: Path) -> None:
    whole = read_landing_day_with_rejects(bulk_day(tmp_path, source, split=False), CAREBUNDLE_DAY)
    split = read_landing_day_with_rejects(bulk_day(tmp_path, source, split=True), CAREBUNDLE_DAY)
    assert whole.rejects == split.rejects == ()
    for table in RAW_TABLES:
        pd.testing.assert_frame_equal(split.tables[table], whole.tables[table], obj=table)
    # HL7: Encounter f203 lists the stroke Condition among its diagnoses, problem-list items attach by patient
    assert split.fhir.as_dict() == whole.fhir.as_dict()
    if source == CAREBUNDLE:
        assert split.fhir_files == 7  # Patient, Encounter, Condition, Observation, DiagnosticReport, ...
        assert {t: len(f) for t, f in split.tables.items()} == {
            "patients": 8,
            "encounters": 8,
            "vitals": 48,
            "symptoms": 0,
            "diagnoses": 0,
            "comorbidities": 11,
        }


def test_bulk_files_resolve_each_other_where_no_reference_links_them(tmp_path: Path) -> None:
    """What needs the other files of the day, not just an id: the centre from its Organization, a vital and a
    problem-list item that name no encounter (same-day and by-onset links), a symptom's duration from its onset."""
    organization = {
        "resourceType": "Organization",
        "id": "org-1",
        "type": [{"text": "Tertiary"}],
        "address": [{"state": "Bretagne"}],
    }
    icd = "http://hl7.org/fhir/sid/icd-10"
    files = {
        "Organization.ndjson": [organization],
        "Patient.ndjson": [patient()],
        "Encounter.ndjson": [encounter(serviceProvider={"reference": "Organization/org-1"})],
        "Observation.ndjson": [
            {
                **loinc_observation("t1", "8310-5", 38.2, "Cel"),
                "encounter": None,
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2024-03-04T09:00:00Z",
            },
            hpo_observation("o1", "HP:0001945", effectivePeriod={"start": "2024-03-01"}),
        ],
        "Condition.ndjson": [condition("c1", "problem-list-item", icd, "E11.9", onsetDateTime="2020-01-01")],
    }
    folder = tmp_path / "landing" / DAY.isoformat()
    folder.mkdir(parents=True)
    for name, resources in files.items():
        (folder / name).write_text(
            "\n".join(json.dumps({k: v for k, v in r.items() if v is not None}) for r in resources)
        )
    day = read_landing_day_with_rejects(tmp_path / "landing", DAY)
    assert day.rejects == ()
    visit = day.tables["encounters"].iloc[0]
    assert (visit["centre_id"], visit["centre_level"], visit["region"]) == ("org-1", "tertiary", "Bretagne")
    assert day.tables["vitals"][["encounter_id", "loinc_code"]].values.tolist() == [["e1", "8310-5"]]
    assert day.tables["comorbidities"][["encounter_id", "icd10_code"]].values.tolist() == [["e1", "E11.9"]]
    assert day.tables["symptoms"]["duration_days"].tolist() == [3.0]


def test_bare_resources_repeated_across_files_are_read_once_and_conflicting_ids_rejected(tmp_path: Path) -> None:
    root = bulk_day(tmp_path, CAREBUNDLE, split=True)
    folder = root / CAREBUNDLE_DAY.isoformat()
    shutil.copy(folder / "Observation.ndjson", folder / "Observation_resent.ndjson")
    patients = folder / "Patient.ndjson"
    changed = json.loads(patients.read_text().splitlines()[0])
    changed["gender"] = "other" if changed.get("gender") != "other" else "male"
    (folder / "Patient_corrected.ndjson").write_text(json.dumps(changed) + "\n")
    day = read_landing_day_with_rejects(root, CAREBUNDLE_DAY)
    assert [(Path(r.file).name, r.table, r.line, r.column) for r in day.rejects] == [
        ("Patient_corrected.ndjson", "patients", 1, "id")
    ]
    assert len(day.tables["vitals"]) == 48 and len(day.tables["patients"]) == 8
    assert day.fhir.resources_repeated == len((folder / "Observation.ndjson").read_text().splitlines())


def upload_day(endpoint: str, bucket: str, prefix: str, day: dt.date) -> None:
    for path in sorted((LANDING / day.isoformat()).iterdir()):
        put_object(endpoint, bucket, f"{prefix}/{day.isoformat()}/{path.name}", path.read_bytes())


@pytest.mark.integration
def test_s3_day_equals_local_day(s3_server: str) -> None:  # noqa: F811 - pytest fixture
    make_bucket(s3_server, "landing-equal")
    upload_day(s3_server, "landing-equal", "extracts/chu", DAY)
    sink = pa.BufferOutputStream()
    pq.write_table(typed_vitals_parquet(), sink)
    put_object(
        s3_server, "landing-equal", f"extracts/chu/{DAY.isoformat()}/vitals.parquet", sink.getvalue().to_pybytes()
    )
    from_s3 = read_landing_day("s3://landing-equal/extracts/chu", DAY, filesystem=arrow_s3_filesystem(s3_server))
    local = read_landing_day(LANDING, DAY)
    assert_contract(from_s3)
    for table in RAW_TABLES:
        if table == "vitals":
            assert len(from_s3[table]) == len(local[table]) + 2
            continue
        pd.testing.assert_frame_equal(from_s3[table], local[table])


@pytest.mark.integration
def test_s3_missing_day_names_the_uri(s3_server: str) -> None:  # noqa: F811 - pytest fixture
    make_bucket(s3_server, "landing-missing")
    with pytest.raises(FileNotFoundError, match=r"s3://landing-missing/extracts/2024-03-04"):
        read_landing_day("s3://landing-missing/extracts/", DAY, filesystem=arrow_s3_filesystem(s3_server))


@pytest.mark.integration
def test_s3_uri_without_filesystem_uses_the_environment(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    make_bucket(s3_server, "landing-env")
    upload_day(s3_server, "landing-env", "daily", SPARSE_DAY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    tables = read_landing_day("s3://landing-env/daily", SPARSE_DAY)
    assert tables["encounters"]["encounter_id"].tolist() == ["E-5003"]
