import math

import pandas as pd

from rare_triage.lib.training.ablation import ABLATION_COLUMNS, run_ablation, shortcut_warning
from rare_triage.lib.training.candidates import CandidateSpec
from rare_triage.lib.training.thresholds import DEFAULT_TARGET_RECALL
from rare_triage_tests.lib.training.conftest import SMALL_PARAMS, Windows


def test_ablation_reports_each_feature_set(windows: Windows) -> None:
    sets = ("all", "vocabulary_age_sex", "duration_visits_only")
    table = run_ablation(
        CandidateSpec("logistic_regression", "class_weight"),
        SMALL_PARAMS,
        train=windows.train,
        validation=windows.validation,
        test=windows.test,
        external=windows.test.iloc[:50],
        feature_sets=sets,
        target_recall=DEFAULT_TARGET_RECALL,
        max_rows=3000,
    )
    assert list(table.columns) == list(ABLATION_COLUMNS)
    assert table["feature_set"].tolist() == list(sets)
    assert table.set_index("feature_set").loc["duration_visits_only", "n_features"] == 2
    assert table["validation_orphan_pr_auc"].between(0, 1).all()
    full, shortcut = table.set_index("feature_set").loc[["all", "duration_visits_only"], "validation_orphan_pr_auc"]
    assert full > shortcut  # the fixture's orphan class lives in the phenotypes, not in duration and visits
    assert not math.isnan(table["external_share_flagged"].iloc[0])


def test_shortcut_warning_only_when_shortcuts_alone_suffice() -> None:
    table = pd.DataFrame({"feature_set": ["duration_visits_only"], "validation_non_orphan_flag_rate": [0.03]})
    assert "shortcuts" in (shortcut_warning(table) or "")
    assert shortcut_warning(table.assign(validation_non_orphan_flag_rate=[0.4])) is None
    assert shortcut_warning(pd.DataFrame({"feature_set": ["all"], "validation_non_orphan_flag_rate": [0.0]})) is None
