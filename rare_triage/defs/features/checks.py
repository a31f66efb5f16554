"""Checks of the encounter features, evaluated in the materializing step on the rows it just built (SQL over Arrow)."""

import dagster as dg
import pyarrow as pa

from rare_triage.defs.shared import keys as c
from rare_triage.lib.features.quality import features_problems

FEATURES_SCHEMA = "features_schema"
ORPHAN_PREVALENCE = "orphan_prevalence"
# 3.5-5.9% of people live with a rare disease (Nguengang Wakap et al., Eur J Hum Genet 2020); a larger share of
# encounters labelled orphan points at a labelling fault
MAX_ORPHAN_SHARE = 0.05

FEATURE_CHECK_SPECS = [
    dg.AssetCheckSpec(
        FEATURES_SCHEMA,
        asset=c.ENCOUNTER_FEATURES,
        blocking=True,
        description=(
            "Columns in contract order, one row per encounter, labels known, phenotype columns in {0, 1, null}, "
            "n_systems_involved equal to the systems present, phenotype specificity counts and information content "
            "consistent."
        ),
        partitions_def=c.DAILY_PARTITIONS,
    ),
    dg.AssetCheckSpec(
        ORPHAN_PREVALENCE,
        asset=c.ENCOUNTER_FEATURES,
        description=f"Warns when orphan-labelled encounters exceed {MAX_ORPHAN_SHARE:.0%} (realistic prevalence).",
        partitions_def=c.DAILY_PARTITIONS,
    ),
]


def feature_check_results(
    features: pa.Table, vocabulary_ids: list[str], system_ids: list[str], orphan_share: float
) -> list[dg.AssetCheckResult]:
    """Every features check on the step's own output."""
    problems = features_problems(features, vocabulary_ids, system_ids)
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
