"""promote_to_prod and rollback jobs, and their command line, against a local bucket and a real MLflow registry."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient

from rare_triage.cli import main
from rare_triage.defs.deployment.promotion import champion_setter, promote_to_prod_job, rollback_job
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.bucket import ModelBucketResource
from rare_triage.defs.shared.mlflow import DEFAULT_REGISTERED_MODEL as REGISTERED_MODEL_NAME
from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.lib.deployment.bucket import LocalBucket
from rare_triage.lib.deployment.model_bundle import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL
from rare_triage.lib.deployment.publication import move_pointer, publish_model, read_pointer
from rare_triage_tests.helpers.published_model_factory import release_for


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A sqlite MLflow registry with model versions 1 and 2 of the registered model, champion on 1."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(REGISTERED_MODEL_NAME)
    for n in (1, 2):
        client.create_model_version(REGISTERED_MODEL_NAME, source=str(root / f"artifacts-{n}"))
    return uri


def _champion(uri: str) -> str:
    return str(
        MlflowClient(tracking_uri=uri, registry_uri=uri)
        .get_model_version_by_alias(REGISTERED_MODEL_NAME, "champion")
        .version
    )


@pytest.fixture
def served(tmp_path: Path, tracking_uri: str) -> Iterator[tuple[LocalBucket, str, str]]:
    """prod serves registry version 1, dev serves version 2 with better metrics; champion alias on 1."""
    bucket = LocalBucket(tmp_path / "bucket")
    old = publish_model(bucket, release_for(b"model one", "1")).version
    better = {METRIC_ORPHAN_RECALL: 0.93, METRIC_EXTERNAL_VALIDATION_SHARE: 0.81}
    new = publish_model(bucket, release_for(b"model two", "2", **better)).version
    move_pointer(bucket, "prod", old)
    move_pointer(bucket, "dev", new)
    champion_setter(MlflowTracking(tracking_uri=tracking_uri))({"mlflow_model_version": "1"})
    yield bucket, old, new


def _resources(bucket: LocalBucket, tracking_uri: str) -> dict[str, object]:
    return {
        c.BUCKET: ModelBucketResource(uri=str(bucket.root)),
        c.MLFLOW: MlflowTracking(tracking_uri=tracking_uri),
    }


def test_promotion_moves_prod_and_the_champion_alias(served: tuple[LocalBucket, str, str], tracking_uri: str) -> None:
    bucket, old, new = served

    result = promote_to_prod_job.execute_in_process(
        run_config={"ops": {"promote_dev_to_prod": {"config": {"tolerance": 0.0}}}},
        resources=_resources(bucket, tracking_uri),
    )

    assert result.success
    assert result.output_for_node("promote_dev_to_prod")["promoted"] is True
    assert read_pointer(bucket, "prod").version == new  # type: ignore[union-attr]
    assert read_pointer(bucket, "prod").previous_version == old  # type: ignore[union-attr]
    assert _champion(tracking_uri) == "2"
    observations = [
        e.event_specific_data.asset_observation for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"
    ]  # type: ignore[union-attr]
    assert observations[0].asset_key == c.PUBLISHED_MODEL
    assert observations[0].metadata["prod_version"].value == new


def test_a_refused_gate_fails_the_run_and_moves_nothing(
    served: tuple[LocalBucket, str, str], tracking_uri: str
) -> None:
    bucket, old, _ = served
    worse = {METRIC_ORPHAN_RECALL: 0.70, METRIC_EXTERNAL_VALIDATION_SHARE: 0.81}
    move_pointer(bucket, "dev", publish_model(bucket, release_for(b"model three", "2", **worse)).version)

    result = promote_to_prod_job.execute_in_process(
        run_config={"ops": {"promote_dev_to_prod": {"config": {"tolerance": 0.05}}}},
        resources=_resources(bucket, tracking_uri),
        raise_on_error=False,
    )

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "orphan_recall: challenger 0.7000 < champion 0.9000" in failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert read_pointer(bucket, "prod").version == old  # type: ignore[union-attr]
    assert _champion(tracking_uri) == "1"


def test_rollback_job_returns_prod_to_an_earlier_version(
    served: tuple[LocalBucket, str, str], tracking_uri: str
) -> None:
    bucket, old, new = served
    move_pointer(bucket, "prod", new)

    result = rollback_job.execute_in_process(
        run_config={"ops": {"rollback_env": {"config": {"env": "prod", "version": old}}}},
        resources=_resources(bucket, tracking_uri),
    )
    refused = rollback_job.execute_in_process(
        run_config={"ops": {"rollback_env": {"config": {"env": "prod", "version": "v7-aaaaaaaaaaaa"}}}},
        resources=_resources(bucket, tracking_uri),
        raise_on_error=False,
    )

    assert result.success
    assert read_pointer(bucket, "prod").version == old  # type: ignore[union-attr]
    assert _champion(tracking_uri) == "1"
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "rollback of prod to v7-aaaaaaaaaaaa refused" in failure.step_failure_data.error.message  # type: ignore[union-attr]


def test_command_line_runs_the_jobs_on_the_dagster_instance(
    served: tuple[LocalBucket, str, str], tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, old, new = served
    environ = {
        "RARE_TRIAGE_HOME": str(tmp_path),
        "RARE_TRIAGE_BUCKET_URI": str(bucket.root),
        "RARE_TRIAGE_MLFLOW_TRACKING_URI": tracking_uri,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }

    assert main(["promote", "--tolerance", "0.0"], environ) == 0
    assert f"prod: {new}" in capsys.readouterr().out
    assert main(["rollback", "--env", "prod", "--version", old], environ) == 0
    assert main(["status"], environ) == 0
    assert f"prod: {old}" in capsys.readouterr().out
    assert main(["rollback", "--env", "prod", "--version", "v9-bbbbbbbbbbbb"], environ) == 1
    assert "refused" in capsys.readouterr().err

    with dg.DagsterInstance.from_config(environ["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
    assert sorted(r.job_name for r in runs) == ["promote_to_prod", "rollback", "rollback"]
