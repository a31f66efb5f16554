"""Validated view of one FHIR R4 Bundle: resources parsed with ``fhir.resources.R4B`` and references resolved.

Only the resource types the raw tables are built from are validated; any other type is
ignored. A resource that fails validation is left out as a ``Reject`` naming its place, the field and the
problem, never a value; a Bundle whose envelope cannot be read raises ``ResourceError`` (its file becomes one Reject).
"""

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from rare_triage.lib.ingest.fhir.rejects import Origin, ResourceError, reject_table, resource_reject
from rare_triage.lib.ingest.raw_contract import Reject

logger = logging.getLogger(__name__)

ACCEPTED_BUNDLE_TYPES: Final = ("collection", "transaction", "batch", "searchset")
MAPPED_RESOURCE_TYPES: Final = ("Patient", "Encounter", "Observation", "Condition", "Organization", "Location")
CENTRE_RESOURCE_TYPES: Final = ("Organization", "Location")

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


def validation_problem(error: ValidationError) -> tuple[str, str]:
    """(the first invalid field, its problem then ``field <name>: <problem>`` of any other), quoting no input."""
    problems = []
    for item in error.errors():
        parts = [str(part) for part in item["loc"]]
        if item["type"] == "extra_forbidden" and parts:
            parts[-1] = "<unknown element>"  # the key is source text
        problems.append((".".join(parts) or "<resource>", _message_without_input(item)))
    if not problems:
        return "<resource>", "invalid"
    (field, first), others = problems[0], problems[1:]
    return field, "; ".join([first, *(f"field {location}: {message}" for location, message in others)])


def validate_resource(resource: dict[str, Any], label: str = "") -> FHIRAbstractModel:
    """Parse one R4 resource dict with its R4B model; ResourceError names the resource and field, not the value."""
    label = label or resource_label(resource)
    model = get_fhir_model_class(str(resource["resourceType"]))
    try:
        return model.model_validate(resource)
    except ValidationError as error:
        field, problem = validation_problem(error)
    raise ResourceError(label, field, problem)  # outside the except clause: the ValidationError (quoting the input)


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
    """The mapped resources of a Bundle (or of a day's pooled bare resources), each with its key and origin, the
    resources left out of it as rejects, and reference resolution."""

    entries: list[tuple[str, FHIRAbstractModel]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    _by_reference: dict[str, tuple[str, FHIRAbstractModel]] = field(default_factory=dict)
    _origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
    _rejected: dict[str, set[str]] = field(default_factory=dict)
    _rejected_references: dict[str, tuple[str, str]] = field(default_factory=dict)
    invalid_centre_resources: int = 0  # Organizations / Locations left out (logged, not rejected)

    def add(self, key: str, full_url: str | None, resource: FHIRAbstractModel, origin: Origin | None = None) -> None:
        self.entries.append((key, resource))
        self._origins.setdefault((resource.get_resource_type(), key), origin or Origin(""))
        self._by_reference[f"{resource.get_resource_type()}/{key}"] = (key, resource)
        if full_url:
            self._by_reference[full_url] = (key, resource)

    def label(self, resource_type: str, key: str) -> str:
        """``Encounter (entry 2)``: a resource of the Bundle named by its place, never by its id."""
        place = self.origin(resource_type, key).place
        return f"{resource_type} ({place})" if place else resource_type

    def origin(self, resource_type: str, key: str) -> Origin:
        return self._origins.get((resource_type, key), Origin(""))

    def reject(self, resource_type: str, key: str, resource: Any, error: ResourceError) -> None:
        """Leave out a resource of the index that cannot be mapped: a Reject of the table it would have fed."""
        origin = self.origin(resource_type, key)
        self.rejects.append(resource_reject(origin, reject_table(resource_type, resource), error.field, error.problem))
        self._rejected.setdefault(resource_type, set()).add(key)

    def reject_unread(
        self, resource: dict[str, Any], key: str | None, full_url: str | None, origin: Origin, error: ResourceError
    ) -> None:
        """Leave out a resource that failed validation (never added): a Reject, and its references still resolve."""
        resource_type = known_resource_type(resource.get("resourceType"))
        self.rejects.append(resource_reject(origin, reject_table(resource_type, resource), error.field, error.problem))
        if key is not None:
            self._rejected.setdefault(resource_type, set()).add(key)
            if full_url:
                self._rejected_references[full_url] = (resource_type, key)

    def rejected(self, resource_type: str) -> set[str]:
        """Keys of the resources of one type left out as rejects (their references resolve to these keys)."""
        return self._rejected.get(resource_type, set())

    def of_type(self, resource_type: str) -> Iterator[tuple[str, Any]]:
        """(key, resource) pairs of one resource type, in Bundle order."""
        return ((k, r) for k, r in self.entries if r.get_resource_type() == resource_type)

    def resolve(self, reference: Any, expected_type: str) -> tuple[str | None, Any | None]:
        """(key, resource-or-None) of a Reference to ``expected_type``; the resource only if it is in the Bundle.

        A reference to a resource outside the Bundle (or left out as a reject) still yields its id; one to another
        type yields (None, None).
        """
        text = getattr(reference, "reference", None) if reference is not None else None
        if not text:
            return None, None
        if text in self._by_reference:
            key, resource = self._by_reference[text]
            return (key, resource) if resource.get_resource_type() == expected_type else (None, None)
        if text in self._rejected_references:
            rejected_type, key = self._rejected_references[text]
            return (key, None) if rejected_type == expected_type else (None, None)
        typed = _TYPED_REFERENCE.search(text)
        if typed:
            return (typed.group(2), None) if typed.group(1) == expected_type else (None, None)
        urn = _URN.match(text)
        return (urn.group(1), None) if urn else (None, None)


def bundle_entries(bundle: Any, file: str = "", line: int | None = None) -> Iterator[tuple[Any, str | None, Origin]]:
    """(resource, fullUrl, origin) of each entry of a Bundle whose envelope is valid and of an accepted type.

    ResourceError (label ``Bundle``) names the field of an envelope that is not: the whole Bundle is then unread.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        found = known_resource_type(bundle.get("resourceType")) if isinstance(bundle, dict) else type(bundle).__name__
        raise ResourceError("Bundle", "resourceType", f"expected a FHIR Bundle, got {found}")
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        raise ResourceError("Bundle", "entry", "must be a list")
    envelope = dict(bundle)
    envelope["entry"] = [
        {k: v for k, v in entry.items() if k != "resource"} if isinstance(entry, dict) else entry
        for entry in raw_entries
    ]
    _check_envelope(envelope)
    for position, entry in enumerate(raw_entries, start=1):
        yield entry.get("resource"), entry.get("fullUrl"), Origin(file, line, position)


def index_resources(items: Iterable[tuple[Any, str | None, Origin]]) -> BundleIndex:
    """Validate and index the mapped resources of ``items`` ((resource, fullUrl, origin)); any other is ignored.

    A resource that fails validation (or has neither id nor fullUrl) is left out as a Reject of the table it would
    have fed; an invalid Organization or Location (they only describe a centre) is logged and left out.
    """
    index = BundleIndex()
    for resource, full_url, origin in items:
        if not isinstance(resource, dict) or resource.get("resourceType") not in MAPPED_RESOURCE_TYPES:
            continue
        label = resource_label(resource, origin.place)
        key = resource.get("id") or _key_from_full_url(full_url)
        try:
            if not key:
                raise ResourceError(label, "id", "no id and no fullUrl")
            index.add(str(key), full_url, validate_resource(resource, label), origin)
        except ResourceError as error:
            if resource["resourceType"] in CENTRE_RESOURCE_TYPES:
                logger.warning("%s: %s (left out: the centre is read from its reference)", origin.file, error)
                index.invalid_centre_resources += 1
            else:
                index.reject_unread(resource, str(key) if key else None, full_url, origin, error)
    return index


def _check_envelope(envelope: dict[str, Any]) -> None:
    """ResourceError unless a Bundle without its resources is an accepted collection of entries."""
    try:
        parsed: Any = get_fhir_model_class("Bundle").model_validate(envelope)
    except ValidationError as error:
        field_name, problem = validation_problem(error)
    else:
        if parsed.type in ACCEPTED_BUNDLE_TYPES:
            return
        shown = repr(parsed.type) if parsed.type in BUNDLE_TYPES else "an unknown type"
        field_name, problem = "type", f"{shown} is not one of " + ", ".join(ACCEPTED_BUNDLE_TYPES)
    raise ResourceError("Bundle", field_name, problem)


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
