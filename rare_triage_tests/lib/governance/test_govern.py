"""The in-step leak guard of the governance step: identifier-shaped output raises, so nothing is stored."""

import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance import govern
from rare_triage.lib.governance.anonymize import IdentifierLeakError, Pseudonymizer
from rare_triage.lib.governance.govern import GovernanceCodes, govern_extract, guard_outputs
from rare_triage_tests.helpers.governance_extract import (
    KNOWN_HPO,
    KNOWN_ICD10,
    KNOWN_ORPHA,
    PARTITION_DAY,
    TEST_KEY,
    anonymized_extract,
    raw_extract,
)

CODES = GovernanceCodes(icd10=KNOWN_ICD10, orpha=KNOWN_ORPHA, hpo=KNOWN_HPO)
EMPTY_QUARANTINE = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.QUARANTINE_COLUMNS})


def test_clean_outputs_pass_the_guard() -> None:
    guard_outputs(anonymized_extract(), EMPTY_QUARANTINE)


def test_an_identifier_shaped_output_cell_raises_without_quoting_it() -> None:
    anon = anonymized_extract()
    anon[schema.ANON_VITALS].loc[0, "unit"] = "someone@example.org"
    with pytest.raises(IdentifierLeakError, match=r"vitals\.unit: 1 value\(s\) shaped like email") as error:
        guard_outputs(anon, EMPTY_QUARANTINE)
    assert "someone" not in str(error.value)


def test_an_identifier_shaped_quarantine_value_raises() -> None:
    quarantine = pd.DataFrame(
        [{"partition_day": PARTITION_DAY, "table": "vitals", "row_ref": "r", "field": "unit", "reason": "r"}]
    ).assign(row_json='{"unit": "078-05-1120"}')
    with pytest.raises(IdentifierLeakError, match=r"row_json\.unit: shaped like ssn"):
        guard_outputs(anonymized_extract(), quarantine)


def test_the_governance_step_raises_when_its_output_would_hold_an_identifier(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: even if validation let it through, the step raises instead of returning the tables."""
    original = govern.anonymize_extract

    def leaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = original(*args, **kwargs)
        out[schema.ANON_DIAGNOSES].loc[0, "code"] = "+34 612 345 678"
        return out

    monkeypatch.setattr(govern, "anonymize_extract", leaky)
    with pytest.raises(IdentifierLeakError, match=r"diagnoses\.code: 1 value\(s\) shaped like phone"):
        govern_extract(
            raw_extract(), partition_day=PARTITION_DAY, pseudonymizer=Pseudonymizer(TEST_KEY), codes=CODES, k=1
        )


def test_the_governance_step_quarantines_identifier_content_and_publishes_other_regions() -> None:
    raw = raw_extract()
    raw[schema.RAW_SYMPTOMS].loc[0, "hpo_id"] = "Aurelia Quenby"
    result = govern_extract(raw, partition_day=PARTITION_DAY, pseudonymizer=Pseudonymizer(TEST_KEY), codes=CODES, k=1)
    reasons = result.quarantined["reason"].tolist()
    assert reasons == ["symptoms.hpo_id: identifier content (patient_value) (row 0)"]
    assert set(result.anonymized[schema.ANON_ENCOUNTERS]["region"]) == {schema.OTHER_CATEGORY}  # North / South
