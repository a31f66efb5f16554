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
    best, reason = choose_candidate(results, "flag_rate_at_target_recall", target_recall=0.95)
    assert best.spec.name == "xgboost+class_weight"
    assert "cannot be exported to ONNX" in reason and "next logistic_regression+class_weight" in reason


def test_choice_by_pr_auc_and_ties() -> None:
    results = [_result("logistic_regression+class_weight", 0.05, 0.7), _result("random_forest+smote", 0.05, 0.6)]
    assert choose_candidate(results, "flag_rate_at_target_recall")[0].spec.name == "logistic_regression+class_weight"
    assert choose_candidate(results, "orphan_pr_auc")[0].spec.name == "logistic_regression+class_weight"
    with pytest.raises(ValueError, match="selection_metric"):
        choose_candidate(results, "accuracy")
    with pytest.raises(ValueError, match="none of them is servable"):
        choose_candidate([_result("xgboost+none+two_stage", 0.1, 0.1)])


def test_within_tolerance_the_simpler_family_wins_and_the_reason_says_so() -> None:
    results = [
        _result("xgboost+smote", 0.045, 0.70),
        _result("random_forest+class_weight", 0.050, 0.65),
        _result("logistic_regression+class_weight", 0.052, 0.60),
        _result("logistic_regression+none", 0.080, 0.50),
    ]
    chosen, reason = choose_candidate(results, "flag_rate_at_target_recall", target_recall=0.95, tolerance=0.01)
    assert chosen.spec.name == "logistic_regression+class_weight"
    assert reason.startswith(
        "logistic_regression+class_weight: simplest servable candidate within 0.01 of the best "
        "flag_rate_at_target_recall in cross-validation (xgboost+smote 0.0450) at orphan recall 0.95 "
        "(non-orphan flag rate 0.0520"
    )
    assert "; next random_forest+class_weight" in reason and "cannot be exported" not in reason


def test_within_tolerance_the_imbalance_order_then_the_metric_break_ties() -> None:
    results = [
        _result("random_forest+none", 0.040, 0.7),
        _result("random_forest+smote", 0.044, 0.7),
        _result("random_forest+random_oversampling", 0.046, 0.7),
        _result("xgboost+class_weight", 0.041, 0.7),
    ]
    assert choose_candidate(results, "flag_rate_at_target_recall")[0].spec.name == "random_forest+random_oversampling"
    same_family = [_result("random_forest+smote", 0.046, 0.7), _result("random_forest+smote", 0.042, 0.7)]
    assert choose_candidate(same_family, "flag_rate_at_target_recall")[0].flag_rate_at_target_recall == 0.042


def test_outside_tolerance_the_better_candidate_wins() -> None:
    results = [_result("xgboost+class_weight", 0.040, 0.7), _result("logistic_regression+class_weight", 0.051, 0.6)]
    chosen, reason = choose_candidate(results, "flag_rate_at_target_recall", tolerance=0.01)
    assert chosen.spec.name == "xgboost+class_weight"
    assert reason.startswith("xgboost+class_weight: best servable candidate by flag_rate_at_target_recall")
    assert (
        choose_candidate(results, "flag_rate_at_target_recall", tolerance=0.011)[0].spec.name
        == "logistic_regression+class_weight"
    )


def test_the_tolerance_boundary_is_inclusive_despite_float_rounding() -> None:
    results = [_result("xgboost+class_weight", 0.045, 0.7), _result("logistic_regression+class_weight", 0.055, 0.6)]
    assert (
        choose_candidate(results, "flag_rate_at_target_recall", tolerance=0.01)[0].spec.name
        == "logistic_regression+class_weight"
    )


@pytest.mark.parametrize("metric", ["flag_rate_at_target_recall", "orphan_pr_auc"])
def test_tolerance_zero_is_the_best_by_the_metric_with_the_old_reason(metric: str) -> None:
    results = [
        _result("logistic_regression+class_weight", 0.0501, 0.6999),
        _result("random_forest+class_weight", 0.05, 0.70),
        _result("xgboost+class_weight", 0.05, 0.71),
        _result("xgboost+class_weight+two_stage", 0.03, 0.80),
    ]
    chosen, reason = choose_candidate(results, metric, target_recall=0.9, tolerance=0.0)
    assert chosen.spec.name == "xgboost+class_weight"  # exact flag-rate tie with the forest: PR-AUC breaks it
    assert reason == (
        f"xgboost+class_weight: best servable candidate by {metric} in cross-validation at orphan recall 0.9 "
        "(non-orphan flag rate 0.0500, orphan PR-AUC 0.7100, fit 1.0 s); next random_forest+class_weight "
        "non-orphan flag rate 0.0500, orphan PR-AUC 0.7000, fit 1.0 s; best overall was "
        "xgboost+class_weight+two_stage non-orphan flag rate 0.0300, orphan PR-AUC 0.8000, fit 1.0 s "
        "but it cannot be exported to ONNX"
    )


def test_orphan_pr_auc_tolerance_counts_downwards_from_the_highest() -> None:
    results = [
        _result("xgboost+class_weight", 0.09, 0.700),
        _result("random_forest+class_weight", 0.02, 0.693),
        _result("logistic_regression+class_weight", 0.01, 0.650),
    ]
    chosen, reason = choose_candidate(results, "orphan_pr_auc", tolerance=0.01)
    assert chosen.spec.name == "random_forest+class_weight"
    assert "within 0.01 of the best orphan_pr_auc in cross-validation (xgboost+class_weight 0.7000)" in reason
    assert choose_candidate(results, "orphan_pr_auc", tolerance=0.05)[0].spec.name == (
        "logistic_regression+class_weight"
    )


def test_a_two_stage_model_within_tolerance_is_never_chosen() -> None:
    results = [
        _result("xgboost+class_weight+two_stage", 0.040, 0.8),
        _result("xgboost+smote", 0.048, 0.7),
        _result("xgboost+class_weight", 0.055, 0.7),
    ]
    chosen, reason = choose_candidate(results, "flag_rate_at_target_recall", tolerance=1.0)
    assert chosen.spec.name == "xgboost+class_weight"
    assert "(xgboost+smote 0.0480)" in reason
    assert "best overall was xgboost+class_weight+two_stage" in reason and "cannot be exported to ONNX" in reason


@pytest.mark.parametrize("tolerance", [-0.01, float("nan")])
def test_a_bad_tolerance_is_refused_naming_the_field(tolerance: float) -> None:
    with pytest.raises(ValueError, match="selection_tolerance"):
        choose_candidate([_result("logistic_regression+class_weight", 0.05, 0.7)], tolerance=tolerance)
