"""Identifiers planted in malformed rows, wrong-typed cells and bad FHIR reach no exception chain and no log line."""

import datetime as dt
import json
import logging
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rare_triage.lib.governance.anonymize import Pseudonymizer
from rare_triage.lib.governance.rejects import reject_quarantine
from rare_triage.lib.governance.screening import quarantine_findings
from rare_triage.lib.ingest.fhir.bundle import RARE_TRIAGE_FHIR_BASE
from rare_triage.lib.ingest.landing_zone import read_landing_day_with_rejects
from rare_triage.lib.ingest.raw_contract import Reject, rejects_frame
from rare_triage.lib.ingest.raw_frames import conform_raw_table
from rare_triage_tests.lib.ingest.fhir.test_read import bundle, condition, encounter, hpo_observation, patient

NAME, FAMILY = "Sophie", "Moreau-Lefebvre"
EMAIL = "sophie.moreau@example.org"
PHONE = "+33 6 48 21 09 77"
MRN = "MRN-00391877"
NATIONAL_ID = "1790262118042"
PLANTED = (f"{NAME} {FAMILY}", FAMILY, EMAIL, PHONE, MRN, NATIONAL_ID)
DAY = dt.date(2024, 3, 4)
PATIENT_ROW = f"{MRN},{MRN},{NATIONAL_ID},{NAME},{FAMILY},{PHONE},{EMAIL},8 rue Hugo,Lille,59800"
PATIENT_HEADER = "patient_id,mrn,national_id,given_name,family_name,phone,email,street_address,city,zip_code"
ENCOUNTER_HEADER = "encounter_id,patient_id,encounter_date,centre_id,centre_level,region,consultation_type"
GOOD_ENCOUNTERS = f"{ENCOUNTER_HEADER}\nE-1,P-1,2024-03-04,C01,primary,North,primary_care\n"
PSEUDONYMIZE = Pseudonymizer(b"no-row-content-leaks-test-key-0123456789")

# One wrong-typed cell per typed column of the contract, holding an identifier.
TYPED_CELLS = {
    ("patients", "birth_date"): f"{PATIENT_HEADER},birth_date,sex\n{PATIENT_ROW},{EMAIL},F\n",
    ("encounters", "encounter_date"): f"{ENCOUNTER_HEADER}\n{MRN},{MRN},{PHONE},C01,primary,North,primary_care\n",
    ("encounters", "prior_visits_365d"): (
        f"{ENCOUNTER_HEADER},prior_visits_365d\n{MRN},{MRN},2024-03-04,C01,primary,North,primary_care,{NATIONAL_ID}x\n"
    ),
    ("vitals", "value"): f"encounter_id,loinc_code,value,unit\n{MRN},8310-5,{NAME} {FAMILY},Cel\n",
    ("symptoms", "present"): f"encounter_id,hpo_id,present\n{MRN},HP:0001945,{EMAIL}\n",
    ("symptoms", "severity"): f"encounter_id,hpo_id,present,severity\n{MRN},HP:0001945,true,{PHONE}\n",
    ("symptoms", "duration_days"): f"encounter_id,hpo_id,present,duration_days\n{MRN},HP:0001945,true,{FAMILY}\n",
    ("diagnoses", "rank"): f"encounter_id,code_system,code,rank\n{MRN},ICD10,J06.9,{NATIONAL_ID}.5\n",
}


def chain(error: BaseException) -> list[BaseException]:
    """The exception and every exception reachable through __cause__ and __context__ (suppressed or not)."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return seen


def assert_nothing_planted(texts: list[str]) -> None:
    for text in texts:
        for value in PLANTED:
            assert value not in text, f"planted {value!r} in {text!r}"


def assert_clean_error(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    texts = ["".join(traceback.format_exception(error))]
    for item in chain(error):
        texts += [str(item), repr(item), *(str(arg) for arg in item.args)]
    assert_nothing_planted(texts + log_texts(caplog))


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records]


def day_with(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    folder = tmp_path / "landing" / DAY.isoformat()
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return tmp_path / "landing"


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.mark.parametrize(("table", "column"), list(TYPED_CELLS))
def test_wrong_typed_cells_are_rejected_without_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, table: str, column: str
) -> None:
    day = read_landing_day_with_rejects(day_with(tmp_path, {f"{table}.csv": TYPED_CELLS[table, column]}), DAY)
    assert [(r.table, r.line, r.column) for r in day.rejects] == [(table, 2, column)]
    assert day.tables[table].empty
    assert_nothing_planted([str(r) for r in day.rejects] + [repr(r) for r in day.rejects] + log_texts(caplog))
    assert_nothing_planted([day.rejects_frame().to_csv()])


@pytest.mark.parametrize(("table", "column"), list(TYPED_CELLS))
def test_strict_conform_of_wrong_typed_cells_raises_without_content(
    caplog: pytest.LogCaptureFixture, table: str, column: str
) -> None:
    lines = TYPED_CELLS[table, column].splitlines()
    frame = pd.DataFrame([lines[1].split(",")], columns=lines[0].split(","))
    with pytest.raises(ValueError, match=rf"column '{column}'") as raised:
        conform_raw_table(frame, table, f"{table}.csv")
    assert_clean_error(raised.value, caplog)


@pytest.mark.parametrize(
    "row", [f"{PATIENT_ROW},1979-02-11,F,{EMAIL}", f"{MRN},{NAME},{FAMILY}", f'"{NAME}\n{FAMILY}",{PHONE}']
)
def test_malformed_csv_lines_are_rejected_without_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, row: str
) -> None:
    content = f"{PATIENT_HEADER},birth_date,sex\n{row}\nP-2,,,,,,,,,02100,1980-01-01,M\n"
    day = read_landing_day_with_rejects(day_with(tmp_path, {"patients.csv": content}), DAY)
    assert day.tables["patients"]["patient_id"].tolist() == ["P-2"]
    assert [(r.table, r.column) for r in day.rejects] == [("patients", None)]
    assert day.rejects[0].line == 2
    assert "fields" in day.rejects[0].rule
    assert_nothing_planted([str(r) for r in day.rejects] + log_texts(caplog))


def parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return bytes(sink.getvalue().to_pybytes())


def test_wrong_typed_parquet_cells_are_rejected_without_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    diagnoses = {
        "encounter_id": [MRN, "E-2"],
        "code_system": ["ICD10"] * 2,
        "code": ["J06.9"] * 2,
        "rank": [EMAIL, "1"],
    }
    day = read_landing_day_with_rejects(day_with(tmp_path, {"diagnoses.parquet": parquet_bytes(diagnoses)}), DAY)
    assert day.tables["diagnoses"]["encounter_id"].tolist() == ["E-2"]
    assert [(r.line, r.column) for r in day.rejects] == [(1, "rank")]  # the 1-based row of the Parquet file
    assert_nothing_planted([str(r) for r in day.rejects] + log_texts(caplog))


def vitals_with_boolean_values() -> bytes:
    return parquet_bytes({"encounter_id": [MRN], "loinc_code": [NAME], "value": [True], "unit": [EMAIL]})


BAD_FILES: dict[str, dict[str, str | bytes]] = {
    "headerless csv": {"patients.csv": f"{PATIENT_ROW},1979-02-11,F\n"},
    "csv not utf-8": {
        "vitals.csv": f"encounter_id,loinc_code,value,unit\n{MRN},8310-5,38,{NAME}\xe9\n".encode("latin-1")
    },
    "truncated parquet": {"vitals.parquet": vitals_with_boolean_values()[:-40]},
    "boolean measures": {"vitals.parquet": vitals_with_boolean_values()},
}
# FHIR files that cannot be read at all: one reject each, the rest of the day is read
BAD_FHIR_FILES: dict[str, dict[str, str | bytes]] = {
    "fhir json syntax": {"broken.json": f'{{"resourceType": "Bundle", "entry": [{{"id": "{MRN}", "name": "{NAME}"'},
    "ndjson syntax": {"broken.ndjson": f'{{"resourceType": "Patient", "id": "{MRN}", "telecom": [{EMAIL}]}}\n'},
    "fhir not utf-8": {"b.json": f'{{"resourceType": "Bundle", "id": "{FAMILY}\xe9"}}'.encode("latin-1")},
    "fhir not a bundle": {"p.json": json.dumps(patient(MRN, name=[{"family": FAMILY, "given": [NAME]}]))},
    "ndjson nothing but broken lines": {"x.ndjson": f'{{"id": "{MRN}",\n"email": "{EMAIL}"\n}}\n'},
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_unreadable_files_raise_without_content(tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str) -> None:
    files = BAD_FILES[case]
    root = day_with(tmp_path, files)
    with pytest.raises(ValueError, match=next(iter(files)).replace(".", r"\.")) as raised:
        read_landing_day_with_rejects(root, DAY)
    assert_clean_error(raised.value, caplog)


def assert_clean_rejects(rejects: tuple[Reject, ...], caplog: pytest.LogCaptureFixture) -> None:
    """No planted value in the rejects, their frame, the logs or the quarantine rows governance makes of them."""
    frame = rejects_frame(rejects)
    quarantine = reject_quarantine(frame, DAY.isoformat(), PSEUDONYMIZE)
    assert quarantine_findings(quarantine) == []  # governance would refuse identifier-shaped reasons
    texts = [str(r) for r in rejects] + [repr(r) for r in rejects] + [frame.to_csv(), quarantine.to_csv()]
    assert_nothing_planted(texts + log_texts(caplog))


@pytest.mark.parametrize("case", list(BAD_FHIR_FILES))
def test_unreadable_fhir_files_are_one_reject_without_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    (name,) = BAD_FHIR_FILES[case]
    root = day_with(tmp_path, {**BAD_FHIR_FILES[case], "encounters.csv": GOOD_ENCOUNTERS})
    day = read_landing_day_with_rejects(root, DAY)
    assert [(r.file.endswith(name), r.table) for r in day.rejects] == [(True, "encounters")]
    assert day.tables["encounters"]["encounter_id"].tolist() == ["E-1"]  # the CSV of the day is read
    assert_clean_rejects(day.rejects, caplog)


PRIOR_VISITS = f"{RARE_TRIAGE_FHIR_BASE}/StructureDefinition/prior-visits-365d"
DURATION = {"coding": [{"system": "http://snomed.info/sct", "code": "103335007"}]}
BAD_RESOURCES: dict[str, list[dict[str, Any]]] = {
    "birthDate": [patient(MRN, birthDate=f"{NAME} {FAMILY}")],
    "gender": [patient(MRN, gender=EMAIL)],
    "telecom value": [patient(MRN, telecom=[{"system": "phone", "value": [PHONE]}])],
    "unknown element": [patient(MRN, **{f"{NAME} {FAMILY}": EMAIL})],
    "identifier value": [patient(MRN, identifier=[{"value": {"mrn": MRN, "nir": NATIONAL_ID}}])],
    "name": [patient(MRN, name=[{"family": [FAMILY], "given": NAME}])],
    "period.start": [patient(), encounter(MRN, period={"start": NATIONAL_ID})],
    "partial start": [patient(), encounter(MRN, period={"start": "1979"})],
    "prior visits": [patient(), encounter(MRN, extension=[{"url": PRIOR_VISITS, "valueString": f"{NAME} {FAMILY}"}])],
    "hpo code": [patient(), encounter(), hpo_observation(MRN, f"{NAME} {FAMILY}")],
    "answer": [
        patient(),
        encounter(),
        hpo_observation(MRN, "HP:0001945", valueCodeableConcept={"coding": [{"code": PHONE}]}),
    ],
    "duration unit": [
        patient(),
        encounter(),
        hpo_observation(
            MRN, "HP:0001945", component=[{"code": DURATION, "valueQuantity": {"value": 2, "unit": FAMILY}}]
        ),
    ],
    "orpha code": [
        patient(),
        encounter(),
        condition(MRN, "encounter-diagnosis", "http://www.orpha.net", EMAIL, encounter={"reference": "Encounter/e1"}),
    ],
    "not a bundle": [{"resourceType": f"{NAME}{FAMILY}", "id": MRN}],
}


# the table and FHIR field of the one reject of each case
REJECTED_AS = {
    "birthDate": ("patients", "birthDate"),
    "gender": ("patients", "gender"),
    "telecom value": ("patients", "telecom.0.value"),
    "unknown element": ("patients", "<unknown element>"),
    "identifier value": ("patients", "identifier.0.value"),
    "name": ("patients", "name.0.family"),
    "period.start": ("encounters", "period.start"),
    "partial start": ("encounters", "period.start"),
    "prior visits": ("encounters", "extension"),
    "hpo code": ("symptoms", "code.coding.code"),
    "answer": ("symptoms", "valueCodeableConcept"),
    "duration unit": ("symptoms", "component.valueQuantity.unit"),
    "orpha code": ("diagnoses", "code.coding.code"),
    "not a bundle": ("encounters", "resourceType"),
}


@pytest.mark.parametrize("case", list(BAD_RESOURCES))
@pytest.mark.parametrize("file_name", ["bad.json", "bad.ndjson"])
def test_fhir_resources_with_bad_values_are_rejected_without_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, file_name: str
) -> None:
    resources = BAD_RESOURCES[case]
    if file_name.endswith(".ndjson"):  # bare resources, one a line (an unknown resource type is ignored there)
        text = "\n".join(json.dumps(r) for r in resources) + "\n"
    else:
        text = json.dumps(bundle(*resources) if case != "not a bundle" else resources[0])
    day = read_landing_day_with_rejects(day_with(tmp_path, {file_name: text}), DAY)
    if case == "not a bundle" and file_name.endswith(".ndjson"):
        assert day.rejects == ()
    else:
        assert [(r.table, r.column) for r in day.rejects] == [REJECTED_AS[case]]
        assert day.rejects[0].file.endswith(file_name)
        assert day.rejects[0].line == (len(resources) if file_name.endswith(".ndjson") else None)
    assert_clean_rejects(day.rejects, caplog)


def test_bare_ndjson_resources_are_named_by_their_line(tmp_path: Path) -> None:
    lines = [patient(), encounter(), hpo_observation("o1", f"{NAME} {FAMILY}")]
    text = "\n".join(json.dumps(r) for r in lines) + "\n"
    day = read_landing_day_with_rejects(day_with(tmp_path, {"bad.ndjson": text}), DAY)
    assert [(r.table, r.line, r.column, r.rule) for r in day.rejects] == [
        ("symptoms", 3, "code.coding.code", "not an HPO id like HP:0001945")
    ]
    assert day.tables["encounters"]["encounter_id"].tolist() == ["e1"]
