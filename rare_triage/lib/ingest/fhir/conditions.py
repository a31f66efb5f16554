"""FHIR R4 Conditions to ``diagnoses`` and ``comorbidities`` rows.

Mapping choices (documented for integrators):
- Codes: systems starting with ``http://hl7.org/fhir/sid/icd-10`` (icd-10, icd-10-cm, ...) give
  ICD10; ``http(s)://www.orpha.net`` gives ORPHA with code ``ORPHA:<n>``. A Condition coded in
  both gives one row per code (same rank). Conditions with neither are ignored.
- Category encounter-diagnosis (or no category but listed in ``Encounter.diagnosis``) ->
  diagnoses, linked by ``Condition.encounter`` or by the Encounter listing it. Rank:
  ``Encounter.diagnosis.rank``, else the position in that list, else the next free rank of
  the encounter in Bundle order (so an unranked single diagnosis has rank 1).
- Category problem-list-item, or a Condition with no encounter (neither ``Condition.encounter`` nor
  listed in ``Encounter.diagnosis``) -> comorbidities (ICD-10 codes only) while clinicalStatus is
  active, recurrence, relapse or absent: on its ``Condition.encounter`` and on every encounter of
  the same patient in the Bundle/file dated on or after its onset (before any abatement), see
  ``problem_list.py``. A Condition without category but with an encounter is an encounter diagnosis.
- Findings: a problem-list Condition coded in SNOMED CT, ICD-10 or UMLS whose code has an HPO cross-reference
  adds present symptom rows on the encounters it is attached to as history (``findings.py``); never on the
  encounter it is a diagnosis of: an encounter's diagnoses are what it concluded (its label), not what it saw.
- verificationStatus entered-in-error or refuted: skipped.
- A Condition that cannot be mapped (a malformed ORPHA code, an encounter-diagnosis without its Encounter) is left
  out as a reject of ``diagnoses`` or ``comorbidities``; the diagnoses of a rejected Encounter are left out with it.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Final

from rare_triage.lib.ingest.fhir.bundle import CONDITION_CATEGORY_SYSTEM, BundleIndex, codes_in, codings
from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage.lib.ingest.fhir.findings import finding_hpo_ids, finding_rows
from rare_triage.lib.ingest.fhir.problem_list import problem_encounters
from rare_triage.lib.ingest.fhir.rejects import ResourceError

ICD10_SYSTEM_PREFIX: Final = "http://hl7.org/fhir/sid/icd-10"
ORPHA_SYSTEMS: Final = frozenset({"http://www.orpha.net", "https://www.orpha.net"})
SKIPPED_VERIFICATION: Final = frozenset({"entered-in-error", "refuted"})
ENCOUNTER_DIAGNOSIS: Final = "encounter-diagnosis"
PROBLEM_LIST_ITEM: Final = "problem-list-item"


@dataclass
class ConditionRows:
    """Rows collected from the Conditions of one Bundle."""

    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    comorbidities: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    ignored: int = 0
    counts: ImportCounts = field(default_factory=ImportCounts)


def condition_rows(
    index: BundleIndex,
    patient_encounters: dict[str, list[tuple[str, dt.date]]],
    skipped_encounters: set[str],
    rejected_encounters: AbstractSet[str] = frozenset(),
) -> ConditionRows:
    """Diagnosis, comorbidity and finding rows of every Condition; ``ignored`` counts those without ICD-10/ORPHA.

    A Condition that cannot be mapped is left out as a reject of the index (``BundleIndex.reject``); one that
    refers to a rejected encounter and is attached to no other is left out with it (``conditions_left_out``).
    """
    listed = _listed_diagnoses(index)
    next_rank: dict[str, int] = defaultdict(int)
    for encounter_id, rank in listed.values():
        next_rank[encounter_id] = max(next_rank[encounter_id], rank)
    rows = ConditionRows()
    left_out = skipped_encounters | set(rejected_encounters)
    for key, condition in index.of_type("Condition"):
        if SKIPPED_VERIFICATION & set(codes_in([condition.verificationStatus])):
            continue
        try:
            _collect(
                key,
                condition,
                index,
                patient_encounters=patient_encounters,
                skipped_encounters=left_out,
                rejected_encounters=rejected_encounters,
                listed=listed,
                next_rank=next_rank,
                rows=rows,
            )
        except ResourceError as error:
            index.reject("Condition", key, condition, error)
    return rows


def _collect(
    key: str,
    condition: Any,
    index: BundleIndex,
    *,
    patient_encounters: dict[str, list[tuple[str, dt.date]]],
    skipped_encounters: set[str],
    rejected_encounters: AbstractSet[str],
    listed: dict[str, tuple[str, int]],
    next_rank: dict[str, int],
    rows: ConditionRows,
) -> None:
    """Add the rows of one Condition to ``rows``: all of them, or none when ResourceError is raised."""
    label = index.label("Condition", key)
    codes = condition_codes(condition, label)
    categories = set(codes_in(condition.category or [], CONDITION_CATEGORY_SYSTEM)) or set(
        codes_in(condition.category or [])
    )
    recorded_at, _ = index.resolve(condition.encounter, "Encounter")
    linked = recorded_at is not None or key in listed
    diagnosed_at: str | None = None
    if linked and (ENCOUNTER_DIAGNOSIS in categories or not categories):
        encounter_id, rank = _diagnosis_link(key, condition, index, listed=listed, next_rank=next_rank, label=label)
        if encounter_id not in skipped_encounters:
            diagnosed_at = encounter_id
            rows.diagnoses.extend(
                {"encounter_id": encounter_id, "code_system": system, "code": code, "rank": rank}
                for system, code in codes
            )
    # nothing below raises
    rows.ignored += not codes
    hpo_ids = finding_hpo_ids([condition.code], rows.counts)
    attached = diagnosed_at is not None
    if PROBLEM_LIST_ITEM in categories or not linked:
        problem = _problem_list_encounters(condition, index, patient_encounters, recorded_at, skipped_encounters)
        _add_problem(rows, problem, [code for system, code in codes if system == "ICD10"])
        history = [e for e in problem if e != diagnosed_at]
        rows.findings.extend(finding_rows(history, hpo_ids, present=True))
        attached = attached or bool(problem)
    if not attached and {recorded_at, listed.get(key, (None, 0))[0]} & rejected_encounters:
        rows.counts.conditions_left_out += 1  # it was about a rejected encounter and went nowhere else


def _add_problem(rows: ConditionRows, encounter_ids: list[str], icd10_codes: list[str]) -> None:
    rows.counts.problem_list_seen += 1
    if not encounter_ids:
        return
    rows.counts.problem_list_attached += 1
    rows.counts.problem_list_without_icd10 += not icd10_codes
    added = [{"encounter_id": e, "icd10_code": code} for e in encounter_ids for code in icd10_codes]
    rows.comorbidities.extend(added)
    rows.counts.comorbidity_rows += len(added)


def _problem_list_encounters(
    condition: Any,
    index: BundleIndex,
    patient_encounters: dict[str, list[tuple[str, dt.date]]],
    recorded_at: str | None,
    skipped_encounters: set[str],
) -> list[str]:
    patient_id, _ = index.resolve(condition.subject, "Patient")
    candidates = patient_encounters.get(patient_id, []) if patient_id is not None else []
    return [e for e in problem_encounters(condition, candidates, recorded_at) if e not in skipped_encounters]


def condition_codes(condition: Any, label: str) -> list[tuple[str, str]]:
    """(code_system, code) pairs of a Condition's ICD-10 and ORPHA codings, in coding order."""
    found = []
    for coding in codings(condition.code):
        if not coding.code or not coding.system:
            continue
        if coding.system.startswith(ICD10_SYSTEM_PREFIX):
            found.append(("ICD10", coding.code.strip().upper()))
        elif coding.system.rstrip("/") in ORPHA_SYSTEMS:
            found.append(("ORPHA", normalize_orpha_code(coding.code, label)))
    return list(dict.fromkeys(found))


def normalize_orpha_code(code: str, label: str) -> str:
    """``558``, ``ORPHA:558`` or ``Orphanet_558`` -> ``ORPHA:558``."""
    text = code.strip()
    for prefix in ("ORPHA:", "Orphanet_", "ORPHANET:"):
        if text.upper().startswith(prefix.upper()):
            text = text[len(prefix) :]
    if not text.isdigit():
        raise ResourceError(label, "code.coding.code", "not an ORPHA code like ORPHA:558")
    return f"ORPHA:{int(text)}"


def _listed_diagnoses(index: BundleIndex) -> dict[str, tuple[str, int]]:
    """Condition key -> (encounter id, rank) from ``Encounter.diagnosis``."""
    listed = {}
    for encounter_id, encounter in index.of_type("Encounter"):
        for position, diagnosis in enumerate(encounter.diagnosis or [], start=1):
            condition_id, _ = index.resolve(diagnosis.condition, "Condition")
            if condition_id is not None:
                listed[condition_id] = (encounter_id, int(diagnosis.rank or position))
    return listed


def _diagnosis_link(
    key: str,
    condition: Any,
    index: BundleIndex,
    *,
    listed: dict[str, tuple[str, int]],
    next_rank: dict[str, int],
    label: str,
) -> tuple[str, int]:
    encounter_id, _ = index.resolve(condition.encounter, "Encounter")
    if key in listed and encounter_id in (None, listed[key][0]):
        return listed[key]
    if encounter_id is None:
        problem = "an encounter-diagnosis must reference its Encounter (or be listed in Encounter.diagnosis)"
        raise ResourceError(label, "encounter", problem)
    next_rank[encounter_id] += 1
    return encounter_id, next_rank[encounter_id]
