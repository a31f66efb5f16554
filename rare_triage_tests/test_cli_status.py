"""`status` without Dagster: it answers without loading Dagster (nor MLflow when there is no registry to read), and
it reaches the bucket and the registry the code location's resources would reach from the same environment.
(Verified states, tampered files and S3 through `main`: rare_triage_tests/defs/deployment/test_cli_models.py.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rare_triage.cli import main
from rare_triage.cli import status as cli_status
from rare_triage.defs.shared.bucket import build_bucket_resource
from rare_triage.defs.shared.mlflow import DEFAULT_REGISTERED_MODEL, MLFLOW_DB, default_mlflow_dir
from rare_triage.defs.shared.resources import build_mlflow_resource

PROBE = """
import json, sys
from rare_triage.cli import main
code = main(["status"], json.loads(sys.argv[1]))
heavy = sorted(
    {m.split(".")[0] for m in sys.modules}
    & {"dagster", "dagster_duckdb", "mlflow", "pandas", "pyarrow", "sklearn", "xgboost", "skl2onnx", "onnxmltools"}
)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_status_answers_without_loading_dagster_pandas_or_the_training_stack(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    environ = {"RARE_TRIAGE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(environ)], capture_output=True, text=True, check=True, timeout=120
    )
    shown, probe = result.stdout.strip().rsplit("\n", 1)
    assert json.loads(probe) == {"code": 0, "heavy": []}
    assert shown.splitlines() == [
        f"bucket: {(tmp_path / 'bucket').as_uri()}",
        "dev: -",
        "prod: -",
        "published: -",
        f"registry: not checked (no MLflow store at {tmp_path / 'mlflow' / 'mlflow.db'})",
    ]


LOCAL = {}
S3 = {
    "RARE_TRIAGE_BUCKET_URI": "s3://models/rare",
    "RARE_TRIAGE_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_DEFAULT_REGION": "eu-west-3",
    "RARE_TRIAGE_S3_CONNECT_TIMEOUT": "2",
    "RARE_TRIAGE_S3_READ_TIMEOUT": "7.5",
    "RARE_TRIAGE_S3_MAX_ATTEMPTS": "5",
}
SERVERS = {
    "RARE_TRIAGE_MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    "RARE_TRIAGE_MLFLOW_REGISTRY_URI": "http://127.0.0.1:5001",
}


@pytest.mark.parametrize("settings", [LOCAL, S3, SERVERS, {"RARE_TRIAGE_BUCKET_URI": "file:///srv/models"}])
def test_status_reaches_what_the_code_locations_resources_reach(tmp_path: Path, settings: dict[str, str]) -> None:
    environ = {"RARE_TRIAGE_HOME": str(tmp_path), **settings}
    bucket = build_bucket_resource(environ, resolve_credentials=True)
    mlflow = build_mlflow_resource(environ)
    assert cli_status.bucket_uri(environ) == bucket.uri
    if bucket.uri.startswith("s3://"):
        assert cli_status.s3_options(environ) == bucket.s3_options()
    tracking = mlflow.resolved_tracking_uri()
    assert cli_status.tracking_uris(environ) == (tracking, mlflow.registry_uri or tracking)
    assert cli_status.mlflow_store(environ) == default_mlflow_dir(environ) / MLFLOW_DB
    assert cli_status.REGISTERED_MODEL == mlflow.registered_model_name == DEFAULT_REGISTERED_MODEL


def test_a_missing_bucket_is_named_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"], {"RARE_TRIAGE_HOME": str(tmp_path)}) == 1
    assert capsys.readouterr().err.strip() == (
        f"status: bucket folder {tmp_path / 'bucket'} does not exist (check RARE_TRIAGE_BUCKET_URI)"
    )
