"""The HPO cross-references published with a model version (`hpo_xrefs.json`, format rare-triage-hpo-xrefs/1): the
(code system, code) -> HPO ids lookup the platform's FHIR importer uses, so `serving.fhir` maps findings coded in
SNOMED CT, ICD-10 or UMLS exactly as the platform does."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

XREFS_FORMAT = "rare-triage-hpo-xrefs/1"
HPO_XREFS_TABLE = "hpo_xrefs"  # the table's name in the manifest's `files`


class XrefTableError(ValueError):
    """The published table is not a cross-reference table this service reads."""


def xrefs_from_table(document: Mapping[str, Any], hpo_release: str) -> Mapping[tuple[str, str], tuple[str, ...]]:
    """The lookup of a published table (decoded JSON, or the read-only copy the model store keeps: mapping proxies
    and tuples); XrefTableError naming the field when it is malformed or of another release."""
    if document.get("format") != XREFS_FORMAT:
        raise XrefTableError(f"hpo_xrefs: format {document.get('format')!r} is not {XREFS_FORMAT!r}")
    if document.get("hpo_release") != hpo_release:
        raise XrefTableError(
            f"hpo_xrefs: HPO release {document.get('hpo_release')!r} is not the model's {hpo_release!r}"
        )
    systems = document.get("xrefs")
    if not isinstance(systems, Mapping):
        raise XrefTableError("hpo_xrefs: field 'xrefs' is not an object")
    lookup: dict[tuple[str, str], tuple[str, ...]] = {}
    for system, codes in systems.items():
        if not isinstance(codes, Mapping):
            raise XrefTableError(f"hpo_xrefs: xrefs[{system!r}] is not an object")
        for code, terms in codes.items():
            hpo_ids = isinstance(terms, list | tuple) and all(isinstance(t, str) and t.startswith("HP:") for t in terms)
            if not hpo_ids:
                raise XrefTableError(f"hpo_xrefs: xrefs[{system!r}][{code!r}] is not a list of HPO ids")
            lookup[(system, code)] = tuple(terms)
    return MappingProxyType(lookup)
