"""The MLflow resource against a real `mlflow server` on 127.0.0.1 (artifacts proxied by the server)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.lib.training import tracking

pytestmark = pytest.mark.integration
STARTUP_SECONDS = 90


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        (folder / "artifacts").as_uri(),
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (folder / "server.log").read_text()[-2000:]
                    raise RuntimeError(f"mlflow server did not start: {tail}") from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


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
        version = tracking.register_challenger(resource.client(), info, "rare-triage", run.info.run_id, {})
    client = resource.client()
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
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
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.scenario = 'server-failure'")
    assert [r.info.status for r in runs] == ["FAILED"]
