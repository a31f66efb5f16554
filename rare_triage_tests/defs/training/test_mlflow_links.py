"""Where the model assets' MLflow links point: the UI address formed from the resource's configuration."""

from pathlib import Path

import dagster as dg

from rare_triage.defs.shared.mlflow import LOCAL_UI_URL, UI_URL_ENV, MlflowTracking
from rare_triage.defs.training.assets import mlflow_links


def test_a_local_store_links_to_mlflow_ui_on_the_loopback(tmp_path: Path) -> None:
    resource = MlflowTracking(local_dir=str(tmp_path))
    assert resource.resolved_ui_url({}) == LOCAL_UI_URL == "http://127.0.0.1:5000"
    sqlite = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sqlite.resolved_ui_url({}) == LOCAL_UI_URL
    assert MlflowTracking(tracking_uri="./mlruns").resolved_ui_url({}) == LOCAL_UI_URL


def test_a_server_links_to_itself_and_configuration_wins() -> None:
    server = MlflowTracking(tracking_uri="https://mlflow.example.org/")
    assert server.resolved_ui_url({}) == "https://mlflow.example.org"
    assert server.resolved_ui_url({UI_URL_ENV: "http://ui.example.org:8080/"}) == "http://ui.example.org:8080"
    configured = MlflowTracking(tracking_uri="https://mlflow.example.org", ui_url="http://10.0.0.5:5000")
    assert configured.resolved_ui_url({UI_URL_ENV: "http://ignored"}) == "http://10.0.0.5:5000"


def test_no_link_where_no_ui_address_can_be_formed() -> None:
    assert MlflowTracking(tracking_uri="databricks").resolved_ui_url({}) is None
    assert MlflowTracking(tracking_uri="https://mlflow.example.org", ui_url="none").resolved_ui_url({}) is None
    assert MlflowTracking(tracking_uri="https://mlflow.example.org").resolved_ui_url({UI_URL_ENV: "None"}) is None
    resource = MlflowTracking(tracking_uri="databricks")
    assert resource.run_url("1", "abc") is None and resource.model_version_url("3") is None
    assert mlflow_links(resource, "1", "abc", "3") == {}


def test_run_and_model_version_pages() -> None:
    resource = MlflowTracking(
        tracking_uri="http://127.0.0.1:5001", ui_url="http://127.0.0.1:5001", registered_model_name="rare triage"
    )
    assert resource.run_url("7", "0123abcd") == "http://127.0.0.1:5001/#/experiments/7/runs/0123abcd"
    assert resource.model_version_url("12") == "http://127.0.0.1:5001/#/models/rare%20triage/versions/12"
    assert resource.model_version_url(None) is None
    links = mlflow_links(resource, "7", "0123abcd", None)
    assert links == {"mlflow_run_url": dg.MetadataValue.url("http://127.0.0.1:5001/#/experiments/7/runs/0123abcd")}
