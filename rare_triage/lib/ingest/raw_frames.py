"""Coerce source frames to the exact columns and dtypes of the ``RAW_*`` table contract.

Every non-synthetic reader (landing-zone CSV/Parquet, FHIR R4) ends here, so all of
them hand the governance step identical dtypes: dates ``datetime64[ns]`` at midnight,
measures ``float64``, ``present`` ``bool``, counts ``Int64`` and everything else ``object``
holding ``str`` or ``None``. Values are not range-checked: governance quarantines rows.
"""

import re
from collections.abc import Iterable, Mapping
from typing import Final, Literal

import numpy as np
import pandas as pd

from rare_triage.lib.identifiers import DROPPED_COLUMNS, IDENTIFIER_COLUMNS
from rare_triage.lib.schema import RAW_COLUMNS, RAW_ENCOUNTERS, RAW_PATIENTS, RAW_TABLES

ColumnKind = Literal["str", "date", "float", "bool", "int"]

COLUMN_KINDS: Final[dict[str, ColumnKind]] = {
    "birth_date": "date",
    "encounter_date": "date",
    "value": "float",
    "severity": "float",
    "duration_days": "float",
    "present": "bool",
    "rank": "int",
    "prior_visits_365d": "int",
}

# Columns a source may leave out entirely (filled with missing values): the identifiers governance only drops,
# and optional measures. All others are required.
OPTIONAL_COLUMNS: Final = frozenset({*DROPPED_COLUMNS, "severity", "duration_days", "prior_visits_365d"})

# Tables where a row repeated verbatim across FHIR Bundles is one fact, not two.
DEDUPLICATED_TABLES: Final = (RAW_PATIENTS, RAW_ENCOUNTERS)

_BOOL_WORDS: Final = {
    **dict.fromkeys(("true", "t", "1", "1.0", "yes", "y"), True),
    **dict.fromkeys(("false", "f", "0", "0.0", "no", "n"), False),
}
_ISO_DAY: Final = r"^(\d{4}-\d{2}-\d{2})"


def column_kind(column: str) -> ColumnKind:
    """Dtype family of a raw column; unlisted columns are strings."""
    return COLUMN_KINDS.get(column, "str")


def normalize_header(name: object) -> str:
    """``' Patient ID '`` -> ``'patient_id'``: headers match the contract whatever their case or spacing."""
    return re.sub(r"[\s\-]+", "_", str(name).strip()).lower()


def empty_raw_table(table: str) -> pd.DataFrame:
    """A zero-row frame with the contract columns and dtypes of ``table``."""
    return pd.DataFrame({column: _empty_series(column) for column in RAW_COLUMNS[table]})


def empty_raw_tables() -> dict[str, pd.DataFrame]:
    """One empty frame per raw table."""
    return {table: empty_raw_table(table) for table in RAW_TABLES}


def conform_raw_table(frame: pd.DataFrame, table: str, source: str) -> pd.DataFrame:
    """Select, order and coerce the contract columns of ``table``; ``source`` names the input in errors.

    Raises ValueError naming the source and column when a required column is missing or a
    value cannot be read as its contract dtype. Extra columns are dropped.
    """
    if table not in RAW_COLUMNS:
        raise ValueError(f"{source}: unknown raw table {table!r}; expected one of {', '.join(RAW_TABLES)}")
    missing = [c for c in RAW_COLUMNS[table] if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"{source}: table {table!r} is missing required column(s) {', '.join(missing)}")
    out = {}
    for column in RAW_COLUMNS[table]:
        if column in frame.columns:
            out[column] = _coerce(frame[column].reset_index(drop=True), column, source)
        else:
            out[column] = _missing_series(column, len(frame))
    return pd.DataFrame(out, columns=list(RAW_COLUMNS[table]))


def concat_raw_tables(
    parts: Iterable[Mapping[str, pd.DataFrame]], deduplicate: bool = False
) -> dict[str, pd.DataFrame]:
    """Concatenate conformed tables; ``deduplicate`` drops verbatim repeats of a patient or encounter row.

    FHIR repeats the same Patient/Encounter in many Bundles, which is one fact; in CSV
    extracts a repeated row is an integrator error that governance should see, so keep it.
    """
    collected: dict[str, list[pd.DataFrame]] = {table: [] for table in RAW_TABLES}
    for part in parts:
        for table, frame in part.items():
            if len(frame):
                collected[table].append(frame)
    result = {}
    for table, frames in collected.items():
        if not frames:
            result[table] = empty_raw_table(table)
            continue
        merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
        if deduplicate and table in DEDUPLICATED_TABLES:
            merged = merged.drop_duplicates(ignore_index=True)
        result[table] = merged
    return result


def _empty_series(column: str) -> pd.Series:
    return _missing_series(column, 0)


def _missing_series(column: str, length: int) -> pd.Series:
    kind = column_kind(column)
    if kind == "date":
        return pd.Series(pd.NaT, index=range(length), dtype="datetime64[ns]")
    if kind == "float":
        return pd.Series(np.nan, index=range(length), dtype="float64")
    if kind == "int":
        return pd.Series(pd.NA, index=range(length), dtype="Int64")
    if kind == "bool":
        if length:
            raise ValueError(f"column {column!r} has no missing-value form and cannot be filled")
        return pd.Series([], dtype="bool")
    return pd.Series([None] * length, index=range(length), dtype="object")


def _first_bad(values: pd.Series, bad: pd.Series) -> str:
    """Where the first bad value is; the value itself only when it is not a direct identifier."""
    position = int(np.flatnonzero(bad.to_numpy())[0])
    shown = "withheld (identifier)" if values.name in IDENTIFIER_COLUMNS else repr(values.iloc[position])
    return f"row {position + 1} value {shown} ({int(bad.sum())} bad row(s))"


def _coerce(values: pd.Series, column: str, source: str) -> pd.Series:
    kind = column_kind(column)
    where = f"{source}: column {column!r}"
    if kind == "str":
        return _to_str(values)
    if kind == "date":
        return _to_day(values, where)
    if kind == "bool":
        return _to_bool(values, where)
    numbers = _to_float(values, where)
    if kind == "float":
        return numbers
    fractional = numbers.notna() & (numbers != np.floor(numbers))
    if fractional.any():
        raise ValueError(f"{where}: expected a whole number, got {_first_bad(values, fractional)}")
    return numbers.astype("Int64")


def _to_str(values: pd.Series) -> pd.Series:
    """Stripped text, blanks as None; whole floats (an integer column with nulls) lose their ``.0``."""
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.notna() & (values % 1 == 0)
        values = values.astype(object).where(~whole, values[whole].astype("int64").astype(object))
    text = values.astype("string[pyarrow]").str.strip()
    return text.astype(object).where(text.fillna("").ne(""), None)


def _to_float(values: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        raise ValueError(f"{where}: expected a number, got booleans")
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype("float64")
    text = values.astype("string[pyarrow]").str.strip()
    given = text.fillna("").ne("")
    numbers = pd.to_numeric(text.astype(object).where(given, None), errors="coerce").astype("float64")
    bad = numbers.isna() & given
    if bad.any():
        raise ValueError(f"{where}: expected a number, got {_first_bad(values, bad)}")
    return numbers


def _to_bool(values: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype) and not values.isna().any():
        return values.astype("bool")
    words = values.astype("string[pyarrow]").str.strip().str.lower()
    parsed = words.map(_BOOL_WORDS)
    bad = parsed.isna()
    if bad.any():
        raise ValueError(f"{where}: expected true/false (missing not allowed), got {_first_bad(values, bad)}")
    return parsed.astype("bool")


def _to_day(values: pd.Series, where: str) -> pd.Series:
    """Calendar day as written by the source (a timezone offset is dropped, not converted)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.dt.normalize().astype("datetime64[ns]")
    text = values.astype("string[pyarrow]").str.strip()
    days = text.str.extract(_ISO_DAY, expand=False)
    parsed = pd.to_datetime(days, format="%Y-%m-%d", errors="coerce")
    bad = parsed.isna() & text.fillna("").ne("")
    if bad.any():
        raise ValueError(f"{where}: expected an ISO date YYYY-MM-DD, got {_first_bad(values, bad)}")
    return parsed.astype("datetime64[ns]")
