"""An HL7 FHIR R4 Bundle -> one `contract.Encounter`, as the platform's FHIR importer and governance would see it.

`encounter_from_bundle(bundle)` takes the decoded JSON of a Bundle (type collection, transaction, batch, document or
searchset) holding one Patient and at most one Encounter, and returns the `Encounter` the service encodes with a
`FhirMappingReport` of what was used and what was not. It mirrors the platform's importer
(`rare_triage/lib/ingest/fhir/`), then the row checks of its governance (`rare_triage/lib/governance/validation.py`)
and the aggregation of its features (`rare_triage/lib/features/sql/`); serving imports none of them and has no FHIR
library, so only the elements the mapping reads are checked. `rare_triage_tests/integration/
test_serving_fhir_parity.py` proves the parity on the platform's FHIR fixtures and fails when the copied constants
drift apart.

What maps (the platform's rules):
- patient_id: the Patient's `id`, else the key of its entry's fullUrl (the `patient_id` of the platform's importer,
  which an Encounter's subject resolves to); never a business identifier (MRN, national id). Only its keyed
  pseudonym is logged (`serving.pseudonym`), and it appears in no report or error.
- sex: `Patient.gender` male/female -> M/F, other/unknown/absent -> U.
- age_years: completed years from `Patient.birthDate` (a partial date is imputed to the middle of its year or month)
  to the day of `Encounter.period.start` as written (no timezone conversion). The birth date is used for nothing
  else and never appears in the report or an error.
- centre_id, centre_level, region, consultation_type, prior_visits_365d: as `patient_encounter.py` and `centre.py`
  derive them (serviceProvider / Location Organization, its declared or inferred level, `address.state`, the class
  and type of the Encounter, the prior-visits extension).
- vitals: Observations (or components, as in the 85354-9 blood-pressure panel) coded with a LOINC code of
  `VITAL_LOINC` (2708-6 read as SpO2 59408-5) with a valueQuantity; the unit is the UCUM `code`, else the `unit`
  text normalised (`UCUM_BY_UNIT_TEXT`); Fahrenheit is converted to Cel. Several readings: their mean.
- hpo_observed / hpo_excluded: Observations coded in an HPO system (`HPO_SYSTEMS`, first HPO coding): absent when
  valueBoolean is false or valueCodeableConcept is LOINC LA9634-2 / SNOMED 373067005, present when true /
  LA9633-4 / 373066001 or when there is no value; `dataAbsentReason` (unknown) gives nothing. A pain score
  (LOINC 72514-3, the highest) goes on the Pain (HP:0012531) phenotype, present when above 0, as the importer
  writes it. Findings coded in SNOMED CT, ICD-10 or UMLS map through hp.obo cross-references when the caller
  passes `hpo_xrefs` (the platform's `hpo_xref_table()`): absent when the value is No/Absent or false; so do the
  codes of active problem-list Conditions, as present history. Without `hpo_xrefs` those codes are reported in
  `codes_not_mapped`. `Observation.interpretation` is not read (nor does the platform read it).
- fever_score / pain_score / symptom_duration_days: the highest severity (SNOMED 246112005 or LOINC 72514-3
  component) on an observed fever / pain term, the longest duration (SNOMED 103335007 component in d, h, min, wk,
  mo or a, else from `effectivePeriod.start` to the encounter day) of an observed term. Which terms are fever and
  pain terms comes from the model's `phenotype` encoding when given, as the feature SQL decides it; without it only
  Fever (HP:0001945) and Pain (HP:0012531) themselves carry a score, and a severity on another term is reported.
- comorbidity_count: the distinct ICD-10 codes of the problem-list Conditions active at the encounter
  (category problem-list-item, or not linked to an encounter; clinicalStatus active, recurrence, relapse or absent;
  onset on or before the encounter day and no abatement by then, or recorded at this encounter), 0 when none.

Decisions of the service (documented differences with the platform, which imports whole extracts):
- One encounter per Bundle: a second Encounter that is not cancelled / entered in error is a `FhirInputError`
  naming both entries (no guess at which one is meant). With no Encounter, every Observation and active
  problem-list Condition of the Bundle is taken as the encounter's, dates are not compared, and age and centre stay
  missing (reported). A Bundle whose only Encounters are cancelled is an error.
- Where governance would quarantine a single row (a vital outside its plausible range, systolic below diastolic,
  a severity outside 0-10, a negative duration, a malformed ICD-10 code), the value is left out and reported in
  `notes`. Where it would quarantine the whole encounter for a field the service can do without (an Encounter
  class the importer does not map, an unusable prior-visits count), that field stays missing and is reported.
  A birth date after the encounter or an age above 120 years are errors (the platform keeps no such encounter).
- A vital in a unit that is not the vital's UCUM unit is an error (the platform quarantines the reading).
- Encounter diagnoses (the outcome the model predicts) and every resource type not listed above are ignored and
  counted. HPO ids outside the model's release pass through: the encoder ignores and reports them.
- Bundle type `document` is accepted (the platform's importer reads collection, transaction, batch, searchset).

Errors and report never hold the value of an identifier: no resource id, no name, identifier, telecom, address or
birth date. Paths name entries by position (`entry[3].resource.valueQuantity.unit`, 0-based); a code, system or
unit is quoted only when it contains none of the Bundle's personal values (Patient, RelatedPerson, Practitioner,
Person), else it shows as `WITHHELD`.
"""

import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from serving.contract import (
    CENTRE_LEVELS,
    CONSULTATION_TYPES,
    MAX_AGE_YEARS,
    MAX_COMORBIDITIES,
    MAX_HPO_TERMS,
    MAX_PRIOR_VISITS,
    MAX_TEXT_LENGTH,
    OTHER_CATEGORY,
    SEVERITY_RANGE,
    Encounter,
)
from serving.encoding.phenotype import PhenotypeEncoding

# ---- copies of the platform's importer constants (the parity test compares them) ----
ACCEPTED_BUNDLE_TYPES: Final = ("collection", "transaction", "batch", "document", "searchset")
LOINC_SYSTEM: Final = "http://loinc.org"
SNOMED_SYSTEM: Final = "http://snomed.info/sct"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
CONDITION_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
RARE_TRIAGE_FHIR_BASE: Final = "https://rare-triage.example.org/fhir"
CONSULTATION_TYPE_SYSTEM: Final = f"{RARE_TRIAGE_FHIR_BASE}/CodeSystem/consultation-type"
PRIOR_VISITS_EXTENSION: Final = f"{RARE_TRIAGE_FHIR_BASE}/StructureDefinition/prior-visits-365d"
HPO_SYSTEMS: Final = frozenset(
    {
        "http://human-phenotype-ontology.org",
        "https://human-phenotype-ontology.org",
        "http://purl.obolibrary.org/obo/hp.owl",
    }
)
UMLS_SYSTEMS: Final = frozenset({"http://www.nlm.nih.gov/research/umls", "https://www.nlm.nih.gov/research/umls"})
ICD10_SYSTEM_PREFIX: Final = "http://hl7.org/fhir/sid/icd-10"
ICD10_PATTERN: Final = r"[A-Z][0-9]{2}(?:\.[0-9A-Z]{1,4})?"
# LOINC code -> (Encounter field, UCUM unit, plausible low, plausible high): schema.VITAL_LOINC
VITAL_LOINC: Final[dict[str, tuple[str, str, float, float]]] = {
    "8310-5": ("temperature_c", "Cel", 30.0, 45.0),
    "8867-4": ("heart_rate", "/min", 20.0, 250.0),
    "9279-1": ("respiratory_rate", "/min", 4.0, 80.0),
    "59408-5": ("spo2", "%", 50.0, 100.0),
    "8480-6": ("systolic_bp", "mm[Hg]", 50.0, 260.0),
    "8462-4": ("diastolic_bp", "mm[Hg]", 20.0, 160.0),
}
SPO2_ALT_LOINC: Final = "2708-6"
PAIN_SCORE_LOINC: Final = "72514-3"
FEVER_HPO: Final = "HP:0001945"
PAIN_HPO: Final = "HP:0012531"
PRESENT_ANSWER_CODES: Final = frozenset({"LA9633-4", "373066001"})  # HPO-coded Observations
ABSENT_ANSWER_CODES: Final = frozenset({"LA9634-2", "373067005"})
FINDING_PRESENT_CODES: Final = frozenset({"LA9633-4", "373066001", "52101004"})  # cross-referenced findings
FINDING_ABSENT_CODES: Final = frozenset({"LA9634-2", "373067005", "2667000"})
SEVERITY_COMPONENT_CODES: Final = frozenset({(SNOMED_SYSTEM, "246112005"), (LOINC_SYSTEM, PAIN_SCORE_LOINC)})
DURATION_COMPONENT_CODES: Final = frozenset({(SNOMED_SYSTEM, "103335007")})
SKIPPED_OBSERVATION_STATUSES: Final = frozenset({"entered-in-error", "cancelled"})
SKIPPED_ENCOUNTER_STATUSES: Final = frozenset({"cancelled", "entered-in-error"})
SKIPPED_VERIFICATION: Final = frozenset({"entered-in-error", "refuted"})
ACTIVE_CLINICAL_STATUSES: Final = frozenset({"active", "recurrence", "relapse"})
ENCOUNTER_DIAGNOSIS: Final = "encounter-diagnosis"
PROBLEM_LIST_ITEM: Final = "problem-list-item"
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
SEX_BY_GENDER: Final = {"male": "M", "female": "F", "other": "U", "unknown": "U"}
CONSULTATION_BY_CLASS: Final = {
    "EMER": "emergency",
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "VR": "telehealth",
}
SPECIALIST_CONSULTATION_SNOMED: Final = "11429006"
HOSPITAL_CLASSES: Final = frozenset({"EMER", "IMP", "ACUTE", "NONAC", "SS", "OBSENC"})
DEPARTMENT_TYPE: Final = "dept"
WITHHELD: Final = "WITHHELD"  # shown instead of a code, system or unit that holds a personal value of the Bundle

_VITAL_NAMES: Final = {
    "temperature_c": "body temperature",
    "heart_rate": "heart rate",
    "respiratory_rate": "respiratory rate",
    "spo2": "oxygen saturation",
    "systolic_bp": "systolic blood pressure",
    "diastolic_bp": "diastolic blood pressure",
}
_MAPPED_TYPES: Final = frozenset({"Patient", "Encounter", "Observation", "Condition", "Organization", "Location"})
_PERSON_TYPES: Final = frozenset({"Patient", "RelatedPerson", "Practitioner", "Person"})
# keys whose string values (anywhere in a person resource) are personal: names, identifiers, telecom, address, dates
_PERSONAL_KEYS: Final = frozenset(
    {"id", "value", "text", "family", "given", "prefix", "suffix", "line", "city", "district", "postalCode", "state"}
)
_RESOURCE_TYPE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")
_TYPED_REFERENCE: Final = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_URN: Final = re.compile(r"^urn:(?:uuid|oid):(.+)$")
_DATE: Final = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_ICD10: Final = re.compile(ICD10_PATTERN)
_QUOTABLE: Final = re.compile(r"[\x21-\x7e°µ][\x20-\x7e°µ]{0,199}")


class FhirInputError(ValueError):
    """The Bundle cannot be read as one encounter: `field_path` (e.g. `entry[3].resource.valueQuantity.unit`)
    and `problem` say where and what, never quoting a personal value."""

    def __init__(self, field_path: str, problem: str) -> None:
        super().__init__(f"{field_path}: {problem}")
        self.field_path = field_path
        self.problem = problem

    def __reduce__(self) -> tuple[type["FhirInputError"], tuple[str, str]]:
        return type(self), (self.field_path, self.problem)


class IgnoredResource(msgspec.Struct, frozen=True, kw_only=True):
    """A Bundle entry the mapping took nothing from, and why."""

    path: str  # "entry[7].resource"
    resource_type: str
    reason: str


class UnmappedCode(msgspec.Struct, frozen=True, kw_only=True):
    """A coding read but not mapped to any Encounter field: its system and code, and why."""

    path: str  # the CodeableConcept, e.g. "entry[9].resource.code"
    system: str  # "" when the coding has none
    code: str
    reason: str


class MappingNote(msgspec.Struct, frozen=True, kw_only=True):
    """A value read and left out (or imputed, or missing) for the Encounter field it concerns."""

    path: str  # e.g. "entry[4].resource.valueQuantity.value"; "entry" for the Bundle as a whole
    field: str  # the Encounter field, e.g. "temperature_c"
    reason: str


class FhirMappingReport(msgspec.Struct, frozen=True, kw_only=True):
    """What `encounter_from_bundle` made of a Bundle (JSON-encodable; no personal value).

    resources_used / resources_ignored: entries per resource type that gave a value / gave none.
    ignored: each ignored entry of a type the mapping reads (Patient, Encounter, Observation, Condition,
        Organization, Location) with its reason; entries of other types are only counted.
    codes_not_mapped: codings of the read resources that map to nothing, with their system.
    notes: values left out as governance would, imputed or missing, per Encounter field.
    """

    resources_used: dict[str, int]
    resources_ignored: dict[str, int]
    ignored: tuple[IgnoredResource, ...] = ()
    codes_not_mapped: tuple[UnmappedCode, ...] = ()
    notes: tuple[MappingNote, ...] = ()


HpoXrefs = Mapping[tuple[str, str], Sequence[str]]


def encounter_from_bundle(
    bundle: dict[str, Any], *, phenotype: PhenotypeEncoding | None = None, hpo_xrefs: HpoXrefs | None = None
) -> tuple[Encounter, FhirMappingReport]:
    """The encounter of a FHIR R4 Bundle (see the module doc) and what was made of each entry.

    `phenotype`: the loaded model's phenotype encoding (`Encoder.phenotype`), to tell fever and pain terms apart
    and leave out the scores and durations of ids outside its release, as the platform's features do; without it
    only Fever and Pain themselves carry a score. `hpo_xrefs`: (code system, code) -> HPO ids, the code system
    SNOMEDCT, UMLS or ICD10 and the code as hp.obo writes it (the platform's `hpo_xref_table()`), to map findings
    coded in SNOMED CT, ICD-10 or UMLS; without it they are reported as not mapped.
    FhirInputError(field_path, problem) when the Bundle is not one readable encounter.
    """
    return _Mapper(bundle, phenotype, hpo_xrefs).run()


# ---- reading JSON, with the path of each value ----


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FhirInputError(path, "must be a JSON object")
    return value


def _get_object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = parent.get(key)
    return None if value is None else _object(value, f"{path}.{key}")


def _get_objects(parent: dict[str, Any], key: str, path: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, object) of each item of an array of objects (absent: none)."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FhirInputError(f"{path}.{key}", "must be a JSON array")
    return [(f"{path}.{key}[{i}]", _object(item, f"{path}.{key}[{i}]")) for i, item in enumerate(value)]


def _get_str(parent: dict[str, Any], key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise FhirInputError(f"{path}.{key}", "must be a string")
    return value


def _get_number(parent: dict[str, Any], key: str, path: str) -> float | None:
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FhirInputError(f"{path}.{key}", "must be a finite JSON number")
    return float(value)


def _get_bool(parent: dict[str, Any], key: str, path: str) -> bool | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, bool):
        raise FhirInputError(f"{path}.{key}", "must be true or false")
    return value


@dataclass(frozen=True)
class _Coding:
    system: str | None
    code: str | None


def _codings(concept: dict[str, Any] | None, path: str) -> list[_Coding]:
    """The codings of a CodeableConcept (none when absent)."""
    if concept is None:
        return []
    return [
        _Coding(_get_str(coding, "system", item), _get_str(coding, "code", item))
        for item, coding in _get_objects(concept, "coding", path)
    ]


def _concept(parent: dict[str, Any], key: str, path: str) -> list[_Coding]:
    return _codings(_get_object(parent, key, path), f"{path}.{key}")


def _concepts(parent: dict[str, Any], key: str, path: str) -> list[_Coding]:
    """The codings of an array of CodeableConcepts (category, type)."""
    return [c for item, concept in _get_objects(parent, key, path) for c in _codings(concept, item)]


def _codes(codings: list[_Coding], system: str | None = None) -> list[str]:
    return [c.code for c in codings if c.code and (system is None or c.system == system)]


def _day(parent: dict[str, Any], key: str, path: str) -> dt.date | None:
    """The calendar day of a FHIR date / dateTime / instant as written; None when absent or partial."""
    return _date_parts(parent, key, path)[0]


def _date_parts(parent: dict[str, Any], key: str, path: str) -> tuple[dt.date | None, int]:
    """(the day, or None when absent or partial; how many of year, month, day the value gives)."""
    text = _get_str(parent, key, path)
    if text is None:
        return None, 0
    match = _DATE.fullmatch(text)
    if match is None:
        raise FhirInputError(f"{path}.{key}", "not a FHIR date or dateTime (value withheld)")
    year, month, day = (int(part) if part else None for part in match.group(1, 2, 3))
    given = sum(part is not None for part in (year, month, day))
    if month is not None and not 1 <= month <= 12:
        raise FhirInputError(f"{path}.{key}", "not a calendar date (value withheld)")
    if year is None or month is None or day is None:
        return None, given
    try:
        return dt.date(year, month, day), given
    except ValueError:
        problem = "not a calendar date (value withheld)"
    raise FhirInputError(f"{path}.{key}", problem)  # outside the except clause: nothing chained


def _completed_years(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


# ---- the Bundle ----


@dataclass(frozen=True)
class _Entry:
    position: int
    kind: str  # resourceType, or a placeholder when it is not a resource type name
    resource: dict[str, Any]
    key: str | None  # id, else the key of fullUrl: for reference resolution only, never shown
    full_url: str | None

    @property
    def path(self) -> str:
        return f"entry[{self.position}].resource"


def _entries(bundle: Any) -> list[_Entry]:
    """The resources of a Bundle, its envelope checked."""
    if not isinstance(bundle, dict):
        raise FhirInputError("$", "expected a JSON object (a FHIR Bundle)")
    kind = bundle.get("resourceType")
    if kind != "Bundle":
        shown = repr(kind) if isinstance(kind, str) and _RESOURCE_TYPE.fullmatch(kind) else "another value"
        raise FhirInputError("resourceType", f"expected 'Bundle', got {shown}")
    bundle_type = _get_str(bundle, "type", "$")
    if bundle_type not in ACCEPTED_BUNDLE_TYPES:
        got = "missing" if bundle_type is None else "not"
        raise FhirInputError("type", f"{got} one of {', '.join(ACCEPTED_BUNDLE_TYPES)}")
    entries = []
    raw = bundle.get("entry")
    if raw is not None and not isinstance(raw, list):
        raise FhirInputError("entry", "must be a JSON array")
    for position, item in enumerate(raw or []):
        where = f"entry[{position}]"
        entry = _object(item, where)
        resource = _get_object(entry, "resource", where)
        if resource is None:
            continue  # e.g. a DELETE of a transaction: nothing to read
        full_url = _get_str(entry, "fullUrl", where)
        kind = _get_str(resource, "resourceType", f"{where}.resource")
        if kind is None:
            raise FhirInputError(f"{where}.resource.resourceType", "missing")
        if not _RESOURCE_TYPE.fullmatch(kind):
            kind = "<unknown resourceType>"
        resource_id = _get_str(resource, "id", f"{where}.resource")
        entries.append(_Entry(position, kind, resource, resource_id or _key_from_full_url(full_url), full_url))
    return entries


def _key_from_full_url(full_url: str | None) -> str | None:
    if not full_url:
        return None
    urn = _URN.match(full_url)
    return urn.group(1) if urn else full_url.rstrip("/").rsplit("/", 1)[-1]


class _Index:
    """Reference resolution, as the platform's BundleIndex: `Type/key` and fullUrl of the mapped resources."""

    def __init__(self, entries: list[_Entry]) -> None:
        self._by_reference: dict[str, _Entry] = {}
        for entry in entries:
            if entry.kind in _MAPPED_TYPES and entry.key:
                self._by_reference.setdefault(f"{entry.kind}/{entry.key}", entry)
                if entry.full_url:
                    self._by_reference.setdefault(entry.full_url, entry)

    def resolve(self, parent: dict[str, Any], key: str, expected: str, path: str) -> tuple[str | None, _Entry | None]:
        """(key, entry-or-None) of the Reference `parent[key]` to an `expected` resource; the entry only when it is
        in the Bundle. A reference to another type, a contained (`#`) or a logical one gives (None, None)."""
        reference = _get_object(parent, key, path)
        text = None if reference is None else _get_str(reference, "reference", f"{path}.{key}")
        if not text:
            return None, None
        entry = self._by_reference.get(text)
        if entry is not None:
            return (entry.key, entry) if entry.kind == expected else (None, None)
        typed = _TYPED_REFERENCE.search(text)
        if typed:
            return (typed.group(2), None) if typed.group(1) == expected else (None, None)
        urn = _URN.match(text)
        return (urn.group(1), None) if urn else (None, None)


class _Screen:
    """The personal values of a Bundle, to withhold any code, system or unit that contains one.

    A value is found when its words appear in a row among the words of the text (case-insensitive), or when its
    digits (six or more: a phone number, a record number, a date) appear among the digits of the text."""

    def __init__(self, entries: list[_Entry]) -> None:
        values: set[str] = set()
        for entry in entries:
            if entry.kind in _PERSON_TYPES:
                values.update(_personal_texts(entry.resource))
                if entry.full_url:
                    values.add(entry.full_url)
        self._words = {words for v in values if len(" ".join(words := _words(v))) >= 3}
        self._digits = {d for v in values if len(d := re.sub(r"\D", "", v)) >= 6}

    def shown(self, value: str | None) -> str:
        """`value` as it may be reported: "" for none, WITHHELD when it holds a personal value or is not plain."""
        if not value:
            return ""
        if not _QUOTABLE.fullmatch(value) or "@" in value or self.holds_personal(value):
            return WITHHELD
        return value

    def holds_personal(self, value: str) -> bool:
        words = _words(value)
        digits = re.sub(r"\D", "", value)
        return any(d in digits for d in self._digits) or any(
            words[i : i + len(p)] == p for p in self._words for i in range(len(words) - len(p) + 1)
        )


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[^\W_]+", text.casefold()))


def _personal_texts(node: Any, key: str = "") -> Iterator[str]:
    """String values of a person resource under the keys that hold names, identifiers, telecom, addresses, dates."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _personal_texts(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _personal_texts(value, key)
    elif isinstance(node, str) and (key in _PERSONAL_KEYS or key.startswith(("value", "birth"))):
        yield node


# ---- the mapping ----


@dataclass(frozen=True)
class _Target:
    """The encounter mapped: its key and day (None without an Encounter), its patient, the skipped Encounters."""

    entry: _Entry | None
    day: dt.date | None
    patient_key: str | None
    skipped: frozenset[str]

    @property
    def key(self) -> str | None:
        return None if self.entry is None else self.entry.key


@dataclass
class _Reading:
    field: str
    value: float
    path: str


@dataclass
class _Row:
    """A symptom row of the platform's raw `symptoms` table, for this encounter."""

    hpo_id: str
    present: bool
    severity: float | None
    duration: float | None
    path: str


@dataclass
class _Collected:
    readings: list[_Reading] = field(default_factory=list)
    symptoms: list[_Row] = field(default_factory=list)
    findings: list[_Row] = field(default_factory=list)
    pain_score: float | None = None
    pain_path: str = ""
    comorbidities: dict[str, None] = field(default_factory=dict)


@dataclass(frozen=True)
class _ObservationCodes:
    """What the importer reads an Observation as: vital readings (its own, its components'), HPO ids, pain score."""

    codings: list[_Coding]
    vitals: list[tuple[str, dict[str, Any], str]]  # (LOINC code, valueQuantity, its path)
    hpo_codings: list[_Coding]
    hpo_ids: list[str]
    is_pain: bool
    has_vital_code: bool
    has_quantity: bool

    @classmethod
    def of(cls, observation: dict[str, Any], path: str) -> "_ObservationCodes":
        codings = _concept(observation, "code", path)
        loinc = _codes(codings, LOINC_SYSTEM)
        vital_code = _vital_code(loinc)
        quantity = _get_object(observation, "valueQuantity", path)
        vitals = [] if vital_code is None or quantity is None else [(vital_code, quantity, f"{path}.valueQuantity")]
        for item, component in _get_objects(observation, "component", path):
            code = _vital_code(_codes(_concept(component, "code", item), LOINC_SYSTEM))
            component_quantity = _get_object(component, "valueQuantity", item)
            if code and component_quantity is not None:
                vitals.append((code, component_quantity, f"{item}.valueQuantity"))
        hpo_codings = [c for c in codings if c.system in HPO_SYSTEMS and c.code]
        return cls(
            codings=codings,
            vitals=vitals,
            hpo_codings=hpo_codings,
            hpo_ids=[_hpo_id(str(c.code), f"{path}.code") for c in hpo_codings],
            is_pain=PAIN_SCORE_LOINC in loinc,
            has_vital_code=vital_code is not None,
            has_quantity=quantity is not None,
        )

    @property
    def reads_something(self) -> bool:
        """A vital code (even without a value), a vital component, an HPO code or a pain score."""
        return self.has_vital_code or len(self.vitals) > 0 or bool(self.hpo_ids) or self.is_pain

    @property
    def is_finding(self) -> bool:
        """Read as a SNOMED CT / ICD-10 / UMLS finding: nothing else and no valueQuantity."""
        return not self.reads_something and not self.has_quantity


class _Mapper:
    def __init__(self, bundle: Any, phenotype: PhenotypeEncoding | None, hpo_xrefs: HpoXrefs | None) -> None:
        self.entries = _entries(bundle)
        self.screen = _Screen(self.entries)
        self.index = _Index(self.entries)
        self.phenotype = phenotype
        self.score_vocabulary = (frozenset(), frozenset()) if phenotype is None else _score_vocabulary(phenotype)
        self.hpo_xrefs = hpo_xrefs
        self.used: set[int] = set()
        self.ignored: dict[int, str] = {}
        self.codes: dict[UnmappedCode, None] = {}
        self.notes: list[MappingNote] = []

    # ---- bookkeeping ----

    def _use(self, entry: _Entry) -> None:
        self.used.add(entry.position)
        self.ignored.pop(entry.position, None)

    def _ignore(self, entry: _Entry, reason: str) -> None:
        if entry.position not in self.used:
            self.ignored.setdefault(entry.position, reason)

    def _note(self, path: str, field_name: str, reason: str) -> None:
        self.notes.append(MappingNote(path=path, field=field_name, reason=reason))

    def _code(self, path: str, coding: _Coding, reason: str) -> None:
        if coding.code:
            shown = UnmappedCode(
                path=path, system=self.screen.shown(coding.system), code=self.screen.shown(coding.code), reason=reason
            )
            self.codes[shown] = None

    def _of_type(self, kind: str) -> list[_Entry]:
        return [e for e in self.entries if e.kind == kind]

    def _report(self) -> FhirMappingReport:
        used: dict[str, int] = {}
        ignored: dict[str, int] = {}
        listed = []
        for entry in self.entries:
            counts = used if entry.position in self.used else ignored
            counts[entry.kind] = counts.get(entry.kind, 0) + 1
            if entry.position not in self.used and entry.kind in _MAPPED_TYPES:
                default = "not the centre of the Encounter" if entry.kind in ("Organization", "Location") else ""
                reason = self.ignored.get(entry.position, default or "nothing the mapping reads")
                listed.append(IgnoredResource(path=entry.path, resource_type=entry.kind, reason=reason))
        return FhirMappingReport(
            resources_used=used,
            resources_ignored=ignored,
            ignored=tuple(listed),
            codes_not_mapped=tuple(self.codes),
            notes=tuple(self.notes),
        )

    # ---- the whole Bundle ----

    def run(self) -> tuple[Encounter, FhirMappingReport]:
        for entry in self.entries:
            if entry.kind not in _MAPPED_TYPES:
                self._ignore(entry, f"resource type {entry.kind} is not read")
        patient = self._patient()
        target = self._target(patient)
        fields: dict[str, Any] = {"sex": self._sex(patient)}
        fields.update(self._patient_id(patient))
        age = self._age(patient, target)
        if age is not None:
            fields["age_years"] = float(age)
        if target.entry is not None:
            self._use(target.entry)
            fields.update(self._encounter_fields(target.entry))
        else:
            self._note("entry", "age_years", "no Encounter: the age is counted at its period.start")
            self._note("entry", "centre_id", "no Encounter: no centre or consultation type")
        collected = _Collected()
        self._observations(target, collected)
        self._conditions(target, collected)
        fields.update(self._vitals(collected.readings))
        fields.update(self._phenotype_fields(collected))
        fields["comorbidity_count"] = len(collected.comorbidities)
        if fields["comorbidity_count"] > MAX_COMORBIDITIES:
            raise FhirInputError("entry", f"more than {MAX_COMORBIDITIES} distinct comorbidity codes")
        return msgspec.convert(fields, Encounter), self._report()

    def _patient(self) -> _Entry:
        patients = self._of_type("Patient")
        if not patients:
            raise FhirInputError("entry", "no Patient: a Bundle holds the one patient of the encounter")
        if len(patients) > 1:
            raise FhirInputError(
                patients[1].path, f"a second Patient (the first is {patients[0].path}): one patient per Bundle"
            )
        self._use(patients[0])
        return patients[0]

    def _target(self, patient: _Entry) -> _Target:
        active, skipped = [], []
        for entry in self._of_type("Encounter"):
            status = _get_str(entry.resource, "status", entry.path)
            if status in SKIPPED_ENCOUNTER_STATUSES:
                skipped.append(entry)
                self._ignore(entry, f"status {status}: not held")
            else:
                active.append(entry)
        skipped_keys = frozenset(e.key for e in skipped if e.key)
        if len(active) > 1:
            raise FhirInputError(
                active[1].path,
                f"a second Encounter (the first is {active[0].path}): send one encounter per Bundle",
            )
        if not active:
            if skipped:
                raise FhirInputError(f"{skipped[0].path}.status", "cancelled or entered in error: nothing to triage")
            return _Target(None, None, patient.key, skipped_keys)
        encounter = active[0]
        subject_key, _ = self.index.resolve(encounter.resource, "subject", "Patient", encounter.path)
        if subject_key is None:
            raise FhirInputError(f"{encounter.path}.subject", "must reference the Patient")
        if subject_key != patient.key:
            raise FhirInputError(
                f"{encounter.path}.subject", f"does not reference the Bundle's Patient ({patient.path})"
            )
        period = _get_object(encounter.resource, "period", encounter.path)
        day = None if period is None else _day(period, "start", f"{encounter.path}.period")
        if day is None:
            raise FhirInputError(f"{encounter.path}.period.start", "a full date is required (value withheld)")
        return _Target(encounter, day, patient.key, skipped_keys)

    def _patient_id(self, patient: _Entry) -> dict[str, str]:
        """The platform's patient_id: the Patient's id, else the key of its fullUrl (as its importer keys it)."""
        if patient.key is None:
            return {}
        if len(patient.key) > MAX_TEXT_LENGTH:
            self._note(f"{patient.path}.id", "patient_id", f"longer than {MAX_TEXT_LENGTH} characters: not used")
            return {}
        return {"patient_id": patient.key}

    def _sex(self, patient: _Entry) -> str:
        gender = _get_str(patient.resource, "gender", patient.path)
        if gender is None:
            self._note(f"{patient.path}.gender", "sex", "missing: U, as the platform reads it")
            return "U"
        if gender not in SEX_BY_GENDER:
            raise FhirInputError(f"{patient.path}.gender", f"not one of {', '.join(SEX_BY_GENDER)}")
        return SEX_BY_GENDER[gender]

    def _age(self, patient: _Entry, target: _Target) -> int | None:
        where = f"{patient.path}.birthDate"
        birth, given = _date_parts(patient.resource, "birthDate", patient.path)
        if given == 0:
            self._note(where, "age_years", "missing: no age")
            return None
        if birth is None:  # a partial date: the middle of its year or month, as the platform imputes it
            text = str(patient.resource["birthDate"])
            year = int(text[:4])
            birth = dt.date(year, 7, 1) if given == 1 else dt.date(year, int(text[5:7]), 15)
            self._note(where, "age_years", "partial date: imputed to the middle of its year or month")
        if target.day is None:
            return None
        if birth > target.day:
            raise FhirInputError(where, "after the Encounter's period.start (values withheld)")
        age = _completed_years(birth, target.day)
        if age > MAX_AGE_YEARS:
            raise FhirInputError(where, f"more than {MAX_AGE_YEARS} years before the encounter (value withheld)")
        return age

    # ---- Encounter: centre, consultation type, prior visits ----

    def _encounter_fields(self, entry: _Entry) -> dict[str, Any]:
        encounter, path = entry.resource, entry.path
        class_coding = _get_object(encounter, "class", path)
        class_code = None if class_coding is None else _get_str(class_coding, "code", f"{path}.class")
        centre_id, organizations, location = self._centre(encounter, path)
        level = next((lv for org in organizations if (lv := _declared_level(org.resource, org.path))), None)
        if level is None:
            level = _inferred_level(organizations, class_code)
        region = next((r for e in (*organizations, location) if e is not None and (r := _state(e))), None)
        centre_id = (centre_id or "").strip()
        region = (region or "").strip()
        fields: dict[str, Any] = {  # as the importer fills them: never missing, `other` when unknown
            "centre_id": centre_id if 0 < len(centre_id) <= MAX_TEXT_LENGTH else OTHER_CATEGORY,
            "centre_level": level,
            "region": region if 0 < len(region) <= MAX_TEXT_LENGTH else OTHER_CATEGORY,
        }
        consultation = _consultation_type(encounter, path, class_code, level)
        if consultation in CONSULTATION_TYPES:
            fields["consultation_type"] = consultation
        else:
            self._note(
                f"{path}.class",
                "consultation_type",
                "an Encounter class the platform does not map (it quarantines such an encounter): left missing",
            )
        visits = self._prior_visits(encounter, path)
        if visits is not None:
            fields["prior_visits_365d"] = visits
        return fields

    def _centre(self, encounter: dict[str, Any], path: str) -> tuple[str | None, list[_Entry], _Entry | None]:
        """(centre id, its Organization and that one's parent when in the Bundle, the Location giving the region)."""
        centre_id, organization, location = self._centre_source(encounter, path)
        organizations = [] if organization is None else [organization]
        if organization is not None:
            _, parent = self.index.resolve(organization.resource, "partOf", "Organization", organization.path)
            if parent is not None:
                organizations.append(parent)
        for used in (*organizations, location):
            if used is not None:
                self._use(used)
        return centre_id, organizations, location

    def _centre_source(self, encounter: dict[str, Any], path: str) -> tuple[str | None, _Entry | None, _Entry | None]:
        """The serviceProvider, else the managingOrganization of the first Location, else that Location's id."""
        organization_id, organization = self.index.resolve(encounter, "serviceProvider", "Organization", path)
        first_location = None
        for item, location_entry in _get_objects(encounter, "location", path):
            location_id, location = self.index.resolve(location_entry, "location", "Location", item)
            first_location = first_location or location
            if organization_id is not None:
                continue
            if location is not None:
                managing_id, managing = self.index.resolve(
                    location.resource, "managingOrganization", "Organization", location.path
                )
                if managing_id is not None:
                    return managing_id, managing, location
            if location_id is not None:
                return location_id, None, location
        return organization_id, organization, first_location

    def _prior_visits(self, encounter: dict[str, Any], path: str) -> int | None:
        for item, extension in _get_objects(encounter, "extension", path):
            if extension.get("url") != PRIOR_VISITS_EXTENSION:
                continue
            for name in ("valueInteger", "valueUnsignedInt", "valueDecimal", "valueString", "valueCode"):
                value = extension.get(name)
                if value is None:
                    continue
                if isinstance(value, str) and value.strip().isdigit():
                    value = int(value.strip())
                is_count = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
                if is_count and 0 <= value <= MAX_PRIOR_VISITS:
                    return int(value)
                self._note(f"{item}.{name}", "prior_visits_365d", "not a visit count: left missing")
                return None
        return None

    # ---- Observations ----

    def _observations(self, target: _Target, out: _Collected) -> None:
        for entry in self._of_type("Observation"):
            status = _get_str(entry.resource, "status", entry.path)
            if status in SKIPPED_OBSERVATION_STATUSES:
                self._ignore(entry, f"status {status}")
            else:
                self._observation(entry, target, out)

    def _observation(self, entry: _Entry, target: _Target, out: _Collected) -> None:
        observation, path = entry.resource, entry.path
        coded = _ObservationCodes.of(observation, path)
        finding_ids = self._finding_ids(coded.codings)[0] if coded.is_finding else ()
        if not (coded.reads_something or finding_ids):
            self._unmapped_observation(entry, coded.codings, coded.is_finding)
            return
        elsewhere = self._elsewhere(observation, path, target)
        if elsewhere:
            self._ignore(entry, elsewhere)
            return
        if finding_ids:
            present = _finding_presence(observation, path)
            if present is None:
                self._ignore(entry, "finding recorded as unknown (dataAbsentReason)")
            else:
                out.findings.extend(_Row(h, present, None, None, path) for h in finding_ids)
                self._use(entry)
            return
        taken = bool(coded.vitals)
        out.readings.extend(_vital(code, quantity, where, self.screen) for code, quantity, where in coded.vitals)
        if coded.is_pain:
            score = _number(observation, path)
            if score is not None and (out.pain_score is None or score > out.pain_score):
                out.pain_score, out.pain_path = score, path
            taken = taken or score is not None
        if coded.hpo_ids:
            taken = self._hpo_observation(entry, coded.hpo_ids, target, out) or taken
            for extra in coded.hpo_codings[1:]:
                self._code(f"{path}.code", extra, "only the first HPO coding of an Observation is read")
        if taken:
            self._use(entry)
        else:
            self._ignore(entry, "a vital sign or score without a value")

    def _hpo_observation(self, entry: _Entry, hpo_ids: list[str], target: _Target, out: _Collected) -> bool:
        observation, path = entry.resource, entry.path
        present = _hpo_presence(observation, path)
        if present is None:
            self._note(path, "hpo_observed", "phenotype recorded as unknown (dataAbsentReason): not used")
            return False
        severity = _component_number(observation, path, SEVERITY_COMPONENT_CODES)
        duration = _duration_days(observation, path, target.day)
        out.symptoms.append(_Row(hpo_ids[0], present, severity, duration, path))
        return True

    def _elsewhere(self, resource: dict[str, Any], path: str, target: _Target) -> str:
        """Why an Observation is not this encounter's ("" when it is), as the importer links it."""
        encounter_key, _ = self.index.resolve(resource, "encounter", "Encounter", path)
        if target.entry is None:
            return ""
        if encounter_key is not None:
            if encounter_key == target.key:
                return ""
            if encounter_key in target.skipped:
                return "its Encounter is cancelled or entered in error"
            return "belongs to another Encounter"
        patient_key, _ = self.index.resolve(resource, "subject", "Patient", path)
        period = _get_object(resource, "effectivePeriod", path)
        if resource.get("effectiveDateTime") is not None:
            day = _day(resource, "effectiveDateTime", path)
        elif resource.get("effectiveInstant") is not None:
            day = _day(resource, "effectiveInstant", path)
        else:
            day = None if period is None else _day(period, "start", f"{path}.effectivePeriod")
        day = day or _day(resource, "issued", path)
        if patient_key is not None and patient_key == target.patient_key and day is not None and day == target.day:
            return ""
        return "no Encounter reference, and not the patient's on the encounter's day"

    def _finding_ids(self, codings: list[_Coding]) -> tuple[tuple[str, ...], list[tuple[_Coding, str]]]:
        """(HPO ids cross-referenced by the SNOMED CT / ICD-10 / UMLS codings, those codings mapping to none with
        why); no id without `hpo_xrefs`."""
        found: set[str] = set()
        unmapped = []
        for coding in codings:
            key = _xref_key(coding)
            if key is None:
                continue
            if self.hpo_xrefs is None:
                unmapped.append((coding, "no HPO cross-reference table given to the mapping"))
                continue
            hpo_ids = self.hpo_xrefs.get(key, ())
            found.update(hpo_ids)
            if not hpo_ids:
                unmapped.append((coding, "no HPO cross-reference"))
        return tuple(sorted(found)), unmapped

    def _unmapped_observation(self, entry: _Entry, codings: list[_Coding], is_finding: bool) -> None:
        path = f"{entry.path}.code"
        unmapped = dict(self._finding_ids(codings)[1]) if is_finding else {}
        for coding in codings:
            if coding in unmapped:
                self._code(path, coding, unmapped[coding])
            elif coding.system == LOINC_SYSTEM:
                self._code(path, coding, "not a vital sign, pain score or finding the platform reads")
            elif _xref_key(coding) is not None:
                self._code(path, coding, "a finding code on an Observation with a valueQuantity")
            else:
                self._code(path, coding, "code system not read")
        self._ignore(entry, "no code the mapping reads")

    # ---- Conditions ----

    def _conditions(self, target: _Target, out: _Collected) -> None:
        listed: dict[str, str] = {}  # Condition key -> the Encounter listing it in Encounter.diagnosis
        for encounter in self._of_type("Encounter"):
            for item, diagnosis in _get_objects(encounter.resource, "diagnosis", encounter.path):
                condition_key, _ = self.index.resolve(diagnosis, "condition", "Condition", item)
                if condition_key is not None and encounter.key is not None:
                    listed[condition_key] = encounter.key
        for entry in self._of_type("Condition"):
            self._condition(entry, target, listed, out)

    def _condition(self, entry: _Entry, target: _Target, listed: dict[str, str], out: _Collected) -> None:
        condition, path = entry.resource, entry.path
        if SKIPPED_VERIFICATION & set(_codes(_concept(condition, "verificationStatus", path))):
            self._ignore(entry, "verificationStatus refuted or entered-in-error")
            return
        category_codings = _concepts(condition, "category", path)
        categories = set(_codes(category_codings, CONDITION_CATEGORY_SYSTEM)) or set(_codes(category_codings))
        recorded_at, _ = self.index.resolve(condition, "encounter", "Encounter", path)
        listed_at = listed.get(entry.key) if entry.key is not None else None
        linked = recorded_at is not None or listed_at is not None
        diagnosed_at = None
        if linked and (ENCOUNTER_DIAGNOSIS in categories or not categories):
            at = listed_at if listed_at is not None and recorded_at in (None, listed_at) else recorded_at
            diagnosed_at = None if at in target.skipped else at
        if linked and PROBLEM_LIST_ITEM not in categories:
            diagnosis = "an encounter diagnosis: the outcome the model predicts, never an input"
            self._ignore(entry, diagnosis if diagnosed_at is not None else "linked to an encounter, not a problem")
            return
        why_not = self._why_not_attached(condition, path, target, recorded_at)
        if why_not:
            self._ignore(entry, why_not)
        elif self._problem(entry, diagnosed_at, target, out):
            self._use(entry)
        else:
            self._ignore(entry, "a problem-list Condition without a valid ICD-10 code or a cross-referenced phenotype")

    def _problem(self, entry: _Entry, diagnosed_at: str | None, target: _Target, out: _Collected) -> bool:
        """Add the comorbidity codes and history phenotypes of a problem active at the encounter; whether any."""
        path = f"{entry.path}.code"
        codings = _concept(entry.resource, "code", entry.path)
        taken = False
        icd10 = [c for c in codings if c.code and (c.system or "").startswith(ICD10_SYSTEM_PREFIX)]
        for code in dict.fromkeys(str(c.code).strip().upper() for c in icd10):
            if _ICD10.fullmatch(code):
                out.comorbidities[code] = None
                taken = True
            else:
                self._note(path, "comorbidity_count", "not an ICD-10 code: the platform quarantines it")
        unmapped: list[tuple[_Coding, str]] = []
        # a problem is history of the encounters it is attached to, never of the one it is the diagnosis of
        if diagnosed_at is None or diagnosed_at != target.key:
            hpo_ids, unmapped = self._finding_ids(codings)
            out.findings.extend(_Row(h, True, None, None, entry.path) for h in hpo_ids)
            taken = taken or bool(hpo_ids)
        if not taken:
            reasons = dict(unmapped)
            for coding in codings:
                reason = reasons.get(coding, "not ICD-10: a comorbidity is counted by its ICD-10 code")
                self._code(path, coding, reason)
        return taken

    def _why_not_attached(self, condition: dict[str, Any], path: str, target: _Target, recorded_at: str | None) -> str:
        """Why a problem-list Condition is not active at the encounter ("" when it is), as the importer decides."""
        statuses = set(_codes(_concept(condition, "clinicalStatus", path)))
        if statuses and not statuses & ACTIVE_CLINICAL_STATUSES:
            return "clinicalStatus not active"
        if recorded_at is not None and recorded_at == target.key:
            return ""
        patient_key, _ = self.index.resolve(condition, "subject", "Patient", path)
        if patient_key is None or patient_key != target.patient_key:
            return "not the Patient's"
        if target.day is None:
            return ""
        onset, abatement = _problem_dates(condition, path)
        if (onset is not None and target.day < onset) or (abatement is not None and target.day >= abatement):
            return "not active on the encounter's day (onset after it, or abated by then)"
        return ""

    # ---- Encounter fields from the collected rows ----

    def _vitals(self, readings: list[_Reading]) -> dict[str, float]:
        """Mean of each vital over its readings, without those governance quarantines."""
        plausible = []
        for reading in readings:
            _name, unit, low, high = next(spec for spec in VITAL_LOINC.values() if spec[0] == reading.field)
            if low <= reading.value <= high:
                plausible.append(reading)
            else:
                self._note(
                    f"{reading.path}.value",
                    reading.field,
                    f"outside the plausible range {low:g}-{high:g} {unit}: the platform quarantines the reading",
                )
        systolic = [r for r in plausible if r.field == "systolic_bp"]
        diastolic = [r for r in plausible if r.field == "diastolic_bp"]
        crossed = {id(r) for s in systolic for d in diastolic if s.value < d.value for r in (s, d)}
        values: dict[str, list[float]] = {}
        for reading in plausible:
            if id(reading) in crossed:
                self._note(
                    f"{reading.path}.value",
                    reading.field,
                    "systolic below diastolic in the same encounter: the platform quarantines both readings",
                )
            else:
                values.setdefault(reading.field, []).append(reading.value)
        return {name: math.fsum(vs) / len(vs) for name, vs in values.items()}

    def _phenotype_fields(self, out: _Collected) -> dict[str, Any]:
        rows = self._governed_rows(
            _merge_findings(_merge_pain_score(out.symptoms, out.pain_score, out.pain_path), out.findings)
        )
        observed = list(dict.fromkeys(r.hpo_id for r in rows if r.present))
        excluded = list(dict.fromkeys(r.hpo_id for r in rows if not r.present))
        for name, ids in (("hpo_observed", observed), ("hpo_excluded", excluded)):
            if len(ids) > MAX_HPO_TERMS:
                raise FhirInputError("entry", f"{len(ids)} distinct {name} terms: more than {MAX_HPO_TERMS}")
        return {"hpo_observed": observed, "hpo_excluded": excluded, **self._scores(rows)}

    def _governed_rows(self, rows: list[_Row]) -> list[_Row]:
        """The symptom rows governance lets through (severity in range, duration not negative)."""
        low, high = SEVERITY_RANGE
        kept = []
        for row in rows:
            if row.severity is not None and not low <= row.severity <= high:
                self._note(row.path, "hpo_observed", f"severity outside {low:g}-{high:g}: the platform quarantines it")
            elif row.duration is not None and row.duration < 0:
                self._note(row.path, "symptom_duration_days", "negative duration: the platform quarantines it")
            else:
                kept.append(row)
        return kept

    def _scores(self, rows: list[_Row]) -> dict[str, float]:
        """fever_score, pain_score and symptom_duration_days over the observed rows, as the feature SQL takes them."""
        fever, pain, durations = [], [], []
        for row in rows:
            if not row.present or (self.phenotype is not None and row.hpo_id not in self.phenotype.terms):
                continue  # absent, or outside the release (governance quarantines the row)
            if row.duration is not None:
                durations.append(row.duration)
            if row.severity is None:
                continue
            is_fever, is_pain = _score_kinds(row.hpo_id, self.phenotype, self.score_vocabulary)
            if is_fever:
                fever.append(row.severity)
            if is_pain:
                pain.append(row.severity)
            if not (is_fever or is_pain):
                self._note(
                    row.path,
                    "pain_score",
                    "a severity on a term that is neither a fever nor a pain term: the platform reads none"
                    if self.phenotype is not None
                    else "a severity on a term other than Fever or Pain: read only with the model's phenotype encoding",
                )
        scores = {"fever_score": fever, "pain_score": pain, "symptom_duration_days": durations}
        return {name: max(values) for name, values in scores.items() if values}


# ---- the importer's rules, one resource at a time ----


def _vital_code(loinc_codes: list[str]) -> str | None:
    for code in loinc_codes:
        if code == SPO2_ALT_LOINC:
            return "59408-5"
        if code in VITAL_LOINC:
            return code
    return None


def _hpo_id(code: str, path: str) -> str:
    """`HP:0001945`, `HP_0001945` or `0001945` -> `HP:0001945`."""
    digits = code.strip().upper().removeprefix("HP:").removeprefix("HP_")
    if len(digits) != 7 or not digits.isdigit():
        raise FhirInputError(f"{path}.coding", "an HPO coding whose code is not an HPO id like HP:0001945")
    return f"HP:{digits}"


def _xref_key(coding: _Coding) -> tuple[str, str] | None:
    """(SNOMEDCT | UMLS | ICD10, code as hp.obo writes it) of a coding, None for another system."""
    if not coding.system or not coding.code:
        return None
    system = coding.system.rstrip("/")
    text = coding.code.strip()
    if system == SNOMED_SYSTEM:
        return "SNOMEDCT", text
    if system in UMLS_SYSTEMS:
        return "UMLS", text.upper()
    if coding.system.startswith(ICD10_SYSTEM_PREFIX):
        return "ICD10", text.upper()
    return None


def _ucum(quantity: dict[str, Any], path: str) -> tuple[str | None, str, str]:
    """(UCUM unit, the path of the element it came from, that element's text) of a Quantity."""
    code = _get_str(quantity, "code", path)
    system = _get_str(quantity, "system", path)
    if code and system in (UCUM_SYSTEM, None):
        return code, f"{path}.code", code
    text = (_get_str(quantity, "unit", path) or "").strip()
    return (UCUM_BY_UNIT_TEXT.get(text.lower(), text) if text else None), f"{path}.unit", text


def _vital(loinc_code: str, quantity: dict[str, Any], path: str, screen: _Screen) -> _Reading:
    name, expected, _low, _high = VITAL_LOINC[loinc_code]
    value = _get_number(quantity, "value", path)
    if value is None:
        raise FhirInputError(f"{path}.value", f"missing for LOINC {loinc_code}")
    unit, unit_path, sent = _ucum(quantity, path)
    if unit == "[degF]":
        value, unit = (value - 32.0) * 5.0 / 9.0, "Cel"
    if unit != expected:
        accepted = f"{expected!r} or '[degF]'" if expected == "Cel" else repr(expected)
        shown = "no unit" if unit is None else repr(screen.shown(sent))
        raise FhirInputError(unit_path, f"{shown} is not a unit of {_VITAL_NAMES[name]} (expected {accepted})")
    return _Reading(name, value, path)


def _number(element: dict[str, Any], path: str) -> float | None:
    """valueQuantity.value, else valueInteger."""
    quantity = _get_object(element, "valueQuantity", path)
    if quantity is not None:
        return _get_number(quantity, "value", f"{path}.valueQuantity")
    return _get_number(element, "valueInteger", path)


def _component(
    observation: dict[str, Any], path: str, accepted: frozenset[tuple[str, str]]
) -> tuple[str, dict[str, Any]] | None:
    for item, component in _get_objects(observation, "component", path):
        if any((c.system, c.code) in accepted for c in _concept(component, "code", item)):
            return item, component
    return None


def _component_number(observation: dict[str, Any], path: str, accepted: frozenset[tuple[str, str]]) -> float | None:
    found = _component(observation, path, accepted)
    return None if found is None else _number(found[1], found[0])


def _duration_days(observation: dict[str, Any], path: str, encounter_day: dt.date | None) -> float | None:
    found = _component(observation, path, DURATION_COMPONENT_CODES)
    quantity = None if found is None else _get_object(found[1], "valueQuantity", found[0])
    if found is not None and quantity is not None:
        where = f"{found[0]}.valueQuantity"
        unit, unit_path, _sent = _ucum(quantity, where)
        unit = unit or "d"
        if unit not in DAYS_PER_UNIT:
            raise FhirInputError(unit_path, "duration unit not one of " + ", ".join(DAYS_PER_UNIT))
        value = _get_number(quantity, "value", where)
        return None if value is None else value * DAYS_PER_UNIT[unit]
    period = _get_object(observation, "effectivePeriod", path)
    onset = None if period is None else _day(period, "start", f"{path}.effectivePeriod")
    if onset is None or encounter_day is None:
        return None
    return float((encounter_day - onset).days)


def _hpo_presence(observation: dict[str, Any], path: str) -> bool | None:
    """An HPO-coded Observation: True / False from its value, None when recorded as unknown."""
    value = _get_bool(observation, "valueBoolean", path)
    if value is not None:
        return value
    concept = _get_object(observation, "valueCodeableConcept", path)
    if concept is not None:
        answers = set(_codes(_codings(concept, f"{path}.valueCodeableConcept")))
        if answers & PRESENT_ANSWER_CODES:
            return True
        if answers & ABSENT_ANSWER_CODES:
            return False
        raise FhirInputError(
            f"{path}.valueCodeableConcept", "neither present (LOINC LA9633-4) nor absent (LOINC LA9634-2)"
        )
    if observation.get("dataAbsentReason") is not None:
        return None
    return True


def _finding_presence(observation: dict[str, Any], path: str) -> bool | None:
    """A cross-referenced finding: present unless its value says absent / false; None when recorded as unknown."""
    value = _get_bool(observation, "valueBoolean", path)
    if value is not None:
        return value
    answers = set(_codes(_concept(observation, "valueCodeableConcept", path)))
    if answers & FINDING_ABSENT_CODES and not answers & FINDING_PRESENT_CODES:
        return False
    if observation.get("dataAbsentReason") is not None:
        return None
    return True


def _merge_pain_score(symptoms: list[_Row], score: float | None, path: str) -> list[_Row]:
    """The pain score on the Pain rows without a severity, else on a Pain row of its own (present when above 0)."""
    rows = [_Row(r.hpo_id, r.present, r.severity, r.duration, r.path) for r in symptoms]
    if score is None:
        return rows
    pain_rows = [r for r in rows if r.hpo_id == PAIN_HPO]
    for row in pain_rows:
        if row.severity is None:
            row.severity = score
    if not pain_rows:
        rows.append(_Row(PAIN_HPO, score > 0, score, None, path))
    return rows


def _merge_findings(symptoms: list[_Row], findings: list[_Row]) -> list[_Row]:
    """Symptom rows plus the finding rows of another HPO id (among findings, present wins over absent)."""
    merged = list(symptoms)
    seen = {row.hpo_id: i for i, row in enumerate(merged)}
    for row in findings:
        at = seen.get(row.hpo_id)
        if at is None:
            seen[row.hpo_id] = len(merged)
            merged.append(row)
        elif row.present and not merged[at].present and at >= len(symptoms):
            merged[at] = row
    return merged


def _score_vocabulary(encoding: PhenotypeEncoding) -> tuple[frozenset[int], frozenset[int]]:
    """Indices of the vocabulary terms under Fever, and under Pain (the feature SQL's score roots)."""
    under = [
        frozenset(i for i, v in enumerate(encoding.vocabulary_ids) if root in encoding.vocabulary_ancestors[v])
        for root in (FEVER_HPO, PAIN_HPO)
    ]
    return under[0], under[1]


def _score_kinds(
    hpo_id: str, encoding: PhenotypeEncoding | None, vocabulary: tuple[frozenset[int], frozenset[int]]
) -> tuple[bool, bool]:
    """(is a fever term, is a pain term): the root, a listed term, or a term rolling up to a vocabulary term under
    the root (`vocabulary`, see _score_vocabulary), as the feature SQL decides; without an encoding, the roots."""
    if encoding is None:
        return hpo_id == FEVER_HPO, hpo_id == PAIN_HPO
    fever_vocabulary, pain_vocabulary = vocabulary
    info = encoding.terms.get(hpo_id)
    rolls_up = () if info is None else info[1]
    return (
        hpo_id == FEVER_HPO or hpo_id in encoding.fever_terms or any(i in fever_vocabulary for i in rolls_up),
        hpo_id == PAIN_HPO or hpo_id in encoding.pain_terms or any(i in pain_vocabulary for i in rolls_up),
    )


def _problem_dates(condition: dict[str, Any], path: str) -> tuple[dt.date | None, dt.date | None]:
    """(onset: onsetDateTime, else onsetPeriod.start, else recordedDate; abatement: abatementDateTime, else
    abatementPeriod.start), each None when unknown or partial."""
    onset_period = _get_object(condition, "onsetPeriod", path)
    if condition.get("onsetDateTime") is not None:
        onset = _day(condition, "onsetDateTime", path)
    elif onset_period is not None and onset_period.get("start") is not None:
        onset = _day(onset_period, "start", f"{path}.onsetPeriod")
    else:
        onset = _day(condition, "recordedDate", path)
    abatement_period = _get_object(condition, "abatementPeriod", path)
    if condition.get("abatementDateTime") is not None:
        abatement = _day(condition, "abatementDateTime", path)
    else:
        abatement = None if abatement_period is None else _day(abatement_period, "start", f"{path}.abatementPeriod")
    return onset, abatement


def _declared_level(organization: dict[str, Any], path: str) -> str | None:
    """primary/secondary/tertiary when an `Organization.type` coding or text says so."""
    for item, concept in _get_objects(organization, "type", path):
        for coding in _codings(concept, item):
            if coding.code and coding.code.lower() in CENTRE_LEVELS:
                return coding.code.lower()
        text = _get_str(concept, "text", item)
        if text and text.strip().lower() in CENTRE_LEVELS:
            return text.strip().lower()
    return None


def _inferred_level(organizations: list[_Entry], class_code: str | None) -> str:
    """secondary for a hospital department or hospital care, else primary."""
    types = {c for o in organizations for c in _codes(_concepts(o.resource, "type", o.path))}
    return "secondary" if DEPARTMENT_TYPE in types or class_code in HOSPITAL_CLASSES else "primary"


def _state(entry: _Entry) -> str | None:
    address = entry.resource.get("address")
    addresses = address if isinstance(address, list) else [address]
    for position, item in enumerate(addresses):
        if item is None:
            continue
        where = f"{entry.path}.address" + (f"[{position}]" if isinstance(address, list) else "")
        state = _get_str(_object(item, where), "state", where)
        if state:
            return state
    return None


def _consultation_type(encounter: dict[str, Any], path: str, class_code: str | None, level: str | None) -> str | None:
    """The contract consultation type of an Encounter, or its class code when the importer maps none."""
    types = _concepts(encounter, "type", path)
    explicit = [c for c in _codes(types, CONSULTATION_TYPE_SYSTEM) if c in CONSULTATION_TYPES]
    if explicit:
        return explicit[0]
    if class_code in CONSULTATION_BY_CLASS:
        return CONSULTATION_BY_CLASS[class_code]
    if class_code == "AMB":
        specialist = (
            _get_object(encounter, "serviceType", path) is not None
            or SPECIALIST_CONSULTATION_SNOMED in _codes(types, SNOMED_SYSTEM)
            or level in ("secondary", "tertiary")
        )
        return "outpatient_specialist" if specialist else "primary_care"
    return class_code
