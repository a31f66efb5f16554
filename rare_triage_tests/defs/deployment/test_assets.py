"""onnx_model, its blocking checks and published_model, materialized in-process against a local or S3 bucket."""

import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import skl2onnx.operator_converters.calibrated_classifier_cv as skl2onnx_calibration
from mlflow import MlflowClient

import rare_triage.defs.deployment
from rare_triage.defs.deployment.checks import ONNX_PARITY, ONNX_SERVING_SPEED, ONNX_SIZE
from rare_triage.defs.deployment.gating import required_check_keys
from rare_triage.defs.deployment.promotion import promote_to_prod_job, rollback_job
from rare_triage.defs.deployment.registry import registry_hashes
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.bucket import ModelBucketResource
from rare_triage.defs.shared.mlflow import DEFAULT_REGISTERED_MODEL, MlflowTracking
from rare_triage.lib.deployment import bucket as bucket_lib
from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.deployment.onnx_export import export as export_module
from rare_triage.lib.deployment.onnx_export.isotonic import NEAREST_THRESHOLD_ISOTONIC
from rare_triage.lib.deployment.publication import (
    inspect_version,
    list_versions,
    read_pointer,
    served_model,
    sidecar_key,
)
from rare_triage.lib.deployment.registry_hashes import MANIFEST_SHA256_TAG, ONNX_SHA256_TAG, VERSION_TAG
from rare_triage.lib.ingest.fhir.hpo_xrefs import XREFS_FORMAT, hpo_xref_table
from rare_triage.lib.testing.synthetic_models import synthetic_trained_model
from rare_triage.lib.training.evaluate import ModelEvaluation
from rare_triage.lib.training.external import ExternalValidation
from rare_triage.lib.training.windows import WINDOW_NAMES, TrainingSet, explicit_windows
from rare_triage_tests.fixtures_s3 import ACCESS_KEY, REGION, SECRET_KEY, make_bucket, s3_server
from rare_triage_tests.helpers.domains import domain_assets, domain_checks

DEPLOYMENT_ASSETS = domain_assets(rare_triage.defs.deployment)
DEPLOYMENT_CHECKS = domain_checks(rare_triage.defs.deployment)
DEPLOYMENT_JOBS = [promote_to_prod_job, rollback_job]

__all__ = ["s3_server"]  # pytest fixture used by name below


@pytest.fixture(scope="module")
def model() -> ModelBundle:
    return synthetic_trained_model("xgb", n=1500, seed=5)


def _training_stubs(model: ModelBundle, gates_pass: bool = True) -> list[Any]:
    """triage_model, model_evaluation and external_validation as training hands them over, with its gates."""

    @dg.asset(key=c.TRIAGE_MODEL, group_name=c.GROUP_TRAINING)
    def triage_model() -> ModelBundle:
        return model

    @dg.asset(key=c.MODEL_EVALUATION, group_name=c.GROUP_TRAINING, deps=[c.TRIAGE_MODEL])
    def model_evaluation() -> ModelEvaluation:
        metrics = {"orphan_recall": 0.95, "non_orphan_flag_rate": 0.05, "brier": float("nan")}
        return ModelEvaluation(
            metrics,
            per_class={},
            confusion=[],
            subgroups=pd.DataFrame(),
            mlflow_model_version=model.mlflow_model_version,
        )

    @dg.asset(key=c.EXTERNAL_VALIDATION, group_name=c.GROUP_TRAINING, deps=[c.TRIAGE_MODEL])
    def external_validation() -> ExternalValidation:
        return ExternalValidation(
            n_cases=40,
            mlflow_model_version=model.mlflow_model_version,
            share_flagged=0.9,
            share_flagged_or_review=0.95,
            share_without_vocabulary_term=0.1,
            share_flagged_without_vocabulary_term=0.05,
            mean_orphan_probability=0.6,
            test_non_orphan_flag_rate=0.05,
            per_cohort=pd.DataFrame(),
            ablation=pd.DataFrame(),
        )

    def gate(key: dg.AssetCheckKey) -> dg.AssetChecksDefinition:
        @dg.asset_check(asset=key.asset_key, name=key.name, blocking=True)
        def stub_gate() -> dg.AssetCheckResult:
            return dg.AssetCheckResult(passed=gates_pass)

        return stub_gate

    @dg.asset(key=c.TRAINING_SET, group_name=c.GROUP_TRAINING)
    def training_set() -> TrainingSet:  # the reference profile reads its training and validation rows
        rows = model.test_features
        assert rows is not None
        days = {f"{name}_{end}": f"2025-03-0{i + 1}" for i, name in enumerate(WINDOW_NAMES) for end in ("start", "end")}
        return TrainingSet(explicit_windows(days), train=rows, validation=rows.iloc[:0], test=rows.iloc[:0])

    training_gates = [key for key in required_check_keys() if key.asset_key != c.ONNX_MODEL]
    return [training_set, triage_model, model_evaluation, external_validation, *(gate(key) for key in training_gates)]


def _materialize(
    model: ModelBundle,
    bucket: ModelBucketResource,
    instance: dg.DagsterInstance,
    *,
    selection: list[str] | None = None,
    with_checks: bool = True,
    gates_pass: bool = True,
    mlflow: MlflowTracking | None = None,
) -> dg.ExecuteInProcessResult:
    stubs = _training_stubs(model, gates_pass)
    if not with_checks:
        stubs = [s for s in stubs if not isinstance(s, dg.AssetChecksDefinition)]
    return dg.materialize(
        [*stubs, *DEPLOYMENT_ASSETS, *(DEPLOYMENT_CHECKS if with_checks else [])],
        resources={c.BUCKET: bucket, c.MLFLOW: mlflow or MlflowTracking()},
        instance=instance,
        selection=selection,
        raise_on_error=False,
    )


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_publishing_writes_a_verified_version_and_moves_dev(
    model: ModelBundle, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    result = _materialize(model, ModelBucketResource(uri=str(tmp_path)), instance)

    assert result.success
    assert _check(result, ONNX_PARITY).passed and _check(result, ONNX_SIZE).passed
    parity = _check(result, ONNX_PARITY).metadata
    assert parity["n_rows"].value == len(model.test_features)  # type: ignore[arg-type]
    assert parity["max_abs_diff"].value <= 1e-4
    onnx_meta = result.asset_materializations_for_node("onnx_model")[0].metadata
    assert {"onnx_bytes", "single_row_ms", "batch_rows_per_s", "sha256"} <= set(onnx_meta)
    assert onnx_meta["single_row_ms"].value > 0
    speed = _check(result, ONNX_SERVING_SPEED)  # measured and shown, a warning only: timings move with load
    assert speed.severity == dg.AssetCheckSeverity.WARN
    assert {"batch_speedup", "single_row_speedup", "targets_met"} <= set(speed.metadata)
    assert speed.passed is speed.metadata["targets_met"].value

    bucket = bucket_lib.LocalBucket(tmp_path)
    pointer, manifest, onnx_bytes = served_model(bucket, "dev")
    assert list_versions(bucket) == [pointer.version]
    assert manifest["checks_passed"] is True
    assert manifest["checks"] == {key.to_user_string(): True for key in required_check_keys()}
    assert manifest["metrics"]["orphan_recall"] == 0.95
    assert manifest["metrics"]["external_validation_share"] == 0.9
    assert manifest["metrics"]["test_brier"] is None
    assert manifest["dagster_run_id"] == result.run_id
    assert manifest["input_schema"]["columns"][0]["name"] == model.feature_columns[0]
    assert manifest["training_partitions"] == model.training_partitions
    assert result.output_for_node("published_model")["version"] == pointer.version
    assert _check(result, "dev_serves_published_version").passed
    assert len(onnx_bytes) == onnx_meta["onnx_bytes"].value
    assert "phenotype_encoding" not in manifest
    assert bucket.exists(sidecar_key(pointer.version, "phenotype_encoding.json"))
    tables = inspect_version(bucket, pointer.version).tables
    assert set(tables) == {"phenotype_encoding", "hpo_xrefs", "monitoring_reference"}
    profile = tables["monitoring_reference"]  # what drift_report compares served requests with
    assert profile["model_version"] == str(model.mlflow_model_version)
    assert {f["name"] for f in profile["numeric"]} | {f["name"] for f in profile["categorical"]} == set(
        model.feature_columns
    )
    assert tables["phenotype_encoding"] == model.phenotype_encoding
    xrefs = tables["hpo_xrefs"]  # the service maps SNOMED CT / ICD-10 / UMLS findings as the FHIR importer does
    assert (xrefs["format"], xrefs["hpo_release"]) == (XREFS_FORMAT, model.hpo_release)
    assert {
        (system, code): tuple(terms) for system, codes in xrefs["xrefs"].items() for code, terms in codes.items()
    } == hpo_xref_table()
    published_meta = result.asset_materializations_for_node("published_model")[0].metadata
    assert published_meta["table_files"].value == manifest["files"]


def test_a_failed_parity_check_blocks_publication(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # skl2onnx's own isotonic step (nearest threshold instead of interpolation) is silently wrong
    monkeypatch.setattr(export_module, "use_exact_isotonic", lambda: None)
    monkeypatch.setattr(skl2onnx_calibration, "_transform_isotonic", NEAREST_THRESHOLD_ISOTONIC)

    result = _materialize(
        synthetic_trained_model("xgb_calibrated", n=1500, seed=6), ModelBucketResource(uri=str(tmp_path)), instance
    )

    assert not result.success
    parity = _check(result, ONNX_PARITY)
    assert not parity.passed
    assert parity.metadata["max_abs_diff"].value > 1e-4
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key == c.PUBLISHED_MODEL]
    assert bucket_lib.LocalBucket(tmp_path).list() == []


def test_publishing_alone_is_refused_without_current_check_results(
    model: ModelBundle, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    bucket = ModelBucketResource(uri=str(tmp_path))
    upstream = [
        "training_set",
        "triage_model",
        "model_evaluation",
        "external_validation",
        "onnx_model",
        "reference_profile",
    ]
    first = _materialize(model, bucket, instance, selection=upstream, with_checks=False)
    assert first.success
    assert not first.get_asset_check_evaluations()

    second = _materialize(model, bucket, instance, selection=["published_model"])

    assert not second.success
    failure = next(e for e in second.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert "refusing to publish: blocking checks" in message and "onnx_model:onnx_parity" in message
    assert read_pointer(bucket_lib.LocalBucket(tmp_path), "dev") is None


@pytest.mark.integration
def test_publishing_to_an_s3_bucket(model: ModelBundle, s3_server: str, instance: dg.DagsterInstance) -> None:
    name = f"models-{uuid.uuid4().hex[:12]}"
    make_bucket(s3_server, name)
    resource = ModelBucketResource(
        uri=f"s3://{name}/rare",
        s3_endpoint_url=s3_server,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        s3_region=REGION,
    )

    result = _materialize(model, resource, instance)

    assert result.success
    bucket = resource.get_bucket()
    pointer = read_pointer(bucket, "dev")
    assert pointer is not None
    assert pointer.version == result.output_for_node("published_model")["version"]
    manifest = json.loads(bucket.get_bytes(f"models/rare-triage/{pointer.version}/manifest.json"))
    assert manifest["checks_passed"] is True


def test_deployment_definitions_load(model: ModelBundle, tmp_path: Path) -> None:
    stubs = _training_stubs(model)
    defs = dg.Definitions(
        assets=[s for s in stubs if not isinstance(s, dg.AssetChecksDefinition)] + DEPLOYMENT_ASSETS,
        asset_checks=[*DEPLOYMENT_CHECKS, *(s for s in stubs if isinstance(s, dg.AssetChecksDefinition))],
        jobs=DEPLOYMENT_JOBS,
        resources={c.BUCKET: ModelBucketResource(uri=str(tmp_path)), c.MLFLOW: MlflowTracking()},
    )
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()

    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {"onnx_model", "published_model"}
    blocking = {k for k in graph.asset_check_keys if graph.get_check_spec(k).blocking}
    assert blocking == required_check_keys()
    assert {dg.AssetCheckKey(c.ONNX_MODEL, ONNX_PARITY), dg.AssetCheckKey(c.ONNX_MODEL, ONNX_SIZE)} <= blocking
    assert {j.name for j in DEPLOYMENT_JOBS} == {"promote_to_prod", "rollback"}


def test_a_failed_training_gate_blocks_publication(
    model: ModelBundle, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    result = _materialize(model, ModelBucketResource(uri=str(tmp_path)), instance, gates_pass=False)

    assert not result.success
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key == c.PUBLISHED_MODEL]
    assert bucket_lib.LocalBucket(tmp_path).list() == []


def test_a_stale_export_is_never_published(model: ModelBundle, tmp_path: Path, instance: dg.DagsterInstance) -> None:
    bucket = ModelBucketResource(uri=str(tmp_path))
    assert _materialize(model, bucket, instance).success
    published = served_model(bucket_lib.LocalBucket(tmp_path), "dev")[0]

    assert _materialize(model, bucket, instance, selection=["triage_model"]).success  # retrained, not exported
    alone = _materialize(model, bucket, instance, selection=["published_model"])

    assert not alone.success
    failure = next(e for e in alone.all_events if e.is_step_failure)
    assert "not exported from the latest triage_model" in failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert served_model(bucket_lib.LocalBucket(tmp_path), "dev")[0] == published


def test_publication_records_the_hashes_in_the_registry(
    model: ModelBundle, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(DEFAULT_REGISTERED_MODEL)
    client.create_model_version(DEFAULT_REGISTERED_MODEL, source=str(tmp_path / "artifacts"))
    mlflow = MlflowTracking(tracking_uri=tracking_uri)
    registered = dataclasses.replace(model, mlflow_model_version="1")

    result = _materialize(registered, ModelBucketResource(uri=str(tmp_path / "bucket")), instance, mlflow=mlflow)

    assert result.success
    metadata = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == c.PUBLISHED_MODEL
    )
    tags = client.get_model_version(DEFAULT_REGISTERED_MODEL, "1").tags
    assert tags[MANIFEST_SHA256_TAG] == metadata["manifest_sha256"].value
    assert tags[ONNX_SHA256_TAG] == metadata["onnx_sha256"].value
    assert tags[VERSION_TAG] == metadata["version"].value
    recorded = registry_hashes(mlflow)("1")
    assert recorded is not None and recorded.manifest_sha256 == metadata["manifest_sha256"].value
    # published after every blocking check passed: the version is the challenger, its gates passed
    assert str(client.get_model_version_by_alias(DEFAULT_REGISTERED_MODEL, "challenger").version) == "1"
    assert tags["gates"] == "passed" and metadata["mlflow_alias"].value == "challenger"
