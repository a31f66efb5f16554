"""DuckDB IO manager of the warehouse: pandas DataFrames and pyarrow Tables, stored the same way."""

from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBIOManager
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasTypeHandler


class DuckDBArrowTypeHandler(DbTypeHandler[pa.Table]):
    """Stores a pyarrow Table in DuckDB by a zero-copy scan (no pandas copy of large partitions)."""

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pa.Table, connection: Any) -> None:
        target = f"{table_slice.schema}.{table_slice.table}"
        # An empty partition still creates the table with its columns (a day without predictions is a day readers
        # can query); only a table without columns has nothing to store.
        if obj.num_columns:
            connection.register("rt_arrow_output", obj)
            try:
                connection.execute(f"create table if not exists {target} as select * from rt_arrow_output limit 0")
                _require_same_columns(connection, target, obj.column_names)
                if obj.num_rows:
                    connection.execute(f"insert into {target} select * from rt_arrow_output")
            finally:
                connection.unregister("rt_arrow_output")
        else:
            context.log.warning("Skipping DuckDB write for a table without columns.")
        row_count = TableMetadataSet(
            **({"partition_row_count": obj.num_rows} if context.has_partition_key else {"row_count": obj.num_rows}),
            storage_kind="duckdb",
        )
        context.add_output_metadata(dict(row_count))

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection: Any) -> pa.Table:
        if table_slice.partition_dimensions and len(context.asset_partition_keys) == 0:
            return pa.table({})
        return connection.execute(DuckDbClient.get_select_statement(table_slice)).to_arrow_table()

    @property
    def supported_types(self) -> Sequence[type]:
        return [pa.Table]


def _require_same_columns(connection: Any, target: str, columns: Sequence[str]) -> None:
    """Refuse to append rows of another column contract (a table written by an older version of the code)."""
    stored = [row[0] for row in connection.execute(f"describe {target}").fetchall()]
    if stored != list(columns):
        missing = [c for c in columns if c not in stored]
        extra = [c for c in stored if c not in columns]
        raise ValueError(
            f"{target}: the stored table has another column contract (new columns {missing}, columns no longer "
            f"produced {extra}, or another order); it was written by another version of the features. "
            f"Re-materialize every partition into a new warehouse (or drop the table) before adding partitions."
        )


class DuckDBWarehouseIOManager(DuckDBIOManager):
    """The features warehouse: a DuckDB file; outputs may be pandas DataFrames or pyarrow Tables."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [DuckDBPandasTypeHandler(), DuckDBArrowTypeHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pd.DataFrame
