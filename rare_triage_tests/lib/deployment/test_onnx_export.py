"""ONNX export: the serving encoding, and parity with the native pipeline on frames with NaNs and unseen categories."""

import importlib
import pickle
import subprocess
import sys

import numpy as np
import onnx
import pandas as pd
import pytest
from imblearn.pipeline import Pipeline as ImbalancedPipeline
from imblearn.under_sampling import RandomUnderSampler
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

from rare_triage.lib import schema
from rare_triage.lib.deployment.onnx_export import (
    UNKNOWN_CODE,
    ColumnSpec,
    ExportError,
    FeatureSpec,
    export_pipeline_to_onnx,
    export_trained_model,
    feature_spec_from_pipeline,
    onnx_session,
    parity_report,
    records_to_serving_matrix,
    spec_from_onnx,
    to_serving_matrix,
)
from rare_triage.lib.deployment.onnx_export.export import GRAPH_NAME
from rare_triage.lib.deployment.onnx_export.speed import (
    MAX_SINGLE_ROW_MS,
    MIN_BATCH_SPEEDUP,
    MIN_SINGLE_ROW_SPEEDUP,
    onnx_speed,
    serving_speed,
    tile_rows,
)
from rare_triage.lib.testing.synthetic_models import feature_columns, synthetic_frame, synthetic_trained_model

CATEGORICAL, NUMERIC = feature_columns()
FEATURES = CATEGORICAL + NUMERIC


def _export(pipeline: object, labels: tuple[str, ...] = schema.LABELS) -> tuple[FeatureSpec, bytes]:
    spec = feature_spec_from_pipeline(pipeline, FEATURES, CATEGORICAL, labels)
    return spec, export_pipeline_to_onnx(pipeline, spec)


def _fit(pipeline: Pipeline, frame: pd.DataFrame, labels: np.ndarray) -> Pipeline:
    with threadpool_limits(1):
        return pipeline.fit(frame, labels)


def _xgb() -> XGBClassifier:
    return XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0)


@pytest.fixture(scope="module")
def train() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic_frame(1500, seed=3)


@pytest.fixture(scope="module")
def test_window() -> pd.DataFrame:
    frame, _ = synthetic_frame(600, seed=4, unseen_share=0.05)
    return frame


@pytest.mark.parametrize("kind", ["lr", "rf", "xgb", "lr_calibrated", "xgb_calibrated"])
def test_onnx_matches_native_pipeline_on_rows_with_nans_and_unseen_categories(kind: str) -> None:
    model = synthetic_trained_model(kind, n=1500, seed=1)  # type: ignore[arg-type]
    window = model.test_features
    assert window is not None
    assert window[NUMERIC].isna().any().any(), "the test window must contain missing vitals"
    assert (~window["centre_id"].isin(model.categories["centre_id"])).any(), "and unseen categories"

    _, onnx_bytes = _export(model.pipeline)
    report = parity_report(model.pipeline, onnx_bytes, window, thresholds={"orphan": 0.2, "needs_review": 0.1})

    assert report["n_rows"] == len(window)
    assert report["n_class_mismatches"] == 0
    assert report["class_agreement"] == 1.0
    assert report["max_abs_diff"] <= 1e-4
    assert report["passed"] is True
    assert report["threshold_flips"] == {"orphan": 0}  # not a class: needs_review is not compared


@pytest.mark.parametrize("kind", ["lr", "xgb"])
def test_the_same_model_exports_to_the_same_bytes(kind: str) -> None:
    model = synthetic_trained_model(kind, n=400, seed=3)
    first, second = export_trained_model(model), export_trained_model(model)
    assert first.onnx_bytes == second.onnx_bytes  # versions are content-addressed: a re-export is no new version
    assert onnx.load_from_string(first.onnx_bytes).graph.name == GRAPH_NAME


def test_onnx_outputs_a_plain_float_probability_tensor_and_embeds_its_input_schema(
    train: tuple[pd.DataFrame, np.ndarray], test_window: pd.DataFrame
) -> None:
    pipeline = _fit(
        Pipeline(
            [
                ("pre", ColumnTransformer([("num", SimpleImputer(), NUMERIC), ("cat", OneHotEncoder(), CATEGORICAL)])),
                ("clf", _xgb()),
            ]
        ),
        *train,
    )
    spec, onnx_bytes = _export(pipeline)
    graph = onnx.load_model_from_string(onnx_bytes).graph
    session = onnx_session(onnx_bytes)

    assert [i.name for i in session.get_inputs()] == ["features"]
    assert session.get_inputs()[0].shape[1] == len(FEATURES)
    assert [o.name for o in graph.output] == ["label", "probabilities"]
    assert not any(node.op_type == "ZipMap" for node in graph.node)
    label, probabilities = session.run(None, {"features": to_serving_matrix(test_window.head(7), spec)})
    assert probabilities.dtype == np.float32 and probabilities.shape == (7, len(schema.LABELS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(label, probabilities.argmax(axis=1))
    assert spec_from_onnx(onnx_bytes) == spec


def test_a_missing_category_follows_the_fitted_imputer(
    train: tuple[pd.DataFrame, np.ndarray], test_window: pd.DataFrame
) -> None:
    frame, labels = train
    frame = frame.assign(sex=frame["sex"].mask(np.arange(len(frame)) % 9 == 0))
    window = test_window.assign(sex=test_window["sex"].mask(np.arange(len(test_window)) % 4 == 0))
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="not_recorded")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    pipeline = _fit(
        Pipeline(
            [
                ("pre", ColumnTransformer([("num", SimpleImputer(), NUMERIC), ("cat", categorical, CATEGORICAL)])),
                ("clf", _xgb()),
            ]
        ),
        frame,
        labels,
    )
    spec, onnx_bytes = _export(pipeline)
    sex = spec.columns[spec.index("sex")]

    assert sex.categories == ("F", "M", "U", "not_recorded")
    assert sex.missing_code == 3
    assert parity_report(pipeline, onnx_bytes, window)["passed"] is True


def test_a_missing_category_seen_in_training_gets_the_code_after_the_named_ones(
    train: tuple[pd.DataFrame, np.ndarray], test_window: pd.DataFrame
) -> None:
    frame, labels = train
    frame = frame.assign(sex=frame["sex"].mask(np.arange(len(frame)) % 9 == 0))
    window = test_window.assign(sex=test_window["sex"].mask(np.arange(len(test_window)) % 4 == 0))
    pipeline = _fit(
        Pipeline(
            [
                (
                    "pre",
                    ColumnTransformer(
                        [
                            ("num", SimpleImputer(), NUMERIC),
                            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                        ]
                    ),
                ),
                ("clf", _xgb()),
            ]
        ),
        frame,
        labels,
    )
    spec, onnx_bytes = _export(pipeline)

    assert spec.columns[spec.index("sex")].missing_code == 3
    assert spec.columns[spec.index("age_band")].missing_code == UNKNOWN_CODE
    assert parity_report(pipeline, onnx_bytes, window)["passed"] is True


def test_imbalanced_learn_samplers_are_skipped_and_string_classes_keep_their_order(
    train: tuple[pd.DataFrame, np.ndarray], test_window: pd.DataFrame
) -> None:
    frame, labels = train
    names = np.asarray(schema.LABELS, dtype=object)[labels]
    pipeline = _fit(
        ImbalancedPipeline(
            [
                (
                    "pre",
                    ColumnTransformer(
                        [
                            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
                            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                        ]
                    ),
                ),
                ("undersample", RandomUnderSampler(random_state=0)),
                ("clf", LogisticRegression(max_iter=500)),
            ]
        ),
        frame,
        names,
    )
    spec, onnx_bytes = _export(pipeline)

    assert spec.class_labels == tuple(sorted(schema.LABELS))  # scikit-learn sorts string classes
    assert parity_report(pipeline, onnx_bytes, test_window)["passed"] is True


def test_parity_report_fails_when_the_graph_is_not_the_pipeline(
    train: tuple[pd.DataFrame, np.ndarray], test_window: pd.DataFrame
) -> None:
    frame, labels = train
    pre = ColumnTransformer(
        [("num", SimpleImputer(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)]
    )
    native = _fit(Pipeline([("pre", pre), ("clf", _xgb())]), frame, labels)
    other = _fit(Pipeline([("pre", pre), ("clf", _xgb().set_params(max_depth=1))]), frame, labels[::-1].copy())
    _, other_bytes = _export(other)

    report = parity_report(native, other_bytes, test_window)

    assert report["passed"] is False
    assert report["max_abs_diff"] > 1e-4
    assert report["mismatch_rows"]


def test_serving_matrix_codes_categories_and_keeps_nan_for_missing_numbers() -> None:
    spec = FeatureSpec(
        columns=(
            ColumnSpec("sex", "categorical", ("F", "M", "U")),
            ColumnSpec("region", "categorical", ("north", "south"), missing_code=2),
            ColumnSpec("heart_rate", "numeric"),
        ),
        class_labels=schema.LABELS,
    )
    frame = pd.DataFrame(
        {"heart_rate": [80.0, np.nan, 61.5], "sex": ["M", None, "X"], "region": ["south", np.nan, "mars"], "extra": 1}
    )

    matrix = to_serving_matrix(frame, spec)

    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[:, :2], [[1, 1], [UNKNOWN_CODE, 2], [UNKNOWN_CODE, UNKNOWN_CODE]])
    np.testing.assert_array_equal(matrix[:, 2], np.array([80.0, np.nan, 61.5], dtype=np.float32))
    records = [
        {k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))} for row in frame.to_dict("records")
    ]
    np.testing.assert_array_equal(records_to_serving_matrix(records, spec), matrix)


def test_records_with_a_non_number_name_the_column() -> None:
    spec = FeatureSpec(columns=(ColumnSpec("spo2", "numeric"),), class_labels=schema.LABELS)
    with pytest.raises(ValueError, match="record 1: column 'spo2' is not a number: 'low'"):
        records_to_serving_matrix([{"spo2": 97}, {"spo2": "low"}], spec)


def test_feature_spec_survives_the_manifest_round_trip() -> None:
    spec = FeatureSpec(
        columns=(ColumnSpec("sex", "categorical", ("F", "M"), missing_code=-1), ColumnSpec("spo2", "numeric")),
        class_labels=schema.LABELS,
    )
    schema_dict = spec.to_dict()

    assert schema_dict["columns"][0]["categories"] == [{"code": 0, "value": "F"}, {"code": 1, "value": "M"}]
    assert FeatureSpec.from_dict(schema_dict) == spec


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"sex": ["F"]}), "lacks feature columns \\['spo2'\\]"),
        (pd.DataFrame({"sex": ["F"], "spo2": ["high"]}), "column 'spo2' is not numeric"),
    ],
)
def test_serving_matrix_names_the_bad_column(frame: pd.DataFrame, message: str) -> None:
    spec = FeatureSpec(
        columns=(ColumnSpec("sex", "categorical", ("F",)), ColumnSpec("spo2", "numeric")), class_labels=schema.LABELS
    )
    with pytest.raises((KeyError, ValueError), match=message):
        to_serving_matrix(frame, spec)


def test_unsupported_pipelines_are_refused_with_the_step_named(train: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, labels = train
    ordinal = ColumnTransformer([("num", SimpleImputer(), NUMERIC), ("codes", OrdinalEncoder(), CATEGORICAL)])
    pipeline = _fit(Pipeline([("pre", ordinal), ("clf", _xgb())]), frame, labels)
    with pytest.raises(ExportError, match="categorical block 'codes' must end with a OneHotEncoder"):
        feature_spec_from_pipeline(pipeline, FEATURES, CATEGORICAL, schema.LABELS)

    bare = _fit(Pipeline([("clf", _xgb())]), frame[NUMERIC], labels)
    with pytest.raises(ExportError, match="first step must be a fitted ColumnTransformer"):
        feature_spec_from_pipeline(bare, NUMERIC, [], schema.LABELS)


def test_column_spec_rejects_inconsistent_definitions() -> None:
    with pytest.raises(ValueError, match="'sex': duplicate categories"):
        ColumnSpec("sex", "categorical", ("F", "F"))
    with pytest.raises(ValueError, match="'sex': missing_code 5 out of range"):
        ColumnSpec("sex", "categorical", ("F", "M"), missing_code=5)
    with pytest.raises(ValueError, match="'spo2': a numeric column has no categories"):
        ColumnSpec("spo2", "numeric", ("x",))


def test_isotonic_calibration_is_interpolated_like_scikit_learn_even_with_one_threshold(
    test_window: pd.DataFrame,
) -> None:
    model = synthetic_trained_model("xgb_calibrated", n=1500, seed=2)
    calibrated = model.pipeline.steps[-1][1]
    assert calibrated.method == "isotonic"
    one = calibrated.calibrated_classifiers_[0].calibrators[0]
    one.X_thresholds_, one.y_thresholds_ = one.X_thresholds_[:1], one.y_thresholds_[:1]
    calibrated.calibrated_classifiers_[0].calibrators[0] = pickle.loads(pickle.dumps(one))  # rebuilds f_

    _, onnx_bytes = _export(model.pipeline)
    report = parity_report(model.pipeline, onnx_bytes, test_window)

    assert report["passed"] is True, report


def test_speed_figures_are_reported_for_single_rows_and_batches(test_window: pd.DataFrame) -> None:
    model = synthetic_trained_model("lr", n=800, seed=9)
    spec, onnx_bytes = _export(model.pipeline)
    matrix = to_serving_matrix(test_window, spec)

    figures = onnx_speed(onnx_bytes, matrix, repeats=5, batch_rows=1000)

    assert set(figures) == {"single_row_ms", "single_row_p95_ms", "batch_rows", "batch_seconds", "batch_rows_per_s"}
    assert figures["batch_rows"] == 1000
    assert figures["single_row_p95_ms"] >= figures["single_row_ms"] > 0
    assert tile_rows(matrix, 1000).shape == (1000, matrix.shape[1])
    assert len(tile_rows(test_window, 7)) == 7
    with pytest.raises(ValueError, match="no rows to time"):
        tile_rows(matrix[:0], 10)


def test_serving_speed_compares_onnx_with_the_native_pipeline_on_one_thread(test_window: pd.DataFrame) -> None:
    model = synthetic_trained_model("xgb", n=800, seed=9)
    spec, onnx_bytes = _export(model.pipeline)

    report = serving_speed(model.pipeline, onnx_bytes, test_window, spec, batch_rows=500, repeats=5, rounds=1)

    classifier = model.pipeline.steps[-1][1]
    assert classifier.get_params()["n_jobs"] == 1  # set in place: one core against one core
    assert report["batch_rows"] == 500
    assert report["batch_speedup"] == pytest.approx(report["onnx_batch_rows_per_s"] / report["native_batch_rows_per_s"])
    assert report["single_row_speedup"] == pytest.approx(report["native_single_row_ms"] / report["onnx_single_row_ms"])
    expected = (
        report["batch_speedup"] >= MIN_BATCH_SPEEDUP
        and report["single_row_speedup"] >= MIN_SINGLE_ROW_SPEEDUP
        and report["onnx_single_row_ms"] < MAX_SINGLE_ROW_MS
    )
    assert report["targets_met"] is expected


def test_the_package_names_load_on_first_use_from_their_module() -> None:
    package = importlib.import_module("rare_triage.lib.deployment.onnx_export")
    for name in package.__all__:
        value = getattr(package, name)
        owner = importlib.import_module(f"{package.__name__}.{package._MODULE_OF[name]}")
        assert value is getattr(owner, name), name
    assert sorted(package.__all__) == sorted(package._MODULE_OF)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = package.nothing
    probe = (
        "import sys; from rare_triage.lib.deployment.onnx_export.feature_spec import FeatureSpec; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'xgboost', 'skl2onnx', 'onnxmltools'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"
