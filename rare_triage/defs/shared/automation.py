"""Declarative automation shared by the domains: what follows its upstream without a click."""

import datetime as dt

import dagster as dg

# Days that arrive late (a landing folder dropped the day after, a log file shipped after midnight) still flow.
LOOKBACK = dt.timedelta(days=7)

# Materialize a partition of the last week when an upstream partition it reads was updated (or when it is newly
# missing with its upstream present), never past a failed blocking check upstream: `eager()` alone ignores blocking
# checks (FIELD_NOTES), hence the second condition.
FOLLOWS_UPSTREAM = (
    dg.AutomationCondition.eager().replace(
        "in_latest_time_window", dg.AutomationCondition.in_latest_time_window(lookback_delta=LOOKBACK)
    )
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("follows upstream (last 7 days, blocking checks passed)")

# A report over a window of days follows any of them: a day of the window without data (no prediction logged) is no
# reason to wait, so `any_deps_missing` is left out of `eager()`.
FOLLOWS_ANY_UPSTREAM_DAY = (
    dg.AutomationCondition.eager()
    .without(~dg.AutomationCondition.any_deps_missing())
    .replace("in_latest_time_window", dg.AutomationCondition.in_latest_time_window(lookback_delta=LOOKBACK))
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("follows any upstream day (last 7 days, blocking checks passed)")

# The evaluator of every automation condition of the code location, running by default: without it the conditions
# above are only shown in the UI.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Evaluates the automation conditions: recent days (last 7) of governance and features follow their "
    "raw extract once its blocking checks passed, drift_report follows prediction_logs, model_performance runs "
    "daily at 04:00 UTC. No condition on purpose: raw_ehr_extract (a job, the schedule or the landing-zone "
    "sensor), prediction_logs (prediction_log_sensor), hpo_reference_tables (once per HPO release), training and "
    "deployment (train_and_publish_job, or drift_retraining_sensor on a 'retrain' drift decision): a model is "
    "never retrained on every new day.",
)
