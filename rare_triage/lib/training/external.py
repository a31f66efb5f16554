"""External validation on real published rare-disease cases (phenopacket-store): the same feature SQL as the
encounters (HPO roll-up to the vocabulary and organ systems), everything else missing, and the share the
model flags as orphan-compatible, overall and per cohort."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.features.build import build_encounter_features, encode_phenotype_cases
from rare_triage.lib.reference.loaders import icd10_acuity
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.training.columns import ORPHAN_INDEX, model_inputs, vocabulary_columns
from rare_triage.lib.training.thresholds import ThresholdPolicy, flag_orphan, in_review_band

CASE_COLUMNS = ("id", "cohort", "sex", "age_years", "observed", "excluded")


def external_features(cases: pd.DataFrame, reference: ReferenceTables) -> pd.DataFrame:
    """Feature rows of published cases (columns of the features table plus `cohort`), in case order."""
    missing = [c for c in CASE_COLUMNS if c not in cases.columns]
    if missing:
        raise ValueError(f"cases: missing column(s) {missing}")
    renamed = cases.rename(columns={"id": "case_id"})
    anon = encode_phenotype_cases(renamed[["case_id", "sex", "age_years", "observed", "excluded"]])
    features = build_encounter_features(anon, icd10_acuity=icd10_acuity(), **reference.feature_encoding())
    features["cohort"] = renamed["cohort"].astype(str).to_numpy()
    return features


@dataclass(frozen=True)
class ExternalValidation:
    """Share of real cases flagged orphan-compatible at the model's threshold, next to the non-orphan test flag
    rate (a high share bought by flagging everyone is not a success), and the feature-set ablation."""

    n_cases: int
    share_flagged: float
    share_flagged_or_review: float
    share_without_vocabulary_term: float
    share_flagged_without_vocabulary_term: float
    mean_orphan_probability: float
    test_non_orphan_flag_rate: float
    per_cohort: pd.DataFrame = field(repr=False)
    ablation: pd.DataFrame = field(repr=False)
    operating_points: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    mlflow_run_id: str | None = None
    mlflow_model_version: str | None = None

    def metrics(self) -> dict[str, float]:
        return {
            "external_n_cases": float(self.n_cases),
            "external_validation_share": self.share_flagged,
            "external_share_flagged_or_review": self.share_flagged_or_review,
            "external_share_without_vocabulary_term": self.share_without_vocabulary_term,
            "external_share_flagged_without_vocabulary_term": self.share_flagged_without_vocabulary_term,
            "external_mean_orphan_probability": self.mean_orphan_probability,
            "test_non_orphan_flag_rate": self.test_non_orphan_flag_rate,
        }


def external_report(
    features: pd.DataFrame, proba: np.ndarray, policy: ThresholdPolicy
) -> tuple[dict[str, float], pd.DataFrame]:
    """Overall shares and the per-cohort table (cohort, n, share_flagged, share_flagged_or_review)."""
    if len(features) == 0:
        raise ValueError("external validation: no case to score")
    flagged = flag_orphan(proba, policy)
    review = in_review_band(proba, policy)
    vocab = vocabulary_columns(list(features.columns))
    no_term = (features[vocab].fillna(0.0).to_numpy() != 1.0).all(axis=1) if vocab else np.ones(len(features), bool)
    overall = {
        "n_cases": float(len(features)),
        "share_flagged": float(flagged.mean()),
        "share_flagged_or_review": float((flagged | review).mean()),
        "share_without_vocabulary_term": float(no_term.mean()),
        "share_flagged_without_vocabulary_term": float(flagged[no_term].mean()) if no_term.any() else float("nan"),
        "mean_orphan_probability": float(proba[:, ORPHAN_INDEX].mean()),
    }
    table = pd.DataFrame({"cohort": features["cohort"].to_numpy(), "flagged": flagged, "review": flagged | review})
    per_cohort = (
        table.groupby("cohort", sort=True)
        .agg(n=("flagged", "size"), share_flagged=("flagged", "mean"), share_flagged_or_review=("review", "mean"))
        .reset_index()
        .sort_values(["share_flagged", "cohort"], ignore_index=True)
    )
    return overall, per_cohort


def share_flagged(pipeline: Any, features: pd.DataFrame, columns: list[str], policy: ThresholdPolicy) -> float:
    """Share of rows flagged orphan by a pipeline at a policy."""
    return float(flag_orphan(pipeline.predict_proba(features[columns]), policy).mean())


OPERATING_POINT_COLUMNS = (
    "target_non_orphan_flag_rate",
    "threshold",
    "validation_orphan_recall",
    "test_orphan_recall",
    "test_non_orphan_flag_rate",
    "external_share_flagged",
)


def operating_points(
    pipeline: Any,
    columns: list[str],
    *,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    external: pd.DataFrame,
    flag_rates: tuple[float, ...] = (0.05, 0.02),
) -> pd.DataFrame:
    """What the model would do at thresholds set on validation for fixed non-orphan flag rates (the issue's
    "share of real cases flagged at a 5% / 2% non-orphan flag rate"), judged on test and on the real cases."""
    scores = {
        name: np.asarray(pipeline.predict_proba(model_inputs(frame, columns)))[:, ORPHAN_INDEX]
        for name, frame in (("validation", validation), ("test", test), ("external", external))
    }
    is_orphan = {
        name: (frame["label"] == schema.ORPHAN_LABEL).to_numpy()
        for name, frame in (("validation", validation), ("test", test))
    }
    rows = []
    for rate in flag_rates:
        threshold = float(np.quantile(scores["validation"][~is_orphan["validation"]], 1.0 - rate))
        rows.append(
            {
                "target_non_orphan_flag_rate": rate,
                "threshold": threshold,
                "validation_orphan_recall": float((scores["validation"][is_orphan["validation"]] > threshold).mean()),
                "test_orphan_recall": float((scores["test"][is_orphan["test"]] > threshold).mean()),
                "test_non_orphan_flag_rate": float((scores["test"][~is_orphan["test"]] > threshold).mean()),
                "external_share_flagged": float((scores["external"] > threshold).mean()),
            }
        )
    return pd.DataFrame(rows, columns=list(OPERATING_POINT_COLUMNS))
