"""The no_identifiers leak guard: identifier columns and identifier-shaped cells of the anonymized tables."""

import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance.screening import identifier_findings
from rare_triage.lib.identifiers import IDENTIFIER_COLUMNS
from rare_triage_tests.helpers.governance_extract import anonymized_extract


def test_anonymized_tables_have_no_finding() -> None:
    assert identifier_findings(anonymized_extract()) == []


@pytest.mark.parametrize("column", IDENTIFIER_COLUMNS)
def test_an_identifier_column_is_found(column: str) -> None:
    anon = anonymized_extract()
    anon[schema.ANON_SYMPTOMS] = anon[schema.ANON_SYMPTOMS].assign(**{column: "x"})
    assert identifier_findings(anon) == [f"symptoms.{column}: identifier column"]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("aurelia.q@example.org", "email"),
        ("+1 (555) 010-1234", "phone"),
        ("born 1980-06-01", "iso_date"),
        ("02139", "zip5"),
        ("02139-1234", "zip5"),
    ],
)
def test_an_identifier_shaped_value_is_found(value: str, kind: str) -> None:
    anon = anonymized_extract()
    anon[schema.ANON_ENCOUNTERS].loc[0, "region"] = value
    assert f"encounters.region: 1 value(s) shaped like {kind}" in identifier_findings(anon)


def test_repeated_values_count_once_and_the_value_is_not_quoted() -> None:
    anon = anonymized_extract()
    anon[schema.ANON_DIAGNOSES]["code"] = "a@b.org"
    findings = identifier_findings(anon)
    assert findings == ["diagnoses.code: 1 value(s) shaped like email"]


def test_partition_day_pseudonyms_and_numeric_columns_are_exempt() -> None:
    frame = pd.DataFrame(
        {
            "partition_day": ["2024-03-15"],
            "encounter_key": ["0123456789abcdef0123456789abcdef"],
            "patient_key": ["98765432109876543210fedcba987654"],
            "value": [12345.0],
        }
    )
    assert identifier_findings({"t": frame}) == []
