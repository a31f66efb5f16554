from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from rare_triage.lib.training import tracking
from rare_triage.lib.training.columns import model_inputs
from rare_triage.lib.training.train import TrainingOutcome
from rare_triage_tests.lib.training.conftest import Windows


def test_code_revision_falls_back_to_the_environment_then_unknown(tmp_path: Path) -> None:
    assert tracking.code_revision({"RARE_TRIAGE_CODE_REVISION": "abc123"}, repo_dir=tmp_path) == "abc123"
    assert tracking.code_revision({}, repo_dir=tmp_path) == "unknown"


def test_fingerprint_ignores_row_order_but_not_labels() -> None:
    frame = pd.DataFrame({"encounter_key": ["a", "b", "c"], "label": ["none", "orphan", "none"]})
    same = tracking.data_fingerprint([frame.iloc[::-1]])
    assert tracking.data_fingerprint([frame]) == same == tracking.data_fingerprint([frame.iloc[:1], frame.iloc[1:]])
    relabelled = frame.assign(label=["none", "none", "none"])
    assert tracking.data_fingerprint([relabelled]) != same
    assert len(same) == 64


def test_flat_metrics_keep_finite_numbers_only() -> None:
    values = {"a": 1, "b": float("nan"), "c": {"d": np.float64(0.5), "e": "text"}, "f g": True}
    assert tracking.flat_metrics(values, "x.") == {"x.a": 1.0, "x.c.d": 0.5, "x.f g": 1.0}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.create_experiment("t", artifact_location=(folder / "artifacts").as_uri())
    yield uri
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def test_registering_moves_challenger_and_never_champion(
    store: str, trained: TrainingOutcome, windows: Windows
) -> None:
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    versions = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=client.get_experiment_by_name("t").experiment_id) as run:
            tracking.log_params({"candidate": trained.spec.name})
            tracking.log_metrics(trained.validation_metrics, "validation.")
            tracking.log_png(b"\x89PNG fake", "plot.png")
            tracking.log_table(trained.cv_table(), "cv.csv")
            info = tracking.log_pipeline(trained.pipeline)
            versions.append(tracking.register_challenger(client, info, "m", run.info.run_id, {"k": "v"}))
        if len(versions) == 1:
            client.set_registered_model_alias("m", tracking.CHAMPION_ALIAS, versions[0])
    assert versions == ["1", "2"]
    assert str(client.get_model_version_by_alias("m", tracking.CHALLENGER_ALIAS).version) == "2"
    assert str(client.get_model_version_by_alias("m", tracking.CHAMPION_ALIAS).version) == "1"
    assert client.get_model_version("m", "2").tags["k"] == "v"
    loaded = mlflow.sklearn.load_model("models:/m@challenger")
    X = model_inputs(windows.test.iloc[:20], trained.feature_columns)
    np.testing.assert_allclose(loaded.predict_proba(X), trained.pipeline.predict_proba(X))
    artifacts = {a.path for a in client.list_artifacts(client.get_model_version("m", "2").run_id)}
    assert {"plots", "tables"} <= artifacts
    tracking.set_version_tags(client, "m", "2", {"gate.x": "passed"})
    assert client.get_model_version("m", "2").tags["gate.x"] == "passed"


def test_asset_run_tags_name_the_dagster_run_the_asset_and_the_code() -> None:
    tags = tracking.asset_run_tags("run-1", "triage_model")
    assert tags == {
        "dagster_run_id": "run-1",
        "dagster_asset": "triage_model",
        "code_revision": tracking.code_revision(),
    }
