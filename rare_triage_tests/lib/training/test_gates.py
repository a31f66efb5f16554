import math

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.training.gates import (
    GateResult,
    behaviour_gate,
    external_validation_gate,
    orphan_pr_auc_gate,
    orphan_recall_gate,
    recall_upper_bound,
    subgroup_recall_gate,
)


@pytest.mark.parametrize(("recall", "passed"), [(0.90, True), (0.8999, False), (math.nan, False)])
def test_orphan_recall_gate(recall: float, passed: bool) -> None:
    assert orphan_recall_gate({"orphan_recall": recall}, min_recall=0.90).passed is passed


@pytest.mark.parametrize(("pr_auc", "passed"), [(0.10, True), (0.0999, False)])
def test_pr_auc_gate_is_relative_to_prevalence(pr_auc: float, passed: bool) -> None:
    gate = orphan_pr_auc_gate({"orphan_pr_auc": pr_auc, "orphan_prevalence": 0.02}, min_multiple=5.0)
    assert gate.passed is passed and gate.metadata["required"] == pytest.approx(0.10)


def _subgroup_gate(table: pd.DataFrame) -> GateResult:
    """The gate at the thresholds of the issue."""
    return subgroup_recall_gate(table, min_recall=0.80, min_orphans=20, attributes=("age_band", "sex"))


def test_subgroup_gate_ignores_small_groups_and_centres() -> None:
    table = pd.DataFrame(
        {
            "attribute": ["sex", "sex", "age_band", "centre_id"],
            "group": ["F", "M", "0-9", "C01"],
            "n_orphan": [40, 19, 25, 50],
            "orphan_recall": [0.85, 0.10, 0.80, 0.10],
        }
    )
    gate = _subgroup_gate(table)
    assert gate.passed and gate.metadata["subgroups_judged"] == 2
    failing = _subgroup_gate(table.assign(orphan_recall=[0.79, 0.1, 0.9, 0.1]))
    assert not failing.passed and "sex=F" in failing.description


def test_subgroup_gate_on_the_interval_fails_only_subgroups_shown_below_the_floor() -> None:
    table = pd.DataFrame(
        {
            "attribute": ["age_band", "age_band", "age_band", "sex"],
            "group": ["40-49", "60-69", "70-79", "F"],
            "n_orphan": [21, 20, 60, 200],
            "orphan_recall": [16 / 21, 13 / 20, 0.70, 0.93],
        }
    )
    gate = subgroup_recall_gate(table, min_recall=0.80, min_orphans=20, attributes=("age_band", "sex"), confidence=0.95)
    # 16 of 21 (upper bound 0.879) is not shown below 0.80; 13 of 20 (0.798) and 42 of 60 (0.790) are
    assert not gate.passed and gate.metadata["subgroups_failing"] == 2
    assert "age_band=60-69 (0.650, upper bound 0.798, 20 orphans)" in gate.description
    assert "age_band=70-79" in gate.description.split("not shown")[0]
    assert "not shown below it: age_band=40-49 (0.762, upper bound 0.879" in gate.description
    passing = subgroup_recall_gate(table.iloc[[0, 3]], 0.80, 20, ("age_band", "sex"), confidence=0.95)
    assert passing.passed and passing.metadata["subgroups_below_not_shown"] == 1
    assert not subgroup_recall_gate(table.iloc[[0, 3]], 0.80, 20, ("age_band", "sex")).passed  # point estimate


def test_recall_upper_bound_mirrors_the_lower_bound() -> None:
    assert recall_upper_bound(np.array([16]), np.array([21]), 0.5)[0] == pytest.approx(16 / 21)
    upper = recall_upper_bound(np.array([20, 0]), np.array([20, 20]), 0.95)
    assert upper[0] == pytest.approx(1.0) and 0.0 < upper[1] < 0.15


def _point(share: float, rate: float = 0.05) -> dict[str, float]:
    return {"external_share_flagged": share, "test_non_orphan_flag_rate": rate, "threshold": 0.5}


def test_external_gate_judges_each_phenotype_only_operating_point() -> None:
    goals = [(0.05, 0.93), (0.02, 0.88)]
    passed = external_validation_gate([_point(0.93), _point(0.88, 0.02)], goals)
    assert passed.passed and passed.metadata["external_share_at_0.02"] == 0.88
    assert "0.9300 of real cases flagged at a 5% phenotype-only non-orphan flag rate" in passed.description
    assert not external_validation_gate([_point(0.95), _point(0.87, 0.02)], goals).passed
    assert not external_validation_gate([_point(0.92), _point(0.95, 0.02)], goals).passed
    assert not external_validation_gate([_point(float("nan")), _point(0.95, 0.02)], goals).passed


def test_external_gate_fails_on_a_missing_operating_point_and_refuses_mismatched_goals() -> None:
    missing = external_validation_gate([_point(0.99), None], [(0.05, 0.93), (0.02, 0.88)])
    assert (
        not missing.passed and "no phenotype-only operating point at a 2% non-orphan flag rate" in missing.description
    )
    with pytest.raises(ValueError, match="2 goal"):
        external_validation_gate([_point(0.99)], [(0.05, 0.93), (0.02, 0.88)])


def test_behaviour_gate_names_failing_tests() -> None:
    report = {
        "patient_key_invariance": {"passed": True},
        "red_flag_monotonicity": {"passed": False, "mean_delta": -0.1, "share_rows_decreased": 0.6},
        "missing_vitals": {"passed": True},
        "passed": False,
    }
    gate = behaviour_gate(report)
    assert not gate.passed and "red_flag_monotonicity" in gate.description
