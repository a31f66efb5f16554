import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.schema import SPECIFICITY_COLUMNS
from rare_triage.lib.testing.synthetic_features import PhenotypeLayout
from rare_triage.lib.training.robustness import (
    PhenotypeItem,
    add_incidental_phenotypes,
    add_phenotype,
    phenotype_items,
    robustness_report,
)
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
