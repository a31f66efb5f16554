from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from rare_triage.lib import schema
from rare_triage.lib.training import tracking
from rare_triage.lib.training.columns import model_inputs
from rare_triage.lib.training.train import TrainingOutcome
from rare_triage_tests.lib.training.conftest import SMALL_PARAMS, Windows


def test_code_revision_falls_back_to_the_environment_then_unknown(tmp_path: Path) -> None:
    assert tracking.code_revision({"RARE_TRIAGE_CODE_REVISION": "abc123"}, repo_dir=tmp_path) == "abc123"
    assert tracking.code_revision({}, repo_dir=tmp_path) == "unknown"


def test_fingerprint_ignores_row_order_but_not_labels() -> None:
    frame = pd.DataFrame({"encounter_key": ["a", "b", "c"], "label": ["none", "orphan", "none"]})
    same = tracking.data_fingerprint([frame.iloc[::-1]])
    assert tracking.data_fingerprint([frame]) == same == tracking.data_fingerprint([frame.iloc[:1], frame.iloc[1:]])
    relabelled = frame.assign(label=["none", "none", "none"])
    assert tracking.data_fingerprint([relabelled]) != same
    assert len(same) == 64


def test_flat_metrics_keep_finite_numbers_only() -> None:
    values = {"a": 1, "b": float("nan"), "c": {"d": np.float64(0.5), "e": "text"}, "f g": True}
    assert tracking.flat_metrics(values, "x.") == {"x.a": 1.0, "x.c.d": 0.5, "x.f g": 1.0}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.create_experiment("t", artifact_location=(folder / "artifacts").as_uri())
    yield uri
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def _register(client: MlflowClient, trained: TrainingOutcome, name: str = "m") -> str:
    with mlflow.start_run(experiment_id=client.get_experiment_by_name("t").experiment_id) as run:
        tracking.log_params({"candidate": trained.spec.name})
        tracking.log_metrics(trained.validation_metrics, "validation.")
        tracking.log_png(b"\x89PNG fake", "plot.png")
        tracking.log_table(trained.cv_table(), "cv.csv")
        info = tracking.log_pipeline(trained.pipeline)
        return tracking.register_version(client, info, name, run.info.run_id, {"k": "v"})


def test_a_registered_version_is_pending_and_holds_no_alias_until_its_gates_passed(
    store: str, trained: TrainingOutcome, windows: Windows
) -> None:
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    first = _register(client, trained)
    client.set_registered_model_alias("m", tracking.CHAMPION_ALIAS, first)
    second = _register(client, trained)
    assert [first, second] == ["1", "2"]
    registered = client.get_model_version("m", second)
    assert registered.tags["k"] == "v" and registered.tags[tracking.GATES_TAG] == "pending"
    assert not registered.aliases
    assert tracking.set_challenger(client, "m", second)
    assert str(client.get_model_version_by_alias("m", tracking.CHALLENGER_ALIAS).version) == "2"
    assert str(client.get_model_version_by_alias("m", tracking.CHAMPION_ALIAS).version) == "1"
    assert client.get_model_version("m", second).tags[tracking.GATES_TAG] == "passed"
    loaded = mlflow.sklearn.load_model("models:/m@challenger")
    X = model_inputs(windows.test.iloc[:20], trained.feature_columns)
    np.testing.assert_allclose(loaded.predict_proba(X), trained.pipeline.predict_proba(X))
    artifacts = {a.path for a in client.list_artifacts(client.get_model_version("m", "2").run_id)}
    assert {"plots", "tables"} <= artifacts


def test_a_failed_gate_is_named_on_the_version_and_it_never_becomes_challenger(
    store: str, trained: TrainingOutcome
) -> None:
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    version = _register(client, trained, "g")
    assert tracking.record_gate_verdicts(client, "g", version, {"orphan_recall_gate": True}) == []
    assert tracking.refresh_gate_summary(client, "g", version) == []
    assert client.get_model_version("g", version).tags[tracking.GATES_TAG] == "pending"
    failed = tracking.record_gate_verdicts(client, "g", version, {"orphan_pr_auc_gate": False, "z_gate": False})
    assert failed == ["orphan_pr_auc_gate", "z_gate"]
    assert tracking.refresh_gate_summary(client, "g", version) == failed
    tags = client.get_model_version("g", version).tags
    assert tags[tracking.GATES_TAG] == "failed" and tags[tracking.FAILED_GATES_TAG] == "orphan_pr_auc_gate,z_gate"
    assert tags["gate.orphan_recall_gate"] == "passed" and tags["gate.z_gate"] == "failed"
    with pytest.raises(ValueError, match=r"gates \['orphan_pr_auc_gate', 'z_gate'\] failed"):
        tracking.set_challenger(client, "g", version)
    assert not client.get_model_version("g", version).aliases


def test_a_version_that_fails_a_gate_later_loses_the_challenger_alias(store: str, trained: TrainingOutcome) -> None:
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    version = _register(client, trained, "h")
    tracking.record_gate_verdicts(client, "h", version, {"orphan_recall_gate": True})
    assert tracking.set_challenger(client, "h", version)
    tracking.record_gate_verdicts(client, "h", version, {"orphan_recall_gate": False})
    assert tracking.refresh_gate_summary(client, "h", version) == ["orphan_recall_gate"]
    assert not client.get_model_version("h", version).aliases
    tracking.record_gate_verdicts(client, "h", version, {"orphan_recall_gate": True})  # judged again and passed
    assert tracking.refresh_gate_summary(client, "h", version) == []
    tags = client.get_model_version("h", version).tags
    assert tags[tracking.GATES_TAG] == "pending" and tracking.FAILED_GATES_TAG not in tags
    assert tracking.record_gate_verdicts(client, "h", None, {"x": False}) == []
    assert tracking.set_challenger(client, "h", None) is False


def test_asset_run_tags_name_the_dagster_run_the_asset_and_the_code() -> None:
    tags = tracking.asset_run_tags("run-1", "triage_model")
    assert tags == {
        "dagster_run_id": "run-1",
        "dagster_asset": "triage_model",
        "code_revision": tracking.code_revision(),
    }


def test_the_logged_model_has_a_signature_of_the_feature_columns_and_an_input_example(
    store: str, trained: TrainingOutcome, windows: Windows
) -> None:
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    inputs = model_inputs(windows.train, trained.feature_columns)
    with mlflow.start_run(experiment_id=client.get_experiment_by_name("t").experiment_id):
        info = tracking.log_pipeline(
            trained.pipeline,
            signature=tracking.model_signature(trained.pipeline, inputs),
            example=tracking.input_example(inputs),
        )
    logged = mlflow.models.get_model_info(info.model_uri)
    assert logged.signature is not None
    assert logged.signature.inputs.input_names() == trained.feature_columns
    optional = {spec.name for spec in logged.signature.inputs.inputs if not spec.required}
    assert optional == {c for c in trained.feature_columns if inputs[c].isna().any()}  # missing somewhere in training
    assert [s.shape for s in logged.signature.outputs.inputs] == [(-1, len(schema.LABELS))]  # predict_proba
    local = mlflow.artifacts.download_artifacts(info.model_uri)
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert list(example.columns) == trained.feature_columns and len(example) == tracking.INPUT_EXAMPLE_ROWS
    assert not {"encounter_key", "patient_key", "partition_day", "label"} & set(example.columns)
    for column in ("sex", "age_years", "centre_id"):  # every cell is a value the column holds in training
        assert set(example[column].dropna()) <= set(inputs[column].dropna())
    proba = mlflow.pyfunc.load_model(info.model_uri).predict(example)  # the pyfunc flavour predicts probabilities
    np.testing.assert_allclose(np.asarray(proba).sum(axis=1), 1.0)


def test_an_input_example_row_is_no_training_row() -> None:
    """Each cell is drawn from its own random row: on rows whose columns all agree, no example row does."""
    frame = pd.DataFrame({f"c{i}": np.arange(100.0) for i in range(5)})
    example = tracking.input_example(frame, rows=3, seed=1)
    assert list(example.dtypes) == list(frame.dtypes)
    rows = {tuple(r) for r in frame.itertuples(index=False)}
    assert not [tuple(r) for r in example.itertuples(index=False) if tuple(r) in rows]
    assert len(tracking.input_example(frame.head(2), rows=3)) == 2
    with pytest.raises(ValueError, match="no row"):
        tracking.input_example(frame.head(0))


def test_one_nested_run_per_candidate_with_its_cv_metrics(store: str, trained: TrainingOutcome) -> None:
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    experiment_id = client.get_experiment_by_name("t").experiment_id
    with mlflow.start_run(experiment_id=experiment_id) as parent:
        run_ids = tracking.log_candidate_runs(
            trained.cv_results,
            chosen=trained.spec.name,
            params=SMALL_PARAMS,
            search={"cv_folds": 2, "cv_rows": trained.cv_rows},
            tags={"dagster_run_id": "r1"},
        )
        assert mlflow.active_run().info.run_id == parent.info.run_id  # the parent is active again
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.info.run_id for r in children) == sorted(run_ids.values())
    assert sorted(r.info.run_name for r in children) == sorted(r.spec.name for r in trained.cv_results)
    for run in children:
        assert run.info.status == "FINISHED" and run.info.experiment_id == experiment_id
        assert set(run.data.metrics) == set(tracking.CANDIDATE_METRICS)  # the same names: comparable side by side
        assert run.data.tags["run_kind"] == "cv_candidate" and run.data.tags["dagster_run_id"] == "r1"
        assert run.data.params["cv_folds"] == "2" and run.data.params["candidate"] == run.info.run_name
        result = next(r for r in trained.cv_results if r.spec.name == run.info.run_name)
        assert run.data.metrics["orphan_pr_auc"] == pytest.approx(result.orphan_pr_auc)
        assert run.data.params["model"] == result.spec.model and run.data.params["imbalance"] == result.spec.imbalance
        family = {"logistic_regression": "lr_c", "xgboost": "xgb_max_depth"}[result.spec.model]
        assert family in run.data.params and not {"rf_max_depth"} & set(run.data.params)
    assert [r.data.tags["chosen"] for r in children].count("true") == 1
    assert client.get_run(parent.info.run_id).data.metrics == {}  # nothing of the candidates lands on the parent


def test_candidate_runs_need_an_active_parent(trained: TrainingOutcome) -> None:
    assert mlflow.active_run() is None
    with pytest.raises(RuntimeError, match="nested under an active run"):
        tracking.log_candidate_runs(trained.cv_results, chosen="x", params=SMALL_PARAMS, search={}, tags={})


def test_headline_metrics_are_few_and_the_rest_is_one_json_artifact(store: str, trained: TrainingOutcome) -> None:
    chosen = next(r for r in trained.cv_results if r.spec == trained.spec)
    headline = tracking.headline_metrics(trained.validation_metrics, trained.policy.as_dict(), chosen)
    assert len(headline) == tracking.MAX_HEADLINE_METRICS
    assert headline["validation.orphan_recall"] == trained.validation_metrics["orphan_recall"]
    assert headline["cv.orphan_pr_auc"] == chosen.orphan_pr_auc
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    experiment_id = client.get_experiment_by_name("t").experiment_id
    with mlflow.start_run(experiment_id=experiment_id) as run:
        tracking.log_headline_metrics(headline, model_id=None, validation=None)
        tracking.log_metric_details({"validation": trained.validation_metrics, "cv": trained.cv_table()})
        tracking.log_result_table(trained.cv_table(), "tables/cv_results.json")
    assert client.get_run(run.info.run_id).data.metrics == headline
    details = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/metrics/details.json")
    assert details["validation"].keys() == trained.validation_metrics.keys()
    assert [row["candidate"] for row in details["cv"]] == [r.spec.name for r in trained.cv_results]
    table = client.load_table(experiment_id, "tables/cv_results.json", run_ids=[run.info.run_id])
    assert list(table["candidate"]) == [r.spec.name for r in trained.cv_results]
