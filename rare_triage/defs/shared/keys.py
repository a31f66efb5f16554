"""Asset keys, check names, job names, groups, partitions, resource keys and pools shared by the Dagster wiring.

A domain names another domain's assets and checks through these constants, never through its modules.
"""

import datetime as dt
import os
from collections.abc import Mapping

import dagster as dg

PARTITIONS_START_ENV = "RARE_TRIAGE_PARTITIONS_START"
DEFAULT_PARTITIONS_START = "2024-01-01"  # tests materialize days from 2024-01-02: a later default breaks them


def partitions_start(environ: Mapping[str, str]) -> str:
    """The first daily partition, YYYY-MM-DD: `RARE_TRIAGE_PARTITIONS_START` (read once, when the definitions load:
    the code server and every run must see the same value), 2024-01-01 by default."""
    text = environ.get(PARTITIONS_START_ENV, "").strip() or DEFAULT_PARTITIONS_START
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"{PARTITIONS_START_ENV}: {text!r} is not a date YYYY-MM-DD") from None


PARTITIONS_START = partitions_start(os.environ)
# the UI counts every day since the start without a materialization as "missing": said where a user sees the count
PARTITIONS_NOTE = (
    f"Daily partitions from {PARTITIONS_START} ({PARTITIONS_START_ENV}): a day never extracted shows as missing, "
    "which is no failure (`make run` fills the last 35 days)."
)
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START)
# Served predictions are monitored by the UTC day of their log; today's partition exists (it is re-read as the
# day's closed log files arrive), so a drift can be seen the day it starts.
MONITORING_PARTITIONS = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)

# groups
GROUP_REFERENCE = "reference"
GROUP_INGEST = "ingest"
GROUP_GOVERNANCE = "governance"
GROUP_FEATURES = "features"
GROUP_TRAINING = "training"
GROUP_DEPLOYMENT = "deployment"
GROUP_MONITORING = "monitoring"

# asset keys
HPO_REFERENCE_TABLES = dg.AssetKey("hpo_reference_tables")
RAW_EHR_EXTRACT = dg.AssetKey("raw_ehr_extract")
ANONYMIZED_ENCOUNTERS = dg.AssetKey("anonymized_encounters")
QUARANTINED_RECORDS = dg.AssetKey("quarantined_records")
PENDING_ENCOUNTERS = dg.AssetKey("pending_encounters")
ENCOUNTER_FEATURES = dg.AssetKey("encounter_features")
TRAINING_SET = dg.AssetKey("training_set")
TRIAGE_MODEL = dg.AssetKey("triage_model")
MODEL_EVALUATION = dg.AssetKey("model_evaluation")
EXTERNAL_VALIDATION = dg.AssetKey("external_validation")
ONNX_MODEL = dg.AssetKey("onnx_model")
PUBLISHED_MODEL = dg.AssetKey("published_model")
REFERENCE_PROFILE = dg.AssetKey("reference_profile")
PREDICTION_LOGS = dg.AssetKey("prediction_logs")
PREDICTION_LOG_REJECTS = dg.AssetKey("prediction_log_rejects")
DRIFT_REPORT = dg.AssetKey("drift_report")
MODEL_PERFORMANCE = dg.AssetKey("model_performance")

# check names that another domain relies on (deployment publishes only when these passed)
ORPHAN_RECALL_GATE = "orphan_recall_gate"
ORPHAN_PR_AUC_GATE = "orphan_pr_auc_gate"
SUBGROUP_RECALL_GATE = "subgroup_recall_gate"
BEHAVIOUR_GATE = "behaviour_gate"
ROBUSTNESS_GATE = "robustness_gate"
EXTERNAL_VALIDATION_GATE = "external_validation_gate"
TRAINING_GATES = [
    dg.AssetCheckKey(MODEL_EVALUATION, ORPHAN_RECALL_GATE),
    dg.AssetCheckKey(MODEL_EVALUATION, ORPHAN_PR_AUC_GATE),
    dg.AssetCheckKey(MODEL_EVALUATION, SUBGROUP_RECALL_GATE),
    dg.AssetCheckKey(MODEL_EVALUATION, BEHAVIOUR_GATE),
    dg.AssetCheckKey(MODEL_EVALUATION, ROBUSTNESS_GATE),
    dg.AssetCheckKey(EXTERNAL_VALIDATION, EXTERNAL_VALIDATION_GATE),
]

# job names
REFERENCE_JOB = "reference_job"
DAILY_INGEST_JOB = "daily_ingest_job"
TRAINING_JOB = "training_job"
TRAIN_AND_PUBLISH_JOB = "train_and_publish_job"
PROMOTE_JOB = "promote_to_prod"
ROLLBACK_JOB = "rollback"
MONITORING_JOB = "monitoring_job"

# run tags the drift sensor sets on the retraining runs it requests
DRIFT_DECISION_TAG = "rare_triage/drift_decision"
DRIFT_PARTITION_TAG = "rare_triage/drift_report_partition"

# resource keys
PARQUET_IO_MANAGER = "parquet_io_manager"
PARQUET_ARROW_INPUT = "parquet_arrow_input"  # the same lake, read as pyarrow Tables
DUCKDB_IO_MANAGER = "duckdb_io_manager"
PICKLE_IO_MANAGER = "io_manager"
EHR_SOURCE = "ehr_source"
PSEUDONYMIZATION = "pseudonymization"
MLFLOW = "mlflow"
BUCKET = "bucket"

# the warehouse table of encounter_features, read by SQL in other domains (training windows, monitoring)
FEATURES_TABLE = "features.encounter_features"

# DuckDB allows one writer process: every asset that writes the warehouse runs in this pool.
DUCKDB_POOL = "duckdb_warehouse"
