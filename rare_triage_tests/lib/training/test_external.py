import numpy as np
import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.reference.loaders import load_phenopackets
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.training.columns import VITAL_COLUMNS
from rare_triage.lib.training.external import external_features, external_report, operating_points
from rare_triage.lib.training.thresholds import ThresholdPolicy
from rare_triage.lib.training.train import TrainingOutcome
from rare_triage_tests.lib.training.conftest import Windows


@pytest.fixture(scope="module")
def encoded(reference_tables: ReferenceTables) -> pd.DataFrame:
    cases = load_phenopackets().head(120)
    return external_features(cases, reference_tables)


def test_real_cases_go_through_the_feature_sql_with_nothing_but_phenotypes(encoded: pd.DataFrame) -> None:
    assert len(encoded) == 120
    assert (encoded[schema.LABEL_COLUMN] == schema.ORPHAN_LABEL).all()
    assert encoded[list(VITAL_COLUMNS)].isna().all().all()
    assert encoded[["symptom_duration_days", "prior_visits_365d"]].isna().all().all()
    systems = [c for c in encoded.columns if c.startswith("sys_")]
    assert (encoded[systems].fillna(0).sum(axis=1) >= 1).mean() > 0.95
    assert encoded["cohort"].notna().all()


def test_report_shares_overall_and_per_cohort() -> None:
    features = pd.DataFrame({"cohort": ["A", "A", "B", "B"], "hpo_0001945": [1.0, np.nan, 0.0, 1.0]})
    proba = np.zeros((4, 5))
    proba[:, 4] = [0.9, 0.3, 0.1, 0.6]
    proba[:, 0] = 1 - proba[:, 4]
    overall, per_cohort = external_report(features, proba, ThresholdPolicy(0.5, 0.2, 0.95, 0.99))
    assert overall["share_flagged"] == 0.5
    assert overall["share_flagged_or_review"] == 0.75
    assert overall["share_without_vocabulary_term"] == 0.5
    assert per_cohort.set_index("cohort")["share_flagged"].to_dict() == {"A": 0.5, "B": 0.5}


def test_missing_case_columns_are_named(reference_tables: ReferenceTables) -> None:
    with pytest.raises(ValueError, match="cases: missing column"):
        external_features(pd.DataFrame({"id": ["x"]}), reference_tables)


def test_operating_points_hold_the_non_orphan_flag_rate_set_on_validation(
    trained: TrainingOutcome, windows: Windows
) -> None:
    points = operating_points(
        trained.pipeline,
        trained.feature_columns,
        validation=windows.validation,
        test=windows.test,
        external=windows.test[windows.test["label"] == "orphan"],
    )
    assert points["target_non_orphan_flag_rate"].tolist() == [0.05, 0.02]
    assert points["threshold"].is_monotonic_increasing
    assert (points["test_non_orphan_flag_rate"] - points["target_non_orphan_flag_rate"]).abs().max() < 0.03
    # on the test orphans themselves the external share is the test recall
    np.testing.assert_allclose(points["external_share_flagged"], points["test_orphan_recall"])
