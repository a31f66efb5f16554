import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.testing.synthetic_features import PhenotypeLayout
from rare_triage.lib.training.augmentation import IncidentalAugmentation, incidental_augmentation
from rare_triage.lib.training.candidates import CandidateSpec, fit_candidate
from rare_triage.lib.training.columns import (
    ORPHAN_INDEX,
    feature_roles,
    label_codes,
    model_feature_columns,
    model_inputs,
    vocabulary_columns,
)
from rare_triage.lib.training.robustness import PhenotypeItem, vocabulary_phenotype_items, vocabulary_robustness
from rare_triage.lib.training.thresholds import tune_threshold_policy
from rare_triage.lib.training.train import TrainingConfig, TrainingOutcome, train_triage_model
from rare_triage_tests.lib.training.conftest import SMALL_PARAMS, Windows


def _items(layout: PhenotypeLayout, columns: list[str]) -> list[PhenotypeItem]:
    return vocabulary_phenotype_items(layout.vocabulary, layout.term_rollup, layout.term_system, columns)


def test_copies_of_non_orphan_rows_carry_the_extra_terms(
    windows: Windows, trained: TrainingOutcome, layout: PhenotypeLayout
) -> None:
    columns = trained.feature_columns
    X, y = model_inputs(windows.train, columns), label_codes(windows.train["label"])
    augmentation = IncidentalAugmentation(tuple(_items(layout, columns)), share=0.5, terms=2, seed=3)
    X2, y2 = augmentation.apply(X, y)
    added = len(y2) - len(y)
    assert 0.45 * (y != ORPHAN_INDEX).sum() < added < 0.55 * (y != ORPHAN_INDEX).sum()
    assert (y2[len(y) :] != ORPHAN_INDEX).all()  # orphans are never copied
    pd.testing.assert_frame_equal(X2.iloc[: len(y)], X.reset_index(drop=True))
    copies = X2.iloc[len(y) :]
    assert (copies["n_present_terms"].fillna(0).to_numpy() >= 2).all()
    # the same seed gives the same copies; no augmentation leaves the rows as they are
    pd.testing.assert_frame_equal(augmentation.apply(X, y)[0], X2)
    assert (
        incidental_augmentation([], 0.5, 2, 0) is None
        and incidental_augmentation(_items(layout, columns), 0.0, 2, 0) is None
    )


def test_a_share_above_one_gives_several_copies_each_with_its_own_terms(
    windows: Windows, trained: TrainingOutcome, layout: PhenotypeLayout
) -> None:
    columns = trained.feature_columns
    X, y = model_inputs(windows.train, columns), label_codes(windows.train["label"])
    X = X.assign(row=np.arange(len(X)))  # carried along by the copies: which row each copies
    non_orphan = int((y != ORPHAN_INDEX).sum())
    X2, y2 = IncidentalAugmentation(tuple(_items(layout, columns)), share=1.5, terms=1, seed=3).apply(X, y)
    assert 1.45 * non_orphan < len(y2) - len(y) < 1.55 * non_orphan
    first, second = X2.iloc[len(y) : len(y) + non_orphan], X2.iloc[len(y) + non_orphan :]
    # every non-orphan row once, in order, then a second copy of about half of them with their own draw of terms
    assert (first["row"].to_numpy() == np.flatnonzero(y != ORPHAN_INDEX)).all()
    assert second["row"].isin(first["row"]).all() and second["row"].is_unique
    terms = vocabulary_columns(columns)
    again = first.set_index("row").loc[second["row"], terms].to_numpy()
    assert (np.nan_to_num(again) != np.nan_to_num(second[terms].to_numpy())).any(axis=1).mean() > 0.5


def test_orphan_share_copies_the_orphan_rows_at_their_own_share(
    windows: Windows, trained: TrainingOutcome, layout: PhenotypeLayout
) -> None:
    columns = trained.feature_columns
    X, y = model_inputs(windows.train, columns), label_codes(windows.train["label"])
    items = tuple(_items(layout, columns))
    orphans, others = int((y == ORPHAN_INDEX).sum()), int((y != ORPHAN_INDEX).sum())
    _, only_others = IncidentalAugmentation(items, share=1.0, terms=1, seed=3).apply(X, y)
    _, every = IncidentalAugmentation(items, share=1.0, terms=1, seed=3, orphan_share=1.0).apply(X, y)
    assert (only_others[len(y) :] != ORPHAN_INDEX).all() and len(only_others) == len(y) + others
    assert len(every) == 2 * len(y) and (every[len(y) :] == y).all()
    # orphan rows only, two copies each and a third for half of them
    _, orphans_only = IncidentalAugmentation(items, share=0.0, terms=1, seed=3, orphan_share=2.5).apply(X, y)
    added = orphans_only[len(y) :]
    assert (added == ORPHAN_INDEX).all() and 2.4 * orphans < len(added) < 2.6 * orphans
    assert incidental_augmentation(items, 0.0, 1, 0, orphan_share=0.5) is not None


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"incidental_share: must be in \[0, 4\]"):
        TrainingConfig(incidental_share=4.5)
    with pytest.raises(ValueError, match=r"incidental_orphan_share: must be in \[0, 4\]"):
        TrainingConfig(incidental_orphan_share=-0.5)
    with pytest.raises(ValueError, match="incidental_terms"):
        TrainingConfig(incidental_terms=0)


def test_augmentation_makes_a_model_robust_to_one_extra_term(windows: Windows, layout: PhenotypeLayout) -> None:
    """The same candidate fitted with and without the augmentation: one random extra vocabulary term raises the
    non-orphan flag rate of the test window less with it."""
    columns = model_feature_columns(list(windows.train.columns))
    roles = feature_roles(columns)
    X, y = model_inputs(windows.train, columns), label_codes(windows.train["label"])
    items = _items(layout, columns)
    spec = CandidateSpec.parse("logistic_regression+class_weight")
    ratios = {}
    for name, augmentation in (("plain", None), ("augmented", IncidentalAugmentation(tuple(items), 1.0, 2, 0))):
        pipeline = fit_candidate(spec, X, y, roles, SMALL_PARAMS, augmentation=augmentation)
        y_val = label_codes(windows.validation["label"])
        policy = tune_threshold_policy(
            y_val,
            pipeline.predict_proba(model_inputs(windows.validation, columns)),
            target_recall=0.9,
            review_recall=0.95,
            max_flag_rate=0.05,
        )
        test = model_inputs(windows.test, columns)
        report, _ = vocabulary_robustness(
            pipeline, test, label_codes(windows.test["label"]), policy, feature_columns=columns, vocabulary_items=items
        )
        ratios[name] = report["plus_1_ratio"]
    assert ratios["augmented"] < ratios["plain"], ratios


def test_training_augments_every_fit_when_given_vocabulary_items(windows: Windows, layout: PhenotypeLayout) -> None:
    config = TrainingConfig(candidates=("logistic_regression+class_weight",), cv_folds=2, params=SMALL_PARAMS)
    seen: list[list[str]] = []

    def items(columns: list[str]) -> list[PhenotypeItem]:
        seen.append(columns)
        return _items(layout, columns)

    outcome = train_triage_model(windows.train, windows.validation, config, vocabulary_items=items)
    assert seen == [outcome.feature_columns]
    assert np.isfinite(outcome.policy.orphan_threshold)
