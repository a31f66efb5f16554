"""The governance step of one partition: validate, quarantine, anonymize, enforce k-anonymity, prove no identifier.

Every raw row ends either in the anonymized tables or in the quarantine with its reason; `GovernanceResult.counts`
says so per table (in = out + quarantined). The leak guard (`guard_outputs`) raises IdentifierLeakError before
anything is returned, so the step stores nothing, when an output holds an identifier column, a raw identifier value
or an identifier-shaped cell.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rare_triage.lib import schema
from rare_triage.lib.governance.anonymize import (
    IdentifierLeakError,
    Pseudonymizer,
    anonymize_extract,
    assert_no_identifiers,
)
from rare_triage.lib.governance.buckets import iter_buckets_with_rows
from rare_triage.lib.governance.kanonymity import K_ANONYMITY, below_k_quarantine, enforce_k_anonymity
from rare_triage.lib.governance.schemas import typed_when_empty
from rare_triage.lib.governance.screening import PatientIdentifierValues, identifier_findings, quarantine_findings
from rare_triage.lib.governance.validation import validate_extract
from rare_triage.lib.identifiers import SCREENED_VALUE_COLUMNS

RAW_TABLE_OF_ANON = {schema.ANON_ENCOUNTERS: schema.RAW_ENCOUNTERS} | {t: t for t in schema.ANON_CHILD_TABLES}
CHILD_OF_BELOW_K_REASON = "encounter quarantined: k-anonymity class below k"


@dataclass(frozen=True)
class GovernanceCodes:
    """The code lists a row must belong to; ``icd10`` may be a predicate (any code of ICD10_PATTERN, in production)."""

    icd10: Callable[[str], bool] | frozenset[str]
    orpha: frozenset[int]
    hpo: frozenset[str]


def known_orpha_codes(*sources: Iterable[int | str]) -> frozenset[int]:
    """Union of ORPHA code lists (HPO's annotated diseases, the Orphanet epidemiology list) as integers."""
    return frozenset(int(code) for source in sources for code in source)


@dataclass(frozen=True)
class GovernanceResult:
    """Anonymized ANON_* tables, quarantined rows (QUARANTINE_COLUMNS) and the accounting."""

    anonymized: dict[str, pd.DataFrame]
    quarantined: pd.DataFrame
    counts: dict[str, dict[str, int]]
    k_report: dict[str, int]


def _child_quarantine(table: str, rows: pd.DataFrame, partition_day: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "partition_day": partition_day,
            "table": table,
            "row_ref": rows["encounter_key"].astype(object),
            "field": "encounter_id",
            "reason": CHILD_OF_BELOW_K_REASON,
            "row_json": rows.to_json(orient="records", lines=True).splitlines() if len(rows) else [],
        },
        columns=list(schema.QUARANTINE_COLUMNS),
    )


def guard_outputs(anonymized: Mapping[str, pd.DataFrame], quarantined: pd.DataFrame) -> None:
    """Raise IdentifierLeakError if an output holds an identifier column or an identifier-shaped cell.

    The same screening as the no_identifiers check, inside the step: the check reports, this keeps data out.
    """
    findings = identifier_findings(anonymized) + quarantine_findings(quarantined)
    if findings:
        raise IdentifierLeakError(f"identifier content in the governance outputs: {'; '.join(findings[:20])}")


def govern_extract(
    raw: Mapping[str, pd.DataFrame],
    *,
    partition_day: str,
    pseudonymizer: Pseudonymizer,
    codes: GovernanceCodes,
    k: int = K_ANONYMITY,
    patient_values: PatientIdentifierValues | None = None,
    row_numbers: Mapping[str, np.ndarray] | None = None,
) -> GovernanceResult:
    """Raw extract of one day to anonymized tables; raises before returning if any identifier would survive.

    ``patient_values`` and ``row_numbers``: of the whole extract when ``raw`` is one bucket of it.
    """
    validated = validate_extract(
        raw,
        partition_day=partition_day,
        known_icd10=codes.icd10,
        known_orpha=codes.orpha,
        known_hpo=codes.hpo,
        pseudonymize=pseudonymizer,
        patient_values=patient_values,
        row_numbers=row_numbers,
    )
    anonymized = anonymize_extract(
        validated.valid, partition_day=partition_day, pseudonymizer=pseudonymizer, zip3_allowlist=None
    )
    k_result = enforce_k_anonymity(anonymized[schema.ANON_ENCOUNTERS], k=k)
    anonymized[schema.ANON_ENCOUNTERS] = k_result.encounters.reset_index(drop=True)
    quarantine_parts = [validated.quarantined, below_k_quarantine(k_result.below_k, partition_day=partition_day, k=k)]
    dropped_keys = set(k_result.below_k["encounter_key"])
    removed = {schema.ANON_ENCOUNTERS: len(k_result.below_k)}
    for table in schema.ANON_CHILD_TABLES:
        frame = anonymized[table]
        gone = frame["encounter_key"].isin(dropped_keys)
        removed[table] = int(gone.sum())
        if gone.any():
            quarantine_parts.append(_child_quarantine(table, frame[gone], partition_day))
        anonymized[table] = frame[~gone].reset_index(drop=True)

    assert_no_identifiers(anonymized, raw)

    counts = {name: dict(value) for name, value in validated.counts.items()}
    for anon_table, raw_table in RAW_TABLE_OF_ANON.items():
        counts[raw_table]["quarantined"] += removed[anon_table]
        counts[raw_table]["valid"] -= removed[anon_table]
    parts = [q for q in quarantine_parts if len(q)]
    quarantined = pd.concat(parts, ignore_index=True) if parts else validated.quarantined
    guard_outputs(anonymized, quarantined)
    return GovernanceResult(anonymized=anonymized, quarantined=quarantined, counts=counts, k_report=k_result.report)


def govern_in_buckets(
    raw: Mapping[str, pa.Table],
    *,
    n_buckets: int,
    partition_day: str,
    pseudonymizer: Pseudonymizer,
    codes: GovernanceCodes,
    k: int = K_ANONYMITY,
) -> GovernanceResult:
    """`govern_extract` over patient buckets of an Arrow extract, so peak memory follows the bucket, not the day."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets: {n_buckets} must be at least 1")
    patient_values = PatientIdentifierValues.from_patients(raw[schema.RAW_PATIENTS])
    parts = [
        govern_extract(
            bucket,
            partition_day=partition_day,
            pseudonymizer=pseudonymizer,
            codes=codes,
            k=k,
            patient_values=patient_values,
            row_numbers=rows,
        )
        for bucket, rows in iter_buckets_with_rows(raw, n_buckets)
    ]
    anonymized = {
        table: pd.concat([p.anonymized[table] for p in parts], ignore_index=True) for table in schema.ANON_TABLES
    }
    quarantined = pd.concat([p.quarantined for p in parts], ignore_index=True)
    counts = {
        table: {field: sum(p.counts[table][field] for p in parts) for field in ("in", "valid", "quarantined")}
        for table in schema.RAW_TABLES
    }
    k_report = {key: sum(p.k_report[key] for p in parts) for key in parts[0].k_report if key not in ("k", "k_achieved")}
    k_report["k"] = k
    k_report["k_achieved"] = min((p.k_report["k_achieved"] for p in parts if p.k_report["rows_out"]), default=0)
    k_report["buckets"] = n_buckets
    if n_buckets > 1:  # each bucket was checked against its own rows; now every raw value against every output
        assert_no_identifier_values_across(anonymized, raw)
    anonymized = typed_when_empty(anonymized)
    return GovernanceResult(anonymized=anonymized, quarantined=quarantined, counts=counts, k_report=k_report)


def _output_string_values(anonymized: Mapping[str, pd.DataFrame]) -> pa.ChunkedArray:
    """Distinct string cells of every anonymized table except the partition day (deliberately kept)."""
    chunks: list[pa.Array] = []
    for frame in anonymized.values():
        for column in frame.columns:
            values = frame[column]
            if column == "partition_day" or not (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
                continue
            array = pa.array(pd.unique(values.dropna()).astype(str), type=pa.large_string())
            chunks.extend(array.chunks if isinstance(array, pa.ChunkedArray) else [array])
    return pc.unique(pa.chunked_array(chunks, type=pa.large_string()))


def assert_no_identifier_values_across(anonymized: Mapping[str, pd.DataFrame], raw: Mapping[str, pa.Table]) -> None:
    """Raise IdentifierLeakError if any raw identifier value of the whole extract is a cell of any output table."""
    output = _output_string_values(anonymized)
    for table, columns in SCREENED_VALUE_COLUMNS.items():
        for column in columns:
            values = raw[table][column]
            if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
                values = pc.strftime(pc.cast(values, pa.timestamp("s")), format="%Y-%m-%d")
            values = pc.cast(values, pa.large_string())
            if pc.any(pc.is_in(values, value_set=output)).as_py():
                raise IdentifierLeakError(f"raw identifier values of {table}.{column} appear verbatim in the output")
