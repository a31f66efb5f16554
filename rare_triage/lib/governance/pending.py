"""Encounters held back below k, released when a rolling window of days brings their class to k.

A small clinic may send fewer than k encounters of a kind in a day: quarantining them would lose its data for ever.
Instead, an encounter that no generalisation brings to a class of k within its own day is held back, anonymized,
with its child rows, in the pending area (`pending_encounters`). Each day pools the rows still pending from the
day before with its own held-back rows and enforces k-anonymity over the pool alone (the same generalisation steps):

- rows whose class reaches k are released into the day's anonymized tables, re-dated to the releasing day (their
  `partition_day` and `encounter_year` become the day's: a held-back row is delayed, never back-dated, and its date
  blurred by up to the window);
- rows pending since `window_days` days (their own day and the `window_days - 1` after it) without reaching k are
  quarantined with the reason, as before there was a pending area;
- the rest stays pending, carried to the next day.

The released rows form classes of at least k among themselves, so the day's output (its own k-anonymous rows plus
them) stays k-anonymous. Each day's pending partition is a function of its raw extract and the previous day's pending
partition only, so re-materializing a day gives the same result.

Accounting per table, both checked by `quarantine_accounting`:
    own rows:  in = valid + quarantined + held
    pool:      carried_in + held = released + expired + carried_out
"""

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.governance.govern import GovernanceResult, guard_outputs
from rare_triage.lib.governance.kanonymity import BELOW_K_REASON, below_k_quarantine, enforce_k_anonymity
from rare_triage.lib.governance.schemas import typed_when_empty

PENDING_WINDOW_DAYS = 7
PENDING_SINCE = "pending_since"  # the day an encounter was held back (a column of the pending encounters only)
CHILD_OF_EXPIRED_REASON = "encounter quarantined: k-anonymity class below k over the pending window"
POOL_FIELDS = ("carried_in", "held", "released", "expired", "carried_out")


@dataclass(frozen=True)
class PendingRelease:
    """The pool settled: what joins the anonymized tables, what joins the quarantine, what stays pending."""

    released: dict[str, pd.DataFrame]
    expired_quarantine: pd.DataFrame
    pending: dict[str, pd.DataFrame]
    counts: dict[str, dict[str, int]]  # ANON table -> POOL_FIELDS


def empty_pending() -> dict[str, pd.DataFrame]:
    """A pending area holding nothing (the first day, or a day whose previous day was never governed)."""
    tables = {table: pd.DataFrame(columns=list(schema.ANON_COLUMNS[table])) for table in schema.ANON_TABLES}
    tables[schema.ANON_ENCOUNTERS][PENDING_SINCE] = pd.Series(dtype="string")
    return tables


def hold(held: Mapping[str, pd.DataFrame], day: str) -> dict[str, pd.DataFrame]:
    """The day's held-back tables as pending rows: encounters stamped with the day they were held back."""
    tables = {table: frame.reset_index(drop=True) for table, frame in held.items()}
    tables[schema.ANON_ENCOUNTERS] = tables[schema.ANON_ENCOUNTERS].assign(**{PENDING_SINCE: day})
    return tables


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    non_empty = [f for f in frames if len(f)]
    if not non_empty:
        return frames[0].iloc[:0]
    return pd.concat(non_empty, ignore_index=True)


def _redate(frame: pd.DataFrame, day: str) -> pd.DataFrame:
    return frame.assign(partition_day=day, encounter_year=int(day[:4])).drop(columns=[PENDING_SINCE])


def release_pending(
    carried: Mapping[str, pd.DataFrame],
    held: Mapping[str, pd.DataFrame],
    *,
    day: str,
    k: int,
    window_days: int = PENDING_WINDOW_DAYS,
) -> PendingRelease:
    """Pool the rows `carried` from the previous day's pending area with the day's `held` rows and settle them."""
    if window_days < 1:
        raise ValueError(f"window_days: {window_days} must be at least 1")
    today = dt.date.fromisoformat(day)
    last_day_to_wait = (today - dt.timedelta(days=window_days - 1)).isoformat()
    held_today = hold(held, day)
    pool = {table: _concat([carried[table], held_today[table]]) for table in schema.ANON_TABLES}
    encounters = pool[schema.ANON_ENCOUNTERS]
    settled = enforce_k_anonymity(encounters, k=k)
    still_pending = settled.below_k
    expired = still_pending[still_pending[PENDING_SINCE].astype("string") <= last_day_to_wait]
    released_keys = set(settled.encounters["encounter_key"])
    expired_keys = set(expired["encounter_key"])

    released = {schema.ANON_ENCOUNTERS: _redate(settled.encounters, day).reset_index(drop=True)}
    pending = {
        schema.ANON_ENCOUNTERS: still_pending[~still_pending["encounter_key"].isin(expired_keys)].reset_index(drop=True)
    }
    quarantine_parts = [
        below_k_quarantine(expired.drop(columns=[PENDING_SINCE]), partition_day=day, k=k).assign(
            reason=f"{BELOW_K_REASON} (k={k}) over {window_days} days"
        )
    ]
    for table in schema.ANON_CHILD_TABLES:
        rows = pool[table]
        in_released = rows["encounter_key"].isin(released_keys)
        in_expired = rows["encounter_key"].isin(expired_keys)
        released[table] = rows[in_released].reset_index(drop=True)
        pending[table] = rows[~in_released & ~in_expired].reset_index(drop=True)
        if in_expired.any():
            quarantine_parts.append(_child_quarantine(table, rows[in_expired], day))
    counts = {
        table: {
            "carried_in": len(carried[table]),
            "held": len(held[table]),
            "released": len(released[table]),
            "expired": len(pool[table]) - len(released[table]) - len(pending[table]),
            "carried_out": len(pending[table]),
        }
        for table in schema.ANON_TABLES
    }
    quarantine = _concat(quarantine_parts)
    return PendingRelease(released=released, expired_quarantine=quarantine, pending=pending, counts=counts)


def _child_quarantine(table: str, rows: pd.DataFrame, day: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "partition_day": day,
            "table": table,
            "row_ref": rows["encounter_key"].astype(object),
            "field": "encounter_id",
            "reason": CHILD_OF_EXPIRED_REASON,
            "row_json": rows.to_json(orient="records", lines=True).splitlines() if len(rows) else [],
        },
        columns=list(schema.QUARANTINE_COLUMNS),
    )


def settle_day(
    result: GovernanceResult,
    carried: Mapping[str, pd.DataFrame],
    *,
    day: str,
    k: int,
    window_days: int = PENDING_WINDOW_DAYS,
) -> tuple[GovernanceResult, dict[str, pd.DataFrame]]:
    """The day's governance result with the pool settled (released rows added to the anonymized tables, expired ones
    to the quarantine, the pool counts in `pool`) and the day's pending area."""
    settled = release_pending(carried, result.held, day=day, k=k, window_days=window_days)
    guard_outputs(settled.released, settled.expired_quarantine, settled.pending)
    anonymized = {table: _concat([result.anonymized[table], settled.released[table]]) for table in schema.ANON_TABLES}
    quarantined = _concat([result.quarantined, settled.expired_quarantine])
    pending = typed_when_empty(settled.pending)
    pending[schema.ANON_ENCOUNTERS] = (
        pending[schema.ANON_ENCOUNTERS]
        .reindex(columns=[*schema.ANON_COLUMNS[schema.ANON_ENCOUNTERS], PENDING_SINCE])
        .astype({PENDING_SINCE: "string"})
    )
    return (
        dataclasses.replace(
            result, anonymized=typed_when_empty(anonymized), quarantined=quarantined, pool=settled.counts
        ),
        pending,
    )
