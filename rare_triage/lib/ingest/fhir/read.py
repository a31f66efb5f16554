"""FHIR R4 Bundles (``.json``), NDJSON files of Bundles and FHIR Bulk Data NDJSON (``.ndjson``) to the ``RAW_*`` tables.

Resources are validated with ``fhir.resources.R4B``; Patient, Encounter, Observation and
Condition are mapped as the sibling modules of this package document, Organization and Location only
serve to resolve the centre, every other resource type is ignored. Domain values (e.g. an unknown
encounter class) pass through for governance to quarantine.

Nothing here raises for the content of a file: what cannot be read is left out as a ``Reject`` (file, table, line,
column, rule; never a value, see ``rejects.py``) and the rest flows:
- a resource that fails validation or mapping: one reject of the table it would have fed (column = the FHIR field);
  the Observations and diagnoses of a rejected Encounter are left out with it (counted: ``observations_left_out``,
  ``conditions_left_out``); the Encounters of a rejected Patient flow and governance quarantines them (unknown
  patient), as for a CSV;
- a file that is not UTF-8, a ``.json`` that is not JSON or not a readable Bundle, an NDJSON line that is neither
  JSON nor a resource or Bundle: one reject of ``encounters`` for that file or line (an NDJSON file none of whose
  lines parses: one for the file).

Bulk Data exports come as one NDJSON file per resource type: the bare resources of every file given to one
``FhirImport`` (a landing day) are pooled and mapped as one collection, each keeping its file and line; Bundles are
mapped each on its own. Memory: only the mapped resource types are pooled, as parsed dicts, until ``finish``
validates them (each dict is released once its model is built): measured on a 50-patient export, 2.3 MB of
Patient / Encounter / Observation / Condition NDJSON held 12 MB pooled and peaked at 29 MB, so a day's bare
resources must fit in memory at roughly 5-12 times their NDJSON size.
"""

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rare_triage.lib.ingest.fhir.bundle import MAPPED_RESOURCE_TYPES, BundleIndex, bundle_entries, index_resources
from rare_triage.lib.ingest.fhir.conditions import condition_rows
from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage.lib.ingest.fhir.findings import merge_findings
from rare_triage.lib.ingest.fhir.observations import observation_rows
from rare_triage.lib.ingest.fhir.patient_encounter import encounter_row, patient_row
from rare_triage.lib.ingest.fhir.rejects import Origin, ResourceError, file_reject, reject_table, resource_reject
from rare_triage.lib.ingest.raw_contract import Reject
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

Rows = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class FhirFile:
    """The raw tables of one or more FHIR files, what was left out of them (rejects, no content) and the counts."""

    tables: dict[str, pd.DataFrame]
    rejects: tuple[Reject, ...] = ()
    counts: ImportCounts = field(default_factory=ImportCounts)


class FhirImport:
    """The FHIR files of one landing day, read into one ``FhirFile``.

    ``add_file`` maps the Bundles of a file at once and pools its bare resources; ``finish`` maps the pool as one
    collection (an Observation of ``Observation.ndjson`` finds its Encounter in ``Encounter.ndjson``) and builds the
    frames. A bare resource repeated unchanged in the pool is read once (``resources_repeated``); one whose id is
    taken by a different resource of the same type is rejected (column ``id``).
    """

    def __init__(self) -> None:
        self.files = 0
        self._rows: Rows = {table: [] for table in RAW_TABLES}
        self._rejects: list[Reject] = []
        self._counts = ImportCounts()
        self._pool: dict[tuple[str, str], tuple[dict[str, Any], Origin]] = {}
        self._pool_without_id: list[tuple[dict[str, Any], Origin]] = []

    def add_file(self, data: bytes, name: str) -> None:
        """One ``.json`` / ``.ndjson`` file (a name with neither suffix: one JSON document, else NDJSON)."""
        self.files += 1
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
        else:
            line = 0
        if line:  # outside the except clause: the codec error holds the whole file
            self._rejects.append(file_reject(name, line, "not UTF-8 text"))
            return
        if not name.lower().endswith(".ndjson"):
            document, problem, at = _json(text)
            if not problem:
                self.add_bundle(document, name)
                return
            if name.lower().endswith(".json"):
                self._rejects.append(file_reject(name, at, f"not valid JSON: {problem}"))
                return
        self._add_ndjson(text, name)

    def add_bundle(self, bundle: Any, file: str = "FHIR Bundle", line: int | None = None) -> None:
        """One Bundle, mapped on its own; a Bundle that cannot be read is one reject of ``file`` (and ``line``)."""
        try:
            entries = list(bundle_entries(bundle, file, line))
        except ResourceError as error:
            self._rejects.append(file_reject(file, line, error.problem, error.field))
            return
        self._map(index_resources(entries))

    def finish(self) -> FhirFile:
        """Map the pooled bare resources, then the frames of every table (verbatim repeats of a patient or encounter
        row collapse), the rejects and the counts."""
        pooled = [*self._pool.values(), *self._pool_without_id]
        self._pool, self._pool_without_id = {}, []
        if pooled:
            self._map(index_resources(_drain(pooled)))
        _count_tables(self._rows, self._counts)
        frames = {
            table: conform_raw_table(pd.DataFrame(rows, columns=list(RAW_COLUMNS[table])), table, "FHIR import")
            for table, rows in self._rows.items()
        }
        self._rows = {table: [] for table in RAW_TABLES}
        return FhirFile(concat_raw_tables([frames], deduplicate=True), tuple(self._rejects), self._counts)

    def _add_ndjson(self, text: str, name: str) -> None:
        bad: list[tuple[int, str]] = []
        read = 0
        for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 may sit in a string
            if not line.strip():
                continue
            item, problem, _ = _json(line)
            if problem:
                bad.append((number, f"not valid JSON: {problem}"))
                continue
            read += 1
            if isinstance(item, dict) and "resourceType" in item and item["resourceType"] != "Bundle":
                self._add_resource(item, Origin(name, number))
            else:
                self.add_bundle(item, name, number)
        if bad and not read:  # nothing of the file reads: one reject for the file, at its first line
            bad = bad[:1]
        self._rejects.extend(file_reject(name, number, problem) for number, problem in bad)

    def _add_resource(self, resource: dict[str, Any], origin: Origin) -> None:
        """Pool one bare resource of a mapped type (any other type is ignored)."""
        kind = resource["resourceType"]
        if kind not in MAPPED_RESOURCE_TYPES:
            return
        if resource.get("id") is None:
            self._pool_without_id.append((resource, origin))  # rejected when indexed
            return
        key = (str(kind), str(resource["id"]))
        held = self._pool.get(key)
        if held is None:
            self._pool[key] = (resource, origin)
        elif held[0] == resource:
            self._counts.resources_repeated += 1
        else:
            problem = f"another {kind} of the day has the same id with different content"
            self._rejects.append(resource_reject(origin, reject_table(str(kind), resource), "id", problem))

    def _map(self, index: BundleIndex) -> None:
        for table, rows in index_rows(index, self._counts).items():
            self._rows[table].extend(rows)
        self._rejects.extend(index.rejects)


def index_rows(index: BundleIndex, counts: ImportCounts | None = None) -> Rows:
    """The raw-table rows of one indexed Bundle (or pool) as plain dicts; resources that cannot be mapped are added
    to ``index.rejects``, and the counts to ``counts``."""
    tally = ImportCounts(centre_resources_invalid=index.invalid_centre_resources)
    patients = []
    for key, patient in index.of_type("Patient"):
        try:
            patients.append(patient_row(key, patient, index.label("Patient", key)))
        except ResourceError as error:
            index.reject("Patient", key, patient, error)
    encounters = []
    skipped: set[str] = set()
    for key, encounter in index.of_type("Encounter"):
        try:
            row = encounter_row(key, encounter, index, tally)
        except ResourceError as error:
            index.reject("Encounter", key, encounter, error)
            continue
        if row is None:
            skipped.add(key)
        else:
            encounters.append(row)
    rejected = index.rejected("Encounter")
    encounter_days = {row["encounter_id"]: row["encounter_date"] for row in encounters}
    patient_encounters: dict[str, list[tuple[str, dt.date]]] = defaultdict(list)
    for row in encounters:
        patient_encounters[row["patient_id"]].append((row["encounter_id"], row["encounter_date"]))
    patient_days = {(row["patient_id"], row["encounter_date"]): row["encounter_id"] for row in reversed(encounters)}
    observations = observation_rows(index, encounter_days, skipped, patient_days, rejected)
    conditions = condition_rows(index, patient_encounters, skipped, rejected)
    if conditions.ignored:
        logger.info("%d FHIR Condition(s) without an ICD-10 or ORPHA code", conditions.ignored)
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


def bundle_to_tables(
    bundle: dict[str, Any], source: str = "FHIR Bundle", counts: ImportCounts | None = None
) -> FhirFile:
    """The raw tables and rejects of one R4 Bundle (collection, transaction, batch or searchset); ``counts`` is
    added to. ``source`` names the Bundle in the rejects (their file)."""
    reader = FhirImport()
    reader.add_bundle(bundle, source)
    return _finished(reader, source, counts)


def read_fhir_file(source: str | Path | bytes, name: str | None = None, counts: ImportCounts | None = None) -> FhirFile:
    """The raw tables and rejects of a ``.json`` Bundle or an ``.ndjson`` file (one Bundle or bare resource a line).

    For bytes, ``name`` (the file of the rejects; its suffix picks the format) is optional: a document that
    parses as one JSON object is a Bundle, otherwise it is read as NDJSON. The file's ``ImportCounts`` are logged
    (numbers only) and added to ``counts`` when given. A landing day's files are read together by ``FhirImport``.
    """
    if isinstance(source, bytes):
        data, label = source, name or "<bytes>"
    else:
        data, label = Path(source).read_bytes(), name or str(source)
    reader = FhirImport()
    reader.add_file(data, label)
    return _finished(reader, label, counts)


def _finished(reader: FhirImport, label: str, counts: ImportCounts | None) -> FhirFile:
    result = reader.finish()
    logger.info("%s: FHIR import counts %s, %d reject(s)", label, result.counts.as_dict(), len(result.rejects))
    if counts is not None:
        counts.add(result.counts)
    return result


def _drain(pooled: list[tuple[dict[str, Any], Origin]]) -> Iterator[tuple[dict[str, Any], None, Origin]]:
    """The pooled resources as index items, each dict released once it has been validated."""
    for position, (resource, origin) in enumerate(pooled):
        pooled[position] = ({}, origin)
        yield resource, None, origin


def _count_tables(rows: Rows, counts: ImportCounts) -> None:
    """Encounters, and encounters with at least one present symptom row."""
    encounter_ids = {row["encounter_id"] for row in rows[RAW_ENCOUNTERS]}
    with_finding = {row["encounter_id"] for row in rows[RAW_SYMPTOMS] if row["present"]}
    counts.encounters += len(encounter_ids)
    counts.encounters_with_finding += len(encounter_ids & with_finding)


def _json(text: str) -> tuple[Any, str, int | None]:
    """(document, "", None) or (None, the syntax problem, its line): the decoder's error keeps the whole text and
    its column may be a large number, so neither is kept."""
    try:
        return json.loads(text), "", None
    except json.JSONDecodeError as error:
        return None, error.msg, error.lineno
