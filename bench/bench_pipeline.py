"""Throughput and peak memory of generate -> anonymize -> features through the real Dagster assets.

Each volume runs in its own process (one daily partition of N encounters, local lake, DuckDB warehouse) with the
multiprocess executor of real runs, one process per step: peak RSS is that of the largest step process. Figures
are printed as ratios against the smallest volume measured in the same run. Targets: 1,000,000 encounters under
600 s with peak RSS under 4 GB; time(1M) / time(100k) <= 12.

    .venv/bin/python bench/bench_pipeline.py                       # 10k, 100k, 1M
    .venv/bin/python bench/bench_pipeline.py --volumes 10000 100000
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import dagster as dg
import psutil

DAY = "2025-03-04"  # a Tuesday in early spring: volume close to the configured mean


def job(name: str) -> dg.JobDefinition:
    """A job of the code location, rebuilt in each step process (the multiprocess executor of real runs)."""
    from rare_triage.definitions import build_definitions  # noqa: PLC0415 - after the environment is set

    return build_definitions().resolve_job_def(name)


def watch_children(peaks: dict[int, float], stop: threading.Event) -> None:
    """Record the peak RSS (MB) of every descendant process, in the order they appear."""
    me = psutil.Process()
    while not stop.is_set():
        for child in me.children(recursive=True):
            try:
                peaks[child.pid] = max(peaks.get(child.pid, 0.0), child.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)


def run_one(volume: int) -> dict[str, float]:
    """Materialize one partition of `volume` encounters as a real run does: one process per step."""
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(
            {
                "RARE_TRIAGE_HOME": home,
                "DAGSTER_HOME": home,
                "RARE_TRIAGE_ENCOUNTERS_PER_DAY": str(volume),
                "RARE_TRIAGE_POPULATION_SIZE": str(max(20_000, 3 * volume)),
            }
        )
        with dg.DagsterInstance.local_temp(home) as instance:
            dg.execute_job(dg.reconstructable(reference_job), instance=instance, raise_on_error=True)
            peaks: dict[int, float] = {}
            stop = threading.Event()
            watcher = threading.Thread(target=watch_children, args=(peaks, stop), daemon=True)
            watcher.start()
            started = time.perf_counter()
            result = dg.execute_job(
                dg.reconstructable(daily_ingest_job), instance=instance, tags={"dagster/partition": DAY}
            )
            seconds = time.perf_counter() - started
            stop.set()
            watcher.join()
            if not result.success:
                raise RuntimeError(f"daily_ingest_job failed for {volume} encounters")
            steps = {
                e.step_key: e.event_specific_data.duration_ms / 1000
                for e in result.all_events
                if e.event_type_value == "STEP_SUCCESS"
            }
            raw = instance.get_latest_materialization_event(dg.AssetKey("raw_ehr_extract"))
            encounters = int(raw.asset_materialization.metadata["encounters"].value)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    step_peaks = [round(v) for v in peaks.values() if v > 300]  # step processes, in start order
    return {
        "volume": volume,
        "encounters": encounters,
        "seconds": seconds,
        "peak_rss_mb": peak_mb,
        "steps": steps,
        "step_peaks_mb": step_peaks,
    }


def reference_job() -> dg.JobDefinition:
    return job("reference_job")


def daily_ingest_job() -> dg.JobDefinition:
    return job("daily_ingest_job")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child)))
        return 0
    rows = []
    for volume in sorted(args.volumes):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(volume)], capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return out.returncode
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    base_steps = sum(base["steps"].values())
    print(
        f"{'encounters':>11} {'wall s':>8} {'steps s':>8} {'enc/s':>9} {'rate/base':>9} {'steps/base':>10} "
        f"{'peak RSS MB':>12}  per step (s)"
    )
    for r in rows:
        compute = sum(r["steps"].values())
        rate = r["encounters"] / compute
        steps = ", ".join(f"{k}={v:.1f}" for k, v in r["steps"].items())
        steps += f"; step process peaks MB {r['step_peaks_mb']}"
        print(
            f"{r['encounters']:>11,} {r['seconds']:>8.1f} {compute:>8.1f} {rate:>9,.0f} "
            f"{rate / (base['encounters'] / base_steps):>9.2f} {compute / base_steps:>10.1f} "
            f"{r['peak_rss_mb']:>12,.0f}  {steps}"
        )
    by_volume = {r["volume"]: r for r in rows}
    if 100_000 in by_volume and 1_000_000 in by_volume:
        big, small = by_volume[1_000_000], by_volume[100_000]
        print(
            f"time(1M) / time(100k): step time {sum(big['steps'].values()) / sum(small['steps'].values()):.2f}, "
            f"wall time {big['seconds'] / small['seconds']:.2f} (target <= 12)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
