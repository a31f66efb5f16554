"""Rows left out of the raw tables at ingest (unparseable lines and cells) become quarantine rows, so none is lost.

A reject carries where it was (file, line, column) and the rule it broke, never row content; the file name is an
integrator's choice, so the quarantine keeps only its keyed fingerprint.
"""

import dataclasses
import json
from collections.abc import Callable

import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.governance.anonymize import IdentifierLeakError
from rare_triage.lib.governance.govern import GovernanceResult
from rare_triage.lib.governance.screening import quarantine_findings
from rare_triage.lib.governance.validation import fingerprint

LINE_FIELD = "<line>"  # the field of a reject that concerns a whole line (wrong number of fields)


def reject_quarantine(rejects: pd.DataFrame, partition_day: str, pseudonymize: Callable[[str], str]) -> pd.DataFrame:
    """One QUARANTINE_COLUMNS row per reject: reason naming table, column, line and rule."""
    rows = []
    for reject in rejects.itertuples(index=False):
        column = LINE_FIELD if pd.isna(reject.column) else str(reject.column)
        line = None if pd.isna(reject.line) else int(reject.line)
        file_fp = fingerprint(f"file:{reject.file}", pseudonymize)
        rows.append(
            {
                "partition_day": partition_day,
                "table": str(reject.table),
                "row_ref": pseudonymize(f"ingest-reject:{reject.file}:{line}"),
                "field": column,
                "reason": f"{reject.table}.{column}: rejected at ingest: {reject.rule}"
                + (f" (line {line})" if line is not None else ""),
                "row_json": json.dumps({"file": file_fp, "line": line}),
            }
        )
    return pd.DataFrame(rows, columns=list(schema.QUARANTINE_COLUMNS))


def with_ingest_rejects(
    result: GovernanceResult, rejects: pd.DataFrame, partition_day: str, pseudonymize: Callable[[str], str]
) -> GovernanceResult:
    """`result` with the rejects quarantined and counted: rows received = rows out + rows quarantined."""
    if rejects.empty:
        return result
    quarantine = reject_quarantine(rejects, partition_day, pseudonymize)
    findings = quarantine_findings(quarantine)
    if findings:
        raise IdentifierLeakError(f"identifier content in the ingest rejects: {'; '.join(findings)}")
    counts = {table: dict(fields) for table, fields in result.counts.items()}
    for table, n in rejects["table"].value_counts().items():
        counts[str(table)]["in"] += int(n)
        counts[str(table)]["quarantined"] += int(n)
    quarantined = pd.concat([result.quarantined, quarantine], ignore_index=True)
    return dataclasses.replace(result, quarantined=quarantined, counts=counts)
