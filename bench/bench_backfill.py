"""Throughput of a backfill of the daily ingest on the shared deployment (deploy/dagster.yaml), run concurrently by the
queued run coordinator, against the same days run one at a time, measured in the same invocation.

For each run limit (`concurrency: runs: max_concurrent_runs`, 1 = one run at a time) a fresh deployment on 127.0.0.1:
a throwaway PostgreSQL cluster (one database per deployment), the code location served by `dagster api grpc`,
`dagster-daemon run`, and one job backfill of N synthetic days submitted through the instance. Figures come from the
run storage and the event log: wall time (submission -> last run ended, and first run started -> last run ended),
partitions per minute, encounters per second (rows of the features table / wall time), runs in progress at once,
time the DuckDB pool was held, and the ratio against limit 1.

    PYTHONPATH=. .venv/bin/python bench/bench_backfill.py                          # 6 days of 2,000 encounters, 1 vs 3
    PYTHONPATH=. .venv/bin/python bench/bench_backfill.py --days 4 --encounters 400 --limits 1 3 4
    PYTHONPATH=. .venv/bin/python bench/bench_backfill.py --every-other-day          # no pending chain between days
    PYTHONPATH=. .venv/bin/python bench/bench_backfill.py --executor multiprocess    # the job's default executor

Days are consecutive by default: governance carries the rows held back below k from day D-1 into day D, so day D's
governance waits for D-1's (a job backfill orders nothing between its runs). The report prints, for each day, the
rows it carried in against those its previous day carried out (a mismatch would be a held-back row lost), and the
seconds each day's governance waited. `--every-other-day` backfills days two apart: no day waits for another.
"""

import argparse
import contextlib
import datetime as dt
import inspect
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rare_triage.defs.shared import keys
from rare_triage_tests import fixtures_pg
from rare_triage_tests.helpers import shared_deployment as sd

FIRST_DAY = dt.date(2025, 4, 1)
# run configuration of each executor tried: one process per run; the job's default (a new interpreter per step,
# `spawn`, each loading the code location); one process per step forked from a server that loaded it once per run
EXECUTORS: dict[str, dict[str, Any] | None] = {
    "in_process": sd.IN_PROCESS,
    "multiprocess": None,
    "forkserver": {"execution": {"config": {"multiprocess": {"start_method": {"forkserver": {}}}}}},
}
TIMEOUT_S = 3600.0


@dataclass
class Measure:
    limit: int
    days: int
    encounters: int
    wall_s: float  # backfill submitted -> last run ended
    busy_s: float  # first run started -> last run ended
    run_s: float  # sum of the runs' durations
    max_runs: int  # runs in progress at once, at most
    pooled_s: float  # time the DuckDB pool was held (sum of the pooled steps)
    pooled_overlaps: int
    statuses: list[str]
    # day, carried in, carried out by the previous day (None: not in the backfill), seconds governance waited for it
    chain: list[tuple[str, int, int | None, float]]

    @property
    def partitions_per_min(self) -> float:
        return self.days / self.wall_s * 60

    @property
    def encounters_per_s(self) -> float:
        return self.encounters / self.wall_s


def backfill_days(n: int, every_other_day: bool) -> list[str]:
    step = 2 if every_other_day else 1
    return [(FIRST_DAY + dt.timedelta(days=step * i)).isoformat() for i in range(n)]


def measure(root: Path, postgres: dict[str, str], limit: int, days: list[str], args: argparse.Namespace) -> Measure:
    extra = {"RARE_TRIAGE_ENCOUNTERS_PER_DAY": str(args.encounters), "RARE_TRIAGE_POPULATION_SIZE": "200000"}
    run_config = EXECUTORS[args.executor]
    with sd.shared_deployment(root, postgres, extra_env=extra, max_concurrent_runs=limit) as deployment:
        try:
            with deployment.instance() as instance:
                submitted = time.time()
                backfill_id = sd.submit_job_backfill(
                    deployment, instance, keys.DAILY_INGEST_JOB, days, run_config=run_config
                )
                deployment.start_daemon()
                records = sd.wait_for_backfill_runs(deployment, instance, backfill_id, len(days), TIMEOUT_S)
                runs = sd.run_intervals(records)
                pooled = sd.pooled_steps(deployment, instance, keys.DAILY_INGEST_JOB, keys.DUCKDB_POOL)
                writes = sd.step_intervals(instance, [r.dagster_run.run_id for r in records], pooled)
                by_day = {r.dagster_run.tags["dagster/partition"]: r.dagster_run.run_id for r in records}
                pending = {
                    day: sd.materialization_metadata(instance, run_id, keys.PENDING_ENCOUNTERS)
                    for day, run_id in by_day.items()
                }
                pool = {day: metadata.get("pool", {}) for day, metadata in pending.items()}
                waited = {day: float(metadata.get("previous_day_waited_s", 0.0)) for day, metadata in pending.items()}
                statuses = [r.dagster_run.status.value for r in records]
        except BaseException:
            print(deployment.report(), file=sys.stderr)
            raise
        counts = sd.warehouse_counts(deployment)
    chain = []
    for day in days:
        previous = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
        carried_in = int(pool.get(day, {}).get("encounters", {}).get("carried_in", 0))
        carried_out = pool[previous]["encounters"]["carried_out"] if previous in pool else None
        chain.append((day, carried_in, carried_out, waited.get(day, 0.0)))
    return Measure(
        limit=limit,
        days=len(days),
        encounters=sum(n for n, _ in counts.values()),
        wall_s=max(i.end for i in runs) - submitted,
        busy_s=max(i.end for i in runs) - min(i.start for i in runs),
        run_s=sum(i.end - i.start for i in runs),
        max_runs=sd.max_overlap(runs),
        pooled_s=sum(i.end - i.start for i in writes),
        pooled_overlaps=len(sd.overlapping_pairs(writes)),
        statuses=statuses,
        chain=chain,
    )


def report(measures: list[Measure], args: argparse.Namespace, load: tuple[Any, Any]) -> None:
    print(
        f"\n{args.days} days x {args.encounters} synthetic encounters, executor {args.executor}, "
        f"{'every other' if args.every_other_day else 'consecutive'} days, {os.cpu_count()} cores, "
        f"load average before {load[0][0]:.1f} / after {load[1][0]:.1f}"
    )
    header = (
        f"{'limit':>5} {'wall s':>7} {'busy s':>7} {'sum runs s':>10} {'part/min':>8} {'enc/s':>7} "
        f"{'max runs':>8} {'pool s':>7} {'pool overlaps':>13} {'vs limit 1':>10}  statuses"
    )
    print(header)
    base = next((m for m in measures if m.limit == 1), measures[0])
    for m in measures:
        ratio = base.wall_s / m.wall_s
        print(
            f"{m.limit:>5} {m.wall_s:>7.1f} {m.busy_s:>7.1f} {m.run_s:>10.1f} {m.partitions_per_min:>8.2f} "
            f"{m.encounters_per_s:>7.1f} {m.max_runs:>8} {m.pooled_s:>7.1f} {m.pooled_overlaps:>13} "
            f"{ratio:>9.2f}x  {','.join(sorted(set(m.statuses)))}"
        )
    print("(vs limit 1: wall time of limit 1 / wall time of this limit; > 1 means the concurrent backfill was faster)")
    if not args.every_other_day:
        print("\npending chain: day, encounters carried in, encounters its previous day carried out, seconds waited")
        for m in measures:
            broken = [day for day, i, o, _ in m.chain if o is not None and i != o]
            print(f"  limit {m.limit}: {len(broken)} of {len(m.chain) - 1} days did not carry the previous day's rows")
            for day, carried_in, carried_out, waited_s in m.chain:
                print(f"    {day}: in {carried_in}, previous out {carried_out}, waited {waited_s:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--encounters", type=int, default=2000, help="synthetic encounters per day")
    parser.add_argument("--limits", type=int, nargs="+", default=[1, 3], help="max_concurrent_runs values")
    parser.add_argument("--executor", choices=sorted(EXECUTORS), default="in_process")
    parser.add_argument("--every-other-day", action="store_true", help="days two apart instead of consecutive days")
    args = parser.parse_args()
    days = backfill_days(args.days, args.every_other_day)
    load_before = os.getloadavg()
    measures = []
    # the tests' throwaway cluster (initdb + pg_ctl on a free port of 127.0.0.1), its fixture used as a context
    postgres_cluster = contextlib.contextmanager(inspect.unwrap(fixtures_pg.postgres_url))
    with postgres_cluster() as postgres, tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        for limit in args.limits:
            started = time.time()
            m = measure(Path(tmp) / f"limit{limit}", postgres, limit, days, args)
            print(f"limit {limit}: {m.wall_s:.1f} s wall ({time.time() - started:.0f} s with start-up)", flush=True)
            measures.append(m)
    report(measures, args, (load_before, os.getloadavg()))


if __name__ == "__main__":
    main()
