"""A GA4GH Phenopacket (schema v2, JSON) -> one `contract.PublishedCase`, as the platform reads a published case.

`case_from_phenopacket(doc)` takes the decoded JSON of one phenopacket and returns the `PublishedCase` the service
encodes (`Encoder.encode_phenopacket`, the platform's `external_features`) with a `PhenopacketReport`. It reads:
- `phenotypicFeatures[].type.id`: an HPO term (`HP:` and seven digits) -> `hpo_excluded` when the feature's
  `excluded` is true, else `hpo_observed` (each id once per list, in document order). A feature typed in another
  ontology is reported in `terms_not_mapped`;
- `subject.sex`: MALE, FEMALE, UNKNOWN_SEX or OTHER_SEX (or their protobuf numbers 2, 1, 0, 3) -> `sex`, which
  the encoder publishes as M, F, U, U; none stays none (the platform reads it as U);
- `subject.timeAtLastEncounter.age.iso8601duration`: the age (`P6Y`, `P3M`, `P1Y6M`, `P2W`, `P10D`, the forms the
  platform's loader reads). An age given otherwise (ageRange, ontologyClass, gestationalAge, timestamp) is reported
  and left missing, as the platform's published cases leave an unknown age.
Everything else (diseases, interpretations, measurements, the feature modifiers, onset, evidence, the subject's
id and date of birth) is not read; the names of the elements present are listed in `elements_ignored`, never a
value. A phenopacket schema v1 document (`metaData.phenopacketSchemaVersion` 1.x, or a feature with `negated`) is
refused: its `negated` means excluded, and reading it as v2 would turn absent phenotypes into present ones.

Errors are `PhenopacketInputError(json_path, problem)`, the path in the document (`phenotypicFeatures[2].type.id`)
and what is wrong, quoting no value but an ontology id or an enumeration value of the schema.
`rare_triage_tests/integration/test_serving_fhir_parity.py` checks, on the platform's published cases, that the
encoded result is the platform's `external_features` row.
"""

import re
from typing import Any, Final

import msgspec

from serving.contract import HPO_ID_PATTERN, ISO8601_AGE_PATTERN, MAX_HPO_TERMS, PHENOPACKET_SEX, PublishedCase

# protobuf JSON may carry an enum as its number (phenopackets v2 `Sex`)
SEX_BY_NUMBER: Final = {0: "UNKNOWN_SEX", 1: "FEMALE", 2: "MALE", 3: "OTHER_SEX"}
AGE_FORMS: Final = ("age", "ageRange", "ontologyClass", "gestationalAge", "timestamp")
READ_TOP_LEVEL: Final = frozenset({"subject", "phenotypicFeatures"})
READ_SUBJECT: Final = frozenset({"sex", "timeAtLastEncounter"})
READ_FEATURE: Final = frozenset({"type", "excluded"})

_HPO_ID: Final = re.compile(HPO_ID_PATTERN)
_ISO_AGE: Final = re.compile(ISO8601_AGE_PATTERN)
_CURIE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}:[A-Za-z0-9_.-]{1,64}")
_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


class PhenopacketInputError(ValueError):
    """The document is not a readable phenopacket: `json_path` (e.g. `phenotypicFeatures[2].excluded`) and `problem`
    say where and what."""

    def __init__(self, json_path: str, problem: str) -> None:
        super().__init__(f"{json_path}: {problem}")
        self.json_path = json_path
        self.problem = problem

    def __reduce__(self) -> tuple[type["PhenopacketInputError"], tuple[str, str]]:
        return type(self), (self.json_path, self.problem)


class UnmappedTerm(msgspec.Struct, frozen=True, kw_only=True):
    """A phenotypic feature whose type is not an HPO term."""

    path: str  # "phenotypicFeatures[4].type.id"
    id: str  # the ontology class id (CURIE), or "WITHHELD" when it is not shaped like one
    reason: str


class PhenopacketReport(msgspec.Struct, frozen=True, kw_only=True):
    """What `case_from_phenopacket` made of a document (JSON-encodable; no value of the subject).

    features_used: phenotypic features mapped to `hpo_observed` or `hpo_excluded`.
    terms_not_mapped: features typed in another ontology than HPO.
    elements_ignored: JSON paths of the elements present and not read (`[]` for every item of an array).
    notes: what else was left out, e.g. an age given as a range.
    """

    features_used: int
    terms_not_mapped: tuple[UnmappedTerm, ...] = ()
    elements_ignored: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def case_from_phenopacket(doc: dict[str, Any]) -> tuple[PublishedCase, PhenopacketReport]:
    """The published case of one GA4GH phenopacket v2 JSON document (see the module doc) and what was made of it.

    PhenopacketInputError(json_path, problem) when the document is not a readable phenopacket."""
    if not isinstance(doc, dict):
        raise PhenopacketInputError("$", "expected a JSON object (a phenopacket)")
    _check_schema_version(doc)
    ignored = [_element(key) for key in doc if key not in READ_TOP_LEVEL]
    notes: list[str] = []
    subject = _object_at(doc, "subject", "subject")
    sex, age = None, None
    if subject is not None:
        ignored += [f"subject.{_element(key)}" for key in subject if key not in READ_SUBJECT]
        sex = _sex(subject)
        age = _age(subject, notes)
    observed, excluded, unmapped, used = _features(doc, ignored)
    for name, ids in (("observed", observed), ("excluded", excluded)):
        if len(ids) > MAX_HPO_TERMS:
            raise PhenopacketInputError(
                "phenotypicFeatures", f"{len(ids)} distinct {name} terms: more than {MAX_HPO_TERMS}"
            )
    fields: dict[str, Any] = {"hpo_observed": observed, "hpo_excluded": excluded}
    if sex is not None:
        fields["sex"] = sex
    if age is not None:
        fields["age"] = age
    report = PhenopacketReport(
        features_used=used,
        terms_not_mapped=tuple(unmapped),
        elements_ignored=tuple(dict.fromkeys(ignored)),
        notes=tuple(notes),
    )
    return msgspec.convert(fields, PublishedCase), report


def _element(key: object) -> str:
    """A key as it may be reported: a plain name, else a placeholder (keys are source text)."""
    return key if isinstance(key, str) and _NAME.fullmatch(key) else "<unknown element>"


def _object_at(parent: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, dict):
        raise PhenopacketInputError(path, "must be a JSON object")
    return value


def _check_schema_version(doc: dict[str, Any]) -> None:
    meta = _object_at(doc, "metaData", "metaData")
    version = None if meta is None else meta.get("phenopacketSchemaVersion")
    if version is not None and not isinstance(version, str):
        raise PhenopacketInputError("metaData.phenopacketSchemaVersion", "must be a string")
    if version is not None and version.strip().startswith("1"):
        raise PhenopacketInputError(
            "metaData.phenopacketSchemaVersion", "a phenopacket schema v1 document: send schema v2 (2.0)"
        )


def _sex(subject: dict[str, Any]) -> str | None:
    value = subject.get("sex")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value in SEX_BY_NUMBER:
        return SEX_BY_NUMBER[value]
    if isinstance(value, str) and value in PHENOPACKET_SEX:
        return value
    raise PhenopacketInputError("subject.sex", f"not one of {', '.join(PHENOPACKET_SEX)}")


def _age(subject: dict[str, Any], notes: list[str]) -> str | None:
    """`subject.timeAtLastEncounter.age.iso8601duration`; another form of age is noted and left missing."""
    where = "subject.timeAtLastEncounter"
    time = _object_at(subject, "timeAtLastEncounter", where)
    if time is None:
        return None
    age = _object_at(time, "age", f"{where}.age")
    if age is None:
        forms = [key for key in AGE_FORMS if key in time]
        shown = forms[0] if forms else "no age"
        notes.append(f"{where}.{shown}: not an ISO 8601 age the platform reads, the age is left missing")
        return None
    duration = age.get("iso8601duration")
    if duration is None:
        notes.append(f"{where}.age: no iso8601duration, the age is left missing")
        return None
    path = f"{where}.age.iso8601duration"
    if not isinstance(duration, str):
        raise PhenopacketInputError(path, "must be a string")
    text = duration.strip()
    if len(text) > 32 or not _ISO_AGE.fullmatch(text):
        raise PhenopacketInputError(path, "not an ISO 8601 duration like P6Y, P3M, P1Y6M, P2W or P10D")
    return text


def _features(doc: dict[str, Any], ignored: list[str]) -> tuple[list[str], list[str], list[UnmappedTerm], int]:
    """(observed ids, excluded ids, features of another ontology, features used)."""
    features = doc.get("phenotypicFeatures")
    if features is None:
        return [], [], [], 0
    if not isinstance(features, list):
        raise PhenopacketInputError("phenotypicFeatures", "must be a JSON array")
    observed: dict[str, None] = {}
    excluded: dict[str, None] = {}
    unmapped = []
    used = 0
    for position, feature in enumerate(features):
        where = f"phenotypicFeatures[{position}]"
        if not isinstance(feature, dict):
            raise PhenopacketInputError(where, "must be a JSON object")
        if "negated" in feature:
            raise PhenopacketInputError(f"{where}.negated", "a phenopacket schema v1 field: send v2 (`excluded`)")
        ignored += [f"phenotypicFeatures[].{_element(key)}" for key in feature if key not in READ_FEATURE]
        is_excluded = feature.get("excluded", False)
        if not isinstance(is_excluded, bool):
            raise PhenopacketInputError(f"{where}.excluded", "must be true or false")
        kind = _object_at(feature, "type", f"{where}.type")
        term = None if kind is None else kind.get("id")
        if not isinstance(term, str):
            raise PhenopacketInputError(f"{where}.type.id", "missing (an ontology class id such as HP:0001250)")
        term = term.strip()
        if _HPO_ID.fullmatch(term):
            (excluded if is_excluded else observed)[term] = None
            used += 1
        elif term.upper().startswith(("HP:", "HP_")):
            raise PhenopacketInputError(f"{where}.type.id", "not an HPO id like HP:0001250")
        else:
            shown = term if _CURIE.fullmatch(term) else "WITHHELD"
            unmapped.append(UnmappedTerm(path=f"{where}.type.id", id=shown, reason="not an HPO term"))
    return list(observed), list(excluded), unmapped, used
