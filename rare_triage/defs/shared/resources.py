"""Resources chosen in one place from the environment: local by default, S3 / shared services by configuration.

The environment is read when the code location loads (`resources()` below), never at import time.

| variable | default | meaning |
|---|---|---|
| RARE_TRIAGE_HOME | `.rare_triage/` | state folder of the local deployment |
| RARE_TRIAGE_DEPLOYMENT | `local` | `local` allows the public demo HMAC key; else RARE_TRIAGE_HMAC_KEY is required |
| RARE_TRIAGE_LAKE_URI | `$RARE_TRIAGE_HOME/lake` | Parquet lake: a folder or `s3://bucket/prefix` |
| RARE_TRIAGE_S3_ENDPOINT_URL | (AWS) | S3-compatible endpoint, e.g. `http://127.0.0.1:9000` |
| AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY | | S3 credentials, read at run time |
| RARE_TRIAGE_S3_CONNECT_TIMEOUT | 3 | seconds to open a connection, every S3 client (lake, landing zone, bucket) |
| RARE_TRIAGE_S3_READ_TIMEOUT | 30 | seconds without an answer before a request is abandoned |
| RARE_TRIAGE_S3_MAX_ATTEMPTS | 3 | attempts of one request in all (the first included) |
| RARE_TRIAGE_WAREHOUSE | `$RARE_TRIAGE_HOME/warehouse.duckdb` | DuckDB file of the features |
| RARE_TRIAGE_EHR_SOURCE | `synthetic` | `synthetic` or `landing` |
| RARE_TRIAGE_LANDING_URI | `$RARE_TRIAGE_HOME/landing` | landing zone root (folder or s3://) |
| RARE_TRIAGE_SEED, _ENCOUNTERS_PER_DAY, _POPULATION_SIZE, _ERROR_RATE | 20250101, 2000, 200000, 0.002 | synthetic |
| RARE_TRIAGE_DRIFT_SCENARIOS | `[]` | JSON list of {kind, start, params} for the synthetic source |
| RARE_TRIAGE_MLFLOW_TRACKING_URI | sqlite under `$RARE_TRIAGE_HOME/mlflow` | MLflow tracking (and registry) server |
| RARE_TRIAGE_BUCKET_URI | `$RARE_TRIAGE_HOME/bucket` | published models: a folder or `s3://bucket/prefix` |
"""

import json
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.bucket import build_bucket_resource, s3_settings
from rare_triage.defs.shared.ehr_source import DriftScenarioConfig, LandingZoneEhrSource, SyntheticEhrSource
from rare_triage.defs.shared.io_managers.duckdb_warehouse import DuckDBWarehouseIOManager
from rare_triage.defs.shared.io_managers.parquet_lake import ParquetLakeIOManager
from rare_triage.defs.shared.mlflow import MlflowTracking, default_mlflow_dir
from rare_triage.defs.shared.pseudonymization import PseudonymizationResource
from rare_triage.lib.paths import rare_triage_home

FEATURES_SCHEMA = "features"
# DuckDB takes 80% of the machine by default; a bound keeps a day's write beside the step's own data.
WAREHOUSE_CONNECTION = {"memory_limit": "1GB"}


def _s3_credentials(uri: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Endpoint, credentials (dg.EnvVar, read at run time) and limits of an s3:// uri; nothing for a folder."""
    return s3_settings(environ) if uri.startswith("s3://") else {}


def build_ehr_source(environ: Mapping[str, str]) -> SyntheticEhrSource | LandingZoneEhrSource:
    """The configured EHR source."""
    kind = environ.get("RARE_TRIAGE_EHR_SOURCE", "synthetic")
    if kind == "synthetic":
        scenarios = json.loads(environ.get("RARE_TRIAGE_DRIFT_SCENARIOS", "[]"))
        return SyntheticEhrSource(
            seed=int(environ.get("RARE_TRIAGE_SEED", "20250101")),
            encounters_per_day=int(environ.get("RARE_TRIAGE_ENCOUNTERS_PER_DAY", "2000")),
            population_size=int(environ.get("RARE_TRIAGE_POPULATION_SIZE", "200000")),
            error_rate=float(environ.get("RARE_TRIAGE_ERROR_RATE", "0.002")),
            drift_scenarios=[DriftScenarioConfig(**s) for s in scenarios],
        )
    if kind == "landing":
        uri = environ.get("RARE_TRIAGE_LANDING_URI", str(rare_triage_home(environ) / "landing"))
        return LandingZoneEhrSource(root_uri=uri, **_s3_credentials(uri, environ))
    raise ValueError(f"RARE_TRIAGE_EHR_SOURCE: unknown source {kind!r} (expected 'synthetic' or 'landing')")


def warehouse_path(environ: Mapping[str, str]) -> str:
    """The DuckDB file holding the features."""
    return environ.get("RARE_TRIAGE_WAREHOUSE", str(rare_triage_home(environ) / "warehouse.duckdb"))


def build_resources(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every resource of the code location for the environment `environ` (os.environ by default)."""
    env = os.environ if environ is None else environ
    home = rare_triage_home(env)
    home.mkdir(parents=True, exist_ok=True)
    lake_uri = env.get("RARE_TRIAGE_LAKE_URI", str(home / "lake"))
    warehouse = warehouse_path(env)
    return {
        c.PARQUET_IO_MANAGER: ParquetLakeIOManager(base_uri=lake_uri, **_s3_credentials(lake_uri, env)),
        c.PARQUET_ARROW_INPUT: ParquetLakeIOManager(
            base_uri=lake_uri, load_as_arrow=True, **_s3_credentials(lake_uri, env)
        ),
        c.DUCKDB_IO_MANAGER: DuckDBWarehouseIOManager(
            database=warehouse, schema=FEATURES_SCHEMA, connection_config=WAREHOUSE_CONNECTION
        ),
        "duckdb": DuckDBResource(database=warehouse),
        c.EHR_SOURCE: build_ehr_source(env),
        c.PSEUDONYMIZATION: PseudonymizationResource(
            allow_local_default=env.get("RARE_TRIAGE_DEPLOYMENT", "local") == "local"
        ),
        c.MLFLOW: build_mlflow_resource(env),
        c.BUCKET: build_bucket_resource(env),
    }


def build_mlflow_resource(environ: Mapping[str, str]) -> MlflowTracking:
    """MLflow tracking and registry: sqlite under `environ`'s RARE_TRIAGE_HOME unless RARE_TRIAGE_MLFLOW_TRACKING_URI
    is set (the folder is created when first used, not here)."""
    return MlflowTracking(
        tracking_uri=environ.get("RARE_TRIAGE_MLFLOW_TRACKING_URI") or None,
        registry_uri=environ.get("RARE_TRIAGE_MLFLOW_REGISTRY_URI") or None,
        artifact_location=environ.get("RARE_TRIAGE_MLFLOW_ARTIFACT_LOCATION") or None,
        local_dir=str(default_mlflow_dir(environ)),
    )


@dg.definitions
def resources() -> dg.Definitions:
    """The code location's resources, for the environment it is loaded in."""
    return dg.Definitions(resources=build_resources())
