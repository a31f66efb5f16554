"""FHIR R4 Patient and Encounter resources to ``patients`` and ``encounters`` rows.

Mapping choices (documented for integrators):
- mrn: the identifier typed ``MR`` (v2-0203); national_id: typed ``SS``, ``NI`` or ``NNxxx``
  (national person id of country xxx), or with system ``http://hl7.org/fhir/sid/us-ssn``.
- name/telecom/address: the ``official``/``home`` entry if any, else the first one not marked ``old``.
- birthDate: a partial date is imputed to its middle (``1980`` -> 1980-07-01, ``1980-05`` -> 1980-05-15).
- centre_id, centre_level, region: see ``centre.py``; never missing (explicit ``other`` / inferred level).
- consultation_type: an ``Encounter.type`` coding of ``<RARE_TRIAGE_FHIR_BASE>/CodeSystem/consultation-type``
  wins; else from ``class``: EMER -> emergency, IMP/ACUTE/NONAC -> inpatient, VR -> telehealth,
  AMB -> outpatient_specialist when a serviceType is set, the type is SNOMED 11429006
  (Consultation) or the centre is secondary/tertiary, otherwise primary_care. Any other class
  code is passed through unchanged for governance to quarantine.
- prior_visits_365d: the integer extension ``<RARE_TRIAGE_FHIR_BASE>/StructureDefinition/prior-visits-365d``.
- Rejected (``ResourceError``, the resource left out as a reject): an Encounter without a Patient subject, without a
  full ``period.start`` day, or with a non-integer prior-visits extension; a Patient with an unknown gender; a day
  outside the years the raw tables hold (1678-2261).
"""

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Final, Literal

from rare_triage.lib.ingest.fhir.bundle import (
    RARE_TRIAGE_FHIR_BASE,
    SNOMED_SYSTEM,
    V2_IDENTIFIER_TYPE_SYSTEM,
    BundleIndex,
    codes_in,
    codings,
    extension_value,
    to_day,
)
from rare_triage.lib.ingest.fhir.centre import encounter_centre
from rare_triage.lib.ingest.fhir.counts import ImportCounts
from rare_triage.lib.ingest.fhir.rejects import ResourceError
from rare_triage.lib.schema import CONSULTATION_TYPES

CENTRE_LEVEL_SYSTEM: Final = f"{RARE_TRIAGE_FHIR_BASE}/CodeSystem/centre-level"
CONSULTATION_TYPE_SYSTEM: Final = f"{RARE_TRIAGE_FHIR_BASE}/CodeSystem/consultation-type"
PRIOR_VISITS_EXTENSION: Final = f"{RARE_TRIAGE_FHIR_BASE}/StructureDefinition/prior-visits-365d"
NATIONAL_ID_SYSTEMS: Final = frozenset({"http://hl7.org/fhir/sid/us-ssn"})
SPECIALIST_CONSULTATION_SNOMED: Final = "11429006"
SKIPPED_ENCOUNTER_STATUSES: Final = frozenset({"cancelled", "entered-in-error"})
SUPPORTED_YEARS: Final = (1678, 2261)
SUPPORTED_DAY_RULE: Final = f"the year must be between {SUPPORTED_YEARS[0]} and {SUPPORTED_YEARS[1]}"

SEX_BY_GENDER: Final = {"male": "M", "female": "F", "other": "U", "unknown": "U"}
CONSULTATION_BY_CLASS: Final = {
    "EMER": "emergency",
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "VR": "telehealth",
}
_NATIONAL_PERSON_ID: Final = re.compile(r"^NN[A-Z]{3}$")


def patient_row(key: str, patient: Any, label: str = "Patient") -> dict[str, Any]:
    """One ``patients`` row of a Patient resource; ResourceError names it by ``label`` (never its id) and the field."""
    name = _preferred(patient.name, "official")
    address = _preferred(patient.address, "home")
    if patient.gender is not None and patient.gender not in SEX_BY_GENDER:
        raise ResourceError(label, "gender", f"not one of {', '.join(SEX_BY_GENDER)}")
    birth = birth_day(patient.birthDate)
    if birth is not None and not supported_day(birth):
        raise ResourceError(label, "birthDate", SUPPORTED_DAY_RULE)
    return {
        "patient_id": key,
        "mrn": _identifier(patient, lambda code, _system: code == "MR"),
        "national_id": _identifier(
            patient,
            lambda code, system: (
                code in {"SS", "NI"} or bool(code and _NATIONAL_PERSON_ID.match(code)) or system in NATIONAL_ID_SYSTEMS
            ),
        ),
        "given_name": (" ".join(name.given or []) or None) if name else None,
        "family_name": name.family if name else None,
        "phone": _telecom(patient, "phone"),
        "email": _telecom(patient, "email"),
        "street_address": (", ".join(address.line or []) or None) if address else None,
        "city": address.city if address else None,
        "zip_code": address.postalCode if address else None,
        "birth_date": birth,
        "sex": SEX_BY_GENDER.get(patient.gender or "unknown"),
    }


def birth_day(value: dt.date | str | None) -> dt.date | None:
    """A FHIR date, partial dates imputed to the middle of the year or month."""
    if value is None or isinstance(value, dt.date):
        return value
    parts = [int(p) for p in str(value).split("-")]
    if len(parts) == 1:
        return dt.date(parts[0], 7, 1)
    return dt.date(parts[0], parts[1], 15)


def encounter_row(
    key: str, encounter: Any, index: BundleIndex, counts: ImportCounts | None = None
) -> dict[str, Any] | None:
    """One ``encounters`` row, or None for a cancelled / entered-in-error Encounter.

    ResourceError (the Encounter is then rejected) without a Patient subject or a full ``period.start`` day.
    """
    if encounter.status in SKIPPED_ENCOUNTER_STATUSES:
        return None
    label = index.label("Encounter", key)
    patient_id, _ = index.resolve(encounter.subject, "Patient")
    if patient_id is None:
        raise ResourceError(label, "subject", "must reference a Patient")
    day = to_day(encounter.period.start if encounter.period else None)
    if day is None:
        raise ResourceError(label, "period.start", "a full date is required")
    if not supported_day(day):
        raise ResourceError(label, "period.start", SUPPORTED_DAY_RULE)
    centre = encounter_centre(encounter, index)
    if counts is not None:
        counts.add_centre(centre)
    prior_visits = _whole_number(extension_value(encounter, PRIOR_VISITS_EXTENSION))
    if prior_visits is False:
        raise ResourceError(label, "extension", "prior-visits-365d: expected a whole number")
    return {
        "encounter_id": key,
        "patient_id": patient_id,
        "encounter_date": day,
        "centre_id": centre.centre_id,
        "centre_level": centre.level,
        "region": centre.region,
        "consultation_type": consultation_type(encounter, centre.level),
        "prior_visits_365d": prior_visits,
    }


def supported_day(day: dt.date) -> bool:
    """Whether the raw tables can hold ``day`` (their dates are nanosecond timestamps: years 1678 to 2261)."""
    return SUPPORTED_YEARS[0] <= day.year <= SUPPORTED_YEARS[1]


def _whole_number(value: Any) -> int | Literal[False] | None:
    """An integer extension value (a whole decimal too), None when absent, False for anything else."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return False


def consultation_type(encounter: Any, centre_level: str | None) -> str | None:
    """The contract consultation type of an Encounter (see module docstring)."""
    explicit = [c for c in codes_in(encounter.type or [], CONSULTATION_TYPE_SYSTEM) if c in CONSULTATION_TYPES]
    if explicit:
        return explicit[0]
    class_code = encounter.class_fhir.code if encounter.class_fhir else None
    if class_code in CONSULTATION_BY_CLASS:
        return CONSULTATION_BY_CLASS[class_code]
    if class_code == "AMB":
        specialist = (
            bool(encounter.serviceType)
            or SPECIALIST_CONSULTATION_SNOMED in codes_in(encounter.type or [], SNOMED_SYSTEM)
            or centre_level in ("secondary", "tertiary")
        )
        return "outpatient_specialist" if specialist else "primary_care"
    return class_code


def _preferred(items: list[Any] | None, use: str) -> Any | None:
    current = [item for item in items or [] if getattr(item, "use", None) != "old"]
    preferred = [item for item in current if getattr(item, "use", None) == use]
    return (preferred or current or [None])[0]


def _identifier(patient: Any, matches: Any) -> str | None:
    for identifier in patient.identifier or []:
        if identifier.use == "old" or not identifier.value:
            continue
        type_codes = [c.code for c in codings(identifier.type) if c.system in (V2_IDENTIFIER_TYPE_SYSTEM, None)]
        if any(matches(code, identifier.system) for code in type_codes or [None]):
            return str(identifier.value)
    return None


def _telecom(patient: Any, system: str) -> str | None:
    points = [t for t in patient.telecom or [] if t.system == system and t.value]
    chosen = _preferred(points, "home" if system == "phone" else "work")
    return str(chosen.value) if chosen else None
