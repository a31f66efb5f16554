"""FHIR R4 Bundles (``.json``) and NDJSON files of Bundles (``.ndjson``) to the ``RAW_*`` tables.

Resources are validated with ``fhir.resources.R4B``; Patient, Encounter, Observation and
Condition are mapped as the sibling modules of this package document, Organization and Location only
serve to resolve the centre, every other resource type is ignored. Structural problems raise
ValueError naming the resource and the field; domain values (e.g. an unknown encounter class)
pass through for governance to quarantine.
"""

import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from rare_triage.lib.ingest.fhir.bundle import index_bundle
from rare_triage.lib.ingest.fhir.conditions import condition_rows
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


def bundle_to_tables(bundle: dict[str, Any], source: str = "FHIR Bundle") -> dict[str, pd.DataFrame]:
    """The raw tables of one R4 Bundle (collection, transaction, batch or searchset)."""
    return _frames(bundle_rows(bundle, source), source)


def bundle_rows(bundle: dict[str, Any], source: str = "FHIR Bundle") -> dict[str, list[dict[str, Any]]]:
    """The raw-table rows of one Bundle as plain dicts (frames are built once per file, not per Bundle)."""
    index = index_bundle(bundle)
    patients = [patient_row(key, patient) for key, patient in index.of_type("Patient")]
    encounters = []
    skipped: set[str] = set()
    for key, encounter in index.of_type("Encounter"):
        row = encounter_row(key, encounter, index)
        if row is None:
            skipped.add(key)
        else:
            encounters.append(row)
    encounter_days = {row["encounter_id"]: row["encounter_date"] for row in encounters}
    encounters_by_patient: dict[str, list[str]] = defaultdict(list)
    for row in encounters:
        encounters_by_patient[row["patient_id"]].append(row["encounter_id"])
    observations = observation_rows(index, encounter_days, skipped)
    conditions = condition_rows(index, encounters_by_patient, skipped)
    if conditions.ignored:
        logger.info("%s: ignored %d Condition(s) without an ICD-10 or ORPHA code", source, conditions.ignored)
    return {
        RAW_PATIENTS: patients,
        RAW_ENCOUNTERS: encounters,
        RAW_VITALS: observations.vitals,
        RAW_SYMPTOMS: observations.symptoms,
        RAW_DIAGNOSES: conditions.diagnoses,
        RAW_COMORBIDITIES: conditions.comorbidities,
    }


def read_fhir_file(source: str | Path | bytes, name: str | None = None) -> dict[str, pd.DataFrame]:
    """The raw tables of a ``.json`` Bundle or an ``.ndjson`` file (one Bundle per line), from a path or bytes.

    For bytes, ``name`` (used in errors, and its suffix to pick the format) is optional: a
    document that parses as one JSON object is a Bundle, otherwise it is read as NDJSON.
    NDJSON lines holding bare resources (FHIR Bulk Data style) are read as one collection.
    """
    if isinstance(source, bytes):
        data, label = source, name or "<bytes>"
    else:
        data, label = Path(source).read_bytes(), name or str(source)
    text = data.decode("utf-8-sig")
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in RAW_TABLES}
    for position, bundle in _bundles(text, label):
        where = f"{label} line {position}" if position else label
        try:
            for table, table_rows in bundle_rows(bundle, source=where).items():
                rows[table].extend(table_rows)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from error
    return concat_raw_tables([_frames(rows, label)], deduplicate=True)


def _bundles(text: str, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number or 0 for a whole-file document, Bundle) pairs of a JSON or NDJSON text."""
    if not label.lower().endswith(".ndjson"):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            if label.lower().endswith(".json"):
                raise ValueError(f"{label}: not valid JSON: {error}") from error
        else:
            yield 0, document
            return
    loose: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{label} line {number}: not valid JSON: {error}") from error
        if isinstance(item, dict) and item.get("resourceType") != "Bundle" and "resourceType" in item:
            loose.append({"resource": item})
        else:
            yield number, item
    if loose:
        yield 0, {"resourceType": "Bundle", "type": "collection", "entry": loose}


def _frames(rows: dict[str, list[dict[str, Any]]], source: str) -> dict[str, pd.DataFrame]:
    return {
        table: conform_raw_table(pd.DataFrame(table_rows, columns=list(RAW_COLUMNS[table])), table, source)
        for table, table_rows in rows.items()
    }
