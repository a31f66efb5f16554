"""A DuckDB warehouse holding synthetic encounter features, the real HPO reference tables as a stub asset, and
an MLflow sqlite store, all in temporary folders."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import mlflow
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.lib.reference.frames import reference_to_frames
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.testing.synthetic_features import layout_from_reference, synthesize_features

FEATURE_DAYS = 12
START_DAY = "2025-03-01"


@pytest.fixture(autouse=True, scope="module")
def restore_mlflow_uris() -> Iterator[None]:
    """The resource points the mlflow module at its store (process-global): give other tests theirs back."""
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


@pytest.fixture(scope="session")
def warehouse_features(reference_tables: ReferenceTables) -> pd.DataFrame:
    layout = layout_from_reference(reference_tables)
    return synthesize_features(9000, start_day=START_DAY, n_days=FEATURE_DAYS, seed=11, layout=layout)


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory, warehouse_features: pd.DataFrame) -> Path:
    """features.encounter_features as the DuckDB IO manager stores it (partition_day as text)."""
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE SCHEMA features")
    conn.register("frame", warehouse_features)
    conn.execute("CREATE TABLE features.encounter_features AS SELECT * FROM frame")
    conn.close()
    return path


def reference_stub(tables: ReferenceTables) -> dg.AssetsDefinition:
    """hpo_reference_tables as a plain asset returning the frames (the real one builds them from hp.obo)."""
    frames = reference_to_frames(tables)

    @dg.asset(key=c.HPO_REFERENCE_TABLES, group_name=c.GROUP_REFERENCE)
    def hpo_reference_tables() -> dict[str, pd.DataFrame]:
        return frames

    return hpo_reference_tables


def mlflow_resource(folder: Path) -> MlflowTracking:
    folder.mkdir(parents=True, exist_ok=True)
    return MlflowTracking(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", artifact_location=(folder / "artifacts").as_uri()
    )


def resources(warehouse: Path, mlflow_folder: Path, storage: Path) -> dict[str, Any]:
    return {
        "duckdb": DuckDBResource(database=str(warehouse)),
        c.MLFLOW: mlflow_resource(mlflow_folder),
        "io_manager": dg.FilesystemIOManager(base_dir=str(storage)),
    }


SMALL_MODEL_CONFIG = {
    "candidates": ["logistic_regression+class_weight", "xgboost+class_weight"],
    "cv_folds": 2,
    "cv_max_rows": 4000,
    "n_jobs": 1,
    "rf_n_estimators": 15,
    "rf_max_depth": 6,
    "xgb_n_estimators": 25,
    "xgb_max_depth": 3,
    "xgb_learning_rate": 0.3,
}
SMALL_RUN_CONFIG = {
    "ops": {
        "training_set": {"config": {"validation_days": 2, "test_days": 2, "min_window_orphans": 0}},
        "triage_model": {"config": SMALL_MODEL_CONFIG},
        "model_evaluation": {"config": {"behaviour_sample": 200}},
        "external_validation": {
            "config": {
                "max_cases": 300,
                "ablation_feature_sets": ["vocabulary_age_sex", "vocabulary_systems_age_sex"],
                "ablation_max_rows": 3000,
            }
        },
    }
}
