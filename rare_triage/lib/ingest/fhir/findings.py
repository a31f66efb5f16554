"""Findings coded in SNOMED CT, ICD-10 or UMLS -> present/absent HPO symptom rows, through hp.obo cross-references."""

from collections.abc import Iterable
from typing import Any, Final

from rare_triage.lib.ingest.fhir.bundle import codings
from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage.lib.ingest.fhir.hpo_xrefs import XrefTable, hpo_ids_for, hpo_xref_table, mappable_codes

PRESENT_CODES: Final = frozenset({"LA9633-4", "373066001", "52101004"})  # LOINC Yes/Present, SNOMED Yes, Present
ABSENT_CODES: Final = frozenset({"LA9634-2", "373067005", "2667000"})  # LOINC No/Absent, SNOMED No, Absent


def finding_hpo_ids(
    concepts: Iterable[Any], counts: ImportCounts | None = None, table: XrefTable | None = None
) -> tuple[str, ...]:
    """HPO ids of the SNOMED CT / ICD-10 / UMLS codings of a finding; counted as seen (and mapped) when coded so."""
    lookup = hpo_xref_table() if table is None else table
    codes = mappable_codes(concepts)
    if not codes:
        return ()
    mapped = [code for code in codes if lookup.get(code)]
    if counts is not None:
        counts.add_finding(len(codes), len(mapped))
    return hpo_ids_for(mapped, lookup)


def observed_presence(observation: Any) -> bool | None:
    """A coded finding is present unless its value says absent / false; None when recorded as unknown."""
    if observation.valueBoolean is not None:
        return bool(observation.valueBoolean)
    answers = {c.code for c in codings(observation.valueCodeableConcept)}
    if answers & ABSENT_CODES and not answers & PRESENT_CODES:
        return False
    if observation.dataAbsentReason is not None:
        return None
    return True


def finding_rows(encounter_ids: Iterable[str], hpo_ids: Iterable[str], present: bool) -> list[dict[str, Any]]:
    """One symptom row per encounter and HPO id (no severity or duration)."""
    return [
        {"encounter_id": e, "hpo_id": h, "present": present, "severity": None, "duration_days": None}
        for e in encounter_ids
        for h in hpo_ids
    ]


def merge_findings(symptoms: list[dict[str, Any]], findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Symptom rows plus the finding rows whose (encounter, HPO id) is not there yet (present wins over absent)."""
    merged = list(symptoms)
    seen = {(r["encounter_id"], r["hpo_id"]): i for i, r in enumerate(merged)}
    for row in findings:
        key = (row["encounter_id"], row["hpo_id"])
        if key not in seen:
            seen[key] = len(merged)
            merged.append(row)
        elif row["present"] and not merged[seen[key]]["present"] and seen[key] >= len(symptoms):
            merged[seen[key]] = row
    return merged
