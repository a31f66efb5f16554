"""A DataFrame as a Dagster table metadata value (typed columns, NaN as empty), for the UI's table view."""

import math
from collections.abc import Sequence

import dagster as dg
import pandas as pd


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    return "string"


def _cell(value: object, kind: str) -> str | int | float | bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if kind == "float":
        return round(float(value), 6)  # type: ignore[arg-type]
    if kind == "int":
        return int(value)  # type: ignore[call-overload]
    if kind == "bool":
        return bool(value)
    return str(value)


def table_metadata(frame: pd.DataFrame, columns: Sequence[str] | None = None, max_rows: int = 50) -> dg.MetadataValue:
    """The first `max_rows` rows of `frame` (its `columns`, all by default) as a typed table."""
    chosen = list(frame.columns if columns is None else columns)
    kinds = {name: _kind(frame[name]) for name in chosen}
    records = [
        dg.TableRecord({name: _cell(value, kinds[name]) for name, value in zip(chosen, row, strict=True)})
        for row in frame[chosen].head(max_rows).itertuples(index=False, name=None)
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kinds[name]) for name in chosen])
    return dg.MetadataValue.table(records, schema=schema)
