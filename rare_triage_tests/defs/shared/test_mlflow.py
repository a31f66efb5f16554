from pathlib import Path

import dagster as dg
import mlflow
import pytest

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.defs.shared.resources import build_mlflow_resource
from rare_triage_tests.defs.training.conftest import mlflow_resource


def test_default_store_is_resolved_under_the_state_folder_when_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resource = MlflowTracking()  # built before the home is known: nothing may be resolved yet
    monkeypatch.setenv("RARE_TRIAGE_HOME", str(tmp_path))
    assert resource.resolved_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert resource.resolved_artifact_location() == (tmp_path / "mlflow" / "artifacts").as_uri()
    assert resource.experiment_name == "rare-triage" and resource.registered_model_name == "rare-triage"


def test_a_server_uri_leaves_artifacts_to_the_server() -> None:
    resource = MlflowTracking(tracking_uri="http://127.0.0.1:5000")
    assert resource.resolved_tracking_uri() == "http://127.0.0.1:5000"
    assert resource.resolved_artifact_location() is None


def test_environment_builder() -> None:
    built = build_mlflow_resource({"RARE_TRIAGE_MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert built.tracking_uri == "http://127.0.0.1:5000"
    assert build_mlflow_resource({}).tracking_uri is None


@dg.asset
def logs_and_succeeds(context: dg.AssetExecutionContext, mlflow: MlflowTracking) -> str:
    with mlflow.start_run("ok", tags={"dagster_run_id": context.run.run_id}) as run:
        return run.info.run_id


@dg.asset
def logs_and_fails(context: dg.AssetExecutionContext, mlflow: MlflowTracking) -> str:
    with mlflow.start_run("broken", tags={"dagster_run_id": context.run.run_id}):
        raise RuntimeError("fails inside the MLflow run")


def test_runs_end_finished_or_failed_on_the_materialize_launch_path(tmp_path: Path) -> None:
    resource = mlflow_resource(tmp_path)
    good = dg.materialize([logs_and_succeeds], resources={c.MLFLOW: resource})
    bad = dg.materialize([logs_and_fails], resources={c.MLFLOW: resource}, raise_on_error=False)
    assert good.success and not bad.success
    client = resource.client()
    experiment = client.get_experiment_by_name("rare-triage")
    statuses = {r.data.tags["dagster_run_id"]: r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert statuses == {good.run_id: "FINISHED", bad.run_id: "FAILED"}
    assert mlflow.active_run() is None


def test_a_leaked_active_run_is_refused(tmp_path: Path) -> None:
    resource = mlflow_resource(tmp_path)
    resource.configure()
    leaked = mlflow.start_run()
    try:
        with pytest.raises(RuntimeError, match="still active"), resource.start_run("x"):
            pass
    finally:
        mlflow.end_run()
    assert resource.get_run(leaked.info.run_id).info.status == "FINISHED"
