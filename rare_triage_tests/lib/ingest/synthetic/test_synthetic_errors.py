"""Injected source errors: each kind appears at the configured rate and is detectable."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.ingest.synthetic import SyntheticConfig, generate_extract
from rare_triage.lib.ingest.synthetic.errors import ERROR_KINDS, inject_errors
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.schema import RAW_COLUMNS, RAW_ENCOUNTERS
from rare_triage_tests.lib.ingest.synthetic.checks import problems

DAY = dt.date(2025, 6, 2)


def test_default_rate_produces_a_few_errors(reference_tables: ReferenceTables) -> None:
    tables = generate_extract(DAY, SyntheticConfig(seed=4, encounters_per_day=5000), reference_tables)
    found = problems(tables, reference_tables)
    assert 0 < sum(found.values()) < 0.01 * len(tables[RAW_ENCOUNTERS])


def test_every_error_kind_is_detectable(reference_tables: ReferenceTables) -> None:
    clean = generate_extract(DAY, SyntheticConfig(seed=4, encounters_per_day=3000, error_rate=0.0), reference_tables)
    assert problems(clean, reference_tables) == {}
    corrupted, log = inject_errors(
        {name: frame.copy() for name, frame in clean.items()}, 0.05, np.random.default_rng(1)
    )
    assert set(log["kind"]) == set(ERROR_KINDS)
    assert len(log) == pytest.approx(0.05 * len(clean[RAW_ENCOUNTERS]), rel=0.3)
    found = problems(corrupted, reference_tables)
    expected = {
        "vital_out_of_range",
        "vital_unknown_code",
        "symptom_unknown_hpo",
        "diagnosis_unknown_code",
        "encounter_duplicated",
        "encounter_key_missing",
        "symptom_orphan_row",
    }
    assert expected <= set(found)
    assert found["encounter_duplicated"] == (log["kind"] == "duplicate_encounter").sum()
    for name in RAW_COLUMNS:
        assert tuple(corrupted[name].columns) == RAW_COLUMNS[name]
        assert (corrupted[name].dtypes == clean[name].dtypes).all(), name


def test_errors_are_deterministic(reference_tables: ReferenceTables) -> None:
    config = SyntheticConfig(seed=4, encounters_per_day=3000, error_rate=0.01)
    first, second = generate_extract(DAY, config, reference_tables), generate_extract(DAY, config, reference_tables)
    for name in RAW_COLUMNS:
        pd.testing.assert_frame_equal(first[name], second[name])
