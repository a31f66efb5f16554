"""Drift speed and memory: a reference profile of 200,000 encounters, then compute_drift over a 1,000,000-row window.

    .venv/bin/python bench/bench_drift.py                           # 200,000 reference rows, 1,000,000 window rows
    .venv/bin/python bench/bench_drift.py --reference-rows 50000 --window-rows 200000

Features are synthesized (rare_triage.lib.testing.synthetic_features): every model input of the features table.
The window resamples the rows of a second synthetic frame (one large frame costs less memory than synthesizing a
million rows) with a +0.8 C temperature shift and 2% of rows from a new centre, so the drifted paths run too.
Times are wall-clock and move with the machine's load; the ratio to a floor measured in the same run (reading
every window column into numpy and summing it) moves less. Memory: the peak RSS during compute_drift alone (VmHWM
reset through /proc/self/clear_refs just before it, Linux), beside the process peak (ru_maxrss), which synthesis
of the frames reaches first.
"""

import argparse
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.monitoring.drift import compute_drift
from rare_triage.lib.monitoring.drift_html import render_drift_html
from rare_triage.lib.monitoring.profile import build_reference_profile
from rare_triage.lib.testing.synthetic_features import synthesize_features
from rare_triage.lib.training.columns import NON_FEATURE_COLUMNS


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak since start or the last reset)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the next peak is the one of the step that follows."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def predictions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dirichlet class probabilities, orphan flag above 0.5, review above 0.35."""
    proba = np.random.default_rng(seed).dirichlet([2.0, 2.0, 1.5, 1.5, 0.4], n)
    return proba, proba[:, -1] > 0.5, proba[:, -1] > 0.35


def window_frame(rows: int, source_rows: int, seed: int) -> pd.DataFrame:
    source = synthesize_features(source_rows, seed=seed)
    picked = np.random.default_rng(seed).integers(0, source_rows, rows)
    window = source.take(picked)
    window.index = pd.RangeIndex(rows)  # reset_index would copy the million rows once more
    del source
    window["temperature_c"] += 0.8
    window.loc[window.index[: rows // 50], "centre_id"] = "C99"
    return window


def numpy_floor(window: pd.DataFrame, numeric: list[str], categorical: list[str]) -> float:
    """Seconds to read every profiled window column into numpy and sum it (missing values of categoricals)."""
    started = time.perf_counter()
    total = 0.0
    for column in numeric:
        total += float(np.nansum(window[column].to_numpy(dtype=np.float64, na_value=np.nan)))
    for column in categorical:
        total += float(window[column].isna().to_numpy().sum())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-rows", type=int, default=200_000)
    parser.add_argument("--window-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    reference = synthesize_features(args.reference_rows, seed=args.seed)
    columns = [c for c in reference.columns if c not in NON_FEATURE_COLUMNS]
    categorical = [c for c in columns if c in schema.FEATURE_CATEGORICAL_COLUMNS]
    numeric = [c for c in columns if c not in categorical]
    proba, flags, review = predictions(len(reference), args.seed)
    started = time.perf_counter()
    profile = build_reference_profile(
        reference,
        numeric_columns=numeric,
        categorical_columns=categorical,
        probabilities=proba,
        class_labels=schema.LABELS,
        orphan_flag=flags,
        needs_review=review,
        model_version="bench",
    )
    profile_seconds = time.perf_counter() - started
    size = len(profile.to_json_bytes())
    del reference, proba, flags, review
    print(
        f"features: {len(numeric)} numeric ({sum(not p.discrete for p in profile.numeric)} continuous), "
        f"{len(categorical)} categorical"
    )
    print(f"profile of {args.reference_rows:,} rows: {profile_seconds:.2f} s, JSON {size / 1e6:.2f} MB")

    window = window_frame(args.window_rows, min(args.window_rows, 200_000), args.seed + 1)
    proba, flags, review = predictions(len(window), args.seed + 1)
    floor = numpy_floor(window, numeric, categorical)
    rss_before, peak_before = status_mb("VmRSS"), peak_rss_mb()
    was_reset = reset_peak_rss()
    started = time.perf_counter()
    result = compute_drift(profile, window, probabilities=proba, orphan_flag=flags, needs_review=review)
    seconds = time.perf_counter() - started
    drift_peak = status_mb("VmHWM") if was_reset else float("nan")
    tracemalloc.start()
    compute_drift(profile, window, probabilities=proba, orphan_flag=flags, needs_review=review)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    started = time.perf_counter()
    page = render_drift_html(result, profile, window)
    html_seconds = time.perf_counter() - started

    print(
        f"window {len(window):,} rows: compute_drift {seconds:.2f} s, {len(window) / seconds:,.0f} rows/s, "
        f"{seconds / floor:.1f}x the numpy floor ({floor:.2f} s)"
    )
    print(f"decision {result.decision}: drifted {result.features_with_status('drifted')}")
    print(f"HTML report: {html_seconds:.2f} s, {len(page) / 1e6:.2f} MB")
    print(
        f"RSS: {rss_before:,.0f} MB before compute_drift (window, profile and allocator leftovers), "
        f"{drift_peak:,.0f} MB peak during compute_drift; process peak {max(peak_before, drift_peak):,.0f} MB"
    )
    print(f"compute_drift's own allocations (tracemalloc, second run): peak {traced_peak / 2**20:,.0f} MB")


if __name__ == "__main__":
    main()
