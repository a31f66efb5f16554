"""gates.robustness_gate: +1 / +2 random vocabulary terms and the worst single term against the base flag rate."""

import math

import pandas as pd
import pytest

from rare_triage.lib.training.gates import GateResult, robustness_gate

LIMITS = {"max_ratio_plus_1": 1.5, "max_ratio_plus_2": 2.0, "max_single_term_ratio": 2.0}


def _per_term(rates: dict[str, float], base: float) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "hpo_id": list(rates),
            "label": [f"label of {h}" for h in rates],
            "n_rows_changed": 1000,
            "n_newly_flagged": 0,
            "flag_rate": list(rates.values()),
            "ratio_to_base": [r / base if base > 0 else math.nan for r in rates.values()],
        }
    )
    return table.sort_values("flag_rate", ascending=False, ignore_index=True)


def _gate(plus_1: float, plus_2: float, terms: dict[str, float], base: float = 0.04, n: float = 1000.0) -> GateResult:
    robustness = {
        "non_orphan_n": n,
        "non_orphan_flag_rate": base,
        "plus_1_flag_rate": plus_1,
        "plus_2_flag_rate": plus_2,
    }
    return robustness_gate(robustness, _per_term(terms, base), **LIMITS)


def test_passes_within_every_limit_and_at_the_limits() -> None:
    gate = _gate(0.06, 0.08, {"HP:0000001": 0.08, "HP:0000002": 0.05})  # 1.5x, 2x, 2x: exactly at the limits
    assert gate.passed, gate.description
    assert gate.metadata["plus_1_ratio"] == pytest.approx(1.5)
    assert gate.metadata["plus_2_ratio"] == pytest.approx(2.0)
    assert gate.metadata["max_single_term_ratio"] == pytest.approx(2.0)
    assert gate.metadata["worst_term"] == "HP:0000001" and gate.metadata["n_terms_over_limit"] == 0
    assert gate.metadata["max_ratio_plus_1"] == 1.5 and gate.metadata["max_single_term_ratio_limit"] == 2.0
    assert "1.50x" in gate.description and "HP:0000001 label of HP:0000001" in gate.description
    assert "FAILED" not in gate.description


def test_fails_on_plus_1() -> None:
    gate = _gate(0.0601, 0.07, {"HP:0000001": 0.05})
    assert not gate.passed
    assert "+1 random vocabulary term 0.0601 (1.50x, limit 1.5x FAILED)" in gate.description


def test_fails_on_plus_2() -> None:
    gate = _gate(0.05, 0.0804, {"HP:0000001": 0.05})
    assert not gate.passed and gate.metadata["plus_2_ratio"] == pytest.approx(2.01)
    assert "+2 0.0804 (2.01x, limit 2x FAILED)" in gate.description


def test_fails_on_a_single_term_and_names_the_worst_five() -> None:
    terms = {f"HP:000000{i}": 0.09 + i / 1000 for i in range(7)} | {"HP:0000099": 0.05}
    gate = _gate(0.05, 0.06, terms)
    assert not gate.passed and gate.metadata["n_terms_over_limit"] == 7
    assert gate.metadata["worst_term"] == "HP:0000006"
    assert gate.metadata["max_single_term_ratio"] == pytest.approx(0.096 / 0.04)
    named = gate.metadata["terms_over_limit"]
    assert [t.split()[0] for t in named] == [f"HP:000000{i}" for i in (6, 5, 4, 3, 2)]
    assert "terms over 2x: HP:0000006 label of HP:0000006 (0.0960, 2.40x)" in gate.description
    assert gate.description.endswith("and 2 more") and "HP:0000099" not in gate.description


def test_base_rate_zero_judges_absolute_rates_against_limit_over_n() -> None:
    # n = 1000: +1 may flag 1.5 rows (0.0015), +2 and a single term 2 rows (0.002)
    passing = _gate(0.001, 0.002, {"HP:0000001": 0.002}, base=0.0)
    assert passing.passed, passing.description
    assert math.isnan(passing.metadata["plus_1_ratio"]) and math.isnan(passing.metadata["max_single_term_ratio"])
    assert passing.metadata["judged_against_rate"] == pytest.approx(0.001)
    assert "base rate 0: ratios undefined" in passing.description and "ratio undefined" in passing.description
    failing = _gate(0.001, 0.002, {"HP:0000001": 0.003, "HP:0000002": 0.0}, base=0.0)
    assert not failing.passed and failing.metadata["terms_over_limit"] == ["HP:0000001 label of HP:0000001 (0.0030)"]
    assert "terms over 2/n" in failing.description
    assert not _gate(0.002, 0.002, {"HP:0000001": 0.0}, base=0.0).passed


def test_unmeasured_rates_fail() -> None:
    assert not _gate(math.nan, 0.05, {"HP:0000001": 0.05}).passed
    assert not _gate(0.05, 0.05, {}).passed  # no vocabulary term among the inputs: nothing to judge
    assert not _gate(math.nan, math.nan, {}, base=math.nan, n=0.0).passed
