import numpy as np
import pytest

from rare_triage.lib.training.candidates import CandidateSpec
from rare_triage.lib.training.columns import feature_roles, feature_set_columns, label_codes, model_inputs
from rare_triage.lib.training.cross_validation import (
    CandidateResult,
    choose_candidate,
    cross_validate_candidate,
    stratified_sample,
)
from rare_triage_tests.lib.training.conftest import SMALL_PARAMS, Windows


def _result(name: str, flag_rate: float, pr_auc: float) -> CandidateResult:
    return CandidateResult(CandidateSpec.parse(name), pr_auc, 0.9, 0.5, flag_rate, 1.0, 0.1, 1000.0, np.zeros((1, 5)))


def test_stratified_sample_keeps_every_class_and_its_share() -> None:
    y = np.array([0] * 9000 + [4] * 200 + [1] * 800)
    rows = stratified_sample(y, 1000, seed=1)
    assert len(rows) == pytest.approx(1000, abs=3)
    assert np.bincount(y[rows])[4] == 20
    assert len(stratified_sample(y, 0)) == len(y)


def test_out_of_fold_scores_cover_every_row(windows: Windows) -> None:
    frame = windows.train.iloc[:2500]
    columns = feature_set_columns("vocabulary_systems_age_sex", list(frame.columns))
    y = label_codes(frame["label"])
    result = cross_validate_candidate(
        CandidateSpec("logistic_regression", "class_weight"),
        model_inputs(frame, columns),
        y,
        feature_roles(columns),
        SMALL_PARAMS,
        n_splits=2,
    )
    assert result.oof_proba.shape == (len(y), 5)
    np.testing.assert_allclose(result.oof_proba.sum(axis=1), 1.0, atol=1e-6)
    assert 0.0 <= result.flag_rate_at_target_recall <= 1.0
    assert result.orphan_roc_auc > 0.7
    assert result.row()["candidate"] == "logistic_regression+class_weight"


def test_more_folds_than_orphans_is_explained(windows: Windows) -> None:
    frame = windows.train.iloc[:300]
    columns = ["age_years"]
    y = label_codes(frame["label"])
    with pytest.raises(ValueError, match="cv_folds"):
        cross_validate_candidate(
            CandidateSpec("logistic_regression", "none"),
            model_inputs(frame, columns),
            y,
            feature_roles(columns),
            SMALL_PARAMS,
            n_splits=int(np.bincount(y).min()) + 1,
        )


def test_choice_is_the_best_servable_by_flag_rate_and_says_why() -> None:
    results = [
        _result("logistic_regression+class_weight", 0.08, 0.50),
        _result("xgboost+class_weight", 0.05, 0.60),
        _result("xgboost+class_weight+two_stage", 0.03, 0.70),
    ]
    best, reason = choose_candidate(results, target_recall=0.95)
    assert best.spec.name == "xgboost+class_weight"
    assert "cannot be exported to ONNX" in reason and "next logistic_regression+class_weight" in reason


def test_choice_by_pr_auc_and_ties() -> None:
    results = [_result("logistic_regression+class_weight", 0.05, 0.7), _result("random_forest+smote", 0.05, 0.6)]
    assert choose_candidate(results)[0].spec.name == "logistic_regression+class_weight"
    assert choose_candidate(results, "orphan_pr_auc")[0].spec.name == "logistic_regression+class_weight"
    with pytest.raises(ValueError, match="selection_metric"):
        choose_candidate(results, "accuracy")
    with pytest.raises(ValueError, match="none of them is servable"):
        choose_candidate([_result("xgboost+none+two_stage", 0.1, 0.1)])
