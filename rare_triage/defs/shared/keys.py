"""Asset keys, check names, job names, groups, partitions, resource keys and pools shared by the Dagster wiring.

A domain names another domain's assets and checks through these constants, never through its modules.
"""

import dagster as dg

PARTITIONS_START = "2024-01-01"
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
EXTERNAL_VALIDATION_GATE = "external_validation_gate"
TRAINING_GATES = [
    dg.AssetCheckKey(MODEL_EVALUATION, ORPHAN_RECALL_GATE),
    dg.AssetCheckKey(MODEL_EVALUATION, ORPHAN_PR_AUC_GATE),
    dg.AssetCheckKey(MODEL_EVALUATION, SUBGROUP_RECALL_GATE),
    dg.AssetCheckKey(MODEL_EVALUATION, BEHAVIOUR_GATE),
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
