"""Asset keys, groups, partitions and pools shared by the Dagster wiring."""

import dagster as dg

PARTITIONS_START = "2024-01-01"
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START)

# groups
GROUP_REFERENCE = "reference"
GROUP_INGEST = "ingest"
GROUP_GOVERNANCE = "governance"
GROUP_FEATURES = "features"
GROUP_TRAINING = "training"
GROUP_DEPLOYMENT = "deployment"

# asset keys
HPO_REFERENCE_TABLES = dg.AssetKey("hpo_reference_tables")
RAW_EHR_EXTRACT = dg.AssetKey("raw_ehr_extract")
ANONYMIZED_ENCOUNTERS = dg.AssetKey("anonymized_encounters")
QUARANTINED_RECORDS = dg.AssetKey("quarantined_records")
ENCOUNTER_FEATURES = dg.AssetKey("encounter_features")
TRAINING_SET = dg.AssetKey("training_set")
TRIAGE_MODEL = dg.AssetKey("triage_model")
MODEL_EVALUATION = dg.AssetKey("model_evaluation")
EXTERNAL_VALIDATION = dg.AssetKey("external_validation")
ONNX_MODEL = dg.AssetKey("onnx_model")
PUBLISHED_MODEL = dg.AssetKey("published_model")

# resource keys
PARQUET_IO_MANAGER = "parquet_io_manager"
PARQUET_ARROW_INPUT = "parquet_arrow_input"  # the same lake, read as pyarrow Tables
DUCKDB_IO_MANAGER = "duckdb_io_manager"
PICKLE_IO_MANAGER = "io_manager"
EHR_SOURCE = "ehr_source"
PSEUDONYMIZATION = "pseudonymization"
MLFLOW = "mlflow"
BUCKET = "bucket"

# DuckDB allows one writer process: every asset that writes the warehouse runs in this pool.
DUCKDB_POOL = "duckdb_warehouse"
