"""Validated view of one FHIR R4 Bundle: resources parsed with ``fhir.resources.R4B`` and references resolved.

Only the resource types the raw tables are built from are validated; any other type is
ignored. A validation error becomes a ValueError naming the resource and the field.
"""

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

ACCEPTED_BUNDLE_TYPES: Final = ("collection", "transaction", "batch", "searchset")
MAPPED_RESOURCE_TYPES: Final = ("Patient", "Encounter", "Observation", "Condition", "Organization", "Location")

LOINC_SYSTEM: Final = "http://loinc.org"
SNOMED_SYSTEM: Final = "http://snomed.info/sct"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
V2_IDENTIFIER_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
CONDITION_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
# Canonical base of the few rare-triage code systems and extensions a source may use.
RARE_TRIAGE_FHIR_BASE: Final = "https://rare-triage.example.org/fhir"

_TYPED_REFERENCE: Final = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_URN: Final = re.compile(r"^urn:(?:uuid|oid):(.+)$")
_RESOURCE_TYPE: Final = re.compile(r"[A-Z][A-Za-z]{1,63}")
BUNDLE_TYPES: Final = (
    "document",
    "message",
    "transaction",
    "transaction-response",
    "batch",
    "batch-response",
    "history",
    "searchset",
    "collection",
)


def resource_label(resource: dict[str, Any] | FHIRAbstractModel, where: str = "") -> str:
    """``Observation (entry 3)``: how errors name a resource; never its id, which may be a patient's source key."""
    if isinstance(resource, FHIRAbstractModel):
        kind = resource.get_resource_type()
    else:
        kind = known_resource_type(resource.get("resourceType"))
    return f"{kind} ({where})" if where else kind


def known_resource_type(value: object) -> str:
    """``value`` when it names a FHIR R4 resource type, else a placeholder (it may be any text of the source)."""
    if isinstance(value, str) and _RESOURCE_TYPE.fullmatch(value):
        try:
            get_fhir_model_class(value)
        except (KeyError, ValueError, LookupError):
            return "<unknown resourceType>"
        return value
    return "<no resourceType>" if value is None else "<unknown resourceType>"


def validation_message(label: str, error: ValidationError) -> str:
    """One line per pydantic error, ``invalid FHIR Observation (entry 3): field status: ...``, quoting no input."""
    problems = []
    for item in error.errors():
        parts = [str(part) for part in item["loc"]]
        if item["type"] == "extra_forbidden" and parts:
            parts[-1] = "<unknown element>"  # the key is source text
        location = ".".join(parts) or "<resource>"
        problems.append(f"field {location}: {_message_without_input(item)}")
    return f"invalid FHIR {label}: " + "; ".join(problems)


def validate_resource(resource: dict[str, Any], label: str = "") -> FHIRAbstractModel:
    """Parse one R4 resource dict with its R4B model; ValueError names the resource and field, not the value."""
    label = label or resource_label(resource)
    model = get_fhir_model_class(str(resource["resourceType"]))
    try:
        return model.model_validate(resource)
    except ValidationError as error:
        problem = validation_message(label, error)
    raise ValueError(problem)  # outside the except clause: the ValidationError (quoting the input) is not chained


def _message_without_input(item: Any) -> str:
    """pydantic's message, or its error type when the message repeats any text of the offending input."""
    message = str(item["msg"])
    if any(len(text) >= 3 and text in message for text in _texts(item.get("input"))):
        return str(item["type"]).replace("_", " ")
    return message


def _texts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (str(k), *_texts(v))]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    return [] if value is None else [str(value)]


@dataclass
class BundleIndex:
    """The mapped resources of a Bundle, each with its key, plus reference resolution."""

    entries: list[tuple[str, FHIRAbstractModel]] = field(default_factory=list)
    _by_reference: dict[str, tuple[str, FHIRAbstractModel]] = field(default_factory=dict)
    _places: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, key: str, full_url: str | None, resource: FHIRAbstractModel, place: str = "") -> None:
        self.entries.append((key, resource))
        self._places.setdefault((resource.get_resource_type(), key), place)
        self._by_reference[f"{resource.get_resource_type()}/{key}"] = (key, resource)
        if full_url:
            self._by_reference[full_url] = (key, resource)

    def label(self, resource_type: str, key: str) -> str:
        """``Encounter (entry 2)``: a resource of the Bundle named by its place, never by its id."""
        place = self._places.get((resource_type, key))
        return f"{resource_type} ({place})" if place else resource_type

    def of_type(self, resource_type: str) -> Iterator[tuple[str, Any]]:
        """(key, resource) pairs of one resource type, in Bundle order."""
        return ((k, r) for k, r in self.entries if r.get_resource_type() == resource_type)

    def resolve(self, reference: Any, expected_type: str) -> tuple[str | None, Any | None]:
        """(key, resource-or-None) of a Reference to ``expected_type``; the resource only if it is in the Bundle.

        A reference to a resource outside the Bundle still yields its id; one to another type
        yields (None, None).
        """
        text = getattr(reference, "reference", None) if reference is not None else None
        if not text:
            return None, None
        if text in self._by_reference:
            key, resource = self._by_reference[text]
            return (key, resource) if resource.get_resource_type() == expected_type else (None, None)
        typed = _TYPED_REFERENCE.search(text)
        if typed:
            return (typed.group(2), None) if typed.group(1) == expected_type else (None, None)
        urn = _URN.match(text)
        return (urn.group(1), None) if urn else (None, None)


def index_bundle(bundle: dict[str, Any], entry_lines: list[int] | None = None) -> BundleIndex:
    """Validate the Bundle envelope and its mapped resources; ValueError names the first invalid one by its place.

    ``entry_lines`` gives the file line of each entry (NDJSON of bare resources); otherwise entries are numbered.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        found = known_resource_type(bundle.get("resourceType")) if isinstance(bundle, dict) else type(bundle).__name__
        raise ValueError(f"expected a FHIR Bundle, got {found}")
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise ValueError("invalid FHIR Bundle: field entry: must be a list")
    envelope = dict(bundle)
    envelope["entry"] = [
        {k: v for k, v in entry.items() if k != "resource"} if isinstance(entry, dict) else entry
        for entry in raw_entries
    ]
    problem = _envelope_problem(envelope)
    if problem:
        raise ValueError(problem)
    index = BundleIndex()
    for position, entry in enumerate(raw_entries):
        resource = entry.get("resource")
        if not isinstance(resource, dict) or resource.get("resourceType") not in MAPPED_RESOURCE_TYPES:
            continue
        place = f"line {entry_lines[position]}" if entry_lines else f"entry {position + 1}"
        full_url = entry.get("fullUrl")
        key = resource.get("id") or _key_from_full_url(full_url)
        if not key:
            raise ValueError(f"invalid FHIR {resource_label(resource, place)}: field id: no id and no fullUrl")
        index.add(str(key), full_url, validate_resource(resource, resource_label(resource, place)), place)
    return index


def _envelope_problem(envelope: dict[str, Any]) -> str:
    """What is wrong with a Bundle without its resources ("" when it is an accepted collection of entries)."""
    try:
        parsed: Any = get_fhir_model_class("Bundle").model_validate(envelope)
    except ValidationError as error:
        return validation_message("Bundle", error)
    if parsed.type not in ACCEPTED_BUNDLE_TYPES:
        shown = repr(parsed.type) if parsed.type in BUNDLE_TYPES else "an unknown type"
        return f"invalid FHIR Bundle: field type: {shown} is not one of " + ", ".join(ACCEPTED_BUNDLE_TYPES)
    return ""


def _key_from_full_url(full_url: str | None) -> str | None:
    if not full_url:
        return None
    urn = _URN.match(full_url)
    return urn.group(1) if urn else full_url.rstrip("/").rsplit("/", 1)[-1]


def codings(concept: Any) -> list[Any]:
    """The codings of a CodeableConcept (empty when absent)."""
    return list(getattr(concept, "coding", None) or []) if concept is not None else []


def codes_in(concepts: Iterable[Any], system: str | None = None) -> list[str]:
    """Codes of the codings of several CodeableConcepts, optionally only those of one system."""
    return [
        c.code for concept in concepts for c in codings(concept) if c.code and (system is None or c.system == system)
    ]


def to_float(value: Decimal | float | int | None) -> float | None:
    """FHIR decimals arrive as Decimal; the raw tables hold float64."""
    return None if value is None else float(value)


def to_day(value: dt.date | dt.datetime | str | None) -> dt.date | None:
    """The calendar day of a FHIR date/dateTime as written (no timezone conversion); None if partial."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def extension_value(resource: Any, url: str) -> Any:
    """The value[x] of the first extension with ``url``, or None."""
    for extension in getattr(resource, "extension", None) or []:
        if extension.url == url:
            for name in ("valueInteger", "valueUnsignedInt", "valueDecimal", "valueString", "valueCode"):
                value = getattr(extension, name, None)
                if value is not None:
                    return value
    return None
