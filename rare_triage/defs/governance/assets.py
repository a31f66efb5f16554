"""Governance of each daily partition: anonymized tables and the quarantine of rows that failed validation."""

import datetime as dt
import math
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pyarrow as pa

from rare_triage.defs.governance.checks import GOVERNANCE_CHECK_SPECS, governance_check_results
from rare_triage.defs.governance.columns import (
    anonymized_column_schema,
    pending_column_schema,
    quarantine_column_schema,
)
from rare_triage.defs.governance.previous_day import PreviousDayPolicy, require_previous_day_governed
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.automation import FOLLOWS_UPSTREAM
from rare_triage.defs.shared.io_managers.parquet_lake import SINGLE_TABLE, ParquetLakeIOManager
from rare_triage.defs.shared.pseudonymization import PseudonymizationResource
from rare_triage.lib import schema
from rare_triage.lib.governance.govern import GovernanceCodes, govern_in_buckets, known_orpha_codes
from rare_triage.lib.governance.kanonymity import K_ANONYMITY
from rare_triage.lib.governance.pending import PENDING_WINDOW_DAYS, empty_pending, settle_day
from rare_triage.lib.governance.rejects import with_ingest_rejects
from rare_triage.lib.governance.schemas import typed_quarantine_when_empty
from rare_triage.lib.reference.loaders import icd10_acuity_lookup, load_orphanet_epidemiology

# the pending area of day D is the pending area of day D-1 settled with day D's held-back rows
PREVIOUS_DAY = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True)


def governance_specs() -> list[dg.AssetSpec]:
    """The three outputs of the governance step (built in a function: autoloading would register module-level specs
    as external assets next to the multi-asset)."""
    anonymized = dg.AssetSpec(
        c.ANONYMIZED_ENCOUNTERS,
        group_name=c.GROUP_GOVERNANCE,
        deps=[c.RAW_EHR_EXTRACT, c.HPO_REFERENCE_TABLES],
        kinds={"python", "parquet"},
        description=(
            "Encounters, vitals, symptoms, diagnoses and comorbidities with every HIPAA Safe Harbor identifier "
            "removed or generalized: HMAC-SHA256 pseudonymous keys, age top-coded at 90, year only (the partition day "
            f"is the one date element kept), ZIP3, k-anonymity >= {K_ANONYMITY}. The step fails, and stores nothing, "
            "if any identifier survives. " + c.PARTITIONS_NOTE
        ),
        metadata={"dagster/column_schema": anonymized_column_schema()},
    ).with_io_manager_key(c.PARQUET_IO_MANAGER)
    quarantine = dg.AssetSpec(
        c.QUARANTINED_RECORDS,
        group_name=c.GROUP_GOVERNANCE,
        deps=[c.RAW_EHR_EXTRACT, c.HPO_REFERENCE_TABLES],
        kinds={"python", "parquet"},
        description=(
            "Rows that failed validation, or stayed below k over the pending window, one line per problem with its "
            "reason; no identifier."
        ),
        metadata={"dagster/column_schema": quarantine_column_schema()},
    ).with_io_manager_key(c.PARQUET_IO_MANAGER)
    pending = dg.AssetSpec(
        c.PENDING_ENCOUNTERS,
        group_name=c.GROUP_GOVERNANCE,
        deps=[
            c.RAW_EHR_EXTRACT,
            c.HPO_REFERENCE_TABLES,
            dg.AssetDep(c.PENDING_ENCOUNTERS, partition_mapping=PREVIOUS_DAY),
        ],
        kinds={"python", "parquet"},
        description=(
            "Anonymized encounters (with their child rows) that no generalisation brought to a class of k within "
            f"their day: held back, not lost. Each day pools them with the previous day's pending rows; classes that "
            f"reach k are released into that day's anonymized tables, rows still below k after {PENDING_WINDOW_DAYS} "
            "days are quarantined. Not read by any model."
        ),
        metadata={"dagster/column_schema": pending_column_schema()},
    ).with_io_manager_key(c.PARQUET_IO_MANAGER)
    # the three outputs are written together: when the raw extract of a recent day is updated (and its blocking
    # checks passed) they are materialized again without a click (a missing previous pending area is no reason to
    # wait: the first day has none)
    condition = FOLLOWS_UPSTREAM.ignore(dg.AssetSelection.assets(c.PENDING_ENCOUNTERS))
    return [spec.replace_attributes(automation_condition=condition) for spec in (anonymized, quarantine, pending)]


class GovernanceConfig(dg.Config):
    """Large days are governed in patient buckets of about this many encounters, to bound memory; encounters below
    k wait at most `pending_window_days` days (their own and the ones after) for their class to reach k. A day waits
    up to `previous_day_wait_seconds` for a run still governing the day before (its pending area is this day's
    input); a previous day extracted but not governed is refused unless `allow_missing_previous_day`."""

    encounters_per_bucket: int = 200_000
    pending_window_days: int = PENDING_WINDOW_DAYS
    previous_day_wait_seconds: float = 3600.0
    previous_day_poll_seconds: float = 2.0
    allow_missing_previous_day: bool = False

    def previous_day_policy(self) -> PreviousDayPolicy:
        return PreviousDayPolicy(
            wait_seconds=self.previous_day_wait_seconds,
            poll_seconds=self.previous_day_poll_seconds,
            allow_missing=self.allow_missing_previous_day,
        )


def governance_codes(reference: dict[str, pd.DataFrame]) -> GovernanceCodes:
    """The code lists rows are validated against: any ICD-10 code the label's acuity lookup knows, the ORPHA codes
    of HPO's annotations and of the Orphanet epidemiology list, the HPO ids of the release."""
    return GovernanceCodes(
        icd10=icd10_acuity_lookup().__contains__,
        orpha=known_orpha_codes(reference["orpha_diseases"]["orpha_code"], load_orphanet_epidemiology()["orpha_code"]),
        hpo=frozenset(reference["hpo_terms"]["hpo_id"]),
    )


@dg.multi_asset(
    specs=governance_specs(),
    partitions_def=c.DAILY_PARTITIONS,
    ins={
        "raw": dg.AssetIn(c.RAW_EHR_EXTRACT, input_manager_key=c.PARQUET_ARROW_INPUT),
        "reference": dg.AssetIn(c.HPO_REFERENCE_TABLES),
    },
    check_specs=GOVERNANCE_CHECK_SPECS,
    name="govern_extract",
)
def anonymized_and_quarantined(  # noqa: PLR0917 (Dagster passes inputs and resources by parameter name)
    context: dg.AssetExecutionContext,
    config: GovernanceConfig,
    pseudonymization: PseudonymizationResource,
    parquet_io_manager: dg.ResourceParam[ParquetLakeIOManager],
    raw: dict[str, pa.Table],
    reference: dict[str, pd.DataFrame],
) -> Iterator[dg.Output[object] | dg.AssetCheckResult]:
    """The three outputs are written and put in place together before any is yielded: a failed write of one leaves
    the partition's previous anonymized tables, quarantine and pending area as they were, and records no
    materialization. Day D-1's pending area is read first: see `previous_day` for when D waits or refuses."""
    previous_day = (dt.date.fromisoformat(context.partition_key) - dt.timedelta(days=1)).isoformat()
    waited = require_previous_day_governed(context, parquet_io_manager, previous_day, config.previous_day_policy())
    carried = parquet_io_manager.load_partition_if_materialized(c.PENDING_ENCOUNTERS, previous_day)
    if isinstance(carried, pd.DataFrame):
        raise TypeError(f"{c.PENDING_ENCOUNTERS.to_user_string()} {previous_day}: one table, not the anonymized tables")
    n_buckets = max(1, math.ceil(raw[schema.RAW_ENCOUNTERS].num_rows / config.encounters_per_bucket))
    pseudonymizer = pseudonymization.pseudonymizer()
    result = govern_in_buckets(
        raw,
        n_buckets=n_buckets,
        partition_day=context.partition_key,
        pseudonymizer=pseudonymizer,
        codes=governance_codes(reference),
        k=pseudonymization.k_anonymity,
    )
    if schema.RAW_REJECTS in raw:  # extracts stored before rejects were kept have none
        rejects = raw[schema.RAW_REJECTS].to_pandas()
        result = with_ingest_rejects(result, rejects, context.partition_key, pseudonymizer)
    raw.clear()  # the raw day is no longer needed: free it before the outputs are converted and written
    result, pending = settle_day(
        result,
        carried or empty_pending(),
        day=context.partition_key,
        k=pseudonymization.k_anonymity,
        window_days=config.pending_window_days,
    )
    committed = parquet_io_manager.commit_partition_outputs(
        context.run.run_id,
        context.partition_key,
        {
            c.ANONYMIZED_ENCOUNTERS: result.anonymized,
            c.QUARANTINED_RECORDS: {SINGLE_TABLE: typed_quarantine_when_empty(result.quarantined)},
            c.PENDING_ENCOUNTERS: pending,
        },
    )
    enc = result.counts[schema.RAW_ENCOUNTERS]
    pool = result.pool[schema.ANON_ENCOUNTERS]
    yield dg.Output(
        committed[c.ANONYMIZED_ENCOUNTERS],
        output_name=c.ANONYMIZED_ENCOUNTERS.to_python_identifier(),
        metadata={
            "encounters_in": enc["in"],
            "encounters_out": enc["valid"] + pool["released"],
            "encounters_quarantined": enc["quarantined"],
            "encounters_held_back": enc["held"],
            "encounters_released": pool["released"],
            "counts": dg.MetadataValue.json(result.counts),
            "pending_pool": dg.MetadataValue.json(result.pool),
            "k_anonymity": dg.MetadataValue.json(result.k_report),
            "dagster/row_count": enc["valid"] + pool["released"],
        },
    )
    reasons = result.quarantined["reason"].str.split(":").str[0].value_counts().head(20).to_dict()
    yield dg.Output(
        committed[c.QUARANTINED_RECORDS],
        output_name=c.QUARANTINED_RECORDS.to_python_identifier(),
        metadata={
            "rows": len(result.quarantined),
            "by_table": dg.MetadataValue.json(result.quarantined["table"].value_counts().to_dict()),
            "by_field": dg.MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
            "dagster/row_count": len(result.quarantined),
        },
    )
    yield dg.Output(
        committed[c.PENDING_ENCOUNTERS],
        output_name=c.PENDING_ENCOUNTERS.to_python_identifier(),
        metadata={
            "encounters_pending": pool["carried_out"],
            "oldest_pending_since": str(pending[schema.ANON_ENCOUNTERS]["pending_since"].min())
            if pool["carried_out"]
            else "",
            "window_days": config.pending_window_days,
            "previous_day_waited_s": round(waited, 1),
            "pool": dg.MetadataValue.json(result.pool),
            "dagster/row_count": pool["carried_out"],
        },
    )
    yield from governance_check_results(result, pseudonymization.k_anonymity)
