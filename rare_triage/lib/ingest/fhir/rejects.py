"""FHIR resources and files left out of the raw tables: where they were and the rule they broke, never their content.

A resource that cannot be validated or mapped becomes one ``Reject`` of the raw table it would have fed (file, table,
line, column = the FHIR field, rule = the problem); a file or Bundle that cannot be read at all becomes one Reject
of ``encounters`` (what it held is unknown: it is counted as one encounter received and quarantined).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from rare_triage.lib import schema
from rare_triage.lib.ingest.raw_contract import Reject

FILE_TABLE: Final = schema.RAW_ENCOUNTERS  # the table a file or Bundle that cannot be read is counted in
_VITAL_CODES: Final = frozenset({*schema.VITAL_LOINC, schema.SPO2_ALT_LOINC})
_ENCOUNTER_DIAGNOSIS: Final = "encounter-diagnosis"


@dataclass(frozen=True)
class Origin:
    """Where a resource was read: its file, the file line (of the bare resource, or of the NDJSON line holding its
    Bundle; None inside a ``.json`` document) and its 1-based Bundle entry (None for a bare resource)."""

    file: str
    line: int | None = None
    entry: int | None = None

    @property
    def place(self) -> str:
        """``entry 3`` inside a Bundle, ``line 12`` for a bare resource, "" when unknown."""
        if self.entry is not None:
            return f"entry {self.entry}"
        return f"line {self.line}" if self.line is not None else ""


class ResourceError(ValueError):
    """A resource that cannot be mapped: its label (type and place, never its id), the FHIR field and the problem.

    The message is ``invalid FHIR <label>: field <field>: <problem>``; neither part quotes a value of the resource.
    """

    def __init__(self, label: str, field: str, problem: str) -> None:
        super().__init__(f"invalid FHIR {label}: field {field}: {problem}")
        self.label = label
        self.field = field
        self.problem = problem


def resource_reject(origin: Origin, table: str, field: str | None, problem: str) -> Reject:
    """The Reject of one resource; inside a Bundle its entry is named in the rule (the line holds the whole Bundle)."""
    rule = f"{problem} (Bundle entry {origin.entry})" if origin.entry is not None else problem
    return Reject(origin.file, table, origin.line, field, rule)


def file_reject(file: str, line: int | None, problem: str, field: str | None = None) -> Reject:
    """The one Reject of a file, NDJSON line or Bundle that cannot be read (``FILE_TABLE``)."""
    return Reject(file, FILE_TABLE, line, field, problem)


def reject_table(resource_type: str, resource: Mapping[str, Any] | Any) -> str:
    """The raw table a resource (a dict as read, or a validated model) would have fed.

    Observation: ``vitals`` when its code or a component's is a vital LOINC code, else ``symptoms``. Condition:
    ``diagnoses`` for an encounter-diagnosis (or one without category that references an encounter), else
    ``comorbidities``. Read defensively: a resource that failed validation may have any shape.
    """
    if resource_type == "Patient":
        return schema.RAW_PATIENTS
    if resource_type == "Observation":
        concepts = [_get(resource, "code"), *(_get(c, "code") for c in _list(_get(resource, "component")))]
        return schema.RAW_VITALS if _VITAL_CODES & set(_codes(concepts)) else schema.RAW_SYMPTOMS
    if resource_type == "Condition":
        categories = set(_codes(_list(_get(resource, "category"))))
        if _ENCOUNTER_DIAGNOSIS in categories or (not categories and _get(resource, "encounter") is not None):
            return schema.RAW_DIAGNOSES
        return schema.RAW_COMORBIDITIES
    return schema.RAW_ENCOUNTERS


def _get(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None) if item is not None else None


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _codes(concepts: list[Any]) -> list[str]:
    return [
        code
        for concept in concepts
        for coding in _list(_get(concept, "coding"))
        if isinstance(code := _get(coding, "code"), str)
    ]
