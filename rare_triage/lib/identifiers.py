"""The direct identifiers of a raw extract, written once: where each comes from, what it is, what governance does.

Validation, anonymization, the raw-frame readers and the leak guard derive every identifier list from IDENTIFIERS.
"""

from enum import Enum
from typing import Final, NamedTuple

from rare_triage.lib.schema import RAW_ENCOUNTERS, RAW_PATIENTS


class SafeHarbor(Enum):
    """HIPAA Safe Harbor identifier categories (45 CFR 164.514(b)(2)(i)) of the columns a raw extract holds."""

    NAMES = "(A) names"
    GEOGRAPHY = "(B) geographic subdivision smaller than a state"
    DATES = "(C) date element, except the year, directly related to an individual"
    PHONE = "(D) telephone number"
    EMAIL = "(F) e-mail address"
    NATIONAL_ID = "(G) social security / national id number"
    MEDICAL_RECORD = "(H) medical record number"
    OTHER_CODE = "(R) any other unique identifying number or code"


class Treatment(Enum):
    """What governance does with an identifier column."""

    DROPPED = "dropped"
    PSEUDONYMIZED = "replaced by a keyed HMAC-SHA256 pseudonym"
    GENERALIZED = "generalized"


class Identifier(NamedTuple):
    """One direct identifier column: none may be an output column, a key of row_json or quoted in an error."""

    column: str
    source: str  # raw table it comes from
    category: SafeHarbor
    treatment: Treatment
    output: tuple[str, ...] = ()  # anonymized columns made from it
    screened_in: tuple[str, ...] = ()  # raw tables whose values of it must never equal an output cell
    note: str = ""


_P, _E, _S = RAW_PATIENTS, RAW_ENCOUNTERS, SafeHarbor
_DROP, _HMAC, _GENERALIZE = Treatment.DROPPED, Treatment.PSEUDONYMIZED, Treatment.GENERALIZED

IDENTIFIERS: Final[tuple[Identifier, ...]] = (
    # column, source table, Safe Harbor category, treatment, output columns, values screened in, note
    Identifier("patient_id", _P, _S.OTHER_CODE, _HMAC, ("patient_key",), (_P, _E), "source key, also in encounters"),
    Identifier("mrn", _P, _S.MEDICAL_RECORD, _DROP, (), (_P,)),
    Identifier("national_id", _P, _S.NATIONAL_ID, _DROP, (), (_P,)),
    Identifier("given_name", _P, _S.NAMES, _DROP, (), (_P,)),
    Identifier("family_name", _P, _S.NAMES, _DROP, (), (_P,)),
    Identifier("phone", _P, _S.PHONE, _DROP, (), (_P,)),
    Identifier("email", _P, _S.EMAIL, _DROP, (), (_P,)),
    Identifier("street_address", _P, _S.GEOGRAPHY, _DROP, (), (_P,)),
    Identifier("city", _P, _S.GEOGRAPHY, _DROP, (), (), "values not screened: a region may share a city's name"),
    Identifier("zip_code", _P, _S.GEOGRAPHY, _GENERALIZE, ("zip3",), (_P,), 'first 3 digits, "000" if restricted'),
    Identifier("birth_date", _P, _S.DATES, _GENERALIZE, ("age_years", "age_band"), (_P,), "age top-coded at 90"),
    Identifier("encounter_id", _E, _S.OTHER_CODE, _HMAC, ("encounter_key",), (_E,), "source key, also in children"),
    # values not screened: validation makes it equal the partition day, which is published on purpose
    Identifier("encounter_date", _E, _S.DATES, _GENERALIZE, ("encounter_year",), (), "year only"),
)

# Column names that never leave governance (output columns, quarantined row_json) nor appear in ingest errors.
IDENTIFIER_COLUMNS: Final = tuple(item.column for item in IDENTIFIERS)
# Identifiers governance only drops: a source may leave them out.
DROPPED_COLUMNS: Final = tuple(item.column for item in IDENTIFIERS if item.treatment is Treatment.DROPPED)
# Identifiers compared as YYYY-MM-DD days.
DATE_IDENTIFIERS: Final = tuple(item.column for item in IDENTIFIERS if item.category is SafeHarbor.DATES)


def _screened_value_columns() -> dict[str, tuple[str, ...]]:
    columns: dict[str, list[str]] = {}
    for item in IDENTIFIERS:
        for table in item.screened_in:
            columns.setdefault(table, []).append(item.column)
    return {table: tuple(names) for table, names in columns.items()}


# Raw values that must never appear verbatim in an anonymized table, per raw table.
SCREENED_VALUE_COLUMNS: Final = _screened_value_columns()
