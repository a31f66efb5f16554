"""FHIR R4 Bundles (``.json``) and NDJSON files of Bundles (``.ndjson``) to the ``RAW_*`` tables.

Resources are validated with ``fhir.resources.R4B``; Patient, Encounter, Observation and
Condition are mapped as the sibling modules of this package document, Organization and Location only
serve to resolve the centre, every other resource type is ignored. Structural problems raise
ValueError naming the resource and the field; domain values (e.g. an unknown encounter class)
pass through for governance to quarantine.
"""

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from rare_triage.lib.ingest.fhir.bundle import index_bundle
from rare_triage.lib.ingest.fhir.conditions import condition_rows
from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage.lib.ingest.fhir.findings import merge_findings
from rare_triage.lib.ingest.fhir.observations import observation_rows
from rare_triage.lib.ingest.fhir.patient_encounter import encounter_row, patient_row
from rare_triage.lib.ingest.raw_frames import concat_raw_tables, conform_raw_table
from rare_triage.lib.schema import (
    RAW_COLUMNS,
    RAW_COMORBIDITIES,
    RAW_DIAGNOSES,
    RAW_ENCOUNTERS,
    RAW_PATIENTS,
    RAW_SYMPTOMS,
    RAW_TABLES,
    RAW_VITALS,
)

logger = logging.getLogger(__name__)


def bundle_to_tables(
    bundle: dict[str, Any], source: str = "FHIR Bundle", counts: ImportCounts | None = None
) -> dict[str, pd.DataFrame]:
    """The raw tables of one R4 Bundle (collection, transaction, batch or searchset); ``counts`` is added to."""
    rows = bundle_rows(bundle, source, counts=counts)
    if counts is not None:
        _count_tables(rows, counts)
    return _frames(rows, source)


def bundle_rows(
    bundle: dict[str, Any],
    source: str = "FHIR Bundle",
    entry_lines: list[int] | None = None,
    counts: ImportCounts | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The raw-table rows of one Bundle as plain dicts (frames are built once per file, not per Bundle)."""
    index = index_bundle(bundle, entry_lines)
    tally = ImportCounts()
    patients = [patient_row(key, patient, index.label("Patient", key)) for key, patient in index.of_type("Patient")]
    encounters = []
    skipped: set[str] = set()
    for key, encounter in index.of_type("Encounter"):
        row = encounter_row(key, encounter, index, tally)
        if row is None:
            skipped.add(key)
        else:
            encounters.append(row)
    encounter_days = {row["encounter_id"]: row["encounter_date"] for row in encounters}
    patient_encounters: dict[str, list[tuple[str, dt.date]]] = defaultdict(list)
    for row in encounters:
        patient_encounters[row["patient_id"]].append((row["encounter_id"], row["encounter_date"]))
    patient_days = {(row["patient_id"], row["encounter_date"]): row["encounter_id"] for row in reversed(encounters)}
    observations = observation_rows(index, encounter_days, skipped, patient_days)
    conditions = condition_rows(index, patient_encounters, skipped)
    if conditions.ignored:
        logger.info("%s: %d Condition(s) without an ICD-10 or ORPHA code", source, conditions.ignored)
    for part in (observations.counts, conditions.counts):
        tally.add(part)
    if counts is not None:
        counts.add(tally)
    return {
        RAW_PATIENTS: patients,
        RAW_ENCOUNTERS: encounters,
        RAW_VITALS: observations.vitals,
        RAW_SYMPTOMS: merge_findings(observations.symptoms, observations.findings + conditions.findings),
        RAW_DIAGNOSES: conditions.diagnoses,
        RAW_COMORBIDITIES: conditions.comorbidities,
    }


def read_fhir_file(
    source: str | Path | bytes, name: str | None = None, counts: ImportCounts | None = None
) -> dict[str, pd.DataFrame]:
    """The raw tables of a ``.json`` Bundle or an ``.ndjson`` file (one Bundle per line), from a path or bytes.

    For bytes, ``name`` (used in errors, and its suffix to pick the format) is optional: a
    document that parses as one JSON object is a Bundle, otherwise it is read as NDJSON.
    NDJSON lines holding bare resources (FHIR Bulk Data style) are read as one collection.
    ValueError names the file, line and resource (by its place, never its id) and quotes no value.
    The file's ``ImportCounts`` are logged (numbers only) and added to ``counts`` when given.
    """
    if isinstance(source, bytes):
        data, label = source, name or "<bytes>"
    else:
        data, label = Path(source).read_bytes(), name or str(source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problem = f"{label}: not UTF-8 text (byte offset {error.start})"
    else:
        problem = ""
    if problem:  # raised outside the except clause: the codec error holds the whole file
        raise ValueError(problem)
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in RAW_TABLES}
    tally = ImportCounts()
    for position, bundle, entry_lines in _bundles(text, label):
        where = f"{label} line {position}" if position else label
        try:
            for table, table_rows in bundle_rows(bundle, where, entry_lines, tally).items():
                rows[table].extend(table_rows)
        except ValueError as error:
            problem = f"{where}: {error}"
        if problem:  # the mapping messages quote no value; nothing is chained to this one
            raise ValueError(problem)
    _count_tables(rows, tally)
    logger.info("%s: FHIR import counts %s", label, tally.as_dict())
    if counts is not None:
        counts.add(tally)
    return concat_raw_tables([_frames(rows, label)], deduplicate=True)


def _count_tables(rows: dict[str, list[dict[str, Any]]], counts: ImportCounts) -> None:
    """Encounters, and encounters with at least one present symptom row."""
    encounter_ids = {row["encounter_id"] for row in rows[RAW_ENCOUNTERS]}
    with_finding = {row["encounter_id"] for row in rows[RAW_SYMPTOMS] if row["present"]}
    counts.encounters += len(encounter_ids)
    counts.encounters_with_finding += len(encounter_ids & with_finding)


def _bundles(text: str, label: str) -> Iterator[tuple[int, dict[str, Any], list[int] | None]]:
    """(line number or 0 for a whole-file document, Bundle, file line of each entry or None) of a JSON/NDJSON text."""
    if not label.lower().endswith(".ndjson"):
        document, problem = _json(text)
        if not problem:
            yield 0, document, None
            return
        if label.lower().endswith(".json"):
            raise ValueError(f"{label}: not valid JSON: {problem}")
    loose: list[dict[str, Any]] = []
    loose_lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item, problem = _json(line)
        if problem:
            raise ValueError(f"{label} line {number}: not valid JSON: {problem}")
        if isinstance(item, dict) and item.get("resourceType") != "Bundle" and "resourceType" in item:
            loose.append({"resource": item})
            loose_lines.append(number)
        else:
            yield number, item, None
    if loose:
        yield 0, {"resourceType": "Bundle", "type": "collection", "entry": loose}, loose_lines


def _json(text: str) -> tuple[Any, str]:
    """(document, "") or (None, where the syntax breaks): the decoder's error keeps the whole text, not chained."""
    try:
        return json.loads(text), ""
    except json.JSONDecodeError as error:
        return None, f"{error.msg} at line {error.lineno} column {error.colno}"


def _frames(rows: dict[str, list[dict[str, Any]]], source: str) -> dict[str, pd.DataFrame]:
    return {
        table: conform_raw_table(pd.DataFrame(table_rows, columns=list(RAW_COLUMNS[table])), table, source)
        for table, table_rows in rows.items()
    }
