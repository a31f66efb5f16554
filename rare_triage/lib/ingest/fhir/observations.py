"""FHIR R4 Observations to ``vitals`` and ``symptoms`` rows.

Mapping choices (documented for integrators):
- Vitals: an Observation (or a component, as in the 85354-9 blood-pressure panel) coded with
  a LOINC code of ``schema.VITAL_LOINC`` or 2708-6 (stored as 59408-5) and a valueQuantity.
  The unit is the UCUM ``code`` of the quantity, else its ``unit`` text normalised to UCUM;
  Fahrenheit temperatures are converted to Cel. Observations with other codes are ignored.
- Symptoms: an Observation coded in the HPO system with valueCodeableConcept LA9633-4
  (present) / LA9634-2 (absent) (SNOMED 373066001 / 373067005 and valueBoolean also read);
  with no value and no dataAbsentReason the phenotype counts as present.
  Severity (0-10): a component coded SNOMED 246112005 |Severity| (or LOINC 72514-3) with
  valueQuantity or valueInteger. Duration: a component coded SNOMED 103335007 |Duration|
  with a valueQuantity in d, h, min, wk, mo or a (no unit = days), else the days from
  ``effectivePeriod.start`` (onset) to the encounter date.
- Pain score (LOINC 72514-3, the highest one per encounter) goes on that encounter's
  HP:0012531 Pain rows whose severity is not set; without a Pain row, one is added,
  present when the score is above 0.
- Findings: an Observation without a vital/pain/HPO code, without valueQuantity, coded in SNOMED CT,
  ICD-10 or UMLS, gives one symptom row per HPO term cross-referencing a code (``findings.py``):
  absent when its value is No/Absent (LOINC LA9634-2, SNOMED 373067005 / 2667000) or false.
- An Observation without ``encounter`` goes to the patient's encounter on its effective day
  (``effective[x]``, else ``issued``); with none it is skipped and counted (``observations_unlinked``).
- Observations with status entered-in-error or cancelled are skipped.
- An Observation that cannot be mapped (e.g. a malformed HPO id, an unknown answer, a vital without value) is left
  out as a reject of ``vitals`` or ``symptoms``; the Observations of a rejected Encounter are left out with it.
"""

import datetime as dt
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Final

from rare_triage.lib.ingest.fhir.bundle import (
    LOINC_SYSTEM,
    SNOMED_SYSTEM,
    UCUM_SYSTEM,
    BundleIndex,
    codes_in,
    codings,
    to_day,
    to_float,
)
from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage.lib.ingest.fhir.findings import finding_hpo_ids, finding_rows, observed_presence
from rare_triage.lib.ingest.fhir.rejects import ResourceError
from rare_triage.lib.schema import PAIN_HPO, PAIN_SCORE_LOINC, SPO2_ALT_LOINC, VITAL_LOINC

HPO_SYSTEMS: Final = frozenset(
    {
        "http://human-phenotype-ontology.org",
        "https://human-phenotype-ontology.org",
        "http://purl.obolibrary.org/obo/hp.owl",
    }
)
PRESENT_ANSWER_CODES: Final = frozenset({"LA9633-4", "373066001"})
ABSENT_ANSWER_CODES: Final = frozenset({"LA9634-2", "373067005"})
SEVERITY_COMPONENT_CODES: Final = frozenset({(SNOMED_SYSTEM, "246112005"), (LOINC_SYSTEM, PAIN_SCORE_LOINC)})
DURATION_COMPONENT_CODES: Final = frozenset({(SNOMED_SYSTEM, "103335007")})
SKIPPED_OBSERVATION_STATUSES: Final = frozenset({"entered-in-error", "cancelled"})

DAYS_PER_UNIT: Final = {"d": 1.0, "h": 1 / 24, "min": 1 / 1440, "wk": 7.0, "mo": 30.4375, "a": 365.25}
UCUM_BY_UNIT_TEXT: Final = {
    "°c": "Cel",
    "degc": "Cel",
    "c": "Cel",
    "°f": "[degF]",
    "degf": "[degF]",
    "f": "[degF]",
    "bpm": "/min",
    "beats/min": "/min",
    "beats/minute": "/min",
    "breaths/min": "/min",
    "breaths/minute": "/min",
    "mmhg": "mm[Hg]",
    "mm hg": "mm[Hg]",
    "day": "d",
    "days": "d",
    "hour": "h",
    "hours": "h",
    "week": "wk",
    "weeks": "wk",
    "month": "mo",
    "months": "mo",
    "year": "a",
    "years": "a",
}


@dataclass
class ObservationRows:
    """Rows collected from the Observations of one Bundle."""

    vitals: list[dict[str, Any]] = field(default_factory=list)
    symptoms: list[dict[str, Any]] = field(default_factory=list)
    pain_scores: dict[str, float] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    counts: ImportCounts = field(default_factory=ImportCounts)
    patient_days: dict[tuple[str, dt.date], str] = field(default_factory=dict)


def observation_rows(
    index: BundleIndex,
    encounter_days: dict[str, dt.date],
    skipped_encounters: set[str],
    patient_days: dict[tuple[str, dt.date], str] | None = None,
    rejected_encounters: AbstractSet[str] = frozenset(),
) -> ObservationRows:
    """Vitals, symptom and finding rows of every mapped Observation, pain scores merged into the symptoms.

    ``patient_days`` ((patient id, day) -> encounter id) links Observations that reference no Encounter. An
    Observation that cannot be mapped is left out as a reject of the index (``BundleIndex.reject``); one of a
    rejected encounter is left out with it (``observations_left_out``).
    """
    rows = ObservationRows(patient_days=patient_days or {})
    for key, observation in index.of_type("Observation"):
        if observation.status in SKIPPED_OBSERVATION_STATUSES:
            continue
        try:
            _collect(
                key,
                observation,
                index,
                encounter_days=encounter_days,
                skipped_encounters=skipped_encounters,
                rejected_encounters=rejected_encounters,
                rows=rows,
            )
        except ResourceError as error:
            index.reject("Observation", key, observation, error)
    rows.symptoms = merge_pain_scores(rows.symptoms, rows.pain_scores)
    return rows


def merge_pain_scores(symptoms: list[dict[str, Any]], pain_scores: dict[str, float]) -> list[dict[str, Any]]:
    """Write each encounter's pain score on its Pain rows lacking a severity, or add a Pain row."""
    merged = [dict(row) for row in symptoms]
    for encounter_id, score in pain_scores.items():
        pain_rows = [r for r in merged if r["encounter_id"] == encounter_id and r["hpo_id"] == PAIN_HPO]
        for row in pain_rows:
            if row["severity"] is None:
                row["severity"] = score
        if not pain_rows:
            merged.append(_symptom(encounter_id, PAIN_HPO, score > 0, score, None))
    return merged


def normalize_hpo_id(code: str, label: str) -> str:
    """``HP:0001945``, ``HP_0001945`` or ``0001945`` -> ``HP:0001945``."""
    digits = code.strip().upper().removeprefix("HP:").removeprefix("HP_")
    if len(digits) != 7 or not digits.isdigit():
        raise ResourceError(label, "code.coding.code", "not an HPO id like HP:0001945")
    return f"HP:{digits}"


def _collect(
    key: str,
    observation: Any,
    index: BundleIndex,
    *,
    encounter_days: dict[str, dt.date],
    skipped_encounters: set[str],
    rejected_encounters: AbstractSet[str],
    rows: ObservationRows,
) -> None:
    """Add the rows of one Observation to ``rows``: all of them, or none when ResourceError is raised."""
    label = index.label("Observation", key)
    loinc = codes_in([observation.code], LOINC_SYSTEM)
    vital_code = _vital_code(loinc)
    component_vitals = [
        (code, component.valueQuantity)
        for component in observation.component or []
        if (code := _vital_code(codes_in([component.code], LOINC_SYSTEM))) and component.valueQuantity
    ]
    hpo_ids = [normalize_hpo_id(c.code, label) for c in codings(observation.code) if c.system in HPO_SYSTEMS and c.code]
    is_pain = PAIN_SCORE_LOINC in loinc
    is_finding = not (vital_code or component_vitals or hpo_ids or is_pain) and observation.valueQuantity is None
    finding_ids = finding_hpo_ids([observation.code], rows.counts) if is_finding else ()
    if not (vital_code or component_vitals or hpo_ids or is_pain or finding_ids):
        return
    encounter_id = _encounter_of(observation, index, rows.patient_days)
    if encounter_id is None:
        rows.counts.observations_unlinked += 1
        return
    if encounter_id in rejected_encounters:
        rows.counts.observations_left_out += 1
        return
    if encounter_id in skipped_encounters:
        return
    if finding_ids:
        present = observed_presence(observation)
        if present is not None:
            rows.findings.extend(finding_rows([encounter_id], finding_ids, present))
        return
    vitals = [
        _vital(encounter_id, code, quantity, label)
        for code, quantity in (
            [(vital_code, observation.valueQuantity)] if vital_code and observation.valueQuantity is not None else []
        )
        + component_vitals
    ]
    symptom = None
    if hpo_ids:
        present = _present(observation, label)
        if present is not None:
            severity = _component_number(observation, SEVERITY_COMPONENT_CODES)
            duration = _duration_days(observation, encounter_days.get(encounter_id), label)
            symptom = _symptom(encounter_id, hpo_ids[0], present, severity, duration)
    # nothing below raises: the Observation's rows are added together
    rows.vitals.extend(vitals)
    score = _number(observation) if is_pain else None
    if score is not None:
        rows.pain_scores[encounter_id] = max(score, rows.pain_scores.get(encounter_id, score))
    if symptom is not None:
        rows.symptoms.append(symptom)


def _encounter_of(observation: Any, index: BundleIndex, patient_days: dict[tuple[str, dt.date], str]) -> str | None:
    """The referenced Encounter, else the patient's encounter on the Observation's day."""
    encounter_id, _ = index.resolve(observation.encounter, "Encounter")
    if encounter_id is not None:
        return encounter_id
    patient_id, _ = index.resolve(observation.subject, "Patient")
    period = observation.effectivePeriod
    day = to_day(observation.effectiveDateTime or observation.effectiveInstant or (period.start if period else None))
    day = day or to_day(observation.issued)
    return patient_days.get((patient_id, day)) if patient_id is not None and day is not None else None


def _vital_code(loinc_codes: Iterable[str]) -> str | None:
    for code in loinc_codes:
        if code == SPO2_ALT_LOINC:
            return "59408-5"
        if code in VITAL_LOINC:
            return code
    return None


def _ucum(quantity: Any) -> str | None:
    if quantity.code and quantity.system in (UCUM_SYSTEM, None):
        return str(quantity.code)
    text = str(quantity.unit or "").strip()
    return UCUM_BY_UNIT_TEXT.get(text.lower(), text) if text else None


def _vital(encounter_id: str, loinc_code: str, quantity: Any, label: str) -> dict[str, Any]:
    value = to_float(quantity.value)
    if value is None:
        raise ResourceError(label, "valueQuantity.value", f"missing for LOINC {loinc_code}")
    unit = _ucum(quantity)
    if unit == "[degF]":
        value, unit = (value - 32.0) * 5.0 / 9.0, "Cel"
    return {"encounter_id": encounter_id, "loinc_code": loinc_code, "value": value, "unit": unit}


def _symptom(
    encounter_id: str, hpo_id: str, present: bool, severity: float | None, duration: float | None
) -> dict[str, Any]:
    return {
        "encounter_id": encounter_id,
        "hpo_id": hpo_id,
        "present": present,
        "severity": severity,
        "duration_days": duration,
    }


def _number(element: Any) -> float | None:
    if getattr(element, "valueQuantity", None) is not None:
        return to_float(element.valueQuantity.value)
    return to_float(getattr(element, "valueInteger", None))


def _present(observation: Any, label: str) -> bool | None:
    """True/False from the value; None when the answer is recorded as unknown (dataAbsentReason)."""
    if observation.valueBoolean is not None:
        return bool(observation.valueBoolean)
    if observation.valueCodeableConcept is not None:
        answers = {c.code for c in codings(observation.valueCodeableConcept)}
        if answers & PRESENT_ANSWER_CODES:
            return True
        if answers & ABSENT_ANSWER_CODES:
            return False
        raise ResourceError(
            label, "valueCodeableConcept", "neither present (LOINC LA9633-4) nor absent (LOINC LA9634-2)"
        )
    if observation.dataAbsentReason is not None:
        return None
    return True


def _component(observation: Any, accepted: frozenset[tuple[str, str]]) -> Any | None:
    for component in observation.component or []:
        if any((c.system, c.code) in accepted for c in codings(component.code)):
            return component
    return None


def _component_number(observation: Any, accepted: frozenset[tuple[str, str]]) -> float | None:
    component = _component(observation, accepted)
    return _number(component) if component is not None else None


def _duration_days(observation: Any, encounter_day: dt.date | None, label: str) -> float | None:
    component = _component(observation, DURATION_COMPONENT_CODES)
    if component is not None and component.valueQuantity is not None:
        quantity = component.valueQuantity
        unit = _ucum(quantity) or "d"
        if unit not in DAYS_PER_UNIT:
            raise ResourceError(
                label, "component.valueQuantity.unit", "duration unit not one of " + ", ".join(DAYS_PER_UNIT)
            )
        value = to_float(quantity.value)
        return None if value is None else value * DAYS_PER_UNIT[unit]
    onset = to_day(observation.effectivePeriod.start) if observation.effectivePeriod else None
    if onset is None or encounter_day is None:
        return None
    return float((encounter_day - onset).days)
