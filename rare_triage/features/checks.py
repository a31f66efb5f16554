"""Checks of the encounter features, evaluated in the materializing step on the rows it just built."""

import dagster as dg
import numpy as np
import pandas as pd

from rare_triage import constants as c
from rare_triage.lib import schema
from rare_triage.lib.features import features_table_columns, system_feature_columns, vocabulary_feature_columns

FEATURES_SCHEMA = "features_schema"
ORPHAN_PREVALENCE = "orphan_prevalence"
MAX_ORPHAN_SHARE = 0.02

FEATURE_CHECK_SPECS = [
    dg.AssetCheckSpec(
        FEATURES_SCHEMA,
        asset=c.ENCOUNTER_FEATURES,
        blocking=True,
        description=(
            "Columns in contract order, one row per encounter, labels known, phenotype columns in {0, 1, null}, "
            "n_systems_involved equal to the systems present."
        ),
    ),
    dg.AssetCheckSpec(
        ORPHAN_PREVALENCE,
        asset=c.ENCOUNTER_FEATURES,
        description=f"Warns when orphan-labelled encounters exceed {MAX_ORPHAN_SHARE:.0%} (realistic prevalence).",
    ),
]


def features_problems(features: pd.DataFrame, vocabulary_ids: list[str], system_ids: list[str]) -> list[str]:
    """Contract violations of one features partition."""
    problems = []
    expected = features_table_columns(vocabulary_ids, system_ids)
    if list(features.columns) != expected:
        missing = [col for col in expected if col not in features.columns]
        extra = [col for col in features.columns if col not in expected]
        problems.append(f"columns: missing {missing}, extra {extra} (or out of order)")
        return problems
    if features["encounter_key"].duplicated().any():
        problems.append(f"encounter_key: {int(features['encounter_key'].duplicated().sum())} duplicates")
    unknown = sorted(set(features[schema.LABEL_COLUMN].dropna()) - set(schema.LABELS))
    if unknown or features[schema.LABEL_COLUMN].isna().any():
        problems.append(f"label: unknown values {unknown} or nulls")
    phenotype = features[vocabulary_feature_columns(vocabulary_ids) + system_feature_columns(system_ids)]
    bad = ~(phenotype.isna() | phenotype.isin([0, 1]))
    if bad.to_numpy().any():
        problems.append(f"phenotype columns outside {{0, 1, null}}: {list(phenotype.columns[bad.any()])}")
    systems_present = (features[system_feature_columns(system_ids)] == 1).sum(axis=1)
    if not np.array_equal(systems_present.to_numpy(), features["n_systems_involved"].to_numpy()):
        problems.append("n_systems_involved: differs from the number of system columns equal to 1")
    return problems


def feature_check_results(
    features: pd.DataFrame, vocabulary_ids: list[str], system_ids: list[str]
) -> list[dg.AssetCheckResult]:
    """Every features check on the step's own output."""
    problems = features_problems(features, vocabulary_ids, system_ids)
    orphan_share = float((features[schema.LABEL_COLUMN] == schema.ORPHAN_LABEL).mean()) if len(features) else 0.0
    return [
        dg.AssetCheckResult(
            check_name=FEATURES_SCHEMA, passed=not problems, metadata={"problems": dg.MetadataValue.json(problems)}
        ),
        dg.AssetCheckResult(
            check_name=ORPHAN_PREVALENCE,
            passed=orphan_share <= MAX_ORPHAN_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"orphan_share": round(orphan_share, 5)},
        ),
    ]
