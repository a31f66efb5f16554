"""MLflow tracking as a small Dagster resource: every run it opens ends FINISHED or FAILED.

Not dagster-mlflow: its resource leaves the MLflow run RUNNING unless the job carries its end hook, which
`materialize()` and automation-launched runs never have (FIELD_NOTES). Here each asset opens its run with
`with mlflow.start_run(...)`, so the run is closed by the `with` on every launch path.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlparse

import dagster as dg
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from pydantic import Field

from rare_triage.lib.paths import rare_triage_home

DEFAULT_EXPERIMENT = "rare-triage"
DEFAULT_REGISTERED_MODEL = "rare-triage"
PARENT_RUN_TAG = "mlflow.parentRunId"


MLFLOW_DB = "mlflow.db"
# Where `mlflow ui --backend-store-uri <the local sqlite store>` serves by default (the command `make run` prints).
LOCAL_UI_URL = "http://127.0.0.1:5000"
UI_URL_ENV = "RARE_TRIAGE_MLFLOW_UI_URL"


def default_mlflow_dir(environ: Mapping[str, str] | None = None) -> Path:
    """<rare_triage_home>/mlflow of `environ` (os.environ by default; resolved when used, never at import)."""
    return rare_triage_home(environ) / "mlflow"


class MlflowTracking(dg.ConfigurableResource):
    """Where runs and models go: a local sqlite store under the state folder by default, a server by URI."""

    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///<RARE_TRIAGE_HOME>/mlflow/mlflow.db"
    )
    registry_uri: str | None = Field(default=None, description="Model registry URI; default: the tracking URI")
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root of a newly created experiment; default <RARE_TRIAGE_HOME>/mlflow/artifacts "
        "for the local sqlite store, the server's default otherwise",
    )
    local_dir: str | None = Field(
        default=None,
        description="Folder of the local sqlite store and artifacts when no tracking URI is set; default "
        "<RARE_TRIAGE_HOME>/mlflow of the process",
    )
    experiment_name: str = Field(default=DEFAULT_EXPERIMENT)
    registered_model_name: str = Field(default=DEFAULT_REGISTERED_MODEL)
    ui_url: str | None = Field(
        default=None,
        description=f"Base URL of the MLflow UI for the links in asset metadata; default ${UI_URL_ENV}, else the "
        f"tracking URI when it is a server (http/https), else {LOCAL_UI_URL} for a local store (`mlflow ui`); "
        "'none': no link",
    )

    def _local_dir(self) -> Path:
        return Path(self.local_dir) if self.local_dir else default_mlflow_dir()

    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        folder = self._local_dir()
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / MLFLOW_DB}"

    def resolved_artifact_location(self) -> str | None:
        if self.artifact_location:
            return self.artifact_location
        if self.tracking_uri:
            return None
        folder = self._local_dir() / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        return folder.as_uri()

    def configure(self) -> str:
        """Point the mlflow module at this store and return the experiment id (created when missing)."""
        mlflow.set_tracking_uri(self.resolved_tracking_uri())
        mlflow.set_registry_uri(self.registry_uri or self.resolved_tracking_uri())
        experiment = mlflow.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return str(experiment.experiment_id)
        return str(mlflow.create_experiment(self.experiment_name, artifact_location=self.resolved_artifact_location()))

    def client(self) -> MlflowClient:
        tracking = self.resolved_tracking_uri()
        return MlflowClient(tracking_uri=tracking, registry_uri=self.registry_uri or tracking)

    @contextmanager
    def start_run(
        self, run_name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None
    ) -> Iterator[mlflow.ActiveRun]:
        """An MLflow run that ends FINISHED when the block completes and FAILED when it raises."""
        experiment_id = self.configure()
        active = mlflow.active_run()
        if active is not None:
            raise RuntimeError(f"mlflow: run {active.info.run_id} is still active in this process")
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags[PARENT_RUN_TAG] = parent_run_id
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
            yield run

    def get_run(self, run_id: str) -> Run:
        return self.client().get_run(run_id)

    def resolved_ui_url(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The MLflow UI's base URL (no trailing slash), or None where no UI address can be formed (a remote
        store other than an MLflow server, or 'none' configured)."""
        env = os.environ if environ is None else environ
        configured = self.ui_url or env.get(UI_URL_ENV)
        if configured:
            return None if configured.strip().lower() == "none" else configured.rstrip("/")
        tracking = self.resolved_tracking_uri()
        scheme = urlparse(tracking).scheme
        if scheme in ("http", "https"):
            return tracking.rstrip("/")
        if scheme in ("sqlite", "file") or (not scheme and "/" in tracking):  # a local store ("databricks" is not)
            return LOCAL_UI_URL
        return None

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The run's page in the MLflow UI, or None (see resolved_ui_url)."""
        base = self.resolved_ui_url()
        return f"{base}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(run_id, safe='')}" if base else None

    def model_version_url(self, version: str | None) -> str | None:
        """The registered model version's page in the MLflow UI, or None (no version, or no UI address)."""
        base = self.resolved_ui_url()
        if not base or version is None:
            return None
        return f"{base}/#/models/{quote(self.registered_model_name, safe='')}/versions/{quote(str(version), safe='')}"
