"""Checks of the encounter features, evaluated in the materializing step on the rows it just built (SQL over Arrow)."""

import dagster as dg
import duckdb
import pyarrow as pa

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
            "n_systems_involved equal to the systems present, phenotype specificity counts and information content "
            "consistent."
        ),
    ),
    dg.AssetCheckSpec(
        ORPHAN_PREVALENCE,
        asset=c.ENCOUNTER_FEATURES,
        description=f"Warns when orphan-labelled encounters exceed {MAX_ORPHAN_SHARE:.0%} (realistic prevalence).",
    ),
]


def _count(con: duckdb.DuckDBPyConnection, where: str) -> int:
    return int(con.execute(f"select count(*) from features where {where}").fetchall()[0][0])


def features_problems(features: pa.Table, vocabulary_ids: list[str], system_ids: list[str]) -> list[str]:
    """Contract violations of one features partition."""
    expected = features_table_columns(vocabulary_ids, system_ids)
    if features.column_names != expected:
        missing = [col for col in expected if col not in features.column_names]
        extra = [col for col in features.column_names if col not in expected]
        return [f"columns: missing {missing}, extra {extra} (or out of order)"]
    problems = []
    systems = system_feature_columns(system_ids)
    phenotype = vocabulary_feature_columns(vocabulary_ids) + systems
    labels = ", ".join(f"'{label}'" for label in schema.LABELS)
    with duckdb.connect() as con:
        con.register("features", features)
        duplicates = features.num_rows - int(
            con.execute("select count(distinct encounter_key) from features").fetchall()[0][0]
        )
        if duplicates:
            problems.append(f"encounter_key: {duplicates} duplicates or nulls")
        bad_labels = _count(con, f"label is null or label not in ({labels})")
        if bad_labels:
            problems.append(f"label: {bad_labels} rows with an unknown or null label")
        outside = [col for col in phenotype if _count(con, f'"{col}" is not null and "{col}" not in (0, 1)')]
        if outside:
            problems.append(f"phenotype columns outside {{0, 1, null}}: {outside}")
        present = " + ".join(f'coalesce("{col}" = 1, false)::int' for col in systems)
        if _count(con, f"n_systems_involved is distinct from ({present})"):
            problems.append("n_systems_involved: differs from the number of system columns equal to 1")
        if _count(con, "n_specific_terms > n_present_terms or (n_systems_involved > 0 and n_present_terms = 0)"):
            problems.append("n_present_terms: below n_specific_terms, or 0 where a system is involved")
        if _count(con, "phenotype_ic_max < 0 or phenotype_ic_sum < phenotype_ic_max or n_present_terms < 0"):
            problems.append("phenotype_ic_max / phenotype_ic_sum: negative, or the sum below the max")
    return problems


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
