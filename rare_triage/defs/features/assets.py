"""Model-ready encounter features, one row per encounter, built with DuckDB SQL over the anonymized tables."""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa

from rare_triage.defs.features.checks import FEATURE_CHECK_SPECS, feature_check_results
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.automation import FOLLOWS_UPSTREAM
from rare_triage.defs.shared.table_metadata import arrow_column_types, column_schema
from rare_triage.lib import schema
from rare_triage.lib.features.chunks import build_features_in_chunks
from rare_triage.lib.features.column_docs import feature_column_descriptions
from rare_triage.lib.features.quality import feature_summary
from rare_triage.lib.paths import rare_triage_home
from rare_triage.lib.reference.frames import reference_from_frames
from rare_triage.lib.reference.loaders import icd10_acuity_lookup

FEATURES_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=50), warn_window=dt.timedelta(hours=28)
)
PARTITION_EXPR = "CAST(partition_day AS TIMESTAMP)"


class FeaturesConfig(dg.Config):
    """Large days are built in chunks of about this many encounters, to bound memory."""

    encounters_per_chunk: int = 100_000
    duckdb_memory_limit: str = "1GB"


def features_column_schema(table_schema: pa.Schema, vocabulary: pd.DataFrame, systems: pd.DataFrame) -> dg.TableSchema:
    """Every column of the stored table with its Arrow type and meaning (a vocabulary term or organ system by its
    HPO id and label)."""
    descriptions = feature_column_descriptions(
        vocabulary[["hpo_id", "label", "system"]].itertuples(index=False, name=None),
        systems[["system_id", "label"]].itertuples(index=False, name=None),
    )
    return column_schema(arrow_column_types(table_schema), descriptions)


@dg.asset(
    key=c.ENCOUNTER_FEATURES,
    group_name=c.GROUP_FEATURES,
    partitions_def=c.DAILY_PARTITIONS,
    io_manager_key=c.DUCKDB_IO_MANAGER,
    ins={
        "anonymized": dg.AssetIn(c.ANONYMIZED_ENCOUNTERS, input_manager_key=c.PARQUET_ARROW_INPUT),
        "reference": dg.AssetIn(c.HPO_REFERENCE_TABLES),
    },
    metadata={"partition_expr": PARTITION_EXPR},
    pool=c.DUCKDB_POOL,
    kinds={"duckdb", "sql"},
    freshness_policy=FEATURES_FRESHNESS,
    check_specs=FEATURE_CHECK_SPECS,
    automation_condition=FOLLOWS_UPSTREAM,
    description=(
        "One row per encounter: vitals, fever and pain scores, symptom duration, comorbidity count, visit history, "
        "consultation type, age band, sex, centre/region, present/absent/unknown for each vocabulary HPO term "
        "(specific terms roll up to vocabulary ancestors), the organ-system groups under HP:0000118, the number "
        "of systems involved, and the label from the diagnoses. " + c.PARTITIONS_NOTE
    ),
)
def encounter_features(
    context: dg.AssetExecutionContext,
    config: FeaturesConfig,
    anonymized: dict[str, pa.Table],
    reference: dict[str, pd.DataFrame],
) -> Iterator[dg.Output[pa.Table] | dg.AssetCheckResult]:
    ref = reference_from_frames(reference)
    vocabulary_ids = ref.vocabulary["hpo_id"].tolist()
    system_ids = ref.systems["system_id"].tolist()
    spill = rare_triage_home() / "duckdb_tmp"  # DuckDB spills to ./.tmp of the working directory otherwise
    duckdb_config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": config.duckdb_memory_limit,
        "temp_directory": str(spill),
    }
    with duckdb.connect(config=duckdb_config) as connection:
        features = build_features_in_chunks(
            anonymized,
            encounters_per_chunk=config.encounters_per_chunk,
            connection=connection,
            icd10_acuity=icd10_acuity_lookup(),
            **ref.feature_encoding(),
        )
    encounters_in = anonymized[schema.ANON_ENCOUNTERS].num_rows
    anonymized.clear()  # the inputs are no longer needed: free them before the checks and the write
    if features.num_rows != encounters_in:
        raise ValueError(f"encounter_features: {features.num_rows} rows for {encounters_in} anonymized encounters")
    summary = feature_summary(features, vocabulary_ids)
    context.log.info("features for %s: %d encounters", context.partition_key, features.num_rows)
    yield dg.Output(
        features,
        metadata={
            "encounters": features.num_rows,
            "columns": features.num_columns,
            "label_shares": dg.MetadataValue.json(summary.label_shares),
            "share_without_vocabulary_term": summary.share_without_vocabulary_term,
            "median_systems_by_label": dg.MetadataValue.json(summary.median_systems_by_label),
            "dagster/row_count": features.num_rows,
            "dagster/column_schema": features_column_schema(features.schema, ref.vocabulary, ref.systems),
        },
    )
    orphan_share = summary.label_shares[schema.ORPHAN_LABEL]
    yield from feature_check_results(features, vocabulary_ids, system_ids, orphan_share)
