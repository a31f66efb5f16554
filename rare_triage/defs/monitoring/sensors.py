"""The sensors that close the loop: new log files -> prediction_logs and drift_report; a "retrain" decision ->
one retraining run.

| variable | default | meaning |
|---|---|---|
| RARE_TRIAGE_RETRAIN_COOLDOWN_HOURS | 24 | after a request, later "retrain" decisions are consumed without a run |
| RARE_TRIAGE_RETRAIN_VALIDATION_DAYS / _TEST_DAYS | 7 / 7 | windows of the retraining run, ending on the last day |
| RARE_TRIAGE_RETRAIN_MIN_WINDOW_ORPHANS | 300 | validation and test windows grow until each holds this many orphans |
| RARE_TRIAGE_LOG_LOOKBACK_DAYS | 3 | days of shipped logs the log sensor watches |
"""

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from rare_triage.defs.monitoring.prediction_logs import shipped_log_keys
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.bucket import ModelBucketResource

RETRAIN = "retrain"


@dataclass(frozen=True)
class RetrainPolicy:
    cooldown: dt.timedelta
    validation_days: int
    test_days: int
    min_window_orphans: int = 300

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "RetrainPolicy":
        def number(name: str, default: str) -> float:
            text = environ.get(name, default)
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{name}: {text!r} is not a number") from None
            if value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
            return value

        return cls(
            cooldown=dt.timedelta(hours=number("RARE_TRIAGE_RETRAIN_COOLDOWN_HOURS", "24")),
            validation_days=int(number("RARE_TRIAGE_RETRAIN_VALIDATION_DAYS", "7")),
            test_days=int(number("RARE_TRIAGE_RETRAIN_TEST_DAYS", "7")),
            min_window_orphans=int(number("RARE_TRIAGE_RETRAIN_MIN_WINDOW_ORPHANS", "300")),
        )


@dataclass(frozen=True)
class DriftCursor:
    """The last drift_report materialization the sensor decided on, and when it last requested a run."""

    after_storage_id: int = 0
    last_request_at: str | None = None  # ISO UTC

    @classmethod
    def parse(cls, text: str | None) -> "DriftCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(int(data.get("after_storage_id", 0)), data.get("last_request_at"))

    def dump(self) -> str:
        return json.dumps({"after_storage_id": self.after_storage_id, "last_request_at": self.last_request_at})


def _latest_features_day(warehouse: DuckDBResource) -> str | None:
    with warehouse.get_connection() as conn:
        try:
            row = conn.execute(f"select max(partition_day) from {c.FEATURES_TABLE}").fetchone()
        except duckdb.CatalogException:  # no features yet
            return None
    return None if row is None or row[0] is None else str(row[0])


def retraining_run_config(policy: RetrainPolicy) -> dict[str, Any]:
    """The retraining run: the training windows end on the latest features day (so they include the drifted days
    once ingested): test and validation windows of the policy's lengths at least, grown until each holds the
    policy's orphan count, training on every earlier day."""
    return {
        "ops": {
            c.TRAINING_SET.path[-1]: {
                "config": {
                    "validation_days": policy.validation_days,
                    "test_days": policy.test_days,
                    "train_days": 0,
                    "min_window_orphans": policy.min_window_orphans,
                }
            }
        }
    }


@dg.sensor(
    name="drift_retraining_sensor",
    job_name=c.TRAIN_AND_PUBLISH_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches train_and_publish_job once for each drift_report materialization whose decision is "
    "'retrain' (the cursor holds the last report decided on), at most once per cooldown, and only once the "
    "features table holds a day of the drifted window. The new version reaches dev only if every gate passes; "
    "prod moves only through the promotion job.",
)
def drift_retraining_sensor(context: dg.SensorEvaluationContext, duckdb: DuckDBResource) -> dg.SensorResult:
    policy = RetrainPolicy.from_environ(os.environ)
    cursor = DriftCursor.parse(context.cursor)
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=c.DRIFT_REPORT, after_storage_id=cursor.after_storage_id or None),
        limit=1000,
        ascending=True,
    )
    records = list(result.records)
    if not records:
        return dg.SensorResult(skip_reason="no new drift_report materialization")
    retrain = [r for r in records if _decision(r) == RETRAIN]
    newest = max(r.storage_id for r in records)
    if not retrain:
        decisions = sorted({_decision(r) or "none" for r in records})
        return dg.SensorResult(
            skip_reason=f"{len(records)} new drift report(s), decision(s) {decisions}: no retraining",
            cursor=DriftCursor(newest, cursor.last_request_at).dump(),
        )
    latest = retrain[-1]
    now = dt.datetime.now(dt.UTC)
    if cursor.last_request_at and now - dt.datetime.fromisoformat(cursor.last_request_at) < policy.cooldown:
        until = dt.datetime.fromisoformat(cursor.last_request_at) + policy.cooldown
        return dg.SensorResult(
            skip_reason=f"drift report {latest.partition_key} decided retrain, within the cooldown until "
            f"{until.isoformat(timespec='minutes')}: no run",
            cursor=DriftCursor(newest, cursor.last_request_at).dump(),
        )
    window = _window(latest)
    features_day = _latest_features_day(duckdb)
    if window and (features_day is None or features_day < window[0]):
        return dg.SensorResult(
            skip_reason=f"drift report {latest.partition_key} decided retrain; waiting for the features of its "
            f"window {window[0]}..{window[1]} (latest features day: {features_day})",
        )
    request = dg.RunRequest(
        run_key=f"drift-retrain-{latest.storage_id}",
        run_config=retraining_run_config(policy),
        tags={c.DRIFT_DECISION_TAG: str(latest.storage_id), c.DRIFT_PARTITION_TAG: str(latest.partition_key)},
    )
    context.log.info("retraining requested for drift report %s (window %s)", latest.partition_key, window)
    return dg.SensorResult(run_requests=[request], cursor=DriftCursor(newest, now.isoformat(timespec="seconds")).dump())


def _decision(record: Any) -> str | None:
    materialization = record.asset_materialization
    value = materialization.metadata.get("decision") if materialization is not None else None
    return None if value is None else str(value.value)


def _window(record: Any) -> list[str] | None:
    materialization = record.asset_materialization
    value = materialization.metadata.get("window") if materialization is not None else None
    return None if value is None else [str(day) for day in value.value]


@dg.sensor(
    name="prediction_log_sensor",
    job_name=c.MONITORING_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches predictions/env=*/dt=<day>/ in the bucket for the last days: when a day's set of shipped "
    "log files changes, one monitoring run reads that day (prediction_logs) and reports its drift.",
)
def prediction_log_sensor(context: dg.SensorEvaluationContext, bucket: ModelBucketResource) -> dg.SensorResult:
    lookback = int(os.environ.get("RARE_TRIAGE_LOG_LOOKBACK_DAYS", "3"))
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    today = dt.datetime.now(dt.UTC).date()
    days = [(today - dt.timedelta(days=back)).isoformat() for back in range(lookback)]
    store = bucket.get_bucket()
    requests, current = [], {}
    for day in days:
        keys = [key for _, key in shipped_log_keys(store, day)]
        if not keys:
            continue
        fingerprint = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
        current[day] = fingerprint
        if seen.get(day) != fingerprint:
            requests.append(dg.RunRequest(run_key=f"logs-{day}-{fingerprint}", partition_key=day))
    if not requests:
        return dg.SensorResult(skip_reason=f"no new log file in the last {lookback} day(s)", cursor=json.dumps(current))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current))
