"""The registry's tags read from MLflow's sqlite store without MLflow answer as MLflow's own client does, on stores
MLflow wrote: tagged, untagged, deleted and missing versions, two models; anything else falls back to the client."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from rare_triage.cli import status as cli_status
from rare_triage.cli.registry_store import tags_reader
from rare_triage.lib.deployment.registry_hashes import MANIFEST_SHA256_TAG

MODEL, OTHER = "rare-triage", "other-model"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store MLflow wrote: MODEL versions 1 (tagged), 2 (untagged), 3 (deleted), OTHER version 1 (tagged)."""
    path = tmp_path / "mlflow" / "mlflow.db"
    path.parent.mkdir()
    client = MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}")
    for name in (MODEL, OTHER):
        client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(MODEL, source=str(tmp_path / "artifacts"))
    client.create_model_version(OTHER, source=str(tmp_path / "artifacts"))
    client.set_model_version_tag(MODEL, "1", MANIFEST_SHA256_TAG, "ab" * 32)
    client.set_model_version_tag(MODEL, "1", "gates", "passed")
    client.set_model_version_tag(MODEL, "3", "gates", "failed")
    client.set_model_version_tag(OTHER, "1", MANIFEST_SHA256_TAG, "cd" * 32)
    client.delete_model_version(MODEL, "3")
    return path


def _by_client(path: Path, model: str, version: str) -> dict[str, str] | None:
    client = MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}")
    try:
        return dict(client.get_model_version(model, version).tags or {})
    except Exception as exc:
        assert "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")), exc
        return None


@pytest.mark.parametrize(("model", "version"), [(MODEL, "1"), (MODEL, "2"), (MODEL, "3"), (MODEL, "4"), (OTHER, "1")])
def test_the_store_answers_as_mlflows_client(store: Path, model: str, version: str) -> None:
    read = tags_reader(store)
    assert read is not None
    assert read(model, version) == _by_client(store, model, version)


def test_the_cases_above_mean_what_they_say(store: Path) -> None:
    read = tags_reader(store)
    assert read is not None
    assert read(MODEL, "1") == {MANIFEST_SHA256_TAG: "ab" * 32, "gates": "passed"}
    assert read(MODEL, "2") == {}
    assert read(MODEL, "3") is None  # deleted
    assert read(MODEL, "4") is None  # never registered
    assert read(OTHER, "1") == {MANIFEST_SHA256_TAG: "cd" * 32}


def test_anything_but_mlflows_tables_is_left_to_mlflows_client(tmp_path: Path) -> None:
    assert tags_reader(tmp_path / "missing.db") is None
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert tags_reader(garbage) is None
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE model_versions (name TEXT, version INTEGER)")  # no current_stage
        connection.execute("CREATE TABLE model_version_tags (key TEXT, value TEXT, name TEXT, version INTEGER)")
    assert tags_reader(other) is None


def test_status_reads_the_local_registry_without_importing_mlflow(store: Path) -> None:
    home = store.parent.parent
    (home / "bucket").mkdir()
    environ = {"RARE_TRIAGE_HOME": str(home), "PATH": "/usr/bin:/bin"}
    probe = (
        "import json, sys\n"
        "from rare_triage.cli.status import registry_lookup\n"
        "lookup = registry_lookup(json.loads(sys.argv[1]))\n"
        "found = lookup('1')\n"
        "print(json.dumps([found.manifest_sha256 if found else None, lookup('4'), 'mlflow' in sys.modules]))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(environ)], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(shown.stdout) == ["ab" * 32, None, False]


def test_a_registry_server_goes_through_mlflows_client(store: Path) -> None:
    environ = {"RARE_TRIAGE_HOME": str(store.parent.parent), "RARE_TRIAGE_MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    read = cli_status.registry_tags({**environ, "RARE_TRIAGE_MLFLOW_REGISTRY_URI": f"sqlite:///{store}x"})
    assert read.__module__ == cli_status.__name__  # not the store reader: another registry
    assert cli_status.registry_tags(environ).__module__ == "rare_triage.cli.registry_store"  # the local store
