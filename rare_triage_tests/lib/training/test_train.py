import numpy as np
import pytest

from rare_triage.lib import schema
from rare_triage.lib.deployment.model_bundle import with_evaluation_metrics
from rare_triage.lib.testing.synthetic_features import PhenotypeLayout
from rare_triage.lib.training.columns import ORPHAN_INDEX, label_codes, model_inputs
from rare_triage.lib.training.model import TriageModel, build_triage_model
from rare_triage.lib.training.train import TrainingConfig, TrainingOutcome, train_triage_model
from rare_triage_tests.lib.training.conftest import SMALL_PARAMS, Windows


def test_training_chooses_a_servable_candidate_and_reaches_the_recall_on_validation(
    trained: TrainingOutcome, windows: Windows
) -> None:
    assert trained.spec.servable
    assert trained.spec.name in {r.spec.name for r in trained.cv_results}
    assert trained.selection_reason.startswith(trained.spec.name)
    y_val = label_codes(windows.validation["label"])
    p = trained.pipeline.predict_proba(model_inputs(windows.validation, trained.feature_columns))[:, ORPHAN_INDEX]
    assert (p[y_val == ORPHAN_INDEX] >= trained.policy.orphan_threshold).mean() >= 0.95
    assert trained.validation_metrics["orphan_recall"] >= 0.95
    assert trained.calibration in {"none", "sigmoid", "isotonic"}
    assert trained.policy.review_threshold <= trained.policy.orphan_threshold


def test_no_search_trains_the_single_candidate(windows: Windows) -> None:
    config = TrainingConfig(
        candidates=("logistic_regression+class_weight",), cv_folds=0, calibration="none", params=SMALL_PARAMS
    )
    outcome = train_triage_model(windows.train, windows.validation, config)
    assert outcome.cv_results == [] and outcome.spec.name == "logistic_regression+class_weight"
    assert outcome.calibration == "none"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_recall": 1.2}, "target_recall"),
        ({"review_recall": 0.9}, "review_recall"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"candidates": ()}, "candidates"),
        ({"selection_tolerance": -0.01}, "selection_tolerance"),
        ({"selection_tolerance": float("nan")}, "selection_tolerance"),
    ],
)
def test_bad_configuration_is_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**kwargs)  # type: ignore[arg-type]


def test_a_window_without_orphans_is_refused(windows: Windows) -> None:
    no_orphan = windows.validation[windows.validation["label"] != "orphan"]
    with pytest.raises(ValueError, match="validation window: label\\(s\\) \\['orphan'\\]"):
        train_triage_model(windows.train, no_orphan, TrainingConfig(params=SMALL_PARAMS))


def test_bundle_is_a_valid_trained_model_with_its_provenance(
    trained: TrainingOutcome, windows: Windows, layout: PhenotypeLayout
) -> None:
    systems = layout.term_system[["system_id"]].drop_duplicates().assign(label="a system")
    model = build_triage_model(
        trained,
        feature_set="all",
        test=windows.test,
        training_partitions=["2025-03-01"],
        data_fingerprint="f" * 64,
        code_revision="unknown",
        hpo_release="2025-01-16",
        vocabulary=layout.vocabulary,
        systems=systems,
        phenotype_encoding={"format": "test"},
        model_params=SMALL_PARAMS.as_dict(),
        mlflow_run_id="run",
        mlflow_model_version="3",
    )
    assert isinstance(model, TriageModel)
    assert model.class_labels == list(schema.LABELS)
    assert set(model.categories) == set(model.categorical_columns) and model.categories["sex"]
    assert model.thresholds["orphan"] == trained.policy.orphan_threshold
    assert model.needs_review["label"] == "needs_review"
    assert model.test_features is not None and list(model.test_features.columns) == model.feature_columns
    assert len(model.vocabulary) == len([c for c in model.feature_columns if c.startswith("hpo_")])
    assert model.phenotype_encoding == {"format": "test"}
    merged = with_evaluation_metrics(model, {"orphan_recall": 0.93}, {"external_validation_share": 0.9})
    assert merged.metrics["orphan_recall"] == 0.93 and merged.metrics["external_validation_share"] == 0.9
    assert merged.metrics["test_orphan_recall"] == 0.93
    assert np.isfinite(merged.metrics["validation_orphan_recall"])
