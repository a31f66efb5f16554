"""The leak guard of the no_identifiers check: identifier columns and identifier-shaped cells in anonymized tables."""

import re

import pandas as pd

from rare_triage.lib.identifiers import IDENTIFIER_COLUMNS

# Shapes of direct identifiers that must never appear in an anonymized string cell.
IDENTIFIER_PATTERNS = {
    "email": re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", re.IGNORECASE),
    "phone": re.compile(r"\+?\d[\d\s().-]{7,}\d"),
    "iso_date": re.compile(r"\b(?:19|20)\d{2}-\d{2}-\d{2}\b"),
    "zip5": re.compile(r"^\d{5}(?:-\d{4})?$"),
}
# The partition key is the one date element kept (README); pseudonymous keys are 32 hex characters (pandera checks
# their shape) whose digit runs would otherwise look like phone numbers.
PATTERN_EXEMPT_COLUMNS = {"partition_day", "encounter_key", "patient_key"}


def identifier_findings(tables: dict[str, pd.DataFrame]) -> list[str]:
    """table.column: problem, for identifier columns and identifier-shaped values."""
    findings = [
        f"{name}.{column}: identifier column"
        for name, frame in tables.items()
        for column in frame.columns
        if column in IDENTIFIER_COLUMNS
    ]
    for name, frame in tables.items():
        for column in frame.columns:
            if column in PATTERN_EXEMPT_COLUMNS or frame[column].dtype != object:
                continue
            values = pd.Series(frame[column].dropna().unique()).astype(str)
            for kind, pattern in IDENTIFIER_PATTERNS.items():
                hits = int(values.str.contains(pattern).sum())
                if hits:
                    findings.append(f"{name}.{column}: {hits} value(s) shaped like {kind}")
    return findings
