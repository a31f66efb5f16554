"""The inputs that weighed most: the model family read from the ONNX graph, occlusion weights against a numpy oracle
of the fixture's logistic regression, and over real HTTP: single predictions of a linear model carry them, batches
and tree ensembles do not."""

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

from serving.contract import Encounter
from serving.decision import DecisionPolicy
from serving.encoding import Encoder
from serving.onnx_graph import model_family, operator_types
from serving.tests.http_server import publish_release, running_server, service_env
from serving.tests.onnx_fixture import linear_softmax_model, tree_ensemble_model, weights
from serving.tests.published import CLASS_LABELS, MAX_FEATURES, build_release, phenotype_encoding
from serving.weighing import InputWeigher

# Small values: the fixture's weights saturate its softmax on raw vitals (a heart rate of 130), leaving no change
# for float32 to show.
ENCOUNTERS: list[dict[str, Any]] = [
    {"sex": "F", "age_years": 3, "fever_score": 1, "hpo_observed": ["HP:0001250", "HP:0001945"]},
    {"sex": "M", "age_years": 1, "region": "Madrid", "prior_visits_365d": 5, "hpo_excluded": ["HP:0002027"]},
    {"age_years": 2, "sex": "U", "pain_score": 2, "comorbidity_count": 1, "symptom_duration_days": 1.5},
    {},
]
ORPHAN = CLASS_LABELS.index("orphan")


def test_the_family_is_read_from_the_graphs_operators() -> None:
    linear, trees = linear_softmax_model(6, 5), tree_ensemble_model(6, 5)

    assert operator_types(linear) == {"IsNaN", "Where", "MatMul", "Add", "Softmax", "ArgMax"}
    assert operator_types(trees) == {"TreeEnsembleClassifier"}
    assert (model_family(linear), model_family(trees), model_family(b"")) == ("linear", "tree_ensemble", "other")
    with pytest.raises(ValueError, match="ONNX protobuf"):
        operator_types(b"\x0a\xff\x01")


def oracle_orphan(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The fixture model's orphan probability in float64: softmax(x W + b), NaN read as 0."""
    flat, bias = weights(matrix.shape[1], len(CLASS_LABELS), seed=0)
    w = np.asarray(flat, dtype=np.float64).reshape(matrix.shape[1], len(CLASS_LABELS))
    scores = np.nan_to_num(matrix.astype(np.float64), nan=0.0) @ w + np.asarray(bias)
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return np.asarray((exp / exp.sum(axis=1, keepdims=True))[:, ORPHAN])


def expected_weights(encoder: Encoder, encounter: dict[str, Any]) -> list[tuple[str, float]]:
    """(input, orphan probability change) of the top 5 inputs, each occluded alone, by the oracle."""
    row = encoder.encode([Encounter(**encounter)]).matrix
    absent = encoder.encode([Encounter()]).matrix[0]
    changes = []
    for j, name in enumerate(encoder.columns):
        if row[0, j] == absent[j] or (np.isnan(row[0, j]) and np.isnan(absent[j])):
            continue
        occluded = row.copy()
        occluded[0, j] = absent[j]
        changes.append((name, float(oracle_orphan(row)[0] - oracle_orphan(occluded)[0])))
    return sorted(changes, key=lambda change: -abs(change[1]))[:5]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(build_release(n_features=MAX_FEATURES).manifest, phenotype_encoding())


def test_occlusion_weights_match_the_oracle_in_one_extra_model_call(encoder: Encoder) -> None:
    session = ort.InferenceSession(linear_softmax_model(MAX_FEATURES, len(CLASS_LABELS)))
    calls: list[int] = []

    def predict(features: npt.NDArray[np.float32]) -> Any:
        calls.append(len(features))
        return session.run(["probabilities"], {"features": features})[0]

    batch = encoder.encode([Encounter(**encounter) for encounter in ENCOUNTERS])
    orphan = np.asarray(predict(batch.matrix))[:, ORPHAN]
    weigher = InputWeigher.build(encoder, DecisionPolicy(tuple(CLASS_LABELS), 0.3, 0.2).orphan_index)

    weighed = weigher.weigh(batch.matrix, orphan, predict)

    for encounter, inputs in zip(ENCOUNTERS, weighed, strict=True):
        got = [(item.input, item.orphan_probability_change) for item in inputs]
        expected = expected_weights(encoder, encounter)
        assert [name for name, _ in got] == [name for name, _ in expected]
        assert np.allclose([c for _, c in got], [c for _, c in expected], atol=1e-5)
    assert weighed[-1] == []  # an empty encounter: every input absent
    by_input = {item.input: item.value for inputs in weighed for item in inputs}
    assert by_input.get("sex") in {"F", "M", "U", None}  # categoricals as their category, not their code
    assert len(calls) == 2  # the scoring call, then all occluded rows of the batch in one call


def test_a_single_prediction_of_a_linear_model_says_what_weighed_most_over_http(
    tmp_path: Path, encoder: Encoder
) -> None:
    bucket, home = tmp_path / "bucket", tmp_path / "home"
    publish_release(bucket, build_release(n_features=MAX_FEATURES))
    with running_server(service_env(home, bucket), tmp_path / "work") as server, server.client() as client:
        singles = [client.post("/v1/predict", json=encounter).json() for encounter in ENCOUNTERS]
        batch = client.post("/v1/predict/batch", json={"encounters": ENCOUNTERS}).json()
        family = client.get("/v1/model").json()["model_family"]

    assert family == "linear"
    for encounter, single in zip(ENCOUNTERS, singles, strict=True):
        got = [(item["input"], item["orphan_probability_change"]) for item in single["weighed_most"]]
        expected = expected_weights(encoder, encounter)
        assert [name for name, _ in got] == [name for name, _ in expected]
        assert np.allclose([c for _, c in got], [c for _, c in expected], atol=1e-5)
    first = {item["input"]: item["value"] for item in singles[0]["weighed_most"]}
    assert first.get("sex", "F") == "F" and first.get("age_years", 3.0) == 3.0
    assert all("weighed_most" not in prediction for prediction in batch["predictions"])


def test_a_tree_ensemble_gets_no_weights(tmp_path: Path) -> None:
    bucket, home = tmp_path / "bucket", tmp_path / "home"
    trees = tree_ensemble_model(MAX_FEATURES, len(CLASS_LABELS))
    publish_release(bucket, build_release(n_features=MAX_FEATURES, onnx_bytes=trees))
    with running_server(service_env(home, bucket), tmp_path / "work") as server, server.client() as client:
        female, male = (client.post("/v1/predict", json={"sex": sex}).json() for sex in ("F", "M"))
        family = client.get("/v1/model").json()["model_family"]

    assert family == "tree_ensemble"
    assert "weighed_most" not in female and "weighed_most" not in male
    assert female["probabilities"] != male["probabilities"]  # the tree's split on sex: the model is the one served
