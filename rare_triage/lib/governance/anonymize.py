"""Pseudonymization (keyed HMAC) and Safe-Harbor anonymization of a validated extract.

Keys are replaced by HMAC-SHA256 pseudonyms (EDPB 01/2025: keyed hashing, key held
apart from the data); dates shrink to the year (plus the partition day, published on
purpose), ages are top-coded at 90, ZIP codes shrink to 3 digits ("000" where the
3-digit area has 20,000 people or fewer, or the ZIP is not a 5-digit ZIP). Every other
direct identifier is dropped; ``rare_triage.lib.identifiers`` lists them with their treatment.
Centre and region are published in their closed vocabulary, "other" outside it (vocabulary.py).
"""

import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.governance.vocabulary import published_centres, published_regions
from rare_triage.lib.identifiers import DATE_IDENTIFIERS, IDENTIFIER_COLUMNS, SCREENED_VALUE_COLUMNS

HMAC_KEY_ENV_VAR = "RARE_TRIAGE_HMAC_KEY"
MIN_KEY_BYTES = 32
PSEUDONYM_HEX_CHARS = 32

# Public, published constant: only for the embedded demo and local development.
# Pseudonyms made with it can be reversed by anyone who guesses an id: never in production.
LOCAL_DEVELOPMENT_HMAC_KEY = hashlib.sha256(
    b"rare-triage LOCAL DEVELOPMENT key - public, not secret, embedded demo only"
).digest()

# 3-digit ZIP areas with 20,000 people or fewer (US Census 2000, HHS Safe Harbor guidance):
# published as "000". Replace with zip3_allowlist where a current census list is at hand.
RESTRICTED_ZIP3: frozenset[str] = frozenset(
    {"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884"}
    | {"890", "893"}
)
UNKNOWN_ZIP3 = "000"
_ZIP5 = re.compile(r"(\d{3})\d{2}(?:-\d{4})?")

_CHILD_DTYPES = {
    "value": "float64",
    "present": "bool",
    "severity": "float64",
    "duration_days": "float64",
    "rank": "int64",
}


class PseudonymizationKeyError(ValueError):
    """The HMAC key is missing or unusable."""


class IdentifierLeakError(AssertionError):
    """A direct identifier (column or raw value) is present in an anonymized table."""


class Pseudonymizer:
    """HMAC-SHA256 of a source key, as lowercase hex truncated to 32 characters (128 bits)."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise PseudonymizationKeyError(f"HMAC key must be at least {MIN_KEY_BYTES} bytes")
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "Pseudonymizer(key=<hidden>)"

    def __call__(self, value: str) -> str:
        return self.many([value])[0]

    def many(self, values: Iterable[str]) -> list[str]:
        """Pseudonyms of many non-missing keys (one HMAC per value, about 1 s per million)."""
        base = self._base
        out = []
        for value in values:
            if isinstance(value, str):
                text = value
            elif value is None or pd.isna(value):
                raise ValueError("cannot pseudonymize a missing key")
            else:
                text = str(value)
            mac = base.copy()
            mac.update(text.encode("utf-8"))
            out.append(mac.hexdigest()[:PSEUDONYM_HEX_CHARS])
        return out

    def series(self, values: pd.Series) -> pd.Series:
        """Pseudonyms of a column, hashing each distinct key once; a missing key raises."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        if (codes < 0).any():
            raise ValueError(f"cannot pseudonymize missing keys in column {values.name!r}")
        hashed = np.asarray(self.many(uniques), dtype=object)
        return pd.Series(hashed[codes], index=values.index, name=values.name, dtype=object)


def load_pseudonymization_key(environ: Mapping[str, str], *, allow_local_default: bool) -> bytes:
    """The HMAC key from RARE_TRIAGE_HMAC_KEY: hex, at least 32 bytes (64 hex characters).

    Generate one with ``python -c "import secrets; print(secrets.token_hex(32))"``. When the
    variable is missing (or empty) and ``allow_local_default`` is set, the public
    LOCAL_DEVELOPMENT_HMAC_KEY is returned (embedded demo only); otherwise this raises.
    """
    raw = environ.get(HMAC_KEY_ENV_VAR, "").strip()
    if not raw:
        if allow_local_default:
            return LOCAL_DEVELOPMENT_HMAC_KEY
        raise PseudonymizationKeyError(
            f"{HMAC_KEY_ENV_VAR} is not set: set it to at least {MIN_KEY_BYTES} random bytes in hex "
            '(python -c "import secrets; print(secrets.token_hex(32))")'
        )
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        raise PseudonymizationKeyError(
            f"{HMAC_KEY_ENV_VAR} is not valid hex (expected {2 * MIN_KEY_BYTES}+ hex characters)"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymizationKeyError(
            f"{HMAC_KEY_ENV_VAR} is too short: {len(key)} bytes, at least {MIN_KEY_BYTES} required"
        )
    if key == LOCAL_DEVELOPMENT_HMAC_KEY and not allow_local_default:
        raise PseudonymizationKeyError(f"{HMAC_KEY_ENV_VAR} holds the public local development key")
    return key


def local_development_key_hex() -> str:
    """The public development key in the format of RARE_TRIAGE_HMAC_KEY (for demo configs)."""
    return binascii.hexlify(LOCAL_DEVELOPMENT_HMAC_KEY).decode("ascii")


def age_in_years(birth: pd.Series, at: pd.Series) -> pd.Series:
    """Completed years between two datetime columns (NA where either is missing)."""
    birth = pd.to_datetime(birth)
    at = pd.to_datetime(at)
    years = at.dt.year - birth.dt.year
    before_birthday = (at.dt.month < birth.dt.month) | ((at.dt.month == birth.dt.month) & (at.dt.day < birth.dt.day))
    return (years - before_birthday.astype("int64")).astype("Int64")


def age_band(age_years: pd.Series) -> pd.Series:
    """Ten-year band of a (top-coded) age: 0-9, ..., 80-89, 90+; NA stays NA."""
    decade = (age_years.clip(upper=schema.AGE_TOP_CODE) // 10).astype("Int64")
    bands = pd.Series(schema.AGE_BANDS, index=range(len(schema.AGE_BANDS)), dtype=object)
    return decade.map(bands).astype(object).where(decade.notna(), None)


def zip3(zip_codes: pd.Series, allowlist: frozenset[str] | None = None) -> pd.Series:
    """First three digits of a 5-digit ZIP (ZIP+4 accepted), "000" when restricted or invalid.

    With ``allowlist`` only the listed prefixes are published; without it every prefix
    except RESTRICTED_ZIP3 is.
    """
    codes, uniques = pd.factorize(zip_codes, use_na_sentinel=True)
    matches = [_ZIP5.fullmatch(str(z).strip()) for z in uniques]
    prefixes = [m.group(1) if m else UNKNOWN_ZIP3 for m in matches]
    if allowlist is None:
        published = [p if p not in RESTRICTED_ZIP3 else UNKNOWN_ZIP3 for p in prefixes]
    else:
        published = [p if p in allowlist else UNKNOWN_ZIP3 for p in prefixes]
    lookup = np.asarray([*published, UNKNOWN_ZIP3], dtype=object)  # code -1 (missing) -> last entry
    return pd.Series(lookup[codes], index=zip_codes.index, dtype=object)


def anonymize_extract(
    valid: Mapping[str, pd.DataFrame],
    *,
    partition_day: str,
    pseudonymizer: Pseudonymizer,
    zip3_allowlist: frozenset[str] | None,
) -> dict[str, pd.DataFrame]:
    """The ANON_* tables, with exactly ANON_COLUMNS, from a validated raw extract."""
    patients = valid[schema.RAW_PATIENTS].drop_duplicates("patient_id").set_index("patient_id")
    enc = valid[schema.RAW_ENCOUNTERS]
    if enc["encounter_id"].duplicated().any():
        raise ValueError("encounters.encounter_id: duplicate keys in a validated extract")
    unknown = ~enc["patient_id"].isin(patients.index)
    if unknown.any():
        raise ValueError(f"encounters.patient_id: {int(unknown.sum())} encounters reference no patient")
    birth = enc["patient_id"].map(patients["birth_date"])
    encounter_date = pd.to_datetime(enc["encounter_date"])
    age = age_in_years(birth, encounter_date).clip(upper=schema.AGE_TOP_CODE)
    prior_visits = pd.to_numeric(enc["prior_visits_365d"]).fillna(0).astype("int64")  # unknown counts as none
    encounters = pd.DataFrame(
        {
            "encounter_key": pseudonymizer.series(enc["encounter_id"]),
            "patient_key": pseudonymizer.series(enc["patient_id"]),
            "partition_day": partition_day,
            "encounter_year": encounter_date.dt.year.astype("int64"),
            "age_years": age,
            "age_band": age_band(age),
            "sex": enc["patient_id"].map(patients["sex"]).astype(object),
            "centre_id": published_centres(enc["centre_id"]),
            "centre_level": enc["centre_level"].astype(object),
            "region": published_regions(enc["region"]),
            "zip3": zip3(enc["patient_id"].map(patients["zip_code"]), zip3_allowlist),
            "consultation_type": enc["consultation_type"].astype(object),
            "prior_visits_365d": prior_visits,
        },
        index=enc.index,
    ).reset_index(drop=True)
    out = {schema.ANON_ENCOUNTERS: encounters[list(schema.ANON_COLUMNS[schema.ANON_ENCOUNTERS])]}
    key_of_encounter = pd.Series(encounters["encounter_key"].to_numpy(), index=enc["encounter_id"].to_numpy())
    for table in schema.ANON_TABLES[1:]:
        raw = valid[table]
        keys = raw["encounter_id"].map(key_of_encounter)
        if keys.isna().any():
            raise ValueError(f"{table}.encounter_id: {int(keys.isna().sum())} rows reference no valid encounter")
        child = raw.drop(columns="encounter_id").assign(encounter_key=keys.astype(object))
        child = child.astype({c: d for c, d in _CHILD_DTYPES.items() if c in child.columns})
        out[table] = child[list(schema.ANON_COLUMNS[table])].reset_index(drop=True)
    return out


def _identifier_values(raw: Mapping[str, pd.DataFrame]) -> list[tuple[str, pd.Series]]:
    """Each raw identifier column as strings (birth dates as YYYY-MM-DD), labelled table.column."""
    values = []
    for table, columns in SCREENED_VALUE_COLUMNS.items():
        frame = raw.get(table)
        if frame is None:
            continue
        for column in columns:
            if column not in frame.columns:
                continue
            col = frame[column].dropna()
            if column in DATE_IDENTIFIERS:
                days = pd.to_datetime(col, errors="coerce").dropna().to_numpy().astype("datetime64[D]")
                text = pd.Series(days.astype(str), dtype=object)
            else:
                text = col.astype(str)
            values.append((f"{table}.{column}", text[text != ""]))
    return values


def assert_no_identifiers(anon: Mapping[str, pd.DataFrame], raw: Mapping[str, pd.DataFrame]) -> None:
    """Raise IdentifierLeakError if an identifier column or a raw identifier value is in ``anon``.

    Values are compared whole (a cell equal to a raw name, MRN, national id, phone, email,
    street address, source id, full ZIP or ISO birth date). Not compared: the city (a region
    may rightly share its name) and the partition day (published on purpose, it may equal a
    newborn's birth date). The message names the table and column, never the value.
    """
    for table, frame in anon.items():
        leaked = [c for c in frame.columns if c in IDENTIFIER_COLUMNS]
        if leaked:
            raise IdentifierLeakError(f"anonymized table {table!r} has identifier column(s) {leaked}")

    string_columns: list[tuple[str, str, pd.Series]] = []
    for table, frame in anon.items():
        for column in frame.columns:
            col = frame[column]
            if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
                string_columns.append((table, column, pd.Series(pd.unique(col.dropna()), dtype=object).astype(str)))
    if not string_columns:
        return
    allowed: set[str] = set()
    if schema.ANON_ENCOUNTERS in anon and "partition_day" in anon[schema.ANON_ENCOUNTERS].columns:
        allowed = set(anon[schema.ANON_ENCOUNTERS]["partition_day"].dropna().astype(str).unique())
    output_values = pd.Index(pd.unique(pd.concat([col for _, _, col in string_columns], ignore_index=True)))
    output_values = output_values[~output_values.isin(allowed)]

    for source, values in _identifier_values(raw):
        # the Index caches its hash table: one build for every identifier column
        hits = pd.unique(values[output_values.get_indexer(values) >= 0])
        if len(hits) == 0:
            continue
        hit_index = pd.Index(hits)
        where = [f"{t}.{c}" for t, c, col in string_columns if col.isin(hit_index).any()]
        raise IdentifierLeakError(
            f"raw identifier values of {source} appear verbatim in anonymized column(s) {where} "
            f"({len(hits)} distinct value(s))"
        )
