"""Column schemas shown in the UI: every contract column, its stored type and a description; none undocumented."""

import dagster as dg
import pandas as pd
import pytest

from rare_triage.defs.governance.columns import anonymized_column_schema, quarantine_column_schema
from rare_triage.defs.shared.table_metadata import column_schema, table_sizes
from rare_triage.lib import schema


def test_the_anonymized_schema_lists_every_contract_column_with_the_type_it_is_stored_as() -> None:
    declared = {column.name: column.type for column in anonymized_column_schema().columns}
    expected = [f"{table}.{column}" for table in schema.ANON_TABLES for column in schema.ANON_COLUMNS[table]]
    assert list(declared) == expected
    assert declared["encounters.age_years"] == "int64" and declared["vitals.value"] == "double"
    assert declared["symptoms.present"] == "bool" and declared["encounters.zip3"] == "string"
    assert all(column.description for column in anonymized_column_schema().columns)


def test_the_quarantine_schema_lists_its_columns() -> None:
    columns = quarantine_column_schema().columns
    assert [column.name for column in columns] == list(schema.QUARANTINE_COLUMNS)
    assert all(column.description for column in columns)


def test_a_column_without_a_description_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no description for \['b'\]"):
        column_schema({"a": "string", "b": "int64"}, {"a": "documented"})


def test_table_sizes_are_counts_only() -> None:
    frames = {"patients": pd.DataFrame({"email": ["x@example.org"]}), "empty": pd.DataFrame()}
    value = table_sizes(frames, rejected_rows={"patients": 2})
    assert isinstance(value, dg.TableMetadataValue)
    assert [record.data for record in value.records] == [
        {"table": "patients", "rows": 1, "columns": 1, "rejected_rows": 2},
        {"table": "empty", "rows": 0, "columns": 0, "rejected_rows": 0},
    ]
