"""Identifier screening: identifier-shaped text and the patient table's identifier values, in any text cell.

Validation applies ``identifier_kinds`` to every text column of every raw table (identifier columns and keys aside)
and quarantines what it finds; the governance step applies ``identifier_findings`` and ``quarantine_findings`` to
what it is about to store and raises if either finds anything; the no_identifiers check reports the former.
"""

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from rare_triage.lib import schema
from rare_triage.lib.governance.distinct import fold, map_distinct, sorted_distinct
from rare_triage.lib.identifiers import DATE_IDENTIFIERS, IDENTIFIER_COLUMNS, SCREENED_VALUE_COLUMNS

# Shapes of direct identifiers that must never appear in a stored string cell (first match names the kind).
IDENTIFIER_PATTERNS = {
    "email": re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", re.IGNORECASE),
    "url": re.compile(r"\b(?:https?|ftp)://|\bwww\.[a-z0-9-]+\.[a-z]", re.IGNORECASE),
    "ip_address": re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b", re.IGNORECASE),
    "ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    # Spanish DNI / NIE, French NIR (13 or 15 digits)
    "national_id": re.compile(r"\b\d{8}[A-Z]\b|\b[XYZ]\d{7}[A-Z]\b|\b[12]\d{12}(?:\d{2})?\b", re.IGNORECASE),
    "iso_date": re.compile(r"\b(?:19|20)\d{2}-\d{2}-\d{2}\b"),
    "date": re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}\b|\b(?:19|20)\d{2}[/.]\d{1,2}[/.]\d{1,2}\b"),
    "phone": re.compile(r"\+?\d[\d\s().-]{7,}\d"),
    "zip5": re.compile(r"^\d{5}(?:-\d{4})?$"),
}
PATIENT_VALUE = "patient_value"  # kind of a cell holding a value of the patient table's identifier columns
# The partition key is the one date element kept (README), and pending_since (pending.py) the partition key of the day
# a row was held back; pseudonymous keys are 32 hex characters (pandera checks their shape) whose digit runs would
# otherwise look like phone numbers.
PATTERN_EXEMPT_COLUMNS = {"partition_day", "pending_since", "encounter_key", "patient_key"}
FINGERPRINT_PREFIX = "fp:"  # keyed fingerprints of quarantined values (validation.py), never a raw value
_TOKEN_SEPARATORS = re.compile(r"[\s,;()\[\]{}<>\"'|]+")
_NAME_COLUMNS = ("given_name", "family_name")
_MAX_PHRASE_TOKENS = 8
PATIENT_ROWS_PER_SLICE = 200_000  # patient rows whose identifier values are Python strings at a time


def _tokens(folded: str) -> list[str]:
    return [t for t in _TOKEN_SEPARATORS.split(folded) if t]


def _column_slices(table: pd.DataFrame | pa.Table, column: str) -> Iterator[pd.Series]:
    """``table[column]`` as pandas, PATIENT_ROWS_PER_SLICE rows at a time (an Arrow table converted slice by slice)."""
    if isinstance(table, pa.Table):
        for start in range(0, table.num_rows, PATIENT_ROWS_PER_SLICE):
            yield table.column(column).slice(start, PATIENT_ROWS_PER_SLICE).to_pandas()
    else:
        for start in range(0, len(table), PATIENT_ROWS_PER_SLICE):
            yield table[column].iloc[start : start + PATIENT_ROWS_PER_SLICE]


def _folded(values: pd.Series) -> list[str]:
    """``fold`` of each distinct non-missing value as text."""
    return [fold(text) for text in pd.unique(values.dropna().astype(str).to_numpy(dtype=object))]


def _phrase(folded: str) -> str:
    """A folded value as its tokens joined by one space (``" ".join(_tokens(folded))``)."""
    return _TOKEN_SEPARATORS.sub(" ", folded).strip()


def _hashes(strings: list[str]) -> np.ndarray:
    """Sorted distinct 64-bit hashes (pandas' SipHash) of the non-empty strings."""
    strings = [s for s in strings if s]
    if not strings:
        return np.zeros(0, dtype=np.uint64)
    return sorted_distinct(pd.util.hash_array(np.asarray(strings, dtype=object), categorize=False))


def _hash_set(parts: list[np.ndarray]) -> np.ndarray:
    """Sorted distinct hashes of all parts: a set of a million values in 8 MB."""
    return sorted_distinct(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)


def _any_in(hashes: np.ndarray, texts: list[str]) -> bool:
    """Whether any of ``texts`` hashes into ``hashes`` (a 64-bit collision is a false alarm once in 10^12)."""
    if not texts or not len(hashes):
        return False
    probe = pd.util.hash_array(np.asarray(texts, dtype=object), categorize=False)
    found = hashes[np.minimum(np.searchsorted(hashes, probe), len(hashes) - 1)]
    return bool((found == probe).any())


@dataclass(frozen=True)
class PatientIdentifierValues:
    """Identifier values of one extract's patient table: no text cell may equal one or contain a phrase of them.

    Held as sorted 64-bit hashes, not strings: a day of a million patients takes tens of MB, not gigabytes.
    """

    whole: np.ndarray  # hashes of folded values (single given or family names included) a cell must not equal
    phrases: np.ndarray  # hashes of token sequences (full names, MRNs, e-mails, addresses, ...) no cell may contain

    @classmethod
    def from_patients(cls, patients: pd.DataFrame | pa.Table) -> "PatientIdentifierValues":
        """From the identifier columns of ``patients`` (names also as full names, in both orders).

        Read one column and PATIENT_ROWS_PER_SLICE rows at a time, each distinct value folded once and kept only as
        its hash: a day of a million patients never sits in memory as Python strings.
        """
        present = set(patients.column_names if isinstance(patients, pa.Table) else patients.columns)
        whole: list[np.ndarray] = []
        phrases: list[np.ndarray] = []
        for column in SCREENED_VALUE_COLUMNS.get(schema.RAW_PATIENTS, ()):
            if column not in present:
                continue
            for values in _column_slices(patients, column):
                text = (
                    pd.to_datetime(values, errors="coerce").dt.strftime("%Y-%m-%d")
                    if column in DATE_IDENTIFIERS
                    else values
                )
                folded = _folded(text)
                whole.append(_hashes(folded))
                if column not in _NAME_COLUMNS:
                    phrases.append(_hashes([_phrase(f) for f in folded if len(f) >= 5]))
        if all(c in present for c in _NAME_COLUMNS):
            names = zip(_column_slices(patients, "given_name"), _column_slices(patients, "family_name"), strict=True)
            for given_names, family_names in names:
                given = given_names.fillna("").astype(str)
                family = family_names.fillna("").astype(str)
                both = (given != "") & (family != "")
                for full in (given[both] + " " + family[both], family[both] + " " + given[both]):
                    folded = _folded(full)
                    whole.append(_hashes(folded))
                    phrases.append(_hashes([_phrase(f) for f in folded]))
        return cls(_hash_set(whole), _hash_set(phrases))

    def found_in(self, text: str) -> bool:
        """Whether ``text`` equals an identifier value or contains one of the phrases, token-aligned."""
        folded = fold(text)
        if _any_in(self.whole, [folded]):
            return True
        tokens = _tokens(folded)
        grams = [
            " ".join(tokens[i : i + n])
            for n in range(1, min(len(tokens), _MAX_PHRASE_TOKENS) + 1)
            for i in range(len(tokens) - n + 1)
        ]
        return _any_in(self.phrases, grams)


def identifier_kind(text: str, patient_values: PatientIdentifierValues | None = None) -> str | None:
    """The kind of identifier content in ``text`` (a key of IDENTIFIER_PATTERNS or PATIENT_VALUE), or None."""
    for kind, pattern in IDENTIFIER_PATTERNS.items():
        if pattern.search(text):
            return kind
    if patient_values is not None and patient_values.found_in(text):
        return PATIENT_VALUE
    return None


def identifier_kinds(values: pd.Series, patient_values: PatientIdentifierValues | None = None) -> pd.Series:
    """``identifier_kind`` of each cell (as text), once per distinct value; None where clean or missing."""
    return map_distinct(values, lambda value: identifier_kind(str(value), patient_values))


def is_text(values: pd.Series) -> bool:
    """A column that can hold free text (object or string dtype)."""
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def identifier_findings(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """table.column: problem, for identifier columns and identifier-shaped values."""
    findings = [
        f"{name}.{column}: identifier column"
        for name, frame in tables.items()
        for column in frame.columns
        if column in IDENTIFIER_COLUMNS
    ]
    for name, frame in tables.items():
        for column in frame.columns:
            if column in PATTERN_EXEMPT_COLUMNS or not is_text(frame[column]):
                continue
            values = pd.Series(frame[column].dropna().unique()).astype(str)
            for kind, pattern in IDENTIFIER_PATTERNS.items():
                hits = int(values.str.contains(pattern).sum())
                if hits:
                    findings.append(f"{name}.{column}: {hits} value(s) shaped like {kind}")
    return findings


def quarantine_findings(quarantined: pd.DataFrame) -> list[str]:
    """Identifier-shaped reasons, and identifier columns or identifier-shaped values in rows, of the quarantine.

    Keys (pseudonyms), the partition day and fingerprints are not screened: they are what quarantine rows carry
    instead of values.
    """
    findings = set()
    for reason in pd.unique(quarantined["reason"].dropna()):
        kind = identifier_kind(str(reason))
        if kind:
            findings.add(f"quarantined_records.reason: shaped like {kind}")
    for text in pd.unique(quarantined["row_json"].dropna()):
        for key, value in json.loads(text).items():
            if key in IDENTIFIER_COLUMNS:
                findings.add(f"quarantined_records.row_json: identifier column {key}")
            elif isinstance(value, str) and key not in PATTERN_EXEMPT_COLUMNS:
                kind = None if value.startswith(FINGERPRINT_PREFIX) else identifier_kind(value)
                if kind:
                    findings.add(f"quarantined_records.row_json.{key}: shaped like {kind}")
    return sorted(findings)


def screened_columns(frame: pd.DataFrame) -> list[str]:
    """The text columns of a raw table screened for identifier content: all but identifiers and source keys."""
    return [c for c in frame.columns if c not in IDENTIFIER_COLUMNS and is_text(frame[c])]


def screen_raw_table(
    frame: pd.DataFrame,
    patient_values: PatientIdentifierValues | None,
    exempt: Mapping[str, Callable[[str], object]],
) -> dict[str, pd.Series]:
    """column -> kind of identifier content per row (None where clean), for every screened column of ``frame``.

    ``exempt`` maps a column to its closed-vocabulary test: a vocabulary value is not identifier content even
    when it equals a patient's value (a region may share a family name); no vocabulary value has an identifier shape.
    """
    found = {}
    for column in screened_columns(frame):
        kinds = identifier_kinds(frame[column], patient_values)
        test = exempt.get(column)
        if test is not None and kinds.notna().any():
            member = [isinstance(v, str) and bool(test(v)) for v in frame[column][kinds.notna()]]
            kinds[kinds.index[kinds.notna()][member]] = None
        if kinds.notna().any():
            found[column] = kinds
    return found
