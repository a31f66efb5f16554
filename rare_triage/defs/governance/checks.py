"""Governance checks, evaluated in the governance step on the tables it just produced."""

import dagster as dg
import pandas as pd
import pandera.errors

from rare_triage.defs.shared import keys as c
from rare_triage.lib import schema
from rare_triage.lib.governance.govern import GovernanceResult
from rare_triage.lib.governance.kanonymity import DEFAULT_QUASI_IDENTIFIERS, k_anonymity
from rare_triage.lib.governance.kanonymity import K_ANONYMITY as REQUIRED_K
from rare_triage.lib.governance.schemas import validate_anonymized
from rare_triage.lib.governance.screening import identifier_findings

ANONYMIZED_SCHEMA = "anonymized_schema"
NO_IDENTIFIERS = "no_identifiers"
K_ANONYMITY = "k_anonymity"
QUARANTINE_ACCOUNTING = "quarantine_accounting"
QUARANTINE_RATE = "quarantine_rate"
MAX_QUARANTINE_SHARE = 0.02

GOVERNANCE_CHECK_SPECS = [
    dg.AssetCheckSpec(
        ANONYMIZED_SCHEMA,
        asset=c.ANONYMIZED_ENCOUNTERS,
        blocking=True,
        description="pandera schemas of every table.",
        partitions_def=c.DAILY_PARTITIONS,
    ),
    dg.AssetCheckSpec(
        NO_IDENTIFIERS,
        asset=c.ANONYMIZED_ENCOUNTERS,
        blocking=True,
        description="No identifier column, and no cell shaped like an email, phone number, date or full ZIP.",
        partitions_def=c.DAILY_PARTITIONS,
    ),
    dg.AssetCheckSpec(
        K_ANONYMITY,
        asset=c.ANONYMIZED_ENCOUNTERS,
        blocking=True,
        description=(
            f"k >= {REQUIRED_K} over the quasi-identifiers kept (age band, sex, centre, centre level, region), "
            "by pycanon."
        ),
        partitions_def=c.DAILY_PARTITIONS,
    ),
    dg.AssetCheckSpec(
        QUARANTINE_ACCOUNTING,
        asset=c.QUARANTINED_RECORDS,
        blocking=True,
        description=(
            "For every raw table: rows in = rows out + rows quarantined + rows held back below k; and for the "
            "pending pool: rows carried in + held back = released + expired (quarantined) + still pending."
        ),
        partitions_def=c.DAILY_PARTITIONS,
    ),
    dg.AssetCheckSpec(
        QUARANTINE_RATE,
        asset=c.QUARANTINED_RECORDS,
        description=f"Warns when more than {MAX_QUARANTINE_SHARE:.0%} of the encounters are quarantined.",
        partitions_def=c.DAILY_PARTITIONS,
    ),
]


def schema_failures(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Readable pandera failures of the anonymized tables (empty when every schema holds)."""
    try:
        validate_anonymized(tables)
    except pandera.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        return [
            f"{r.schema_context} {r.column}: {r.check} failed for {r.failure_case!r}"
            for r in cases.head(20).itertuples()
        ]
    except pandera.errors.SchemaError as error:
        return [str(error)]
    return []


def governance_check_results(result: GovernanceResult, k: int) -> list[dg.AssetCheckResult]:
    """Every governance check on the step's own output."""
    tables = result.anonymized
    failures = schema_failures(tables)
    findings = identifier_findings(tables)
    encounters = tables[schema.ANON_ENCOUNTERS]
    k_found = k_anonymity(encounters, DEFAULT_QUASI_IDENTIFIERS, engine="pycanon") if len(encounters) else 0
    unbalanced = {t: n for t, n in result.counts.items() if n["in"] != n["valid"] + n["quarantined"] + n.get("held", 0)}
    unbalanced_pool = {
        t: n
        for t, n in result.pool.items()
        if n["carried_in"] + n["held"] != n["released"] + n["expired"] + n["carried_out"]
    }
    enc_counts = result.counts[schema.RAW_ENCOUNTERS]
    share = enc_counts["quarantined"] / enc_counts["in"] if enc_counts["in"] else 0.0
    return [
        dg.AssetCheckResult(
            asset_key=c.ANONYMIZED_ENCOUNTERS,
            check_name=ANONYMIZED_SCHEMA,
            passed=not failures,
            metadata={"failures": dg.MetadataValue.json(failures)},
        ),
        dg.AssetCheckResult(
            asset_key=c.ANONYMIZED_ENCOUNTERS,
            check_name=NO_IDENTIFIERS,
            passed=not findings,
            metadata={"findings": dg.MetadataValue.json(findings)},
        ),
        dg.AssetCheckResult(
            asset_key=c.ANONYMIZED_ENCOUNTERS,
            check_name=K_ANONYMITY,
            passed=k_found >= k or len(encounters) == 0,
            metadata={"k": k_found, "required_k": k, **result.k_report},
        ),
        dg.AssetCheckResult(
            asset_key=c.QUARANTINED_RECORDS,
            check_name=QUARANTINE_ACCOUNTING,
            passed=not unbalanced and not unbalanced_pool,
            metadata={"counts": dg.MetadataValue.json(result.counts), "pool": dg.MetadataValue.json(result.pool)},
        ),
        dg.AssetCheckResult(
            asset_key=c.QUARANTINED_RECORDS,
            check_name=QUARANTINE_RATE,
            passed=share <= MAX_QUARANTINE_SHARE,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"encounter_quarantine_share": round(share, 5)},
        ),
    ]
