"""The centre of an Encounter (id, level, region), with explicit values where the source leaves them out.

- id: the ``serviceProvider`` Organization, else the ``managingOrganization`` of the first
  ``location``, else the Location id, else ``schema.OTHER_CATEGORY``.
- level: an ``Organization.type`` code or text primary/secondary/tertiary (on the Organization or
  its ``partOf`` parent); else ``dept`` (organization-type: a hospital department) -> secondary;
  else from ``Encounter.class``: EMER/IMP/ACUTE/NONAC/SS/OBSENC (hospital care) -> secondary,
  any other class -> primary (``inferred`` says so).
- region: ``address.state`` of the Organization, its parent, or the Location; else ``schema.OTHER_CATEGORY``.
"""

from dataclasses import dataclass
from typing import Any, Final

from rare_triage.lib.ingest.fhir.bundle import BundleIndex, codings
from rare_triage.lib.schema import CENTRE_LEVELS, OTHER_CATEGORY

UNKNOWN_CENTRE: Final = OTHER_CATEGORY
UNKNOWN_REGION: Final = OTHER_CATEGORY
ORGANIZATION_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/organization-type"
DEPARTMENT_TYPE: Final = "dept"
HOSPITAL_CLASSES: Final = frozenset({"EMER", "IMP", "ACUTE", "NONAC", "SS", "OBSENC"})


@dataclass(frozen=True)
class Centre:
    """The centre columns of one encounter, and which of them were not in the source."""

    centre_id: str
    level: str
    region: str
    level_inferred: bool = False
    region_unknown: bool = False
    id_unknown: bool = False


def encounter_centre(encounter: Any, index: BundleIndex) -> Centre:
    """Centre id, level and region of an Encounter (see module docstring)."""
    centre_id, organization, location = _centre(encounter, index)
    organizations = [o for o in (organization, _parent(organization, index)) if o is not None]
    level = next((lv for o in organizations if (lv := declared_level(o))), None)
    region = next((r for o in (*organizations, location) if (r := _state(o))), None)
    class_code = encounter.class_fhir.code if encounter.class_fhir else None
    return Centre(
        centre_id=centre_id or UNKNOWN_CENTRE,
        level=level or inferred_level(organizations, class_code),
        region=region or UNKNOWN_REGION,
        level_inferred=level is None,
        region_unknown=region is None,
        id_unknown=centre_id is None,
    )


def declared_level(organization: Any) -> str | None:
    """primary/secondary/tertiary when an ``Organization.type`` coding or text says so."""
    for concept in organization.type or []:
        for coding in codings(concept):
            if coding.code and coding.code.lower() in CENTRE_LEVELS:
                return str(coding.code.lower())
        if concept.text and concept.text.strip().lower() in CENTRE_LEVELS:
            return str(concept.text.strip().lower())
    return None


def inferred_level(organizations: list[Any], class_code: str | None) -> str:
    """secondary for a hospital department or hospital care, else primary."""
    types = {c.code for o in organizations for concept in o.type or [] for c in codings(concept) if c.code is not None}
    if DEPARTMENT_TYPE in types or class_code in HOSPITAL_CLASSES:
        return "secondary"
    return "primary"


def _centre(encounter: Any, index: BundleIndex) -> tuple[str | None, Any | None, Any | None]:
    organization_id, organization = index.resolve(encounter.serviceProvider, "Organization")
    first_location = None
    for location_entry in encounter.location or []:
        location_id, location = index.resolve(location_entry.location, "Location")
        first_location = first_location or location
        if organization_id is not None:
            continue
        if location is not None and location.managingOrganization is not None:
            managing_id, managing = index.resolve(location.managingOrganization, "Organization")
            if managing_id is not None:
                return managing_id, managing, location
        if location_id is not None:
            return location_id, None, location
    return organization_id, organization, first_location


def _parent(organization: Any | None, index: BundleIndex) -> Any | None:
    if organization is None or organization.partOf is None:
        return None
    return index.resolve(organization.partOf, "Organization")[1]


def _state(resource: Any | None) -> str | None:
    if resource is None:
        return None
    addresses = resource.address if isinstance(resource.address, list) else [resource.address]
    return next((str(a.state) for a in addresses if a is not None and a.state), None)
