"""Build the encounter features of a large day in chunks of encounters, so memory follows the chunk."""

import math
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rare_triage.lib import schema
from rare_triage.lib.features.build import build_encounter_features


def compact_phenotype_flags(table: pa.Table) -> pa.Table:
    """Phenotype flags (0, 1 or null) as float32, exact for these values, and every column copied into Arrow's
    own memory: a column exported by DuckDB keeps its whole record batch alive, float64 flags included."""
    columns = [
        pc.cast(column, pa.float32())
        if name.startswith(schema.PHENOTYPE_PREFIXES)
        else (pa.concat_arrays(column.chunks) if column.num_chunks else column)
        for name, column in zip(table.column_names, table.columns, strict=True)
    ]
    return pa.table(columns, names=table.column_names)


def build_features_in_chunks(
    anon: Mapping[str, pa.Table], *, encounters_per_chunk: int, **build_kwargs: Any
) -> pa.Table:
    """`build_encounter_features` as Arrow over consecutive chunks of encounters with their child rows.

    Same rows in the same order as one pass; the chunks are concatenated without copying. Phenotype flags are
    float32 (`compact_phenotype_flags`).
    """
    if encounters_per_chunk < 1:
        raise ValueError(f"encounters_per_chunk: {encounters_per_chunk} must be at least 1")
    encounters = anon[schema.ANON_ENCOUNTERS]
    n_chunks = max(1, math.ceil(encounters.num_rows / encounters_per_chunk))
    parts = []
    for index in range(n_chunks):
        chunk_encounters = encounters.slice(index * encounters_per_chunk, encounters_per_chunk)
        keys = chunk_encounters["encounter_key"].combine_chunks()
        chunk = {schema.ANON_ENCOUNTERS: chunk_encounters}
        for table in schema.ANON_CHILD_TABLES:
            chunk[table] = anon[table].filter(pc.is_in(anon[table]["encounter_key"], value_set=keys))
        parts.append(compact_phenotype_flags(build_encounter_features(chunk, as_arrow=True, **build_kwargs)))
    return pa.concat_tables(parts)
