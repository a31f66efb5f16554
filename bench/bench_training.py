"""Training speed: the chosen configuration on N encounters, and the whole candidate search with CV on a sample.

    .venv/bin/python bench/bench_training.py                      # 1,000,000 synthetic encounters, search on 200,000
    .venv/bin/python bench/bench_training.py --rows 100000 --cv-rows 50000
    .venv/bin/python bench/bench_training.py --features path/to/features.parquet
    .venv/bin/python bench/bench_training.py --features .rare_triage/warehouse.duckdb

Times are wall-clock on this machine and move with its load; each is also printed as a ratio to a baseline
measured in the same run (logistic regression with class weights on the same rows), which moves less.
Features are synthesized (rare_triage.lib.testing.synthetic_features) unless --features is given.
"""

import argparse
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from rare_triage.lib.testing.synthetic_features import synthesize_features
from rare_triage.lib.training.candidates import DEFAULT_CANDIDATES, CandidateSpec, ModelParams, fit_candidate
from rare_triage.lib.training.columns import feature_roles, feature_set_columns, label_codes, model_inputs
from rare_triage.lib.training.cross_validation import cross_validate_candidate, stratified_sample

BASELINE = "logistic_regression+class_weight"


def load_features(path: str | None, table: str, rows: int, seed: int) -> tuple[pd.DataFrame, str]:
    """The features frame and where it came from."""
    if path is None:
        days = max(1, rows // 2000)
        return synthesize_features(rows, n_days=days, seed=seed), f"synthesized ({rows} rows, {days} days)"
    source = Path(path)
    if source.suffix == ".parquet":
        frame = pd.read_parquet(source)
    elif source.suffix in (".duckdb", ".db"):
        with duckdb.connect(str(source), read_only=True) as conn:
            frame = conn.execute(f"SELECT * FROM {table}").df()
    else:
        raise SystemExit(f"--features: {path} is neither .parquet nor .duckdb")
    if len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed)
    return frame.reset_index(drop=True), f"{path} ({len(frame)} rows)"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed_fit(
    spec: CandidateSpec, X: pd.DataFrame, y: np.ndarray, columns: list[str], params: ModelParams
) -> tuple[float, object]:
    started = time.perf_counter()
    model = fit_candidate(spec, X, y, feature_roles(columns), params)
    return time.perf_counter() - started, model


def search(
    X: pd.DataFrame, y: np.ndarray, columns: list[str], params: ModelParams, *, names: Sequence[str], folds: int
) -> str:
    """Cross-validate every candidate; print seconds, rows/s and the ratio to the baseline; return the winner."""
    print(f"\n== candidate search: StratifiedKFold({folds}) on {len(y):,} rows (stratified sample) ==")
    print(
        f"{'candidate':44s} {'cv s':>8s} {'fit s/fold':>10s} {'rows/s':>9s} {'x LR':>6s} "
        f"{'PR-AUC':>7s} {'flag@.95':>8s}"
    )
    order = [BASELINE, *[n for n in names if n != BASELINE]]
    baseline_seconds = None
    results = []
    started_all = time.perf_counter()
    for name in order:
        started = time.perf_counter()
        result = cross_validate_candidate(
            CandidateSpec.parse(name), X, y, feature_roles(columns), params, n_splits=folds
        )
        seconds = time.perf_counter() - started
        baseline_seconds = baseline_seconds or seconds
        results.append(result)
        print(
            f"{name:44s} {seconds:8.1f} {result.fit_seconds:10.1f} {result.rows_per_fit_second:9.0f} "
            f"{seconds / baseline_seconds:6.2f} {result.orphan_pr_auc:7.4f} {result.flag_rate_at_target_recall:8.4f}",
            flush=True,
        )
    total = time.perf_counter() - started_all
    servable = [r for r in results if r.spec.servable]
    best = min(servable, key=lambda r: (r.flag_rate_at_target_recall, -r.orphan_pr_auc))
    print(f"whole search: {total:.1f} s ({total / 60:.1f} min) for {len(order)} candidates; chosen {best.spec.name}")
    return best.spec.name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="encounters for the chosen configuration")
    parser.add_argument("--cv-rows", type=int, default=200_000, help="stratified sample for the candidate search")
    parser.add_argument("--cv-folds", type=int, default=3)
    parser.add_argument("--features", help="a .parquet file or a .duckdb warehouse (default: synthesize)")
    parser.add_argument("--table", default="features.encounter_features")
    parser.add_argument("--feature-set", default="all")
    parser.add_argument("--candidate", help="chosen configuration to time on --rows (default: the search winner)")
    parser.add_argument("--candidates", nargs="*", default=list(DEFAULT_CANDIDATES))
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true", help="do not fit the LR baseline on --rows")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    params = ModelParams(n_jobs=args.n_jobs, seed=args.seed)
    started = time.perf_counter()
    frame, origin = load_features(args.features, args.table, args.rows, args.seed)
    columns = feature_set_columns(args.feature_set, list(frame.columns))
    X, y = model_inputs(frame, columns), label_codes(frame["label"])
    print(
        f"features: {origin}; {len(columns)} inputs ({args.feature_set}); orphan share {np.mean(y == 4):.4f}; "
        f"prepared in {time.perf_counter() - started:.1f} s; model params {params}"
    )

    chosen = args.candidate or "xgboost+class_weight"
    if not args.skip_search:
        rows = stratified_sample(y, args.cv_rows, args.seed)
        winner = search(X.iloc[rows], y[rows], columns, params, names=args.candidates, folds=args.cv_folds)
        chosen = args.candidate or winner

    print(f"\n== chosen configuration {chosen} on {len(y):,} rows ==")
    baseline_seconds = None
    if not args.skip_baseline and chosen != BASELINE:
        baseline_seconds, _ = timed_fit(CandidateSpec.parse(BASELINE), X, y, columns, params)
        print(f"baseline {BASELINE}: fit {baseline_seconds:.1f} s, {len(y) / baseline_seconds:,.0f} rows/s", flush=True)
    seconds, model = timed_fit(CandidateSpec.parse(chosen), X, y, columns, params)
    ratio = f", {seconds / baseline_seconds:.2f} x baseline" if baseline_seconds else ""
    print(f"{chosen}: fit {seconds:.1f} s ({seconds / 60:.2f} min), {len(y) / seconds:,.0f} rows/s{ratio}")
    batch = X.iloc[: min(len(X), 100_000)]
    started = time.perf_counter()
    model.predict_proba(batch)  # type: ignore[attr-defined]
    predict = time.perf_counter() - started
    print(f"predict_proba on {len(batch):,} rows: {predict:.2f} s ({len(batch) / predict:,.0f} rows/s)")
    print(f"peak RSS {peak_rss_mb():,.0f} MB; under 10 min: {'yes' if seconds < 600 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
