"""The governance step of one partition: validate, quarantine, anonymize, enforce k-anonymity, prove no identifier.

Every raw row ends in the anonymized tables, in the quarantine with its reason, or held back below k (with its
child rows, for the pending area: lib.governance.pending); `GovernanceResult.counts` says so per table
(in = valid + quarantined + held). The leak guard (`guard_outputs`) raises IdentifierLeakError before
anything is returned, so the step stores nothing, when an output holds an identifier column, a raw identifier value
or an identifier-shaped cell.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

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
from rare_triage.lib.governance.distinct import sorted_distinct
from rare_triage.lib.governance.kanonymity import K_ANONYMITY, enforce_k_anonymity
from rare_triage.lib.governance.schemas import typed_when_empty
from rare_triage.lib.governance.screening import (
    PatientIdentifierValues,
    identifier_findings,
    is_text,
    quarantine_findings,
)
from rare_triage.lib.governance.validation import validate_extract
from rare_triage.lib.identifiers import SCREENED_VALUE_COLUMNS

RAW_TABLE_OF_ANON = {schema.ANON_ENCOUNTERS: schema.RAW_ENCOUNTERS} | {t: t for t in schema.ANON_CHILD_TABLES}
COUNT_FIELDS = ("in", "valid", "quarantined", "held")


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
    """Anonymized ANON_* tables, quarantined rows (QUARANTINE_COLUMNS), the rows held back below k (ANON_* tables of
    the encounters no generalisation brought to a class of k, with their child rows) and the accounting."""

    anonymized: dict[str, pd.DataFrame]
    quarantined: pd.DataFrame
    held: dict[str, pd.DataFrame]
    counts: dict[str, dict[str, int]]
    k_report: dict[str, int]
    pool: dict[str, dict[str, int]] = field(default_factory=dict)  # ANON table -> pending pool counts, once settled


def guard_outputs(
    anonymized: Mapping[str, pd.DataFrame], quarantined: pd.DataFrame, held: Mapping[str, pd.DataFrame] | None = None
) -> None:
    """Raise IdentifierLeakError if an output holds an identifier column or an identifier-shaped cell.

    The same screening as the no_identifiers check, inside the step: the check reports, this keeps data out. Rows
    held back below k are stored too (in the pending area) and screened the same way.
    """
    findings = identifier_findings(anonymized) + quarantine_findings(quarantined)
    if held is not None:
        findings += [f"held back: {finding}" for finding in identifier_findings(held)]
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
    held = {schema.ANON_ENCOUNTERS: k_result.below_k.reset_index(drop=True)}
    held_keys = set(k_result.below_k["encounter_key"])
    for table in schema.ANON_CHILD_TABLES:
        frame = anonymized[table]
        below_k = frame["encounter_key"].isin(held_keys)
        held[table] = frame[below_k].reset_index(drop=True)
        anonymized[table] = frame[~below_k].reset_index(drop=True)

    assert_no_identifiers(anonymized, raw)
    assert_no_identifiers(held, raw)

    counts = {name: {**value, "held": 0} for name, value in validated.counts.items()}
    for anon_table, raw_table in RAW_TABLE_OF_ANON.items():
        counts[raw_table]["held"] = len(held[anon_table])
        counts[raw_table]["valid"] -= len(held[anon_table])
    guard_outputs(anonymized, validated.quarantined, held)
    return GovernanceResult(
        anonymized=anonymized, quarantined=validated.quarantined, held=held, counts=counts, k_report=k_result.report
    )


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
    held = {table: pd.concat([p.held[table] for p in parts], ignore_index=True) for table in schema.ANON_TABLES}
    quarantined = pd.concat([p.quarantined for p in parts], ignore_index=True)
    counts = {
        table: {field: sum(p.counts[table][field] for p in parts) for field in COUNT_FIELDS}
        for table in schema.RAW_TABLES
    }
    k_report = {key: sum(p.k_report[key] for p in parts) for key in parts[0].k_report if key not in ("k", "k_achieved")}
    k_report["k"] = k
    k_report["k_achieved"] = min((p.k_report["k_achieved"] for p in parts if p.k_report["rows_out"]), default=0)
    k_report["buckets"] = n_buckets
    if n_buckets > 1:  # each bucket was checked against its own rows; now every raw value against every output
        assert_no_identifier_values_across(anonymized, raw)
        assert_no_identifier_values_across(held, raw)
    return GovernanceResult(
        anonymized=typed_when_empty(anonymized),
        quarantined=quarantined,
        held=typed_when_empty(held),
        counts=counts,
        k_report=k_report,
    )


def _output_texts(anonymized: Mapping[str, pd.DataFrame]) -> Iterator[list[str]]:
    """Distinct string cells of each text column of the anonymized tables except the partition day (deliberately
    kept), one column at a time."""
    for frame in anonymized.values():
        for column in frame.columns:
            values = frame[column]
            if column == "partition_day" or not is_text(values):
                continue
            distinct = np.asarray(pd.unique(values), dtype=object)
            yield [v if isinstance(v, str) else str(v) for v in distinct[~pd.isna(distinct)]]


def _text_hashes(texts: Sequence[str]) -> np.ndarray:
    """64-bit hashes (pandas' SipHash) of strings."""
    return pd.util.hash_array(np.asarray(texts, dtype=object), categorize=False)


def _raw_texts(values: pa.ChunkedArray) -> list[str]:
    """Distinct non-missing values of a raw column as strings (dates as YYYY-MM-DD)."""
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        values = pc.strftime(pc.cast(values, pa.timestamp("s")), format="%Y-%m-%d")
    return pc.unique(pc.drop_null(pc.cast(values, pa.large_string()))).to_pylist()


def assert_no_identifier_values_across(anonymized: Mapping[str, pd.DataFrame], raw: Mapping[str, pa.Table]) -> None:
    """Raise IdentifierLeakError if any raw identifier value of the whole extract is a cell of any output table.

    The distinct output cells are held as sorted 64-bit hashes, not strings (the whole day's keys would take hundreds
    of MB as strings); a raw value whose hash is among them is then compared with the output cells as text.
    """
    parts = [sorted_distinct(_text_hashes(texts)) for texts in _output_texts(anonymized)]
    output = sorted_distinct(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
    del parts
    for table, columns in SCREENED_VALUE_COLUMNS.items():
        for column in columns:
            texts = _raw_texts(raw[table][column])
            if not texts or not len(output):
                continue
            probe = _text_hashes(texts)
            ordered = np.sort(probe)  # sorted probes: searchsorted walks the output hashes in order
            hit = output[np.minimum(np.searchsorted(output, ordered), len(output) - 1)] == ordered
            if not hit.any():
                continue
            found = np.isin(probe, ordered[hit])
            candidates = {text for text, is_hit in zip(texts, found, strict=True) if is_hit}
            if any(not candidates.isdisjoint(cells) for cells in _output_texts(anonymized)):
                raise IdentifierLeakError(f"raw identifier values of {table}.{column} appear verbatim in the output")
