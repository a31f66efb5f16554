import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from rare_triage.lib.schema import SPECIFICITY_COLUMNS
from rare_triage.lib.testing.synthetic_features import PhenotypeLayout
from rare_triage.lib.training.columns import ORPHAN_INDEX
from rare_triage.lib.training.robustness import (
    PER_TERM_COLUMNS,
    PhenotypeItem,
    add_incidental_phenotypes,
    add_phenotype,
    per_term_flag_rates,
    phenotype_items,
    robustness_report,
    vocabulary_phenotype_items,
    vocabulary_robustness,
)
from rare_triage.lib.training.thresholds import ThresholdPolicy, flag_orphan
from rare_triage.lib.training.train import TrainingOutcome
from rare_triage_tests.lib.training.conftest import Windows

ITEMS = [
    PhenotypeItem("HP:1", ("hpo_1", "sys_a")),
    PhenotypeItem("HP:2", ("hpo_2", "sys_a", "sys_b")),
    PhenotypeItem("HP:3", ("hpo_3",)),
]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hpo_1": [1.0, np.nan, 0.0],
            "hpo_2": [np.nan, np.nan, np.nan],
            "hpo_3": [np.nan, 1.0, np.nan],
            "sys_a": [1.0, np.nan, 0.0],
            "sys_b": [np.nan, np.nan, np.nan],
            "n_systems_involved": [1.0, 0.0, 0.0],
        }
    )


def test_adding_a_phenotype_keeps_systems_and_their_count_consistent() -> None:
    frame = _frame()
    add_phenotype(frame, np.array([True, True, False]), ITEMS[1])
    assert frame["hpo_2"].tolist()[:2] == [1.0, 1.0]
    assert frame["sys_a"].tolist()[:2] == [1.0, 1.0]
    assert frame["sys_b"].tolist()[:2] == [1.0, 1.0]
    assert frame["n_systems_involved"].tolist() == [2.0, 2.0, 0.0]


@pytest.mark.parametrize("k", [1, 2])
def test_incidental_phenotypes_add_exactly_k_new_ones(k: int) -> None:
    before = _frame()
    after = add_incidental_phenotypes(before, k, ITEMS, seed=3)
    terms = ["hpo_1", "hpo_2", "hpo_3"]
    added = (after[terms].to_numpy() == 1.0).sum(axis=1) - (before[terms].to_numpy() == 1.0).sum(axis=1)
    assert added.tolist() == [k, k, k]
    assert (after["n_systems_involved"] >= before["n_systems_involved"]).all()
    assert before.equals(_frame())  # the input is left as it was


def test_weights_steer_the_draw() -> None:
    frame = pd.DataFrame({"hpo_1": np.zeros(2000), "hpo_2": np.zeros(2000)})
    items = [PhenotypeItem("HP:1", ("hpo_1",), weight=9.0), PhenotypeItem("HP:2", ("hpo_2",), weight=1.0)]
    share = add_incidental_phenotypes(frame, 1, items, seed=0)["hpo_1"].mean()
    assert share == pytest.approx(0.9, abs=0.03)


def test_asking_more_incidental_terms_than_the_pool_is_named() -> None:
    with pytest.raises(ValueError, match="pool has 1"):
        add_incidental_phenotypes(_frame(), 2, ITEMS[:1])


def test_items_follow_the_ontology_roll_up_and_skip_untouched_terms() -> None:
    rollup = pd.DataFrame({"hpo_id": ["HP:0000010", "HP:0000010"], "vocab_id": ["HP:0000001", "HP:0000002"]})
    systems = pd.DataFrame({"hpo_id": ["HP:0000010", "HP:0000011"], "system_id": ["HP:0000707", "HP:0000707"]})
    columns = ["hpo_0000001", "sys_0000707"]
    ids = ["HP:0000010", "HP:0000011", "HP:0000099"]
    items = phenotype_items(ids, rollup, systems, columns, weights=[2.0, 1.0, 5.0])
    assert items == [
        PhenotypeItem("HP:0000010", ("hpo_0000001", "sys_0000707"), 2.0),
        PhenotypeItem("HP:0000011", ("sys_0000707",), 1.0),
    ]


def test_with_term_counts_among_the_inputs_every_term_is_an_item_carrying_its_information_content() -> None:
    rollup = pd.DataFrame({"hpo_id": ["HP:0000010"], "vocab_id": ["HP:0000001"]})
    systems = pd.DataFrame({"hpo_id": [], "system_id": []})
    ic = pd.DataFrame({"hpo_id": ["HP:0000010", "HP:0000099"], "information_content": [2.0, 6.5]})
    columns = ["hpo_0000001", *SPECIFICITY_COLUMNS]
    items = phenotype_items(["HP:0000010", "HP:0000099", "HP:0000098"], rollup, systems, columns, term_ic=ic)
    assert items == [
        PhenotypeItem("HP:0000010", ("hpo_0000001",), 1.0, 2.0),
        PhenotypeItem("HP:0000099", (), 1.0, 6.5),
        PhenotypeItem("HP:0000098", (), 1.0, 0.0),
    ]


def test_adding_a_phenotype_counts_it_in_the_specificity_columns() -> None:
    frame = _frame().assign(
        n_present_terms=[2.0, 0.0, 1.0],
        n_specific_terms=[1.0, 0.0, 0.0],
        phenotype_ic_max=[5.0, 0.0, 2.0],
        phenotype_ic_sum=[7.0, 0.0, 2.0],
    )
    add_phenotype(frame, np.array([True, True, False]), PhenotypeItem("HP:9", (), information_content=4.5))
    assert frame["n_present_terms"].tolist() == [3.0, 1.0, 1.0]
    assert frame["n_specific_terms"].tolist() == [2.0, 1.0, 0.0]
    assert frame["phenotype_ic_max"].tolist() == [5.0, 4.5, 2.0]
    assert frame["phenotype_ic_sum"].tolist() == [11.5, 4.5, 2.0]
    after = add_incidental_phenotypes(frame, 1, [PhenotypeItem("HP:8", (), information_content=1.0)], seed=0)
    assert (after["n_present_terms"] == frame["n_present_terms"] + 1.0).all()


def test_robustness_report_has_the_issue_numbers(
    trained: TrainingOutcome, windows: Windows, layout: PhenotypeLayout
) -> None:
    columns = trained.feature_columns
    common = layout.vocabulary.loc[layout.vocabulary.group == "common", "hpo_id"].tolist()
    items = phenotype_items(common, layout.term_rollup, layout.term_system, columns)
    y = (windows.test["label"] == "orphan").map({True: 4, False: 0}).to_numpy()
    report = robustness_report(
        trained.pipeline, windows.test, y, trained.policy, feature_columns=columns, incidental_items=items
    )
    for key in (
        "non_orphan_flag_rate",
        "non_orphan_flag_rate_plus_1_incidental",
        "non_orphan_flag_rate_plus_2_incidental",
        "elderly_multimorbid_flag_rate",
    ):
        assert 0.0 <= report[key] <= 1.0
    assert report["elderly_multimorbid_n"] > 0 and report["incidental_pool_size"] == len(common)


def test_uniform_draw_ignores_the_weights() -> None:
    frame = pd.DataFrame({"hpo_1": np.zeros(2000), "hpo_2": np.zeros(2000)})
    items = [PhenotypeItem("HP:1", ("hpo_1",), weight=9.0), PhenotypeItem("HP:2", ("hpo_2",), weight=1.0)]
    share = add_incidental_phenotypes(frame, 1, items, seed=0, weighted=False)["hpo_1"].mean()
    assert share == pytest.approx(0.5, abs=0.04)


def test_a_vocabulary_term_the_row_has_is_never_drawn_even_if_its_systems_are_missing() -> None:
    # hpo_1 present without its organ system (not what the feature SQL writes, but the term is still there)
    frame = pd.DataFrame({"hpo_1": [1.0] * 50, "hpo_2": [0.0] * 50, "sys_a": [np.nan] * 50})
    items = [PhenotypeItem("HP:1", ("hpo_1", "sys_a")), PhenotypeItem("HP:2", ("hpo_2",))]
    after = add_incidental_phenotypes(frame, 1, items, seed=1, weighted=False)
    assert (after["hpo_2"] == 1.0).all() and after["sys_a"].isna().all()


def test_vocabulary_items_are_the_terms_among_the_inputs_with_their_own_column_and_label() -> None:
    vocabulary = pd.DataFrame(
        {"hpo_id": ["HP:0000001", "HP:0000002", "HP:0000003"], "label": ["One", "Two", "Three"], "group": "x"}
    )
    rollup = pd.DataFrame({"hpo_id": ["HP:0000002"], "vocab_id": ["HP:0000001"]})  # 2 rolls up to 1, no self rows
    systems = pd.DataFrame({"hpo_id": ["HP:0000002"], "system_id": ["HP:0000707"]})
    columns = ["hpo_0000001", "hpo_0000002", "sys_0000707"]  # HP:0000003 is not an input
    items = vocabulary_phenotype_items(vocabulary, rollup, systems, columns)
    assert items == [
        PhenotypeItem("HP:0000001", ("hpo_0000001",), label="One"),
        PhenotypeItem("HP:0000002", ("hpo_0000001", "hpo_0000002", "sys_0000707"), label="Two"),
    ]
    assert [item.own_column for item in items] == ["hpo_0000001", "hpo_0000002"]


TERMS = ["hpo_1", "hpo_2", "hpo_3"]
SMALL_ITEMS = [
    PhenotypeItem("HP:1", ("hpo_1", "sys_a"), label="noise one"),
    PhenotypeItem("HP:2", ("hpo_2", "sys_b"), label="orphan marker"),
    PhenotypeItem("HP:3", ("hpo_3", "sys_a"), label="noise three"),
]


def _small_model() -> tuple[Pipeline, pd.DataFrame, np.ndarray, ThresholdPolicy]:
    """A logistic regression on three terms where hpo_2 is nearly always an orphan case."""
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame({t: (rng.random(n) < 0.1).astype(float) for t in TERMS})
    frame["sys_a"] = np.fmax(frame["hpo_1"], frame["hpo_3"])
    frame["sys_b"] = frame["hpo_2"]
    frame["n_systems_involved"] = frame["sys_a"] + frame["sys_b"]
    y = rng.integers(0, ORPHAN_INDEX, n)
    y[(frame["hpo_2"] == 1.0).to_numpy() & (rng.random(n) < 0.8)] = ORPHAN_INDEX
    pipeline = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value=0.0)), ("lr", LogisticRegression())])
    pipeline.fit(frame, y)
    policy = ThresholdPolicy(orphan_threshold=0.5, review_threshold=0.3, target_recall=0.9, review_recall=0.95)
    return pipeline, frame, y, policy


def test_per_term_table_puts_the_heavily_weighted_term_first_and_counts_only_changed_rows() -> None:
    pipeline, frame, y, policy = _small_model()
    columns = [*TERMS, "sys_a", "sys_b", "n_systems_involved"]
    non_orphan = frame.loc[y != ORPHAN_INDEX].reset_index(drop=True)
    table = per_term_flag_rates(pipeline, non_orphan, policy, feature_columns=columns, items=SMALL_ITEMS)
    assert list(table.columns) == list(PER_TERM_COLUMNS) and len(table) == len(SMALL_ITEMS)
    assert table["hpo_id"].iloc[0] == "HP:2" and table["label"].iloc[0] == "orphan marker"
    assert table["ratio_to_base"].is_monotonic_decreasing
    base = flag_orphan(pipeline.predict_proba(non_orphan[columns]), policy)
    assert 0 < base.mean() < 0.5  # the non-orphan hpo_2 rows are flagged: a base rate to compare with
    top = table.iloc[0]
    assert top["ratio_to_base"] > 5.0 and top["ratio_to_base"] == pytest.approx(top["flag_rate"] / base.mean())
    # rows already having the term are not changed: counted, and their flags kept as they were
    having = (non_orphan["hpo_2"] == 1.0).to_numpy()
    assert having.sum() > 0 and top["n_rows_changed"] == len(non_orphan) - having.sum()
    changed = non_orphan.loc[~having].copy()
    changed["hpo_2"], changed["sys_b"] = 1.0, 1.0
    changed["n_systems_involved"] = changed["sys_a"] + 1.0
    flags_after = flag_orphan(pipeline.predict_proba(changed[columns]), policy)
    assert top["flag_rate"] == pytest.approx((base[having].sum() + flags_after.sum()) / len(non_orphan))
    assert top["n_newly_flagged"] == (flags_after & ~base[~having]).sum()
    noise = table.set_index("hpo_id").loc[["HP:1", "HP:3"], "ratio_to_base"]
    assert (noise < 1.5).all()


def test_per_term_scores_in_batches_the_same_as_at_once() -> None:
    pipeline, frame, _y, policy = _small_model()
    columns = [*TERMS, "sys_a", "sys_b", "n_systems_involved"]
    at_once = per_term_flag_rates(pipeline, frame, policy, feature_columns=columns, items=SMALL_ITEMS)
    batched = per_term_flag_rates(pipeline, frame, policy, feature_columns=columns, items=SMALL_ITEMS, batch_rows=10)
    pd.testing.assert_frame_equal(at_once, batched)


def test_vocabulary_robustness_reports_the_gated_numbers_on_the_non_orphan_rows() -> None:
    pipeline, frame, y, policy = _small_model()
    columns = [*TERMS, "sys_a", "sys_b", "n_systems_involved"]
    report, table = vocabulary_robustness(
        pipeline, frame, y, policy, feature_columns=columns, vocabulary_items=SMALL_ITEMS, seed=0, n_seeds=2
    )
    non_orphan = frame.loc[y != ORPHAN_INDEX]
    base = flag_orphan(pipeline.predict_proba(non_orphan[columns]), policy).mean()
    assert report["non_orphan_n"] == len(non_orphan) and report["non_orphan_flag_rate"] == pytest.approx(base)
    # one of three terms drawn per row: about a third of the rows get the orphan marker
    assert report["plus_1_ratio"] > 2.0 and report["plus_2_ratio"] > report["plus_1_ratio"]
    assert report["plus_1_ratio"] == pytest.approx(report["plus_1_flag_rate"] / base)
    assert report["max_single_term_flag_rate"] == table["flag_rate"].iloc[0]
    assert report["max_single_term_ratio"] == pytest.approx(table["ratio_to_base"].iloc[0])
    assert report["vocabulary_size"] == 3 and report["vocabulary_seeds"] == 2
    again, _ = vocabulary_robustness(
        pipeline, frame, y, policy, feature_columns=columns, vocabulary_items=SMALL_ITEMS, seed=0, n_seeds=2
    )
    assert again == report  # a fixed seed: the same numbers


def test_vocabulary_robustness_on_a_trained_model(
    trained: TrainingOutcome, windows: Windows, layout: PhenotypeLayout
) -> None:
    columns = trained.feature_columns
    items = vocabulary_phenotype_items(layout.vocabulary, layout.term_rollup, layout.term_system, columns)
    assert len(items) == sum(c.startswith("hpo_") for c in columns)
    y = (windows.test["label"] == "orphan").map({True: ORPHAN_INDEX, False: 0}).to_numpy()
    report, table = vocabulary_robustness(
        trained.pipeline, windows.test, y, trained.policy, feature_columns=columns, vocabulary_items=items, seed=0
    )
    assert len(table) == len(items) and table["flag_rate"].is_monotonic_decreasing
    assert (table["n_rows_changed"] <= report["non_orphan_n"]).all() and table["label"].str.len().gt(0).all()
    for key in ("plus_1_flag_rate", "plus_2_flag_rate", "max_single_term_flag_rate"):
        assert 0.0 <= report[key] <= 1.0
