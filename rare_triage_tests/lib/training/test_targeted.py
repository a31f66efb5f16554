import dataclasses

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.testing.synthetic_features import PhenotypeLayout
from rare_triage.lib.training.augmentation import IncidentalAugmentation
from rare_triage.lib.training.columns import ORPHAN_INDEX, label_codes, model_feature_columns, model_inputs
from rare_triage.lib.training.robustness import PhenotypeItem, already_present, vocabulary_phenotype_items
from rare_triage.lib.training.targeted import MAX_TERM_SHARE, measured_round, raised_shares
from rare_triage.lib.training.train import TrainingConfig, train_triage_model
from rare_triage_tests.lib.training.conftest import SMALL_PARAMS, Windows


def _items(layout: PhenotypeLayout, columns: list[str]) -> list[PhenotypeItem]:
    return vocabulary_phenotype_items(layout.vocabulary, layout.term_rollup, layout.term_system, columns)


def _per_term(ratios: dict[str, float]) -> pd.DataFrame:
    table = pd.DataFrame(
        {"hpo_id": list(ratios), "label": [f"term {t}" for t in ratios], "ratio_to_base": list(ratios.values())}
    )
    return table.sort_values("ratio_to_base", ascending=False, ignore_index=True)


def test_shares_grow_with_the_ratio_above_the_goal_and_add_up_over_rounds() -> None:
    per_term = _per_term({"HP:1": 2.6, "HP:2": 1.7, "HP:3": 1.2})
    shares = raised_shares({"HP:1": 0.005, "HP:9": 0.02}, per_term, goal=1.6, step=0.01)
    assert shares == pytest.approx({"HP:1": 0.015, "HP:2": 0.001, "HP:9": 0.02})
    assert raised_shares({}, _per_term({"HP:1": 500.0}), goal=1.6, step=0.5) == {"HP:1": MAX_TERM_SHARE}
    assert raised_shares(shares, _per_term({"HP:1": 1.6}), goal=1.6, step=0.01) == shares  # at the goal: nothing
    record = measured_round(1, per_term, 0.04, 1.6, shares)
    assert (record.worst_term, record.worst_label, record.worst_ratio) == ("HP:1", "term HP:1", 2.6)
    assert record.terms_over_goal == 2
    assert record.terms_targeted == 3 and record.targeted_share == pytest.approx(0.036)


def test_targeted_copies_are_non_orphan_rows_with_that_one_term_added(
    windows: Windows, layout: PhenotypeLayout
) -> None:
    columns = model_feature_columns(list(windows.train.columns))
    X, y = model_inputs(windows.train, columns), label_codes(windows.train["label"])
    X = X.assign(row=np.arange(len(X)))  # carried along by the copies: which row each copies
    items = _items(layout, columns)
    first, second = items[0], items[1]
    random_only = IncidentalAugmentation(tuple(items), share=0.5, terms=2, seed=3)
    targeted = random_only.with_targeted({first.hpo_id: 0.3, second.hpo_id: 0.1, items[2].hpo_id: 0.0})
    assert [t for t, _ in targeted.targeted] == sorted([first.hpo_id, second.hpo_id])
    X_random, y_random = random_only.apply(X, y)
    X_all, y_all = targeted.apply(X, y)
    # the random copies are drawn as before; the targeted ones follow them
    pd.testing.assert_frame_equal(X_all.iloc[: len(y_random)], X_random)
    copies, labels = X_all.iloc[len(y_random) :].reset_index(drop=True), y_all[len(y_random) :]
    assert (labels != ORPHAN_INDEX).all()
    originals = X.iloc[copies["row"].to_numpy()].reset_index(drop=True)
    with_first = already_present(copies, first) & ~already_present(originals, first)
    with_second = already_present(copies, second) & ~already_present(originals, second)
    assert (with_first ^ with_second).all()  # each copy gained exactly one of the two terms
    lacking = (y != ORPHAN_INDEX) & ~already_present(X, first)
    assert 0.25 * lacking.sum() < with_first.sum() < 0.35 * lacking.sum()
    assert 0.05 * lacking.sum() < with_second.sum() < 0.15 * lacking.sum()
    added = copies["n_present_terms"].fillna(0) - originals["n_present_terms"].fillna(0)
    assert (added == 1.0).all()


def test_bad_targeted_settings_are_named(windows: Windows, layout: PhenotypeLayout) -> None:
    items = tuple(_items(layout, model_feature_columns(list(windows.train.columns))))
    with pytest.raises(ValueError, match="targeted: 'HP:9999999' is not a term"):
        IncidentalAugmentation(items, 0.5, 2).with_targeted({"HP:9999999": 0.1})
    with pytest.raises(ValueError, match=r"targeted: the share of .* must be in \[0, 1\]"):
        IncidentalAugmentation(items, 0.5, 2).with_targeted({items[0].hpo_id: 1.5})
    with pytest.raises(ValueError, match=r"targeted_rounds: must be in \[0, 5\]"):
        TrainingConfig(targeted_rounds=6)
    with pytest.raises(ValueError, match="targeted_goal: must be >= 1"):
        TrainingConfig(targeted_goal=0.9)
    with pytest.raises(ValueError, match=r"targeted_step: must be in \(0, 1\]"):
        TrainingConfig(targeted_step=0.0)


def test_targeted_rounds_lower_the_worst_single_term_on_validation(windows: Windows, layout: PhenotypeLayout) -> None:
    """A linear model without random copies over-reads single terms; each targeted refit copies non-orphan rows with
    the terms above the goal, and the worst term's validation ratio falls."""
    config = TrainingConfig(
        candidates=("logistic_regression+class_weight",),
        cv_folds=0,
        incidental_share=0.0,
        targeted_rounds=2,
        targeted_goal=1.2,
        targeted_step=0.2,
        max_flag_rate=0.05,
        params=SMALL_PARAMS,
    )
    outcome = train_triage_model(
        windows.train, windows.validation, config, vocabulary_items=lambda columns: _items(layout, columns)
    )
    rounds = outcome.targeted_rounds
    assert [r.round for r in rounds] == list(range(len(rounds))) and len(rounds) >= 2
    assert rounds[0].worst_ratio > config.targeted_goal and rounds[0].terms_targeted >= 1
    assert rounds[-1].worst_ratio < rounds[0].worst_ratio, outcome.targeted_table()
    assert rounds[-1].terms_targeted == 0  # the last measurement is of the served fit
    assert set(outcome.targeted_shares) and all(0 < s <= MAX_TERM_SHARE for s in outcome.targeted_shares.values())
    assert outcome.timings["targeted_seconds"] > 0
    # without rounds nothing is measured, and without vocabulary nothing is targeted
    plain = dataclasses.replace(config, targeted_rounds=0)
    assert train_triage_model(windows.train, windows.validation, plain).targeted_rounds == []
