"""Coerce source frames to the exact columns and dtypes of the ``RAW_*`` table contract (``schema.RAW_DTYPES``).

Every non-synthetic reader (landing-zone CSV/Parquet, FHIR R4) ends here, so all of them hand the governance
step identical dtypes, empty tables included: dates ``datetime64[ns]`` at midnight, measures ``float64``,
``present`` ``bool``, counts ``Int64`` and text ``string`` (str or <NA>). A cell that does not parse to its
dtype drops its row, recorded as a ``Reject`` without content; values are not range-checked (governance
quarantines rows).
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd

from rare_triage.lib.identifiers import DROPPED_COLUMNS
from rare_triage.lib.ingest.raw_contract import Reject
from rare_triage.lib.schema import RAW_COLUMNS, RAW_DTYPES, RAW_ENCOUNTERS, RAW_PATIENTS, RAW_STRING_DTYPE, RAW_TABLES

ColumnKind = Literal["str", "date", "float", "bool", "int"]

_KIND_OF_DTYPE: Final[dict[str, ColumnKind]] = {
    RAW_STRING_DTYPE: "str",
    "datetime64[ns]": "date",
    "float64": "float",
    "bool": "bool",
    "Int64": "int",
}
COLUMN_KINDS: Final[dict[str, ColumnKind]] = {
    column: _KIND_OF_DTYPE[dtype]
    for dtypes in RAW_DTYPES.values()
    for column, dtype in dtypes.items()
    if _KIND_OF_DTYPE[dtype] != "str"
}
# The rule a cell of each kind breaks when it does not parse (reject reasons and errors; never the value).
RULES: Final[dict[ColumnKind, str]] = {
    "date": "expected an ISO date YYYY-MM-DD",
    "float": "expected a number",
    "int": "expected a whole number",
    "bool": "expected true/false (missing not allowed)",
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


@dataclass(frozen=True)
class Conformed:
    """A table conformed to its contract and the source rows left out of it."""

    frame: pd.DataFrame
    rejects: tuple[Reject, ...] = ()


def column_kind(column: str) -> ColumnKind:
    """Dtype family of a raw column; unlisted columns are strings."""
    return COLUMN_KINDS.get(column, "str")


def normalize_header(name: object) -> str:
    """``' Patient ID '`` -> ``'patient_id'``: headers match the contract whatever their case or spacing."""
    return re.sub(r"[\s\-]+", "_", str(name).strip()).lower()


def empty_raw_table(table: str) -> pd.DataFrame:
    """A zero-row frame with the contract columns and dtypes of ``table``."""
    return pd.DataFrame({column: _missing_series(column, 0) for column in RAW_COLUMNS[table]})


def empty_raw_tables() -> dict[str, pd.DataFrame]:
    """One empty frame per raw table."""
    return {table: empty_raw_table(table) for table in RAW_TABLES}


def conform_raw_rows(
    frame: pd.DataFrame, table: str, source: str, lines: Sequence[int] | np.ndarray | None = None
) -> Conformed:
    """Contract columns of ``table`` in order and dtype; rows with a cell that does not parse become rejects.

    ``lines`` gives the source line of each row (default: its 1-based position). Raises ValueError naming
    ``source``, the table and the column for a missing required column or a column of the wrong kind.
    """
    _check_columns(frame, table, source)
    positions = np.asarray(lines if lines is not None else np.arange(1, len(frame) + 1), dtype=np.int64)
    first_bad = pd.Series(None, index=range(len(frame)), dtype=object)
    out = {}
    for column in RAW_COLUMNS[table]:
        if column not in frame.columns:
            out[column] = _missing_series(column, len(frame))
            continue
        out[column], bad = _parse(frame[column].reset_index(drop=True), column, f"{source}: table {table!r}")
        first_bad = first_bad.where(first_bad.notna() | ~bad, column)
    dropped = first_bad.notna().to_numpy()
    rejects = tuple(
        Reject(source, table, int(positions[i]), str(first_bad.iloc[i]), RULES[column_kind(str(first_bad.iloc[i]))])
        for i in np.flatnonzero(dropped)
    )
    kept = pd.DataFrame(out, columns=list(RAW_COLUMNS[table])).loc[~dropped].reset_index(drop=True)
    return Conformed(kept.astype(RAW_DTYPES[table]), rejects)


def conform_raw_table(frame: pd.DataFrame, table: str, source: str) -> pd.DataFrame:
    """Like ``conform_raw_rows`` but strict: ValueError naming source, table, column, row and rule for a bad cell."""
    conformed = conform_raw_rows(frame, table, source)
    if conformed.rejects:
        first = conformed.rejects[0]
        raise ValueError(
            f"{source}: table {table!r} column {first.column!r}: {first.rule} "
            f"({len(conformed.rejects)} bad row(s), first at row {first.line}; value withheld)"
        )
    return conformed.frame


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
        result[table] = merged.astype(RAW_DTYPES[table])
    return result


def _check_columns(frame: pd.DataFrame, table: str, source: str) -> None:
    if table not in RAW_COLUMNS:
        raise ValueError(f"{source}: unknown raw table; expected one of {', '.join(RAW_TABLES)}")
    missing = [c for c in RAW_COLUMNS[table] if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"{source}: table {table!r} is missing required column(s) {', '.join(missing)}")


def _missing_series(column: str, length: int) -> pd.Series:
    dtype = _dtype_of(column)
    if dtype == "bool" and length:
        raise ValueError(f"column {column!r} has no missing-value form and cannot be filled")
    return pd.Series([None] * length, index=range(length), dtype=dtype)


def _dtype_of(column: str) -> str:
    return next(dtypes[column] for dtypes in RAW_DTYPES.values() if column in dtypes)


def _parse(values: pd.Series, column: str, where: str) -> tuple[pd.Series, pd.Series]:
    """(values in the column's dtype family, mask of cells that do not parse)."""
    kind = column_kind(column)
    if kind == "str":
        return _to_str(values), pd.Series(False, index=values.index)
    if kind == "date":
        return _to_day(values)
    if kind == "bool":
        return _to_bool(values)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise ValueError(f"{where} column {column!r}: {RULES[kind]}, got a boolean column")
    numbers, bad = _to_float(values)
    if kind == "float":
        return numbers, bad
    fractional = numbers.notna() & (numbers != np.floor(numbers))
    return numbers.where(~fractional), bad | fractional


def _to_str(values: pd.Series) -> pd.Series:
    """Stripped text, blanks as <NA>; whole floats (an integer column with nulls) lose their ``.0``."""
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.notna() & (values % 1 == 0)
        values = values.astype(object).where(~whole, values[whole].astype("int64").astype(object))
    text = values.astype(RAW_STRING_DTYPE).str.strip()
    return text.where(text.fillna("").ne(""), pd.NA)


def _to_float(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype("float64"), pd.Series(False, index=values.index)
    text = values.astype(RAW_STRING_DTYPE).str.strip()
    given = text.fillna("").ne("")
    numbers = pd.to_numeric(text.astype(object).where(given, None), errors="coerce").astype("float64")
    return numbers, numbers.isna() & given


def _to_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(values.dtype) and not values.isna().any():
        return values.astype("bool"), pd.Series(False, index=values.index)
    words = values.astype(RAW_STRING_DTYPE).str.strip().str.lower().astype(object)
    parsed = words.map(_BOOL_WORDS)
    return parsed, parsed.isna()


def _to_day(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Calendar day as written by the source (a timezone offset is dropped, not converted)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.dt.normalize().astype("datetime64[ns]"), pd.Series(False, index=values.index)
    text = values.astype(RAW_STRING_DTYPE).str.strip()
    days = text.str.extract(_ISO_DAY, expand=False)
    parsed = pd.to_datetime(days, format="%Y-%m-%d", errors="coerce").astype("datetime64[ns]")
    return parsed, (parsed.isna() & text.fillna("").ne("")).astype(bool)
