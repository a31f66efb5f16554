"""Tables for the UI: a DataFrame as a table metadata value (typed columns, NaN as empty), and column schemas."""

import math
from collections.abc import Mapping, Sequence

import dagster as dg
import pandas as pd
import pyarrow as pa


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


def column_schema(types: Mapping[str, str], descriptions: Mapping[str, str]) -> dg.TableSchema:
    """A column schema (`dagster/column_schema`) of the columns of `types` (name -> type), each with its description;
    a column without one is an error, so a new column cannot reach the UI undocumented."""
    undocumented = [name for name in types if not descriptions.get(name)]
    if undocumented:
        raise ValueError(f"column schema: no description for {undocumented}")
    return dg.TableSchema(
        columns=[dg.TableColumn(name, kind, description=descriptions[name]) for name, kind in types.items()]
    )


def arrow_column_types(table_schema: pa.Schema) -> dict[str, str]:
    """Column -> Arrow type name of a stored table (string for large_string: the same values to a reader)."""
    return {field.name: str(field.type).replace("large_string", "string") for field in table_schema}


_ARROW_NAME = {"str": "string", "object": "string", "datetime64[ns]": "timestamp[ns]", "Int64": "int64"}
_ARROW_NAME |= {"float64": "double"}


def contract_column_types(dtypes: Mapping[str, str], prefix: str = "") -> dict[str, str]:
    """Column -> the Arrow type it is stored as in the lake, from a contract's pandas dtypes; `prefix` names the table
    of a multi-table asset ("vitals." -> "vitals.value")."""
    return {prefix + name: _ARROW_NAME.get(dtype, dtype) for name, dtype in dtypes.items()}


def table_sizes(frames: Mapping[str, pd.DataFrame], **extra_columns: Mapping[str, int]) -> dg.MetadataValue:
    """Rows and columns of each table of a multi-table asset (counts only, never a value), plus `extra_columns`
    (name -> table -> count), as a typed table."""
    records = [
        dg.TableRecord(
            {"table": name, "rows": len(frame), "columns": frame.shape[1]}
            | {column: int(counts.get(name, 0)) for column, counts in extra_columns.items()}
        )
        for name, frame in frames.items()
    ]
    columns = [dg.TableColumn("table", "string"), dg.TableColumn("rows", "int"), dg.TableColumn("columns", "int")]
    columns += [dg.TableColumn(column, "int") for column in extra_columns]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))
