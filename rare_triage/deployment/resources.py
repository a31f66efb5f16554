"""Deployment resources: the model bucket (local folder or S3-compatible) and the MLflow registry alias setter.

| variable | default | meaning |
|---|---|---|
| RARE_TRIAGE_BUCKET_URI | `$RARE_TRIAGE_HOME/bucket` | published models: a folder or `s3://bucket/prefix` |
| RARE_TRIAGE_S3_ENDPOINT_URL | (AWS) | S3-compatible endpoint, e.g. `http://127.0.0.1:9000` |
| AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION | | S3 credentials (read at run time) |
| MLFLOW_TRACKING_URI | `sqlite:///$RARE_TRIAGE_HOME/mlflow.db` | registry holding the `champion` alias |
| RARE_TRIAGE_REGISTERED_MODEL | `rare-triage` | registered model name |
"""

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from mlflow import MlflowClient

from rare_triage import constants as c
from rare_triage.lib.bucket import Bucket, bucket_from_uri
from rare_triage.lib.paths import rare_triage_home
from rare_triage.lib.promotion import CHAMPION_ALIAS

MODEL_REGISTRY = "model_registry"
REGISTERED_MODEL_NAME = "rare-triage"


class ModelBucketResource(dg.ConfigurableResource):
    """Where published models live: `uri` is a local folder or `s3://bucket/prefix` (reached through `s3`)."""

    uri: str
    s3: S3Resource | None = None

    def get_bucket(self) -> Bucket:
        """The bucket behind `uri`."""
        if self.uri.startswith("s3://"):
            if self.s3 is None:
                raise ValueError(f"model bucket {self.uri}: an s3 resource (endpoint, credentials) is required")
            return bucket_from_uri(self.uri, self.s3.get_client())
        return bucket_from_uri(self.uri)


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow model registry: promotion and rollback point its `champion` alias at what prod serves."""

    tracking_uri: str
    registered_model_name: str = REGISTERED_MODEL_NAME

    def set_champion(self, manifest: Mapping[str, Any]) -> None:
        """Alias `champion` -> the manifest's MLflow model version."""
        version = manifest.get("mlflow_model_version")
        if version is None:
            raise ValueError(f"manifest {manifest.get('version')}: no mlflow_model_version to alias")
        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        client.set_registered_model_alias(self.registered_model_name, CHAMPION_ALIAS, str(version))


def build_bucket_resource(environ: Mapping[str, str]) -> ModelBucketResource:
    """The bucket of the environment: a folder by default, S3 when RARE_TRIAGE_BUCKET_URI is s3://..."""
    uri = environ.get("RARE_TRIAGE_BUCKET_URI", str(rare_triage_home(environ) / "bucket"))
    if not uri.startswith("s3://"):
        return ModelBucketResource(uri=uri)
    s3 = S3Resource(
        endpoint_url=environ.get("RARE_TRIAGE_S3_ENDPOINT_URL"),
        aws_access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
        region_name=environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    return ModelBucketResource(uri=uri, s3=s3)


def build_registry_resource(environ: Mapping[str, str]) -> ModelRegistryResource:
    """The MLflow registry of the environment."""
    default = f"sqlite:///{rare_triage_home(environ) / 'mlflow.db'}"
    return ModelRegistryResource(
        tracking_uri=environ.get("MLFLOW_TRACKING_URI", default),
        registered_model_name=environ.get("RARE_TRIAGE_REGISTERED_MODEL", REGISTERED_MODEL_NAME),
    )


def build_deployment_resources(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Resources the deployment assets, checks and jobs need, keyed as they expect them."""
    env = os.environ if environ is None else environ
    return {c.BUCKET: build_bucket_resource(env), MODEL_REGISTRY: build_registry_resource(env)}
