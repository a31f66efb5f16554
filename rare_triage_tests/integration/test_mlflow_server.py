"""MLflow against a real `mlflow server` on 127.0.0.1: the resource on a sqlite-backed server (artifacts proxied by the
server to a folder), and the platform's training on the shared deployment's server: backend store in PostgreSQL,
artifacts proxied to the S3 bucket (moto server)."""

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import psycopg2
import pytest
from mlflow import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.mlflow import DEFAULT_EXPERIMENT, DEFAULT_REGISTERED_MODEL, MlflowTracking
from rare_triage.lib.training import tracking
from rare_triage_tests.fixtures_s3 import ACCESS_KEY, REGION, SECRET_KEY, make_bucket, s3_client
from rare_triage_tests.helpers import processes
from rare_triage_tests.helpers.code_location import code_location_in, failures, small_training_config
from rare_triage_tests.helpers.shared_deployment import create_database

pytestmark = pytest.mark.integration
STARTUP_SECONDS = 120


def _server_command(port: int, backend_store_uri: str, artifacts_destination: str) -> list[str]:
    return [
        processes.venv_bin("mlflow"),
        "server",
        "--host",
        processes.LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        artifacts_destination,
    ]


def _server_environ(**extra: str) -> dict[str, str]:
    """The server's environment: no job-consumer processes (FIELD_NOTES), nothing of another MLflow setup."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    return {**inherited, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **extra}


def _wait_ready(server: processes.Started, url: str) -> None:
    processes.wait_for(
        lambda: processes.http_ok(f"{url}/health"), timeout=STARTUP_SECONDS, what="mlflow server", watch=[server]
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = processes.free_port()
    command = _server_command(port, f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri())
    url = f"http://{processes.LOOPBACK}:{port}"
    with processes.running("mlflow_server", command, env=_server_environ(), log_dir=folder) as started:
        _wait_ready(started, url)
        yield url


def _small_pipeline() -> Pipeline:
    X = pd.DataFrame({"sex": ["F", "M"] * 10, "age_years": np.arange(20.0)})
    y = np.arange(20) % 5
    preprocess = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore"), ["sex"])], remainder="passthrough"
    )
    return Pipeline([("preprocess", preprocess), ("classifier", LogisticRegression(max_iter=200))]).fit(X, y)


def test_runs_models_and_aliases_through_a_server(server: str) -> None:
    resource = MlflowTracking(tracking_uri=server)
    with resource.start_run("server-run", tags={"dagster_run_id": "r1"}) as run:
        tracking.log_metrics({"x": 1.0})
        tracking.log_png(b"\x89PNG", "p.png")
        info = tracking.log_pipeline(_small_pipeline())
        version = tracking.register_version(resource.client(), info, "rare-triage", run.info.run_id, {})
    client = resource.client()
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert not client.get_model_version("rare-triage", version).aliases
    assert tracking.set_challenger(client, "rare-triage", version)
    assert str(client.get_model_version_by_alias("rare-triage", "challenger").version) == version
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/p.png"]


def test_a_failing_asset_fails_its_run_on_the_server(server: str) -> None:
    @dg.asset
    def fails_on_server(mlflow: MlflowTracking) -> None:
        with mlflow.start_run("failing", tags={"scenario": "server-failure"}):
            raise RuntimeError("broken on purpose")

    resource = MlflowTracking(tracking_uri=server)
    assert not dg.materialize([fails_on_server], resources={c.MLFLOW: resource}, raise_on_error=False).success
    client = resource.client()
    experiment = client.get_experiment_by_name("rare-triage")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.scenario = 'server-failure'")
    assert [r.info.status for r in runs] == ["FAILED"]


# A few small synthetic days in which every window holds each label (orphan patients visit 6 times as often, as in
# the serving tests); k = 1 keeps every encounter. Train on two days, validate on one, test on one.
DAYS = ("2025-03-03", "2025-03-04", "2025-03-05", "2025-03-06")
SOURCE = {
    "RARE_TRIAGE_EHR_SOURCE": "synthetic",
    "RARE_TRIAGE_ENCOUNTERS_PER_DAY": "300",
    "RARE_TRIAGE_POPULATION_SIZE": "4000",
    "RARE_TRIAGE_ERROR_RATE": "0",
    "RARE_TRIAGE_DRIFT_SCENARIOS": json.dumps(
        [{"kind": "case_mix", "start": DAYS[0], "params": {"orphan_multiplier": 6.0, "acute_multiplier": 1.0}}]
    ),
}
INGEST_CONFIG = {"resources": {c.PSEUDONYMIZATION: {"config": {"k_anonymity": 1, "allow_local_default": True}}}}
TRAINING_CONFIG = small_training_config(
    "logistic_regression+class_weight",
    validation_days=1,
    test_days=1,
    external_validation={"max_cases": 100, "ablation": False},
)


def _postgres_uri(postgres: Mapping[str, str], db: str) -> str:
    password = f":{postgres['password']}" if postgres["password"] else ""
    return f"postgresql+psycopg2://{postgres['user']}{password}@{postgres['host']}:{postgres['port']}/{db}"


def _train(home: Path, tracking_uri: str, server: processes.Started) -> tuple[str, str]:
    """Ingest DAYS and run the platform's training job with its MLflow on `tracking_uri` (the days are ingested
    while the server starts); returns the MLflow run id and model version the triage_model asset reported."""
    with code_location_in(home, {**SOURCE, "RARE_TRIAGE_MLFLOW_TRACKING_URI": tracking_uri}) as (defs, instance):
        assert defs.resolve_job_def(c.REFERENCE_JOB).execute_in_process(instance=instance).success
        daily = defs.resolve_job_def(c.DAILY_INGEST_JOB)
        for day in DAYS:
            result = daily.execute_in_process(
                run_config=INGEST_CONFIG, instance=instance, partition_key=day, raise_on_error=False
            )
            assert result.success, (day, failures(result))
        _wait_ready(server, tracking_uri)
        training = defs.resolve_job_def(c.TRAINING_JOB).execute_in_process(
            run_config=TRAINING_CONFIG, instance=instance, raise_on_error=False
        )
        assert training.success, failures(training)
        (materialization,) = [m for m in training.get_asset_materialization_events() if m.asset_key == c.TRIAGE_MODEL]
        metadata = materialization.materialization.metadata
        return str(metadata["mlflow_run_id"].value), str(metadata["mlflow_model_version"].value)


def test_a_training_run_is_tracked_in_postgres_with_its_artifacts_in_the_bucket(
    postgres_url: dict[str, str], s3_server: str, tmp_path: Path
) -> None:
    db = create_database(postgres_url, "mlflow")
    bucket = f"mlflow-{uuid.uuid4().hex[:8]}"
    make_bucket(s3_server, bucket)
    port = processes.free_port()
    url = f"http://{processes.LOOPBACK}:{port}"
    command = _server_command(port, _postgres_uri(postgres_url, db), f"s3://{bucket}/mlflow")
    env = _server_environ(
        MLFLOW_S3_ENDPOINT_URL=s3_server,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
    )
    with processes.running("mlflow_server", command, env=env, log_dir=tmp_path / "logs") as server:
        try:
            run_id, version = _train(tmp_path / "home", url, server)
            client = MlflowClient(tracking_uri=url, registry_uri=url)
            run = client.get_run(run_id)
            model_version = client.get_model_version(DEFAULT_REGISTERED_MODEL, version)
            plots = [a.path for a in client.list_artifacts(run_id, "plots")]
            experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
            assert experiment is not None
            logged_models = client.search_logged_models(
                experiment_ids=[experiment.experiment_id], filter_string=f"source_run_id = '{run_id}'"
            )
        except BaseException:
            print(processes.report([server]))
            raise

    # the run and the version, as the server answered them
    assert run.info.status == "FINISHED" and run.info.experiment_id == experiment.experiment_id
    assert run.data.params["chosen_candidate"] == "logistic_regression+class_weight"
    assert (str(model_version.version), model_version.run_id) == (version, run_id)
    (logged_model,) = logged_models  # the pipeline the version was registered from
    assert model_version.source == f"models:/{logged_model.model_id}"
    assert "plots/validation_pr_curves.png" in plots
    # ... stored in PostgreSQL (the server's backend store), not in a file beside it
    with (
        psycopg2.connect(
            host=postgres_url["host"], port=int(postgres_url["port"]), user=postgres_url["user"], dbname=db
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("select status, experiment_id from runs where run_uuid = %s", (run_id,))
        assert cursor.fetchall() == [("FINISHED", int(experiment.experiment_id))]
        cursor.execute("select version, run_id from model_versions where name = %s", (DEFAULT_REGISTERED_MODEL,))
        assert (int(version), run_id) in cursor.fetchall()
    connection.close()
    # ... and the artifacts in the bucket: the run's plots and the registered model's files
    keys = {
        obj["Key"]
        for page in s3_client(s3_server).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="mlflow/")
        for obj in page.get("Contents", [])
    }
    run_prefix = f"mlflow/{experiment.experiment_id}/{run_id}/artifacts/"
    assert f"{run_prefix}plots/validation_pr_curves.png" in keys, sorted(keys)
    assert logged_model.artifact_location.startswith("mlflow-artifacts:/"), logged_model.artifact_location
    model_prefix = "mlflow/" + logged_model.artifact_location.removeprefix("mlflow-artifacts:/").strip("/") + "/"
    model_files = {k.removeprefix(model_prefix) for k in keys if k.startswith(model_prefix)}
    assert {"MLmodel", "requirements.txt"} <= model_files, sorted(keys)
    mlmodel = s3_client(s3_server).get_object(Bucket=bucket, Key=f"{model_prefix}MLmodel")["Body"].read()
    assert b"skops" in mlmodel and run_id.encode() in mlmodel
