"""Governance of each daily partition: anonymized tables and the quarantine of rows that failed validation."""

import math
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pyarrow as pa

from rare_triage.defs.governance.checks import GOVERNANCE_CHECK_SPECS, governance_check_results
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.pseudonymization import PseudonymizationResource
from rare_triage.lib import schema
from rare_triage.lib.governance.govern import GovernanceCodes, govern_in_buckets, known_orpha_codes
from rare_triage.lib.governance.kanonymity import K_ANONYMITY
from rare_triage.lib.governance.rejects import with_ingest_rejects
from rare_triage.lib.reference.loaders import icd10_acuity_lookup, load_orphanet_epidemiology


def governance_specs() -> list[dg.AssetSpec]:
    """The two outputs of the governance step (built in a function: autoloading would register module-level specs
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
            "if any identifier survives."
        ),
    ).with_io_manager_key(c.PARQUET_IO_MANAGER)
    quarantine = dg.AssetSpec(
        c.QUARANTINED_RECORDS,
        group_name=c.GROUP_GOVERNANCE,
        deps=[c.RAW_EHR_EXTRACT, c.HPO_REFERENCE_TABLES],
        kinds={"python", "parquet"},
        description="Rows that failed validation or k-anonymity, one line per problem with its reason; no identifier.",
    ).with_io_manager_key(c.PARQUET_IO_MANAGER)
    return [anonymized, quarantine]


class GovernanceConfig(dg.Config):
    """Large days are governed in patient buckets of about this many encounters, to bound memory."""

    encounters_per_bucket: int = 200_000


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
def anonymized_and_quarantined(
    context: dg.AssetExecutionContext,
    config: GovernanceConfig,
    pseudonymization: PseudonymizationResource,
    raw: dict[str, pa.Table],
    reference: dict[str, pd.DataFrame],
) -> Iterator[dg.Output[object] | dg.AssetCheckResult]:
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
    enc = result.counts[schema.RAW_ENCOUNTERS]
    yield dg.Output(
        result.anonymized,
        output_name=c.ANONYMIZED_ENCOUNTERS.to_python_identifier(),
        metadata={
            "encounters_in": enc["in"],
            "encounters_out": enc["valid"],
            "encounters_quarantined": enc["quarantined"],
            "counts": dg.MetadataValue.json(result.counts),
            "k_anonymity": dg.MetadataValue.json(result.k_report),
            "dagster/row_count": enc["valid"],
        },
    )
    reasons = result.quarantined["reason"].str.split(":").str[0].value_counts().head(20).to_dict()
    yield dg.Output(
        result.quarantined,
        output_name=c.QUARANTINED_RECORDS.to_python_identifier(),
        metadata={
            "rows": len(result.quarantined),
            "by_table": dg.MetadataValue.json(result.quarantined["table"].value_counts().to_dict()),
            "by_field": dg.MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
            "dagster/row_count": len(result.quarantined),
        },
    )
    yield from governance_check_results(result, pseudonymization.k_anonymity)
