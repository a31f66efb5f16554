"""The rows `prediction_logs` stores: each parsed record with the platform's encoding of its request, as Arrow.

Built a chunk of records at a time (the feature SQL's working set grows with its input) and kept as Arrow, whose
columns are compact, rather than one pandas frame merged at the end (5.5 GB at its peak for a million records).
"""

import pandas as pd
import pyarrow as pa

from rare_triage.lib import schema
from rare_triage.lib.monitoring.logged_encounters import logged_feature_rows
from rare_triage.lib.reference.ontology import ReferenceTables

DAY_COLUMN = "log_day"
CHUNK = 100_000
# the features table's keys and label: a record keeps its own patient key and day, and a request has no diagnosis
_NOT_STORED = ("patient_key", "partition_day", schema.LABEL_COLUMN)


def prediction_rows(records: pd.DataFrame, reference: ReferenceTables, *, day: str, chunk: int = CHUNK) -> pa.Table:
    """`day`, then the columns of `records` (parsed log records), then the features of each record's request
    (`logged_feature_rows`), one row per record in record order."""
    if chunk < 1:
        raise ValueError(f"chunk: must be >= 1, got {chunk}")
    tables = []
    for start in range(0, max(len(records), 1), chunk):
        part = records.iloc[start : start + chunk]
        features = logged_feature_rows(part, reference).drop(columns=list(_NOT_STORED))
        rows = part.merge(features, on="request_id", how="left", validate="one_to_one")
        rows.insert(0, DAY_COLUMN, day)
        tables.append(pa.Table.from_pandas(rows, preserve_index=False))
    return pa.concat_tables(tables, promote_options="permissive")
