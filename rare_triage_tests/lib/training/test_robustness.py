import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.training.robustness import (
    add_incidental_phenotypes,
    robustness_report,
    set_phenotype,
    vocabulary_term_systems,
)
from rare_triage.lib.training.synthetic_features import PhenotypeLayout
from rare_triage.lib.training.train import TrainingOutcome
from rare_triage_tests.lib.training.conftest import Windows

TERM_SYSTEMS = {"hpo_1": ("sys_a",), "hpo_2": ("sys_a", "sys_b"), "hpo_3": ()}


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


def test_set_phenotype_keeps_systems_and_their_count_consistent() -> None:
    frame = _frame()
    set_phenotype(frame, np.array([True, True, False]), "hpo_2", TERM_SYSTEMS)
    assert frame["hpo_2"].tolist()[:2] == [1.0, 1.0]
    assert frame["sys_a"].tolist()[:2] == [1.0, 1.0]
    assert frame["sys_b"].tolist()[:2] == [1.0, 1.0]
    assert frame["n_systems_involved"].tolist() == [2.0, 2.0, 0.0]


@pytest.mark.parametrize("k", [1, 2])
def test_incidental_phenotypes_add_exactly_k_new_terms(k: int) -> None:
    before = _frame()
    after = add_incidental_phenotypes(before, k, ["hpo_1", "hpo_2", "hpo_3"], TERM_SYSTEMS, seed=3)
    pool = ["hpo_1", "hpo_2", "hpo_3"]
    added = (after[pool].to_numpy() == 1.0).sum(axis=1) - (before[pool].to_numpy() == 1.0).sum(axis=1)
    assert added.tolist() == [k, k, k]
    assert (after["n_systems_involved"] >= before["n_systems_involved"]).all()
    assert before.equals(_frame())  # the input is left as it was


def test_asking_more_incidental_terms_than_the_pool_is_named() -> None:
    with pytest.raises(ValueError, match="pool has 1"):
        add_incidental_phenotypes(_frame(), 2, ["hpo_1"], TERM_SYSTEMS)


def test_term_systems_from_the_ontology_pairs() -> None:
    pairs = pd.DataFrame({"hpo_id": ["HP:0000001", "HP:0000001", "HP:0000002"], "system_id": ["HP:1", "HP:2", "HP:2"]})
    mapping = vocabulary_term_systems(pairs, ["hpo_0000001", "hpo_0000002", "sys_1"])
    assert mapping == {"hpo_0000001": ("sys_1",), "hpo_0000002": ()}


def test_robustness_report_has_the_issue_numbers(
    trained: TrainingOutcome, windows: Windows, layout: PhenotypeLayout
) -> None:
    columns = trained.feature_columns
    term_systems = vocabulary_term_systems(layout.term_system, columns)
    pool = [f"hpo_{h[3:]}" for h in layout.vocabulary.loc[layout.vocabulary.group == "common", "hpo_id"]]
    y = (windows.test["label"] == "orphan").map({True: 4, False: 0}).to_numpy()
    report = robustness_report(
        trained.pipeline,
        windows.test,
        y,
        trained.policy,
        feature_columns=columns,
        incidental_pool=pool,
        term_systems=term_systems,
    )
    for key in (
        "non_orphan_flag_rate",
        "non_orphan_flag_rate_plus_1_incidental",
        "non_orphan_flag_rate_plus_2_incidental",
        "elderly_multimorbid_flag_rate",
    ):
        assert 0.0 <= report[key] <= 1.0
    assert report["elderly_multimorbid_n"] > 0
