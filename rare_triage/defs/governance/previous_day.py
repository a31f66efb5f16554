"""Day D's governance pools D's held-back rows with D-1's pending area: it must not run before D-1's is stored.

When D-1's pending area is missing, three cases:
- a run that plans to materialize it has not finished, or D's job backfill holds D-1 and its run of D-1 has not
  ended (a backfill runs adjacent days side by side, the queue may start D before D-1): wait for it in the step,
  up to a configured time;
- D-1's raw extract is stored but nothing governs it: refuse, naming the day to govern first (governing D now would
  leave D-1's held-back rows out of D for good);
- D-1 has no raw extract (the first day of the data, or a day without any): D starts with an empty pool.
Each decision is explicit, `allow_missing_previous_day` the deliberate way past the refusal.
"""

import time
from dataclasses import dataclass

import dagster as dg

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.io_managers.parquet_lake import ParquetLakeIOManager

BACKFILL_TAG = "dagster/backfill"
PARTITION_TAG = "dagster/partition"

# the statuses of a run that may still materialize what it planned
UNFINISHED = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)


@dataclass(frozen=True)
class PreviousDayPolicy:
    """How long day D waits for a run still governing D-1, how often it looks, and whether a stored but ungoverned
    D-1 is refused (the default) or knowingly skipped."""

    wait_seconds: float
    poll_seconds: float
    allow_missing: bool


def unfinished_run_governing(instance: dg.DagsterInstance, day: str, backfill_id: str | None) -> str | None:
    """What governs the pending area of `day` and has not finished ("run <id>", "backfill <id>"): a run planned
    to materialize it, or the job backfill this run belongs to when `day` is one of its partitions and its run of
    that day is yet to be submitted or still going (a job backfill does not order its runs: the queue may start
    this day first). Else None."""
    planned = instance.get_latest_planned_materialization_info(c.PENDING_ENCOUNTERS, day)
    if planned is not None:
        run = instance.get_run_by_id(planned.run_id)
        if run is not None and run.status in UNFINISHED:
            return f"run {run.run_id}"
    if backfill_id is None:
        return None
    backfill = instance.get_backfill(backfill_id)
    if backfill is None or day not in (backfill.partition_names or ()):
        return None
    records = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id, PARTITION_TAG: day}))
    if records and all(r.dagster_run.status not in UNFINISHED for r in records):
        return None  # the backfill's run of that day has ended (without storing it, or it would have been found)
    return f"run {records[0].dagster_run.run_id}" if records else f"backfill {backfill_id}"


def require_previous_day_governed(
    context: dg.AssetExecutionContext, lake: ParquetLakeIOManager, previous_day: str, policy: PreviousDayPolicy
) -> float:
    """Return once the partition may be governed: D-1's pending area is stored, or D-1 has no extract (or the
    policy allows going on without it). While a run or this run's backfill still governs D-1, wait in the step
    (polling the instance; the step's inputs stay loaded); fail with what to do when D-1 was extracted and is
    governed by nothing, or when the wait runs out. The seconds waited."""
    pending = c.PENDING_ENCOUNTERS.to_user_string()
    backfill_id = context.run.tags.get(BACKFILL_TAG)
    began = time.monotonic()
    governor = unfinished_run_governing(context.instance, previous_day, backfill_id)
    if governor is not None:
        context.log.info(f"{pending} {previous_day} is yet to be materialized by {governor}: waiting for it")
    while governor is not None and not lake.has_partition(c.PENDING_ENCOUNTERS, previous_day):
        if time.monotonic() - began >= policy.wait_seconds:
            raise dg.Failure(
                f"{pending} {previous_day} was still not materialized after {policy.wait_seconds:g} s ({governor} has "
                f"not finished): govern {context.partition_key} once it has",
                metadata={"previous_day": previous_day, "waiting_for": governor},
            )
        time.sleep(policy.poll_seconds)
        governor = unfinished_run_governing(context.instance, previous_day, backfill_id)
    waited = time.monotonic() - began
    if (
        policy.allow_missing
        or lake.has_partition(c.PENDING_ENCOUNTERS, previous_day)
        or not lake.has_partition(c.RAW_EHR_EXTRACT, previous_day)
    ):
        return waited
    raise dg.Failure(
        f"{pending} {previous_day} is not materialized although {c.RAW_EHR_EXTRACT.to_user_string()} {previous_day} "
        f"is: govern {previous_day} first. Governing {context.partition_key} now would leave the encounters "
        f"{previous_day} holds back below k out of every later day (set allow_missing_previous_day to do so "
        "knowingly).",
        metadata={"previous_day": previous_day},
    )
