"""Drift study: the false-alarm rate of `compute_drift` on stable windows of other seeds, and which drift scenarios
it detects from which window size.

    PYTHONPATH=. .venv/bin/python bench/drift_study.py            # 14 reference days, 20 seeds x 7 days
    PYTHONPATH=. .venv/bin/python bench/drift_study.py --quick    # 7 reference days, 5 seeds x 3 days

Everything runs through the code location in one temporary home (`rare_triage_tests.helpers.code_location`):
- reference: the reference tables, then REFERENCE_DAYS daily ingests of seed 0 without drift at the default
  k-anonymity, then `train_and_publish_job` (one candidate, gates opened as the tests open them), whose
  `reference_profile` output is the profile monitoring compares with (train + validation rows without a generalised
  value, the model's probabilities and threshold flags);
- windows: the days after the reference period ingested again and again with the EHR source (seed, drift
  scenarios) and k-anonymity 1 set by run configuration (served requests carry exact values); each day's
  `encounter_features` rows are read back before the next run overwrites the partition. A window of n predictions
  is a seeded sample of n rows of one seed's days, scored by the trained pipeline and its ThresholdPolicy as the
  reference was. Drift scenarios are switched on from the first window day; each drifted seed is the stable run of
  the same seed and days with only the scenario added.
- a diagnostic second reference: the same model on the same train + validation days ingested again at k = 1, so
  that what the platform's reference leaves out (rows k-anonymity generalised) shows beside what drift shows.
Each window is judged against both references; decisions are counted per window size (250 is below
DriftConfig.min_predictions, hence insufficient_data).
"""

import argparse
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from rare_triage.defs.deployment.reference_profile import comparable_rows
from rare_triage.defs.shared import keys
from rare_triage.defs.shared.resources import warehouse_path
from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.monitoring.drift import DRIFTED, WATCH, DriftResult, compute_drift
from rare_triage.lib.monitoring.profile import ReferenceProfile, build_reference_profile
from rare_triage.lib.training.columns import model_inputs
from rare_triage.lib.training.thresholds import ThresholdPolicy, flag_orphan, in_review_band
from rare_triage_tests.helpers.code_location import code_location_in, failures, small_training_config

CANDIDATE = "logistic_regression+class_weight"
ENCOUNTERS_PER_DAY, POPULATION, ERROR_RATE = 1000, 20_000, 0.002
FIRST_DAY = pd.Timestamp("2025-03-03")  # a Monday: reference and window periods hold whole weeks
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
DECISIONS = ("insufficient_data", "no_drift", "watch", "retrain")


@dataclass(frozen=True)
class Plan:
    reference_days: int
    validation_days: int
    test_days: int
    window_days: int
    stable_seeds: Sequence[int]
    drift_seeds: Sequence[int]
    stable_sizes: Sequence[int]
    drift_sizes: Sequence[int]


FULL = Plan(14, 3, 3, 7, range(1, 21), range(1, 4), (500, 1000, 2000, 5000), (250, 500, 1000, 2000, 5000))
QUICK = Plan(7, 2, 1, 3, range(1, 6), range(1, 2), (500, 1000, 2000), (250, 500, 1000, 2000))


def scenarios(centre: str, start: str) -> dict[str, list[dict[str, Any]]]:
    """Name -> RARE_TRIAGE_DRIFT_SCENARIOS of each studied drift, on from `start`."""
    return {
        "thermometer +0.8C": [{"kind": "thermometer_offset", "start": start, "params": {"centre_id": centre}}],
        "thermometer +2.0C": [
            {"kind": "thermometer_offset", "start": start, "params": {"centre_id": centre, "offset_c": 2.0}}
        ],
        "case_mix default": [{"kind": "case_mix", "start": start, "params": {}}],
        "case_mix orphan x3": [{"kind": "case_mix", "start": start, "params": {"orphan_multiplier": 3.0}}],
        "new_centre cap 1.0": [
            {
                "kind": "new_centre",
                "start": start,
                "params": {"centre_id": "C13", "level": "primary", "region": "Madrid", "capacity": 1.0},
            }
        ],
    }


def day_keys(first: pd.Timestamp, n: int) -> list[str]:
    return [(first + pd.Timedelta(days=i)).strftime("%Y-%m-%d") for i in range(n)]


def ingest_config(seed: int, drift: list[dict[str, Any]], k: int | None) -> dict[str, Any]:
    """Run configuration of the daily ingest: the EHR source (whole configuration) and, if `k`, k-anonymity."""
    source = {
        "seed": seed,
        "encounters_per_day": ENCOUNTERS_PER_DAY,
        "population_size": POPULATION,
        "error_rate": ERROR_RATE,
        "drift_scenarios": drift,
    }
    resources: dict[str, Any] = {keys.EHR_SOURCE: {"config": source}}
    if k is not None:
        resources[keys.PSEUDONYMIZATION] = {"config": {"k_anonymity": k, "allow_local_default": True}}
    return {"resources": resources, **QUIET}


def partition_features(warehouse: str, day: str) -> pd.DataFrame:
    with duckdb.connect(warehouse, read_only=True) as con:
        return con.execute("SELECT * FROM features.encounter_features WHERE partition_day = ?", [day]).df()


class Pipeline:
    """The code location in one home: ingests days and reads their features back."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, warehouse: str) -> None:
        self.defs, self.instance, self.warehouse = defs, instance, warehouse
        self.daily = defs.resolve_job_def(keys.DAILY_INGEST_JOB)
        self.ingest_seconds, self.ingested_days = 0.0, 0

    def run(self, name: str, run_config: dict[str, Any], partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        job = self.daily if name == keys.DAILY_INGEST_JOB else self.defs.resolve_job_def(name)
        result = job.execute_in_process(
            run_config=run_config, instance=self.instance, partition_key=partition_key, raise_on_error=False
        )
        if not result.success or failures(result):
            raise RuntimeError(f"{name} {partition_key or ''}: {failures(result)}")
        return result

    def ingest(self, days: list[str], seed: int, drift: list[dict[str, Any]], k: int | None) -> pd.DataFrame:
        started = time.perf_counter()
        frames = []
        for day in days:
            self.run(keys.DAILY_INGEST_JOB, ingest_config(seed, drift, k), day)
            frames.append(partition_features(self.warehouse, day))
        self.ingest_seconds += time.perf_counter() - started
        self.ingested_days += len(days)
        return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class Scorer:
    """The trained model and its threshold policy, applied as `reference_profile` applies them."""

    bundle: ModelBundle
    profile: ReferenceProfile

    def predictions(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        proba = np.asarray(self.bundle.pipeline.predict_proba(model_inputs(rows, self.bundle.feature_columns)))
        policy = ThresholdPolicy.from_bundle(self.bundle.thresholds, self.bundle.needs_review)
        return proba, flag_orphan(proba, policy), in_review_band(proba, policy)


@dataclass(frozen=True)
class Scored:
    rows: pd.DataFrame
    proba: np.ndarray
    flags: np.ndarray
    review: np.ndarray


def score(scorer: Scorer, rows: pd.DataFrame) -> Scored:
    return Scored(rows, *scorer.predictions(rows))


def window_drift(profile: ReferenceProfile, scored: Scored, size: int, seed: int) -> DriftResult | None:
    """compute_drift of a seeded sample of `size` rows (None when the days hold fewer)."""
    if len(scored.rows) < size:
        return None
    picked = np.sort(np.random.default_rng([seed, size]).choice(len(scored.rows), size=size, replace=False))
    window = scored.rows.iloc[picked].reset_index(drop=True)
    return compute_drift(
        profile,
        window,
        probabilities=scored.proba[picked],
        orphan_flag=scored.flags[picked],
        needs_review=scored.review[picked],
    )


def fired(result: DriftResult) -> list[str]:
    """What made a window leave no_drift: features drifted (D) or on watch (W) with their PSI (a watch from a missing
    rate shows a small PSI), and prediction statistics (pred:)."""
    psi = dict(zip(result.features["feature"], result.features["psi"], strict=True))
    names = [f"{f} D {psi[f]:.2f}" for f in result.features_with_status(DRIFTED)]
    names += [f"{f} W {psi[f]:.2f}" for f in result.features_with_status(WATCH)]
    names += [
        f"pred:{name} {entry['status'][0].upper()}"
        for name, entry in result.predictions.items()
        if entry.get("status", "ok") != "ok"
    ]
    return names


def tally(decisions: list[str]) -> str:
    counts = Counter(decisions)
    return " ".join(f"{d.replace('insufficient_data', 'insufficient')}={counts[d]}" for d in DECISIONS if counts[d])


def exact_value_profile(scorer: Scorer, rows: pd.DataFrame) -> ReferenceProfile:
    """A diagnostic reference: the same model and days profiled from rows ingested at k = 1 (nothing generalised),
    built as `reference_profile` builds the platform's."""
    bundle = scorer.bundle
    proba, flags, review = scorer.predictions(rows)
    return build_reference_profile(
        rows,
        numeric_columns=bundle.numeric_columns,
        categorical_columns=bundle.categorical_columns,
        probabilities=proba,
        class_labels=bundle.class_labels,
        orphan_flag=flags,
        needs_review=review,
        model_version=str(bundle.mlflow_model_version),
    )


def train_reference(pipeline: Pipeline, plan: Plan) -> tuple[Scorer, pd.DataFrame]:
    pipeline.run(keys.REFERENCE_JOB, QUIET)
    rows = pipeline.ingest(day_keys(FIRST_DAY, plan.reference_days), 0, [], None)
    config = small_training_config(
        CANDIDATE,
        validation_days=plan.validation_days,
        test_days=plan.test_days,
        external_validation={"max_cases": 150, "ablation": False},
    )
    result = pipeline.run(keys.TRAIN_AND_PUBLISH_JOB, {**config, **QUIET})
    bundle: ModelBundle = result.output_for_node("triage_model")
    profile = ReferenceProfile.from_dict(result.output_for_node("reference_profile"))
    return Scorer(bundle, profile), rows


def report_false_alarms(
    references: dict[str, ReferenceProfile], stable: dict[int, Scored], sizes: Sequence[int]
) -> int:
    """Per reference and window size: the decisions of the stable windows, the rates and what fired."""
    calls = 0
    print("\n== False alarms: stable windows (no drift), one seed each ==")
    print(f"{'reference':<10} {'n':>5} {'windows':>7}  {'decisions':<26} {'retrain':>7} {'watch+':>7}  fired (windows)")
    for label, profile in references.items():
        for size in sizes:
            results = [window_drift(profile, scored, size, seed) for seed, scored in stable.items()]
            done = [r for r in results if r is not None]
            calls += len(done)
            if not done:
                print(f"{label:<10} {size:>5} {0:>7}  (fewer rows than n)")
                continue
            decisions = [r.decision for r in done]
            causes = Counter(name.split(" ")[0] for r in done for name in fired(r))
            retrain = sum(d == "retrain" for d in decisions) / len(decisions)
            watch = sum(d in ("watch", "retrain") for d in decisions) / len(decisions)
            print(
                f"{label:<10} {size:>5} {len(done):>7}  {tally(decisions):<26} {retrain:>7.0%} {watch:>7.0%}  "
                + ", ".join(f"{k} ({v})" for k, v in causes.most_common(4))
            )
            example = next((r.reasons[1] for r in done if r.decision == "retrain"), "")
            if example:
                print(f"{'':>19}e.g. retrain: {example}")
    return calls


def report_detection(
    pipeline: Pipeline,
    *,
    scorer: Scorer,
    references: dict[str, ReferenceProfile],
    plan: Plan,
    centre: str,
    window_days: list[str],
) -> None:
    """Per scenario and window size: the decisions of each reference over the drifted seeds, what fired first."""
    print(f"\n== Detection: scenario on from {window_days[0]}, seeds {list(plan.drift_seeds)} ==")
    print(
        f"(thermometer offsets in {centre}, the reference's busiest centre; fired: against the k=1 reference, "
        "PSI of the first window it fired in, (windows))"
    )
    labels = list(references)
    print(f"{'scenario':<19} {'n':>5}  " + "".join(f"{label:<30}" for label in labels) + "fired")
    for name, drift in scenarios(centre, window_days[0]).items():
        drifted = {seed: score(scorer, pipeline.ingest(window_days, seed, drift, 1)) for seed in plan.drift_seeds}
        for size in plan.drift_sizes:
            columns, causes, first = [], Counter[str](), dict[str, str]()
            for label in labels:
                results = [window_drift(references[label], scored, size, seed) for seed, scored in drifted.items()]
                done = [r for r in results if r is not None]
                columns.append(tally([r.decision for r in done]) if done else "(fewer rows)")
                for result in done if label == labels[-1] else []:
                    for cause in fired(result):
                        key = " ".join(cause.split(" ")[:2])
                        causes[key] += 1
                        first.setdefault(key, cause)
            top = ", ".join(f"{first[k]} ({v})" for k, v in causes.most_common(3)) or "-"
            print(f"{name:<19} {size:>5}  " + "".join(f"{c:<30}" for c in columns) + top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="7 reference days, 5 stable seeds of 3 days")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    timings: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="drift_study_"))
    try:
        environ = {
            "RARE_TRIAGE_EHR_SOURCE": "synthetic",
            "RARE_TRIAGE_SEED": "0",
            "RARE_TRIAGE_ENCOUNTERS_PER_DAY": str(ENCOUNTERS_PER_DAY),
            "RARE_TRIAGE_POPULATION_SIZE": str(POPULATION),
            "RARE_TRIAGE_ERROR_RATE": str(ERROR_RATE),
            "RARE_TRIAGE_DRIFT_SCENARIOS": "[]",
        }
        home = tmp / "home"
        with code_location_in(home, environ) as (defs, instance):
            pipeline = Pipeline(defs, instance, warehouse_path({"RARE_TRIAGE_HOME": str(home)}))
            phase = time.perf_counter()
            scorer, reference_rows = train_reference(pipeline, plan)
            timings["reference ingest (k=5) + train_and_publish"] = time.perf_counter() - phase
            phase = time.perf_counter()
            profiled_days = day_keys(FIRST_DAY, plan.reference_days - plan.test_days)
            exact_profile = exact_value_profile(scorer, pipeline.ingest(profiled_days, 0, [], 1))
            timings["k=1 re-ingest of train+validation days"] = time.perf_counter() - phase
            profile = scorer.profile
            references = {"platform": profile, "k=1": exact_profile}
            exact = comparable_rows(reference_rows, scorer.bundle.categorical_columns)
            centre = str(exact["centre_id"].value_counts().index[0])
            window_days = day_keys(FIRST_DAY + pd.Timedelta(days=plan.reference_days), plan.window_days)
            print(
                f"reference: seed 0, {plan.reference_days} days from {FIRST_DAY.date()} at {ENCOUNTERS_PER_DAY}/day "
                f"(population {POPULATION:,}, error rate {ERROR_RATE}), {len(reference_rows):,} encounters "
                f"({1 - len(exact) / len(reference_rows):.1%} with a value generalised at k=5); {CANDIDATE} "
                f"(validation {plan.validation_days} d, test {plan.test_days} d)"
            )
            print(
                f"platform reference_profile: {profile.n_rows:,} train+validation rows without a generalised value, "
                f"{len(profile.numeric)} numeric + {len(profile.categorical)} categorical features, flag rate "
                f"{profile.predictions.flag_rate:.2%}, review rate {profile.predictions.review_rate:.2%}"
            )
            print(
                f"diagnostic k=1 reference: the same days ingested at k=1, {exact_profile.n_rows:,} rows, flag rate "
                f"{exact_profile.predictions.flag_rate:.2%}, review rate {exact_profile.predictions.review_rate:.2%}"
            )
            print(f"windows: days {window_days[0]}..{window_days[-1]} at k=1, seeded samples of n rows")

            phase = time.perf_counter()
            stable = {seed: score(scorer, pipeline.ingest(window_days, seed, [], 1)) for seed in plan.stable_seeds}
            timings["stable ingest + scoring"] = time.perf_counter() - phase
            phase = time.perf_counter()
            calls = report_false_alarms(references, stable, plan.stable_sizes)
            timings[f"compute_drift on stable windows ({calls})"] = time.perf_counter() - phase
            phase = time.perf_counter()
            report_detection(
                pipeline, scorer=scorer, references=references, plan=plan, centre=centre, window_days=window_days
            )
            timings["drifted ingest + scoring + compute_drift"] = time.perf_counter() - phase

        print("\n== Timings ==")
        for label, seconds in timings.items():
            print(f"{label:<44} {seconds:7.1f} s")
        print(
            f"daily ingests: {pipeline.ingested_days} runs, {pipeline.ingest_seconds:.1f} s "
            f"({pipeline.ingest_seconds / pipeline.ingested_days:.2f} s/day)"
        )
        print(f"total wall time {time.perf_counter() - started:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
