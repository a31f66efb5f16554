"""Model-ready encounter features, one row per encounter, built with DuckDB SQL over the anonymized tables."""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from rare_triage import constants as c
from rare_triage.features.checks import FEATURE_CHECK_SPECS, feature_check_results
from rare_triage.lib import schema
from rare_triage.lib.features import build_encounter_features
from rare_triage.lib.reference import icd10_acuity
from rare_triage.reference.assets import reference_from_frames

FEATURES_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=dt.timedelta(hours=50), warn_window=dt.timedelta(hours=28)
)
PARTITION_EXPR = "CAST(partition_day AS TIMESTAMP)"


def label_shares(features: pd.DataFrame) -> dict[str, float]:
    """Share of each label, every label listed (0.0 when absent)."""
    counts = features[schema.LABEL_COLUMN].value_counts()
    total = max(len(features), 1)
    return {label: round(float(counts.get(label, 0)) / total, 5) for label in schema.LABELS}


@dg.asset(
    key=c.ENCOUNTER_FEATURES,
    group_name=c.GROUP_FEATURES,
    partitions_def=c.DAILY_PARTITIONS,
    io_manager_key=c.DUCKDB_IO_MANAGER,
    ins={
        "anonymized": dg.AssetIn(c.ANONYMIZED_ENCOUNTERS),
        "reference": dg.AssetIn(c.HPO_REFERENCE_TABLES),
    },
    metadata={"partition_expr": PARTITION_EXPR},
    pool=c.DUCKDB_POOL,
    kinds={"duckdb", "sql"},
    freshness_policy=FEATURES_FRESHNESS,
    check_specs=FEATURE_CHECK_SPECS,
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    description=(
        "One row per encounter: vitals, fever and pain scores, symptom duration, comorbidity count, visit history, "
        "consultation type, age band, sex, centre/region, present/absent/unknown for each vocabulary HPO term "
        "(specific terms roll up to vocabulary ancestors), the organ-system groups under HP:0000118, the number "
        "of systems involved, and the label from the diagnoses."
    ),
)
def encounter_features(
    context: dg.AssetExecutionContext, anonymized: dict[str, pd.DataFrame], reference: dict[str, pd.DataFrame]
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    ref = reference_from_frames(reference)
    vocabulary_ids = ref.vocabulary["hpo_id"].tolist()
    system_ids = ref.systems["system_id"].tolist()
    features = build_encounter_features(
        anonymized,
        term_rollup=ref.term_rollup,
        term_system=ref.term_system,
        vocab_ancestors=ref.vocab_ancestors,
        vocabulary_ids=vocabulary_ids,
        system_ids=system_ids,
        icd10_acuity=icd10_acuity(),
    )
    encounters_in = len(anonymized[schema.ANON_ENCOUNTERS])
    if len(features) != encounters_in:
        raise ValueError(f"encounter_features: {len(features)} rows for {encounters_in} anonymized encounters")
    vocab_cols = [schema.hpo_feature_name(h) for h in vocabulary_ids]
    no_vocab_term = float((features[vocab_cols].fillna(0).sum(axis=1) == 0).mean()) if len(features) else 0.0
    systems_by_label = features.groupby(schema.LABEL_COLUMN)["n_systems_involved"].median().round(2).to_dict()
    context.log.info("features for %s: %d encounters", context.partition_key, len(features))
    yield dg.Output(
        features,
        metadata={
            "encounters": len(features),
            "columns": len(features.columns),
            "label_shares": dg.MetadataValue.json(label_shares(features)),
            "share_without_vocabulary_term": round(no_vocab_term, 4),
            "median_systems_by_label": dg.MetadataValue.json({k: float(v) for k, v in systems_by_label.items()}),
            "dagster/row_count": len(features),
        },
    )
    yield from feature_check_results(features, vocabulary_ids, system_ids)
