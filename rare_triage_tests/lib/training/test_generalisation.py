"""k-anonymity generalisation is never a model input: the marker "*" is a missing value, generalised training rows
are hot-deck imputed, and the non-orphan flag rate does not depend on whether a row was generalised."""

from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib.training.behaviour import generalisation_invariance, generalised_rows
from rare_triage.lib.training.candidates import (
    CandidateSpec,
    build_pipeline,
    fit_candidate,
    hot_deck_generalised,
    servable_pipeline,
)
from rare_triage.lib.training.columns import ORPHAN_INDEX, feature_roles, label_codes, model_inputs
from rare_triage.lib.training.imbalance import balanced_sample_weight
from rare_triage.lib.training.train import TrainingOutcome, fitted_categories
from rare_triage_tests.lib.training.conftest import SMALL_PARAMS, Windows

MARKED = ("centre_id", "centre_level", "age_band")


def _generalise_raw(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """What the anonymizer writes: "*" in the suppressed columns, the exact age blanked with the band."""
    out = frame.copy()
    for column in MARKED:
        out[column] = out[column].astype(object)
        out.loc[rows, column] = "*"
    out.loc[rows, "age_years"] = np.nan
    return out


def _orphan_enriched(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Generalised far more often among orphans (small classes: children at tertiary centres), 6% of others."""
    orphan = (frame["label"] == "orphan").to_numpy()
    return np.random.default_rng(seed).random(len(frame)) < np.where(orphan, 0.5, 0.06)


def test_the_marker_becomes_a_missing_value(windows: Windows, trained: TrainingOutcome) -> None:
    frame = _generalise_raw(windows.test.head(20), np.arange(20) < 10)
    assert generalised_rows(frame).tolist() == [True] * 10 + [False] * 10
    inputs = model_inputs(frame, trained.feature_columns)
    assert inputs.loc[:9, list(MARKED)].isna().all().all()
    assert inputs.loc[10:, list(MARKED)].notna().all().all()


def test_hot_deck_fills_each_group_from_one_real_row(windows: Windows, trained: TrainingOutcome) -> None:
    marked = np.arange(len(windows.train)) % 7 == 0
    X = model_inputs(_generalise_raw(windows.train, marked), trained.feature_columns)
    filled = hot_deck_generalised(X, seed=1)
    assert filled[["centre_id", "centre_level", "age_band", "age_years"]].notna().all().all()
    pd.testing.assert_frame_equal(filled.loc[~marked], X.loc[~marked])
    # a centre keeps its level, an age its band: each group comes from one donor row
    pairs = set(map(tuple, X.loc[~marked, ["centre_id", "centre_level"]].to_numpy()))
    assert set(map(tuple, filled.loc[marked, ["centre_id", "centre_level"]].to_numpy())) <= pairs
    ages = set(map(tuple, X.loc[~marked, ["age_band", "age_years"]].to_numpy()))
    assert set(map(tuple, filled.loc[marked, ["age_band", "age_years"]].to_numpy())) <= ages
    pd.testing.assert_frame_equal(hot_deck_generalised(X, seed=1), filled)  # the seed fixes the draw
    complete = X.loc[~marked]
    assert hot_deck_generalised(complete, seed=1) is complete


def test_a_model_fitted_on_generalised_rows_knows_no_marker_category(
    windows: Windows, trained: TrainingOutcome
) -> None:
    generalised = _generalise_raw(windows.train, _orphan_enriched(windows.train, 0))
    columns = list(trained.feature_columns)
    roles = feature_roles(columns)
    for name in ("logistic_regression+class_weight", "xgboost+class_weight"):
        pipeline = fit_candidate(
            CandidateSpec.parse(name),
            model_inputs(generalised, columns),
            label_codes(generalised["label"]),
            roles,
            SMALL_PARAMS,
        )
        assert all("*" not in values for values in fitted_categories(pipeline, roles.categorical).values()), name
        # at prediction a generalised row scores as its imputed twin (the most frequent categories, the median age)
        test = model_inputs(windows.test.head(50), columns)
        twin = test.copy()
        imputer = pipeline.steps[0][1].named_transformers_["categorical"].steps[0][1]
        for column, fill in zip(roles.categorical, imputer.statistics_, strict=True):
            if column in MARKED:
                twin[column] = fill
        transformers = pipeline.steps[0][1].named_transformers_
        if "imputed" in transformers:  # XGBoost: age imputed apart, the other numerics passed through
            twin["age_years"] = float(transformers["imputed"].statistics_[0])
        else:
            numeric = transformers["numeric"].steps[0][1]
            twin["age_years"] = float(numeric.statistics_[list(roles.numeric).index("age_years")])
        blanked = test.copy()
        blanked[[*MARKED, "age_years"]] = np.nan
        np.testing.assert_allclose(
            pipeline.predict_proba(blanked), pipeline.predict_proba(twin), atol=1e-9, err_msg=name
        )


def _flag_rates(pipeline: Any, windows: Windows, columns: list[str]) -> dict[str, Any]:
    test = _generalise_raw(windows.test, _orphan_enriched(windows.test, 1))
    y = label_codes(test["label"])
    inputs = model_inputs(test, columns)
    val = model_inputs(windows.validation, columns)
    non_orphan_val = label_codes(windows.validation["label"]) != ORPHAN_INDEX
    threshold = float(np.quantile(pipeline.predict_proba(val)[non_orphan_val, ORPHAN_INDEX], 0.96))
    keep = y != ORPHAN_INDEX
    return generalisation_invariance(pipeline, inputs.loc[keep], columns, threshold, generalised_rows(test)[keep])


def test_the_flag_rate_does_not_depend_on_generalisation(windows: Windows, trained: TrainingOutcome) -> None:
    """Trained on rows generalised 8 times as often among orphans, a tree model flags the generalised non-orphans of
    the test window as it flags the others; fitted on the same rows without the hot-deck, it learns the marker."""
    generalised = _generalise_raw(windows.train, _orphan_enriched(windows.train, 0))
    columns = list(trained.feature_columns)
    roles = feature_roles(columns)
    X, y = model_inputs(generalised, columns), label_codes(generalised["label"])
    spec = CandidateSpec.parse("xgboost+class_weight")
    fair = _flag_rates(fit_candidate(spec, X, y, roles, SMALL_PARAMS), windows, columns)
    assert fair["passed"] and abs(fair["z"]) <= 3.0, fair
    leaky = build_pipeline(spec, roles, SMALL_PARAMS, y)  # the pipeline fitted as it was before: no hot-deck
    leaky.fit(X, y, classifier__sample_weight=balanced_sample_weight(y))
    learnt = _flag_rates(servable_pipeline(leaky), windows, columns)
    assert not learnt["passed"] and learnt["flag_rate_generalised"] > learnt["flag_rate_other"], learnt


class _ReadsMissingAge:
    """A model that (wrongly) flags every row whose age is missing: what learning the anonymizer's choice looks like."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        proba = np.zeros((len(frame), 5))
        proba[:, ORPHAN_INDEX] = np.where(frame["age_years"].isna(), 0.9, 0.01)
        proba[:, 0] = 1.0 - proba[:, ORPHAN_INDEX]
        return proba


def test_the_invariance_test_fails_a_model_that_learnt_the_marker(windows: Windows) -> None:
    marked = np.arange(len(windows.test)) % 10 == 0
    raw = _generalise_raw(windows.test, marked)
    inputs = model_inputs(raw, ["age_years", *MARKED])
    result = generalisation_invariance(_ReadsMissingAge(), inputs, list(inputs.columns), 0.5, generalised_rows(raw))
    assert not result["passed"] and result["flag_rate_generalised"] == 1.0 and result["flag_rate_other"] == 0.0
    nothing = generalisation_invariance(_ReadsMissingAge(), inputs, list(inputs.columns), 0.5, np.zeros(len(raw), bool))
    assert nothing["passed"] and nothing["reason"] == "no generalised row"


def test_every_generalisation_step_is_covered_region_and_sex_included(
    windows: Windows, trained: TrainingOutcome
) -> None:
    """k-anonymity's last step writes "*" into region and sex: such rows count as generalised, and a training row's
    sex is hot-decked like its centre and age (the marker never reaches the model as a fixed value)."""
    frame = windows.train.copy()
    marked = np.arange(len(frame)) % 11 == 0
    for column in ("region", "sex"):
        frame[column] = frame[column].astype(object)
        frame.loc[marked, column] = "*"
    assert (generalised_rows(frame) == marked).all()
    X = model_inputs(frame, trained.feature_columns)
    stepped = [c for c in ("region", "sex") if c in X.columns]
    assert stepped and X.loc[marked, stepped].isna().all().all()
    filled = hot_deck_generalised(X, seed=2)
    assert filled[stepped].notna().all().all()
    donors = set(map(tuple, X.loc[~marked, stepped].to_numpy()))
    assert set(map(tuple, filled.loc[marked, stepped].to_numpy())) <= donors
