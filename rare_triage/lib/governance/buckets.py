"""Split a large raw extract into patient buckets so that governance runs in bounded memory.

A bucket holds whole patients: their patient rows, all their encounters and every child row of those encounters, so
validation (duplicates, references, ages) sees everything it compares. Rows sharing a duplicated encounter id go to
one bucket, so duplicates are still caught; child rows whose encounter is unknown go to bucket 0, where validation
quarantines them as such. k-anonymity is then enforced within each bucket, which can only generalise more than over
the whole partition (a class of the union is never smaller than its part in a bucket).
"""

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rare_triage.lib import schema


def _bucket_of_keys(keys: pa.ChunkedArray | pa.Array, n_buckets: int) -> np.ndarray:
    """Stable bucket of each key (missing keys: bucket 0)."""
    values = pd.Series(keys.to_pandas(), dtype=object).fillna("")
    hashed = pd.util.hash_pandas_object(values.astype(str), index=False).to_numpy()
    return (hashed % np.uint64(n_buckets)).astype(np.int64)


def _codes(values: pa.ChunkedArray, value_set: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Position of each value in `value_set`, and whether it was found (missing or unknown: not found)."""
    index = pc.index_in(values, value_set=value_set).to_numpy(zero_copy_only=False)
    found = ~pd.isna(index)
    codes = np.zeros(len(index), dtype=np.int64)
    codes[found] = index[found].astype(np.int64)
    return codes, found


def bucket_assignments(raw: Mapping[str, pa.Table], n_buckets: int) -> dict[str, np.ndarray]:
    """Bucket number of every row of every raw table."""
    encounters = raw[schema.RAW_ENCOUNTERS]
    buckets = {schema.RAW_PATIENTS: _bucket_of_keys(raw[schema.RAW_PATIENTS]["patient_id"], n_buckets)}
    by_patient = _bucket_of_keys(encounters["patient_id"], n_buckets)
    encounter_ids = pc.drop_null(encounters["encounter_id"].unique())
    codes, found = _codes(encounters["encounter_id"], encounter_ids)
    # all rows of one encounter id (duplicates included) follow the bucket of its first row
    first_row = np.zeros(len(encounter_ids), dtype=np.int64)
    unique_codes, first_position = np.unique(codes[found], return_index=True)
    first_row[unique_codes] = np.flatnonzero(found)[first_position]
    bucket_of_id = by_patient[first_row] if len(encounter_ids) else np.zeros(0, dtype=np.int64)
    buckets[schema.RAW_ENCOUNTERS] = np.where(found, bucket_of_id[codes] if len(encounter_ids) else 0, by_patient)
    for table in schema.RAW_CHILD_TABLES:
        child_codes, child_found = _codes(raw[table]["encounter_id"], encounter_ids)
        child_bucket = np.zeros(len(child_codes), dtype=np.int64)
        child_bucket[child_found] = bucket_of_id[child_codes[child_found]]
        buckets[table] = child_bucket
    return buckets


def iter_buckets(raw: Mapping[str, pa.Table], n_buckets: int) -> Iterator[dict[str, pd.DataFrame]]:
    """The raw extract as `n_buckets` pandas extracts of whole patients, one at a time."""
    for bucket, _ in iter_buckets_with_rows(raw, n_buckets):
        yield bucket


def iter_buckets_with_rows(
    raw: Mapping[str, pa.Table], n_buckets: int
) -> Iterator[tuple[dict[str, pd.DataFrame], dict[str, np.ndarray]]]:
    """Each bucket with, per table, the row numbers its rows have in the whole raw table."""
    # the smallest integer type that holds a bucket number: the assignments stay alive while every bucket is governed
    compact = np.min_scalar_type(n_buckets - 1)
    assignments = {table: rows.astype(compact) for table, rows in bucket_assignments(raw, n_buckets).items()}
    for bucket in range(n_buckets):
        rows = {table: np.flatnonzero(assignments[table] == bucket) for table in schema.RAW_TABLES}
        tables = {table: raw[table].take(pa.array(rows[table])).to_pandas() for table in schema.RAW_TABLES}
        yield tables, rows
