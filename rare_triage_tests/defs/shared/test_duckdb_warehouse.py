"""The warehouse IO manager appends Arrow partitions and refuses rows of another column contract."""

from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from rare_triage.defs.shared.io_managers.duckdb_warehouse import DuckDBWarehouseIOManager

DAYS = dg.StaticPartitionsDefinition(["2025-03-01", "2025-03-02"])


def _asset(columns: dict[str, list[object]]) -> dg.AssetsDefinition:
    @dg.asset(name="features", partitions_def=DAYS, metadata={"partition_expr": "partition_day"})
    def features(context: dg.AssetExecutionContext) -> pa.Table:
        return pa.table({"partition_day": [context.partition_key] * 2, **columns})

    return features


def _materialize(asset: dg.AssetsDefinition, database: Path, day: str) -> None:
    manager = DuckDBWarehouseIOManager(database=str(database), schema="features")
    result = dg.materialize([asset], resources={"io_manager": manager}, partition_key=day)
    assert result.success


def test_partitions_of_the_same_contract_append(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    for day in ("2025-03-01", "2025-03-02"):
        _materialize(_asset({"a": [1.0, 2.0]}), database, day)
    with duckdb.connect(str(database)) as con:
        assert con.execute("select count(*) from features.features").fetchone() == (4,)


def test_rows_of_another_column_contract_are_refused_naming_the_columns(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    _materialize(_asset({"a": [1.0, 2.0]}), database, "2025-03-01")
    newer = _asset({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    with pytest.raises(
        ValueError,
        match=r"features\.features: the stored table has another column contract "
        r"\(new columns \['b'\]",
    ):
        dg.materialize(
            [newer],
            resources={"io_manager": DuckDBWarehouseIOManager(database=str(database), schema="features")},
            partition_key="2025-03-02",
        )
    # dagster-duckdb's connect() does not close its connection when the step raises; until it is collected, only a
    # connection with the same configuration (its user agent) may open the file
    with duckdb.connect(str(database), config={"custom_user_agent": "dagster"}) as con:
        assert con.execute("select count(*) from features.features").fetchone() == (2,)


def test_an_empty_first_partition_creates_the_table_with_its_columns(tmp_path: Path) -> None:
    @dg.asset(name="features", partitions_def=DAYS, metadata={"partition_expr": "partition_day"})
    def empty_day() -> pa.Table:
        return pa.table({"partition_day": pa.array([], pa.string()), "a": pa.array([], pa.float64())})

    database = tmp_path / "warehouse.duckdb"
    _materialize(empty_day, database, "2025-03-01")  # a day without rows: readers can still query the table
    with duckdb.connect(str(database)) as con:
        assert con.execute("select count(*) from features.features").fetchone() == (0,)
        assert [row[0] for row in con.execute("describe features.features").fetchall()] == ["partition_day", "a"]
    _materialize(_asset({"a": [1.0, 2.0]}), database, "2025-03-02")
    with duckdb.connect(str(database)) as con:
        assert con.execute("select count(*) from features.features").fetchone() == (2,)
