import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from rare_triage.lib import schema
from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.deployment.onnx_export import export_trained_model, parity_report
from rare_triage.lib.training.calibration import calibrate_pipeline
from rare_triage.lib.training.candidates import (
    DEFAULT_CANDIDATES,
    CandidateSpec,
    build_pipeline,
    classifier_of,
    fit_candidate,
)
from rare_triage.lib.training.columns import feature_roles, feature_set_columns, label_codes, model_inputs
from rare_triage.lib.training.train import fitted_categories
from rare_triage.lib.training.two_stage import TwoStageClassifier
from rare_triage_tests.lib.training.conftest import SMALL_PARAMS, Windows


def _data(frame: pd.DataFrame, n: int = 3000) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    columns = feature_set_columns("all", list(frame.columns))
    part = frame.iloc[:n]
    return model_inputs(part, columns), label_codes(part["label"]), columns


def _contains(pipeline: Pipeline, kind: type) -> bool:
    preprocess = pipeline.steps[0][1]
    for _, transformer, _ in preprocess.transformers_:
        steps = transformer.steps if isinstance(transformer, Pipeline) else [(None, transformer)]
        if any(isinstance(step, kind) for _, step in steps):
            return True
    return False


@pytest.mark.parametrize("name", DEFAULT_CANDIDATES)
def test_every_candidate_fits_to_a_plain_pipeline_with_probabilities_in_label_order(
    windows: Windows, name: str
) -> None:
    X, y, columns = _data(windows.train)
    spec = CandidateSpec.parse(name)
    pipeline = fit_candidate(spec, X, y, feature_roles(columns), SMALL_PARAMS)
    assert type(pipeline) is Pipeline
    assert not any(hasattr(step, "fit_resample") for _, step in pipeline.steps)
    assert list(classifier_of(pipeline).classes_) == list(range(len(schema.LABELS)))
    proba = pipeline.predict_proba(X.iloc[:50])
    assert proba.shape == (50, len(schema.LABELS))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert _contains(pipeline, StandardScaler) == (spec.model == "logistic_regression")
    assert isinstance(classifier_of(pipeline), TwoStageClassifier) == spec.two_stage
    assert spec.servable != spec.two_stage


def test_samplers_only_change_what_the_classifier_saw(windows: Windows) -> None:
    X, y, columns = _data(windows.train)
    spec = CandidateSpec("random_forest", "random_oversampling")
    unfitted = build_pipeline(spec, feature_roles(columns), SMALL_PARAMS, y)
    unfitted.fit(X, y)
    sampled = unfitted.named_steps["sampler"].fit_resample(unfitted.named_steps["preprocess"].transform(X), y)[1]
    assert np.bincount(sampled)[4] > np.bincount(y)[4]  # orphans were oversampled at fit time


def test_random_forest_is_depth_bounded(windows: Windows) -> None:
    X, y, columns = _data(windows.train)
    pipeline = fit_candidate(CandidateSpec("random_forest", "class_weight"), X, y, feature_roles(columns), SMALL_PARAMS)
    forest = classifier_of(pipeline)
    assert isinstance(forest, RandomForestClassifier)
    assert max(tree.get_depth() for tree in forest.estimators_) <= SMALL_PARAMS.rf_max_depth


def test_unseen_categories_and_missing_everything_still_score(windows: Windows) -> None:
    X, y, columns = _data(windows.train)
    pipeline = fit_candidate(CandidateSpec("xgboost", "class_weight"), X, y, feature_roles(columns), SMALL_PARAMS)
    odd = X.iloc[:5].copy()
    odd["centre_id"] = "C99"
    odd.loc[:, [c for c in columns if c not in ("sex", "age_band")]] = np.nan
    assert np.isfinite(pipeline.predict_proba(odd)).all()


def test_missing_class_in_training_rows_is_named(windows: Windows) -> None:
    X, y, columns = _data(windows.train)
    keep = y != 4
    with pytest.raises(ValueError, match="\\['orphan'\\] absent"):
        fit_candidate(
            CandidateSpec("logistic_regression", "none"), X[keep], y[keep], feature_roles(columns), SMALL_PARAMS
        )


@pytest.mark.parametrize("name", ["xgboost+two_stage", "svm+class_weight", "xgboost+smote+two_stage"])
def test_bad_candidate_names_are_explained(name: str) -> None:
    with pytest.raises(ValueError, match="candidate"):
        CandidateSpec.parse(name)


def _bundle(pipeline: Pipeline, columns: list[str], test: pd.DataFrame) -> ModelBundle:
    roles = feature_roles(columns)
    return ModelBundle(
        pipeline=pipeline,
        feature_columns=columns,
        categorical_columns=list(roles.categorical),
        categories=fitted_categories(pipeline, roles.categorical),
        numeric_columns=[*roles.numeric, *roles.phenotype],
        class_labels=list(schema.LABELS),
        thresholds={"orphan": 0.1},
        needs_review={},
        metrics={},
        mlflow_run_id=None,
        mlflow_model_version=None,
        training_partitions=[],
        data_fingerprint="x",
        code_revision="unknown",
        hpo_release="2025-01-16",
        vocabulary=[],
        systems=[],
        test_features=model_inputs(test, columns),
    )


@pytest.mark.parametrize(
    ("name", "calibration"),
    [
        ("logistic_regression+class_weight", "none"),
        ("random_forest+smote", "none"),
        ("xgboost+class_weight", "none"),
        ("xgboost+random_oversampling", "sigmoid"),
        ("logistic_regression+class_weight", "isotonic"),
    ],
)
def test_servable_candidates_export_to_onnx_with_parity(windows: Windows, name: str, calibration: str) -> None:
    X, y, columns = _data(windows.train)
    pipeline = fit_candidate(CandidateSpec.parse(name), X, y, feature_roles(columns), SMALL_PARAMS)
    if calibration != "none":
        X_val, y_val, _ = _data(windows.validation, 1500)
        pipeline = calibrate_pipeline(pipeline, X_val, y_val, calibration)
        assert isinstance(classifier_of(pipeline), CalibratedClassifierCV)
    test = windows.test.iloc[:400].copy()
    test.loc[test.index[:20], "centre_id"] = "C99"  # a centre the model never saw
    exported = export_trained_model(_bundle(pipeline, columns, test))
    report = parity_report(pipeline, exported.onnx_bytes, model_inputs(test, columns))
    assert report["passed"], report


def test_smote_keeps_binary_columns_binary(windows: Windows) -> None:
    X, y, columns = _data(windows.train)
    pipeline = build_pipeline(CandidateSpec("xgboost", "smote"), feature_roles(columns), SMALL_PARAMS, y)
    Xt = pipeline.named_steps["preprocess"].fit_transform(X)
    X_res, y_res = pipeline.named_steps["sampler"].fit_resample(Xt, y)
    binary = ((Xt == 0.0) | (Xt == 1.0)).all(axis=0)
    assert len(y_res) > len(y) and binary.sum() > 50
    assert np.isin(X_res[len(y) :, binary], [0.0, 1.0]).all()
    assert not np.isin(X_res[len(y) :, ~binary], [0.0, 1.0]).all()  # continuous columns are still interpolated
