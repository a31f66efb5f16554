"""Quality of a features partition, as SQL over Arrow: contract violations and the summary shown with the asset."""

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from rare_triage.lib import schema
from rare_triage.lib.features.build import features_table_columns, system_feature_columns, vocabulary_feature_columns


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


@dataclass(frozen=True)
class FeatureSummary:
    """What a data person reads first of a features partition."""

    label_shares: dict[str, float]
    median_systems_by_label: dict[str, float]
    share_without_vocabulary_term: float


def feature_summary(features: pa.Table, vocabulary_ids: list[str]) -> FeatureSummary:
    """Label shares, share of encounters without any vocabulary term, median systems by label (SQL over Arrow)."""
    any_term = " or ".join(f'"{schema.hpo_feature_name(h)}" = 1' for h in vocabulary_ids)
    with duckdb.connect() as con:
        con.register("features", features)
        rows = con.execute(
            "select label, count(*), median(n_systems_involved) from features group by label order by label"
        ).fetchall()
        without_term = con.execute(f"select avg(case when {any_term} then 0 else 1 end) from features").fetchall()
    total = max(features.num_rows, 1)
    counts = {label: n for label, n, _ in rows}
    return FeatureSummary(
        label_shares={label: round(counts.get(label, 0) / total, 5) for label in schema.LABELS},
        median_systems_by_label={label: float(median) for label, _, median in rows},
        share_without_vocabulary_term=round(float(without_term[0][0] or 0.0), 4),
    )
