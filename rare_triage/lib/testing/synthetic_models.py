"""Feature frames and fitted pipelines shaped like the training output, for export tests and the benchmark.

Not a model of patients: just the feature table's shape (schema categoricals and numerics, HPO term
and organ-system flags, missing vitals) with a learnable label, so export and speed can be checked
without running the data pipeline.
"""

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

from rare_triage.lib import schema
from rare_triage.lib.deployment.metric_names import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL
from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.reference.loaders import load_vocabulary
from rare_triage.lib.testing.synthetic_features import synthetic_specificity

ModelKind = Literal["lr", "rf", "xgb", "lr_calibrated", "xgb_calibrated"]
MODEL_KINDS: tuple[ModelKind, ...] = ("lr", "rf", "xgb", "lr_calibrated", "xgb_calibrated")

# Organ-system groups under HP:0000118 (a subset is enough for the frame's shape).
SYSTEMS = (
    ("HP:0000707", "Abnormality of the nervous system"),
    ("HP:0001626", "Abnormality of the cardiovascular system"),
    ("HP:0002086", "Abnormality of the respiratory system"),
    ("HP:0025031", "Abnormality of the digestive system"),
    ("HP:0000119", "Abnormality of the genitourinary system"),
    ("HP:0000818", "Abnormality of the endocrine system"),
    ("HP:0001871", "Abnormality of blood and blood-forming tissues"),
    ("HP:0002715", "Abnormality of the immune system"),
    ("HP:0033127", "Abnormality of the musculoskeletal system"),
    ("HP:0001574", "Abnormality of the integument"),
    ("HP:0000478", "Abnormality of the eye"),
    ("HP:0000598", "Abnormality of the ear"),
    ("HP:0001939", "Abnormality of metabolism/homeostasis"),
    ("HP:0025142", "Constitutional symptom"),
    ("HP:0000152", "Abnormality of head or neck"),
    ("HP:0001507", "Growth abnormality"),
)
CENTRES = tuple(f"C{i:02d}" for i in range(1, 13))
REGIONS = ("north", "south", "east", "west", "centre", "*")


def vocabulary() -> list[dict[str, str]]:
    """The packaged suggested HPO vocabulary as [{hpo_id, label}]."""
    frame = load_vocabulary()
    return [{"hpo_id": h, "label": label} for h, label in zip(frame["hpo_id"], frame["label"], strict=True)]


def feature_columns() -> tuple[list[str], list[str]]:
    """(categorical, numeric) feature columns: schema columns, then HPO term and system flags."""
    flags = [schema.hpo_feature_name(v["hpo_id"]) for v in vocabulary()]
    flags += [schema.system_feature_name(hpo_id) for hpo_id, _ in SYSTEMS]
    return list(schema.FEATURE_CATEGORICAL_COLUMNS), list(schema.FEATURE_NUMERIC_COLUMNS) + flags


def _pick(rng: np.random.Generator, values: tuple[str, ...], n: int) -> np.ndarray:
    return rng.choice(np.array(values, dtype=object), size=n)


def synthetic_frame(n: int, seed: int = 0, unseen_share: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """A feature frame of `n` rows and integer labels (indices into schema.LABELS).

    About 15% of vitals and 2% of phenotype flags are NaN; `unseen_share` of centre_id and region values
    are categories no training frame has, as a new hospital would send.
    """
    rng = np.random.default_rng(seed)
    categorical, numeric = feature_columns()
    columns: dict[str, np.ndarray] = {
        "sex": _pick(rng, schema.SEXES, n),
        "age_band": _pick(rng, schema.AGE_BANDS, n),
        "centre_id": _pick(rng, CENTRES, n),
        "centre_level": _pick(rng, schema.CENTRE_LEVELS, n),
        "region": _pick(rng, REGIONS, n),
        "consultation_type": _pick(rng, schema.CONSULTATION_TYPES, n),
    }
    if unseen_share:
        for column, unseen in (("centre_id", "C99"), ("region", "atlantis")):
            columns[column][rng.random(n) < unseen_share] = unseen
    columns["age_years"] = rng.integers(0, 91, n).astype(float)
    vitals = {
        "temperature_c": (37.0, 0.8),
        "heart_rate": (80.0, 15.0),
        "respiratory_rate": (16.0, 4.0),
        "spo2": (97.0, 2.0),
        "systolic_bp": (125.0, 15.0),
        "diastolic_bp": (80.0, 10.0),
    }
    for column, (mean, sd) in vitals.items():
        values = np.round(rng.normal(mean, sd, n), 1)
        values[rng.random(n) < 0.15] = np.nan
        columns[column] = values
    columns["fever_score"] = np.where(rng.random(n) < 0.3, rng.integers(0, 11, n), np.nan)
    columns["pain_score"] = np.where(rng.random(n) < 0.5, rng.integers(0, 11, n), np.nan)
    columns["symptom_duration_days"] = np.round(rng.lognormal(1.5, 1.0, n), 0)
    columns["comorbidity_count"] = rng.poisson(1.0, n).astype(float)
    columns["prior_visits_365d"] = rng.poisson(2.0, n).astype(float)
    flag_columns = [c for c in numeric if c.startswith(schema.PHENOTYPE_PREFIXES)]
    flags = (rng.random((n, len(flag_columns))) < 0.06).astype(float)
    sys_count = flags[:, [i for i, c in enumerate(flag_columns) if c.startswith(schema.SYSTEM_PREFIX)]].sum(axis=1)
    recorded = np.where(rng.random(flags.shape) < 0.02, np.nan, flags)  # a few terms not recorded
    columns.update(zip(flag_columns, recorded.T, strict=True))
    columns["n_systems_involved"] = sys_count
    columns.update(synthetic_specificity(rng, flags.sum(axis=1) + rng.poisson(1.0, n), 0.2))
    frame = pd.DataFrame(columns)[categorical + numeric]
    scores = np.column_stack(
        [
            1.5 - 0.4 * flags.sum(axis=1) / 3,
            np.full(n, 0.8),
            np.nan_to_num(frame["fever_score"].to_numpy(), nan=0.0) * 0.3 - 1.0,
            frame["comorbidity_count"].to_numpy() * 0.6 - 0.5,
            sys_count * 1.2 - 2.5 + (frame["consultation_type"] == "outpatient_specialist") * 0.8,
        ]
    )
    probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = (probabilities.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return frame, labels


def _classifier(kind: ModelKind, seed: int, params: dict[str, Any] | None = None) -> Any:
    match kind:
        case "lr" | "lr_calibrated":
            base: Any = LogisticRegression(max_iter=300, C=0.5)
        case "rf":
            base = RandomForestClassifier(n_estimators=60, max_depth=10, min_samples_leaf=5, random_state=seed)
        case "xgb" | "xgb_calibrated":
            base = XGBClassifier(n_estimators=80, max_depth=4, learning_rate=0.2, n_jobs=1, random_state=seed)
        case _:
            raise ValueError(f"model kind: {kind!r} is not one of {MODEL_KINDS}")
    base.set_params(**(params or {}))
    if kind.endswith("_calibrated"):
        return CalibratedClassifierCV(base, method="sigmoid" if kind.startswith("lr") else "isotonic", cv=3)
    return base


def make_pipeline(kind: ModelKind, seed: int = 0, classifier_params: dict[str, Any] | None = None) -> Pipeline:
    """An unfitted pipeline shaped like training's candidates (rare_triage.lib.training.candidates).

    One-hot categoricals; numerics passed through with NaN for XGBoost, median-imputed (and scaled for
    LR) otherwise; phenotype flags NaN -> 0.
    """
    categorical, numeric = feature_columns()
    flags = [c for c in numeric if c.startswith(schema.PHENOTYPE_PREFIXES)]
    plain = [c for c in numeric if c not in flags]
    numeric_block: object = SimpleImputer(strategy="median", keep_empty_features=True)
    if kind.startswith("lr"):
        numeric_block = Pipeline([("impute", numeric_block), ("scale", StandardScaler())])
    elif kind.startswith("xgb"):
        numeric_block = "passthrough"
    preprocess = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
            ("numeric", numeric_block, plain),
            ("phenotype", SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True), flags),
        ],
        remainder="drop",
        sparse_threshold=0.0,
    )
    return Pipeline([("preprocess", preprocess), ("classifier", _classifier(kind, seed, classifier_params))])


def synthetic_trained_model(
    kind: ModelKind = "xgb", n: int = 4000, seed: int = 0, classifier_params: dict[str, Any] | None = None
) -> ModelBundle:
    """A `ModelBundle` fitted on a synthetic frame, its test window (with unseen categories) attached."""
    frame, labels = synthetic_frame(n, seed)
    with threadpool_limits(1):  # small fits; BLAS threads only thrash on a busy 2-core machine
        pipeline = make_pipeline(kind, seed, classifier_params).fit(frame, labels)
    categorical, numeric = feature_columns()
    test, _ = synthetic_frame(max(n // 4, 50), seed + 1, unseen_share=0.05)
    return ModelBundle(
        pipeline=pipeline,
        feature_columns=categorical + numeric,
        categorical_columns=categorical,
        categories={c: sorted(frame[c].unique()) for c in categorical},
        numeric_columns=numeric,
        class_labels=list(schema.LABELS),
        thresholds={schema.ORPHAN_LABEL: 0.2},
        needs_review={"rule": "orphan_probability >= threshold or max_probability < 0.5", "min_confidence": 0.5},
        metrics={METRIC_ORPHAN_RECALL: 0.9, METRIC_EXTERNAL_VALIDATION_SHARE: 0.85},
        mlflow_run_id=None,
        mlflow_model_version=None,
        training_partitions=["2025-01-01"],
        data_fingerprint=f"synthetic-{kind}-{n}-{seed}",
        code_revision="unknown",
        hpo_release="2025-01-16",
        vocabulary=vocabulary(),
        systems=[{"hpo_id": h, "label": label} for h, label in SYSTEMS],
        test_features=test,
    )
