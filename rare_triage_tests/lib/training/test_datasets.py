"""Training windows as MLflow datasets, logged to a real sqlite tracking store and read back."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import mlflow
import mlflow.data
import pandas as pd
import pytest
from mlflow import MlflowClient

from rare_triage.lib.training.columns import model_feature_columns
from rare_triage.lib.training.datasets import (
    FeaturePartitionsSource,
    dataset_name,
    frame_digest,
    local_database,
    log_window_dataset,
    window_dataset,
)
from rare_triage.lib.training.windows import DayWindow
from rare_triage_tests.lib.training.conftest import Windows

TABLE = "features.encounter_features"
TRAIN_WINDOW = DayWindow(dt.date(2025, 3, 1), dt.date(2025, 3, 8))


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.create_experiment("datasets", artifact_location=(tmp_path / "artifacts").as_uri())
    yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, features: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA features")
        conn.register("frame", features)
        conn.execute(f"CREATE TABLE {TABLE} AS SELECT * FROM frame")
    return path


def test_a_window_is_a_dataset_of_model_inputs_and_label_named_after_its_days(windows: Windows) -> None:
    columns = model_feature_columns(list(windows.train.columns))
    dataset = window_dataset(windows.train, columns, window="train", day_window=TRAIN_WINDOW, table=TABLE)
    assert dataset.name == "encounter_features train 2025-03-01..2025-03-08"
    assert dataset.targets == "label"
    assert dataset.schema is not None
    assert dataset.schema.input_names() == [*columns, "label"]  # never encounter_key, patient_key, partition_day
    assert dataset.profile == {"num_rows": len(windows.train), "num_elements": len(windows.train) * (len(columns) + 1)}
    source = dataset.source.to_dict()
    assert source == {
        "table": TABLE,
        "partition_day_start": "2025-03-01",
        "partition_day_end": "2025-03-08",
        "partitions": [f"2025-03-0{d}" for d in range(1, 9)],
    }


def test_logged_datasets_carry_their_context_and_rebuild_their_source(
    client: MlflowClient, windows: Windows, warehouse: Path
) -> None:
    columns = model_feature_columns(list(windows.train.columns))
    validation_window = DayWindow(dt.date(2025, 3, 9), dt.date(2025, 3, 10))
    frames = {"train": (windows.train, TRAIN_WINDOW), "validation": (windows.validation, validation_window)}
    with mlflow.start_run(experiment_id=client.get_experiment_by_name("datasets").experiment_id) as run:
        for name, (frame, days) in frames.items():
            dataset = window_dataset(frame, columns, window=name, day_window=days, table=TABLE, database=str(warehouse))
            log_window_dataset(dataset, name)
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    contexts = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset for i in inputs}
    assert set(contexts) == {"training", "validation"}
    logged = contexts["validation"]
    assert logged.name == "encounter_features validation 2025-03-09..2025-03-10"
    assert logged.source_type == "rare_triage_feature_partitions"
    assert json.loads(logged.source)["partitions"] == ["2025-03-09", "2025-03-10"]
    assert json.loads(logged.profile)["num_rows"] == len(windows.validation)
    # the source read back from the run loads exactly the rows of those partitions from the warehouse
    source = mlflow.data.get_source(logged)
    assert isinstance(source, FeaturePartitionsSource)
    assert source.database == str(warehouse.resolve())
    rows = source.load()
    assert sorted(rows["encounter_key"]) == sorted(windows.validation["encounter_key"])


def test_no_value_of_any_row_is_logged(client: MlflowClient, windows: Windows) -> None:
    columns = model_feature_columns(list(windows.train.columns))
    with mlflow.start_run(experiment_id=client.get_experiment_by_name("datasets").experiment_id) as run:
        dataset = window_dataset(windows.train, columns, window="train", day_window=TRAIN_WINDOW, table=TABLE)
        log_window_dataset(dataset, "train")
    logged = client.get_run(run.info.run_id).inputs.dataset_inputs[0].dataset
    text = " ".join([logged.name, logged.source, logged.schema, logged.profile, logged.digest])
    keys = {*windows.train["encounter_key"].astype(str), *windows.train["patient_key"].astype(str)}
    assert not [key for key in keys if key in text]
    assert "centre_id" in text  # column names are there, not their values


def test_a_warehouse_is_recorded_only_when_it_is_a_local_file(tmp_path: Path) -> None:
    assert local_database(None) is None
    assert local_database("md:my_db?motherduck_token=secret") is None  # a connection string may hold a token
    assert local_database(str(tmp_path / "missing.duckdb")) is None
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    assert local_database(str(path)) == str(path.resolve())
    with pytest.raises(ValueError, match="no local warehouse"):
        FeaturePartitionsSource(TABLE, ["2025-03-01"]).load()


def test_names_and_windows_are_checked(windows: Windows) -> None:
    assert dataset_name("encounter_features", "test", "2025-03-11", "2025-03-12") == (
        "encounter_features test 2025-03-11..2025-03-12"
    )
    with pytest.raises(ValueError, match="window"):
        window_dataset(windows.test, ["age_years"], window="holdout", day_window=None, table=TABLE)
    source = FeaturePartitionsSource.from_dict(FeaturePartitionsSource(TABLE, ["2025-03-02", "2025-03-01"]).to_dict())
    assert (source.start, source.end, source.partitions) == ("2025-03-01", "2025-03-02", ["2025-03-01", "2025-03-02"])


def test_the_digest_covers_every_cell_and_the_column_names(windows: Windows) -> None:
    columns = model_feature_columns(list(windows.train.columns))
    data = windows.train[columns]
    digest = frame_digest(data)
    assert len(digest) == 16 and digest == frame_digest(data.copy())
    changed = data.copy()
    changed.iloc[-1, changed.columns.get_loc("age_years")] = -1.0  # the last row only
    assert frame_digest(changed) != digest
    assert frame_digest(data.rename(columns={"age_years": "age"})) != digest
    dataset = window_dataset(windows.train, columns, window="train", day_window=TRAIN_WINDOW, table=TABLE)
    assert dataset.digest == frame_digest(dataset.df)
