"""The model registry's side of deployment: the challenger and champion aliases and the hashes recorded at
publication."""

from collections.abc import Callable, Mapping
from typing import Any

from mlflow.exceptions import MlflowException

from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.lib.deployment.promotion import CHAMPION_ALIAS, RegistryHashes
from rare_triage.lib.deployment.publication import PublishedVersion, RecordedHashes
from rare_triage.lib.deployment.registry_hashes import recorded_in_tags, tags_to_set
from rare_triage.lib.training.tracking import set_challenger


def champion_setter(mlflow: MlflowTracking) -> Callable[[Mapping[str, Any]], None]:
    """Sets the registry alias `champion` on the manifest's MLflow model version."""

    def set_champion(manifest: Mapping[str, Any]) -> None:
        version = str(manifest["mlflow_model_version"])
        mlflow.client().set_registered_model_alias(mlflow.registered_model_name, CHAMPION_ALIAS, version)

    return set_champion


def _source(mlflow: MlflowTracking, number: str) -> str:
    return f"model registry {mlflow.registered_model_name} version {number}"


def registry_hashes(mlflow: MlflowTracking) -> RegistryHashes:
    """Reads the hashes a registry version recorded at publication (None: no such version, or no hash tags)."""

    def lookup(number: str) -> RecordedHashes | None:
        try:
            version = mlflow.client().get_model_version(mlflow.registered_model_name, number)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return recorded_in_tags(dict(version.tags or {}), _source(mlflow, number))

    return lookup


def record_hashes(mlflow: MlflowTracking, published: PublishedVersion, number: str | None) -> dict[str, str]:
    """Tag registry version `number` with `published`'s hashes (once); returns the tags set now."""
    if number is None:
        return {}
    client = mlflow.client()
    existing = client.get_model_version(mlflow.registered_model_name, number).tags or {}
    tags = tags_to_set(dict(existing), published, _source(mlflow, number))
    for key, value in tags.items():
        client.set_model_version_tag(mlflow.registered_model_name, number, key, value)
    return tags


def make_challenger(mlflow: MlflowTracking, number: str | None) -> bool:
    """Every blocking check passed on registry version `number` and it was published: tag it `gates=passed` and give
    it the alias `challenger` (refused, ValueError, if one of its `gate.<check>` tags says failed)."""
    return set_challenger(mlflow.client(), mlflow.registered_model_name, number)
