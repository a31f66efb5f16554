"""The window a drift report reads, and its report per environment and model version.

The window is read from the warehouse without the columns drift never uses (the request's JSON, ids, times), as
a few columns at a time copied into one block allocated for the whole window: a pandas frame fetched in one go
costs about three times its size at its peak (6.5 GB for a million predictions), and DuckDB's streaming reader
holds several hundred MB of its own.
Numbers stay float64: the reference profile's bin edges are float64 values of the same measurements, and a float32
copy of 37.3 would fall below an edge of 37.3.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rare_triage.lib import schema
from rare_triage.lib.monitoring.drift import DriftConfig, DriftResult, compute_drift
from rare_triage.lib.monitoring.prediction_logs import ENCOUNTER
from rare_triage.lib.monitoring.profile import ReferenceProfile

PROBABILITY_COLUMNS = tuple(f"p_{label}" for label in schema.LABELS)
# read from the predictions table and never compared: provenance, free text, keys, the platform's placeholder label
UNREAD_COLUMNS = (
    "source", "line_number", "timestamp", "request_id", "patient_key", "predicted_class", "latency_ms", "inputs",
    "encounter_key", "partition_day", schema.LABEL_COLUMN,
)  # fmt: skip
SEVERITY = ("insufficient_data", "no_drift", "watch", "retrain")
_NUMERIC_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT",
     "DOUBLE"}
)  # fmt: skip


def window_query(table: str, day_column: str, present: list[str]) -> str:
    """SQL of the encounter predictions of `table` logged on days [?, ?] (two parameters), without UNREAD_COLUMNS
    (those of them `present` in the table)."""
    excluded = [name for name in UNREAD_COLUMNS if name in present]
    exclude = f" exclude ({', '.join(excluded)})" if excluded else ""
    return f"select *{exclude} from {table} where {window_filter(day_column)}"


def window_filter(day_column: str) -> str:
    """The encounter predictions logged on days [?, ?] (two parameters)."""
    return f"{day_column} between ? and ? and input_kind = '{ENCOUNTER}'"


def read_window(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    day_column: str,
    days: tuple[str, str],
    *,
    batch_columns: int = 16,
    memory_limit: str = "256MB",
) -> pd.DataFrame:
    """The encounter predictions of `table` logged on `days` (first, last), every column but UNREAD_COLUMNS:
    numbers as float64 (NaN for NULL), booleans as bool, text as pandas categoricals (NULL as NaN). DuckDB's memory
    is held to `memory_limit` while reading (its buffer pool otherwise keeps the pages it read, about the window's
    size again), then set back."""
    previous = conn.execute("select current_setting('memory_limit')").fetchall()[0][0]
    conn.execute(f"set memory_limit = '{memory_limit}'")
    try:
        return _read_window(conn, table, day_column, days, batch_columns)
    finally:
        conn.execute(f"set memory_limit = '{previous}'")


def _read_window(
    conn: duckdb.DuckDBPyConnection, table: str, day_column: str, days: tuple[str, str], batch_columns: int
) -> pd.DataFrame:
    query = window_query(table, day_column, [row[0] for row in conn.execute(f"describe {table}").fetchall()])
    types = dict(conn.execute(f"select column_name, column_type from (describe ({query}))", list(days)).fetchall())
    numeric = [name for name, kind in types.items() if kind in _NUMERIC_TYPES or kind == "BOOLEAN"]
    texts = [name for name in types if name not in numeric]
    n = int(conn.execute(f"select count(*) from ({query})", list(days)).fetchall()[0][0])

    def select(names: list[str]) -> str:  # every read in the table's row order, so the columns line up
        return f"select {', '.join(names)} from {table} where {window_filter(day_column)} order by rowid"

    # one 2-D block, column-major: a frame built from it is a view, where a dict of columns would be copied into one
    numbers = np.empty((n, len(numeric)), dtype=np.float64, order="F")
    for first in range(0, len(numeric), batch_columns):
        names = numeric[first : first + batch_columns]
        fetched = conn.execute(select(names), list(days)).fetchnumpy()
        for name in names:
            values = np.ma.asarray(fetched.pop(name)).astype(np.float64)
            numbers[:, numeric.index(name)] = np.ma.filled(values, np.nan)
    frame = pd.DataFrame(numbers, columns=numeric, copy=False)
    for name in [name for name in numeric if types[name] == "BOOLEAN"]:
        frame[name] = frame[name].fillna(0.0).astype(bool)
    for name in texts:  # through Arrow, whose strings are compact (Python str objects are ~60 bytes each)
        column = conn.sql(select([name]), params=list(days)).to_arrow_table().column(0)
        encoded = pc.cast(column, pa.string()).combine_chunks().dictionary_encode()
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        frame[name] = pd.Categorical.from_codes(codes, categories=encoded.dictionary.to_pylist())
    return frame


@dataclass(frozen=True)
class GroupDrift:
    """The report of one environment and model version of the window (`result` None: no reference profile)."""

    env: str
    model_version: str
    predictions: int
    result: DriftResult | None = field(default=None, repr=False)
    profile: ReferenceProfile | None = field(default=None, repr=False)

    @property
    def decision(self) -> str:
        return "no_reference" if self.result is None else self.result.decision


def drift_by_group(
    window: pd.DataFrame, profile_of: Callable[[str], ReferenceProfile | None], config: DriftConfig
) -> list[GroupDrift]:
    """Each (env, model_version) of `window` against the profile of its version (`profile_of(version)`)."""
    if window.empty:
        return []
    reports = []
    groups = window.groupby(["env", "model_version"], sort=True, observed=True)
    for (env, version), index in groups.indices.items():
        rows = window if len(index) == len(window) else window.iloc[index]  # one group (the usual case): no copy
        profile = profile_of(str(version))
        if profile is None:
            reports.append(GroupDrift(str(env), str(version), len(rows)))
            continue
        result = compute_drift(
            profile,
            rows,
            probabilities=rows[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64),
            orphan_flag=rows["orphan_flag"].to_numpy(dtype=bool),
            needs_review=rows["needs_review"].to_numpy(dtype=bool),
            config=config,
        )
        reports.append(GroupDrift(str(env), str(version), len(rows), result, profile))
    return reports


def overall_decision(reports: list[GroupDrift]) -> str:
    """The most severe decision of the groups (a group without reference decides nothing)."""
    decisions = [r.decision for r in reports if r.result is not None]
    return max(decisions, key=SEVERITY.index, default="insufficient_data")
