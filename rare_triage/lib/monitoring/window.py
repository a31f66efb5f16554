"""The window a drift report reads, and its report per environment and model version.

The window is read from the warehouse without the columns drift never uses (the request's JSON, ids, times), as
Arrow record batches copied into columns allocated once for the whole window: a pandas frame fetched in one go
costs about three times its size at its peak (6.5 GB for a million predictions), this one little more than itself.
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


def window_query(table: str, day_column: str, present: list[str]) -> str:
    """SQL of the encounter predictions of `table` logged on days [?, ?] (two parameters), without UNREAD_COLUMNS
    (those of them `present` in the table)."""
    excluded = [name for name in UNREAD_COLUMNS if name in present]
    exclude = f" exclude ({', '.join(excluded)})" if excluded else ""
    return f"select *{exclude} from {table} where {day_column} between ? and ? and input_kind = '{ENCOUNTER}'"


def read_window(
    conn: duckdb.DuckDBPyConnection, table: str, day_column: str, days: tuple[str, str], batch_rows: int = 100_000
) -> pd.DataFrame:
    """The encounter predictions of `table` logged on `days` (first, last), every column but UNREAD_COLUMNS:
    numbers as float64 (NaN for NULL), booleans as bool, text as pandas categoricals (NULL as NaN)."""
    described = conn.execute(f"describe {table}").fetchall()
    present = [row[0] for row in described]
    query = window_query(table, day_column, present)
    n = int(conn.execute(f"select count(*) from ({query})", list(days)).fetchall()[0][0])
    reader = conn.sql(query, params=list(days)).to_arrow_reader(batch_rows)
    schema_ = reader.schema
    numbers: dict[str, np.ndarray] = {}
    flags: dict[str, np.ndarray] = {}
    texts: dict[str, list[pa.Array]] = {}
    for field_ in schema_:
        if pa.types.is_boolean(field_.type):
            flags[field_.name] = np.zeros(n, dtype=bool)
        elif pa.types.is_integer(field_.type) or pa.types.is_floating(field_.type) or pa.types.is_decimal(field_.type):
            numbers[field_.name] = np.empty(n, dtype=np.float64)
        else:
            texts[field_.name] = []
    start = 0
    for batch in reader:
        end = start + batch.num_rows
        for name, target in numbers.items():
            column = pc.cast(batch.column(name), pa.float64())
            target[start:end] = column.to_numpy(zero_copy_only=False)  # NULL -> NaN
        for name, target in flags.items():
            target[start:end] = batch.column(name).fill_null(False).to_numpy(zero_copy_only=False)
        for name, chunks in texts.items():
            chunks.append(pc.cast(batch.column(name), pa.string()))
        start = end
    if start != n:
        raise RuntimeError(f"{table}: {start} rows read for {n} counted (the table changed while it was read)")
    columns: dict[str, object] = {**numbers, **flags}
    for name, chunks in texts.items():
        encoded = pa.chunked_array(chunks, type=pa.string()).combine_chunks().dictionary_encode()
        columns[name] = pd.Categorical.from_codes(
            encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False), categories=encoded.dictionary.to_pylist()
        )
    return pd.DataFrame(columns, columns=[field_.name for field_ in schema_], copy=False)


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
