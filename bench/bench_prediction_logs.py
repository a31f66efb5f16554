"""Throughput and peak memory of reading shipped prediction logs (`rare_triage.lib.monitoring.prediction_logs`).

Builds N log lines shaped like the service's (encounter inputs, five probabilities, patient key on half of them, a
few refused lines), then times `read_shipped_logs` over them split in files of `--lines-per-file`. Each volume runs
in its own process so peak RSS is its own. Target: more than 50,000 lines/s.

    .venv/bin/python bench/bench_prediction_logs.py                    # 1,000,000 lines
    .venv/bin/python bench/bench_prediction_logs.py --lines 100000 1000000
"""

import argparse
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import time
import uuid
from typing import Any

HPO = ("HP:0001945", "HP:0001250", "HP:0002315", "HP:0012531", "HP:0001263", "HP:0000708", "HP:0002019")
START = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
LABELS = ("none", "common_mild", "common_acute", "common_chronic", "orphan")


def log_line(rng: random.Random, i: int) -> bytes:
    """One line as serving's encoder writes it (compact JSON, UTC 'Z' timestamp)."""
    weights = [rng.random() + 1e-3 for _ in LABELS]
    total = sum(weights)
    probabilities = {label: w / total for label, w in zip(LABELS, weights, strict=True)}
    inputs = {
        "sex": rng.choice("FMU"),
        "age_years": float(rng.randint(0, 95)),
        "centre_id": f"C{rng.randint(1, 40):02d}",
        "consultation_type": "primary_care",
        "temperature_c": round(rng.uniform(36, 40), 1),
        "heart_rate": float(rng.randint(60, 140)),
        "hpo_observed": rng.sample(HPO, 2),
        "hpo_excluded": rng.sample(HPO, 1),
    }
    at = START + dt.timedelta(milliseconds=i)
    record: dict[str, Any] = {
        "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "model_version": "3",
        "inputs": inputs,
        "probabilities": probabilities,
        "predicted_class": max(probabilities, key=probabilities.__getitem__),
        "orphan_flag": probabilities["orphan"] > 0.3,
        "needs_review": False,
        "latency_ms": rng.uniform(0.5, 5.0),
    }
    if i % 2:
        record["patient_key"] = f"{rng.getrandbits(128):032x}"
    if i % 10_000 == 9_999:
        del record["probabilities"]["orphan"]  # a refused line now and then
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def measure(n_lines: int, lines_per_file: int) -> dict[str, float]:
    from rare_triage.lib.monitoring.prediction_logs import read_shipped_logs  # noqa: PLC0415 - measured process

    rng = random.Random(7)
    files = []
    for start in range(0, n_lines, lines_per_file):
        body = b"".join(log_line(rng, i) for i in range(start, min(start + lines_per_file, n_lines)))
        files.append((f"predictions/env=bench/dt=2025-03-03/predicciones_bench.{start}.txt", body))
    size = sum(len(body) for _, body in files)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start_s = time.perf_counter()
    parsed = read_shipped_logs(files)
    seconds = time.perf_counter() - start_s
    return {
        "lines": n_lines,
        "megabytes": size / 1e6,
        "seconds": seconds,
        "lines_per_s": n_lines / seconds,
        "parsed": parsed.parsed,
        "rejected": parsed.n_rejected,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_parse_mb": rss_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--lines-per-file", type=int, default=100_000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: measure one volume
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.lines_per_file)))
        return
    for n in args.lines:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--lines-per-file", str(args.lines_per_file)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out)
        print(
            f"{r['lines']:>9,} lines ({r['megabytes']:.0f} MB): {r['seconds']:.2f} s, {r['lines_per_s']:,.0f} lines/s, "
            f"parsed {r['parsed']:,}, rejected {r['rejected']:,}, peak RSS {r['peak_rss_mb']:.0f} MB "
            f"({r['rss_before_parse_mb']:.0f} MB before parsing)"
        )


if __name__ == "__main__":
    main()
