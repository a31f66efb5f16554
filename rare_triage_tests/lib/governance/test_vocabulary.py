"""Closed vocabularies: the published form of centre and region, membership, and the synthetic source inside them."""

import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance.vocabulary import (
    canonical_region,
    in_vocabulary,
    is_centre_id,
    published_centres,
    published_regions,
    raw_vocabulary_tests,
)
from rare_triage.lib.ingest.synthetic.config import DEFAULT_CENTRES
from rare_triage.lib.ingest.synthetic.names import REGIONS as SYNTHETIC_REGIONS


def test_regions_outside_the_vocabulary_are_published_as_other() -> None:
    values = pd.Series(["Madrid", "  hauts-de-FRANCE ", "Leocadia Villaseñor", None, "North"])
    assert published_regions(values).tolist() == ["Madrid", "Hauts-de-France", "other", None, "other"]


def test_centres_outside_the_registry_codes_are_published_as_other() -> None:
    values = pd.Series(["C01", "C123", "ORG-MSP-ARRAS", "+34 612 345 678", None])
    assert published_centres(values).tolist() == ["C01", "C123", "other", "other", None]


def test_the_synthetic_source_stays_inside_the_vocabularies() -> None:
    assert all(is_centre_id(c.centre_id) for c in DEFAULT_CENTRES)
    assert all(canonical_region(c.region) == c.region for c in DEFAULT_CENTRES)
    assert all(canonical_region(region) == region for region in SYNTHETIC_REGIONS)


def test_raw_vocabulary_tests_cover_codes_and_enumerations() -> None:
    tests = raw_vocabulary_tests(frozenset({"J18.9"}), frozenset({558}), frozenset({"HP:0001945"}))
    code = tests[(schema.RAW_DIAGNOSES, "code")]
    assert [bool(code(c)) for c in ("J18.9", "ORPHA:558", "ORPHA:1", "078-05-1120")] == [True, True, False, False]
    units = in_vocabulary(pd.Series(["Cel", "Ximena Quiroga", None]), tests[(schema.RAW_VITALS, "unit")])
    assert units.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("code", "known"),
    [("S72.001A", True), ("Z00.00", True), ("I10", True), ("ZZZ.9", False), ("e11.9", False), ("078-05-1120", False)],
)
def test_an_icd10_predicate_accepts_well_formed_codes_only(code: str, known: bool) -> None:
    tests = raw_vocabulary_tests(lambda _: True, frozenset({558}), frozenset({"HP:0001945"}))
    assert bool(tests[(schema.RAW_DIAGNOSES, "code")](code)) is known
    assert bool(tests[(schema.RAW_COMORBIDITIES, "icd10_code")](code)) is known
