"""Drift scenarios: no effect before their start day, an effect from it on."""

import datetime as dt

import pandas as pd
import pytest

from rare_triage.lib.ingest.synthetic import DriftScenario, SyntheticConfig, generate_extract
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.schema import RAW_COLUMNS, RAW_ENCOUNTERS, RAW_VITALS
from rare_triage_tests.lib.ingest.synthetic.helpers import encounter_labels

START = dt.date(2025, 3, 10)
BEFORE, AFTER = dt.date(2025, 3, 7), dt.date(2025, 3, 12)
BASE = SyntheticConfig(seed=21, encounters_per_day=4000, error_rate=0.0)


def _with(*drift: DriftScenario) -> SyntheticConfig:
    return SyntheticConfig(seed=21, encounters_per_day=4000, error_rate=0.0, drift=drift)


def _assert_same(first: dict[str, pd.DataFrame], second: dict[str, pd.DataFrame]) -> None:
    for name in RAW_COLUMNS:
        pd.testing.assert_frame_equal(first[name], second[name])


@pytest.mark.parametrize(
    "scenario",
    [
        DriftScenario("thermometer_offset", START, {"centre_id": "C05", "offset_c": 1.0}),
        DriftScenario("case_mix", START, {"acute_multiplier": 2.0, "orphan_multiplier": 3.0}),
        DriftScenario("new_centre", START, {"centre_id": "C13", "level": "secondary", "region": "Galicia"}),
    ],
)
def test_no_effect_before_start(scenario: DriftScenario, reference_tables: ReferenceTables) -> None:
    _assert_same(
        generate_extract(BEFORE, BASE, reference_tables), generate_extract(BEFORE, _with(scenario), reference_tables)
    )


def test_thermometer_offset_shifts_one_centre(reference_tables: ReferenceTables) -> None:
    drifted = _with(DriftScenario("thermometer_offset", START, {"centre_id": "C05", "offset_c": 1.0}))
    base, shifted = generate_extract(AFTER, BASE, reference_tables), generate_extract(AFTER, drifted, reference_tables)
    keys = ["encounter_id", "loinc_code"]
    merged = base[RAW_VITALS].merge(shifted[RAW_VITALS], on=keys, suffixes=("_base", "_drift"))
    centre = merged["encounter_id"].map(base[RAW_ENCOUNTERS].set_index("encounter_id")["centre_id"])
    temperature = merged["loinc_code"] == "8310-5"
    difference = (merged["value_drift"] - merged["value_base"]).round(6)
    assert (difference[temperature & (centre == "C05")] == 1.0).mean() > 0.95
    assert (difference[~(temperature & (centre == "C05"))] == 0).all()


def test_case_mix_raises_acute_and_orphan_shares(reference_tables: ReferenceTables) -> None:
    drifted = _with(DriftScenario("case_mix", START, {"acute_multiplier": 2.0, "orphan_multiplier": 3.0}))
    base = encounter_labels(generate_extract(AFTER, BASE, reference_tables)).value_counts(normalize=True)
    shifted = encounter_labels(generate_extract(AFTER, drifted, reference_tables)).value_counts(normalize=True)
    assert shifted["acute"] > base["acute"] + 0.08
    assert shifted["orphan"] > 1.8 * base["orphan"]


def test_new_centre_starts_sending(reference_tables: ReferenceTables) -> None:
    drifted = _with(DriftScenario("new_centre", START, {"centre_id": "C13", "level": "secondary", "region": "Galicia"}))
    before = generate_extract(START - dt.timedelta(days=1), drifted, reference_tables)[RAW_ENCOUNTERS]
    after = generate_extract(START, drifted, reference_tables)[RAW_ENCOUNTERS]
    assert "C13" not in set(before["centre_id"])
    new = after[after["centre_id"] == "C13"]
    assert len(new) > 20
    assert set(new["centre_level"]) == {"secondary"}
    assert set(new["region"]) == {"Galicia"}
