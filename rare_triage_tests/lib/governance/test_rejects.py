"""Ingest rejects become quarantine rows: counted as received, reasons without content, file names fingerprinted."""

import json

import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance.anonymize import IdentifierLeakError, Pseudonymizer
from rare_triage.lib.governance.govern import GovernanceResult
from rare_triage.lib.governance.rejects import LINE_FIELD, reject_quarantine, with_ingest_rejects
from rare_triage.lib.ingest.raw_contract import Reject, rejects_frame

PSEUDONYMIZE = Pseudonymizer(b"k" * 32)
DAY = "2025-03-04"


def _result() -> GovernanceResult:
    counts = {table: {"in": 10, "valid": 9, "quarantined": 1} for table in schema.RAW_TABLES}
    quarantined = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.QUARANTINE_COLUMNS})
    return GovernanceResult(anonymized={}, quarantined=quarantined, held={}, counts=counts, k_report={})


def test_each_reject_is_a_quarantine_row_naming_table_column_line_and_rule() -> None:
    rejects = rejects_frame(
        [
            Reject("garcia_lopez_export.csv", "vitals", 7, "value", "expected a number"),
            Reject("garcia_lopez_export.csv", "symptoms", 3, None, "expected 6 fields, got 8"),
        ]
    )
    rows = reject_quarantine(rejects, DAY, PSEUDONYMIZE)
    assert list(rows.columns) == list(schema.QUARANTINE_COLUMNS)
    assert list(rows["reason"]) == [
        "vitals.value: rejected at ingest: expected a number (line 7)",
        f"symptoms.{LINE_FIELD}: rejected at ingest: expected 6 fields, got 8 (line 3)",
    ]
    assert list(rows["field"]) == ["value", LINE_FIELD]
    stored = [json.loads(row) for row in rows["row_json"]]
    assert [s["line"] for s in stored] == [7, 3]
    assert stored[0]["file"] == stored[1]["file"] and stored[0]["file"].startswith("fp:")
    assert "garcia" not in rows.to_csv().lower()
    assert rows["row_ref"].nunique() == 2


def test_rejects_are_counted_as_received_and_quarantined() -> None:
    rejects = rejects_frame([Reject("v.csv", "vitals", 2, "value", "expected a number")])
    result = with_ingest_rejects(_result(), rejects, DAY, PSEUDONYMIZE)
    assert result.counts["vitals"] == {"in": 11, "valid": 9, "quarantined": 2}
    assert result.counts["symptoms"] == {"in": 10, "valid": 9, "quarantined": 1}
    assert len(result.quarantined) == 1


def test_no_rejects_change_nothing() -> None:
    before = _result()
    assert with_ingest_rejects(before, rejects_frame([]), DAY, PSEUDONYMIZE) is before


def test_a_reject_whose_rule_would_carry_identifier_content_is_refused() -> None:
    rejects = rejects_frame([Reject("v.csv", "vitals", 2, "value", "got ana.ruiz@example.org")])
    with pytest.raises(IdentifierLeakError, match="email") as raised:
        with_ingest_rejects(_result(), rejects, DAY, PSEUDONYMIZE)
    assert "ana.ruiz" not in str(raised.value)
