"""Asset jobs, which select whole groups across domains, and the nightly schedule of the daily one."""

import dagster as dg

from rare_triage.defs.shared import keys

reference_job = dg.define_asset_job(
    keys.REFERENCE_JOB,
    selection=dg.AssetSelection.assets(keys.HPO_REFERENCE_TABLES),
    description="Derive the HPO / Orphanet reference tables (once per HPO release).",
)

daily_ingest_job = dg.define_asset_job(
    keys.DAILY_INGEST_JOB,
    selection=dg.AssetSelection.groups(keys.GROUP_INGEST, keys.GROUP_GOVERNANCE, keys.GROUP_FEATURES),
    description="One day: raw extract -> validation, quarantine, anonymization -> encounter features, with checks.",
)

daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    daily_ingest_job,
    hour_of_day=2,
    description="Every night at 02:00 UTC, yesterday's partition of daily_ingest_job. Off by default: the default "
    "EHR source is a synthetic generator, so nightly runs would only fill the lake with made-up days; switch it on "
    "where a real daily extract arrives (or use landing_zone_sensor for a landing zone).",
)

# the training group with its gates; hpo_reference_tables and encounter_features are read, not rebuilt
training_job = dg.define_asset_job(keys.TRAINING_JOB, selection=dg.AssetSelection.groups(keys.GROUP_TRAINING))

train_and_publish_job = dg.define_asset_job(
    keys.TRAIN_AND_PUBLISH_JOB,
    selection=dg.AssetSelection.groups(keys.GROUP_TRAINING, keys.GROUP_DEPLOYMENT),
    description=(
        "training_set -> candidates, thresholds -> triage_model (new MLflow version, gates pending), model_evaluation, "
        "external_validation -> blocking gates -> onnx_model (parity) -> published_model (bucket, env/dev.json, "
        "MLflow alias challenger)."
    ),
)

monitoring_job = dg.define_asset_job(
    keys.MONITORING_JOB,
    selection=dg.AssetSelection.assets(keys.PREDICTION_LOGS, keys.PREDICTION_LOG_REJECTS, keys.DRIFT_REPORT),
    description="One day of served predictions: the shipped log files read into the warehouse, then the drift "
    "report of the window ending that day.",
)
