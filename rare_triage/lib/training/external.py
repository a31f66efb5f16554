"""External validation on real published rare-disease cases (phenopacket-store): the same feature SQL as the
encounters (HPO roll-up to the vocabulary and organ systems), everything else missing, and the share the
model flags as orphan-compatible, overall, per cohort and by the extent of the phenotype.

Like with like: a case report holds its phenotype, age and sex only, so every other input (vitals, scores,
duration, visit history, comorbidity count, centre, consultation) is missing for a case, never a value such as
"no comorbidity". The share of real cases flagged is compared with the flag rate of synthetic non-orphans encoded
exactly as the cases are (`phenotype_only`), at thresholds set for 5% and 2% of those non-orphans.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.features.build import build_encounter_features, encode_phenotype_cases
from rare_triage.lib.features.case_encoding import phenotype_only
from rare_triage.lib.reference.loaders import icd10_acuity
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.training.columns import ORPHAN_INDEX, model_inputs, vocabulary_columns
from rare_triage.lib.training.thresholds import ThresholdPolicy, flag_orphan, in_review_band

CASE_COLUMNS = ("id", "cohort", "sex", "age_years", "observed", "excluded")
ENCODING_ALL_FEATURES = "all_features"
ENCODING_PHENOTYPE_ONLY = "phenotype_only"


def external_features(cases: pd.DataFrame, reference: ReferenceTables) -> pd.DataFrame:
    """Feature rows of published cases (columns of the features table plus `cohort`), in case order; what a case
    does not hold is missing (`phenotype_only`): the feature SQL's comorbidity count of 0 (no problem-list row)
    would tell the model "no chronic condition", which a case report never says."""
    missing = [c for c in CASE_COLUMNS if c not in cases.columns]
    if missing:
        raise ValueError(f"cases: missing column(s) {missing}")
    renamed = cases.rename(columns={"id": "case_id"})
    anon = encode_phenotype_cases(renamed[["case_id", "sex", "age_years", "observed", "excluded"]])
    features = phenotype_only(
        build_encounter_features(anon, icd10_acuity=icd10_acuity(), **reference.feature_encoding())
    )
    features["cohort"] = renamed["cohort"].astype(str).to_numpy()
    return features


@dataclass(frozen=True)
class ExternalValidation:
    """Share of real cases flagged orphan-compatible at the model's threshold, next to the non-orphan test flag
    rate with all features and encoded as the cases are (a high share bought by flagging everyone is not a
    success); the operating points of both encodings, the shares by extent of the phenotype, the ablation."""

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
    phenotype_only_non_orphan_flag_rate: float = float("nan")
    phenotype_only_flag_rate_by_label: dict[str, float] = field(default_factory=dict)
    by_extent: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def metrics(self) -> dict[str, float]:
        by_label = {
            f"phenotype_only_flag_rate_{label}": rate for label, rate in self.phenotype_only_flag_rate_by_label.items()
        }
        return {
            "external_n_cases": float(self.n_cases),
            "external_validation_share": self.share_flagged,
            "external_share_flagged_or_review": self.share_flagged_or_review,
            "external_share_without_vocabulary_term": self.share_without_vocabulary_term,
            "external_share_flagged_without_vocabulary_term": self.share_flagged_without_vocabulary_term,
            "external_mean_orphan_probability": self.mean_orphan_probability,
            "test_non_orphan_flag_rate": self.test_non_orphan_flag_rate,
            "test_non_orphan_flag_rate_phenotype_only": self.phenotype_only_non_orphan_flag_rate,
            **by_label,
        }

    def operating_point(self, encoding: str, flag_rate: float) -> dict[str, Any] | None:
        """The operating point of `encoding` set for `flag_rate` of the non-orphans, or None when not computed."""
        points = self.operating_points
        if points.empty or "encoding" not in points.columns:
            return None
        match = points.loc[
            (points["encoding"] == encoding) & np.isclose(points["target_non_orphan_flag_rate"], flag_rate)
        ]
        return None if match.empty else dict(match.iloc[0])


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


def non_orphan_flag_rates(
    pipeline: Any, columns: list[str], test: pd.DataFrame, policy: ThresholdPolicy
) -> tuple[float, dict[str, float]]:
    """Flag rate of the test window's non-orphans encoded as the published cases are, overall and by label."""
    non_orphan = test.loc[test[schema.LABEL_COLUMN] != schema.ORPHAN_LABEL]
    if len(non_orphan) == 0:
        return float("nan"), {}
    flagged = flag_orphan(np.asarray(pipeline.predict_proba(model_inputs(phenotype_only(non_orphan), columns))), policy)
    labels = non_orphan[schema.LABEL_COLUMN].astype(str).to_numpy()
    by_label = {label: float(flagged[labels == label].mean()) for label in schema.LABELS if (labels == label).any()}
    return float(flagged.mean()), by_label


OPERATING_POINT_COLUMNS = (
    "encoding",
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
    """What the model would do at thresholds set on validation for fixed non-orphan flag rates, judged on test and
    on the real cases, for each encoding of the synthetic rows: with all their features (`all_features`), and as the
    real cases are encoded (`phenotype_only`: the like-with-like comparison)."""
    external_scores = np.asarray(pipeline.predict_proba(model_inputs(external, columns)))[:, ORPHAN_INDEX]
    rows = []
    for encoding, encode in ((ENCODING_ALL_FEATURES, lambda f: f), (ENCODING_PHENOTYPE_ONLY, phenotype_only)):
        scores, is_orphan = {}, {}
        for name, frame in (("validation", validation), ("test", test)):
            scores[name] = np.asarray(pipeline.predict_proba(model_inputs(encode(frame), columns)))[:, ORPHAN_INDEX]
            is_orphan[name] = (frame[schema.LABEL_COLUMN] == schema.ORPHAN_LABEL).to_numpy()
        for rate in flag_rates:
            threshold = float(np.quantile(scores["validation"][~is_orphan["validation"]], 1.0 - rate))
            rows.append(
                {
                    "encoding": encoding,
                    "target_non_orphan_flag_rate": rate,
                    "threshold": threshold,
                    "validation_orphan_recall": float(
                        (scores["validation"][is_orphan["validation"]] > threshold).mean()
                    ),
                    "test_orphan_recall": float((scores["test"][is_orphan["test"]] > threshold).mean()),
                    "test_non_orphan_flag_rate": float((scores["test"][~is_orphan["test"]] > threshold).mean()),
                    "external_share_flagged": float((external_scores > threshold).mean()),
                }
            )
    return pd.DataFrame(rows, columns=list(OPERATING_POINT_COLUMNS))


# Bins of the extent of a case's phenotype: organ systems involved, and observed (present) terms.
EXTENT_BINS = {
    "n_systems_involved": ((0, 0), (1, 1), (2, 2), (3, 3), (4, 5), (6, None)),
    "n_present_terms": ((1, 1), (2, 2), (3, 4), (5, 9), (10, 19), (20, None)),
}


def _bin_label(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else (str(low) if low == high else f"{low}-{high}")


def shares_by_extent(
    pipeline: Any, columns: list[str], external: pd.DataFrame, policy: ThresholdPolicy, points: pd.DataFrame
) -> pd.DataFrame:
    """Share of real cases flagged by number of organ systems and by number of observed terms: at the model's
    threshold (`share_flagged`) and at each phenotype-only operating point (`share_flagged_at_<rate>`)."""
    scores = np.asarray(pipeline.predict_proba(model_inputs(external, columns)))[:, ORPHAN_INDEX]
    flags = {"share_flagged": scores >= policy.orphan_threshold}
    like = points.loc[points["encoding"] == ENCODING_PHENOTYPE_ONLY] if "encoding" in points.columns else points[:0]
    for rate, threshold in like[["target_non_orphan_flag_rate", "threshold"]].itertuples(index=False):
        flags[f"share_flagged_at_{rate:g}"] = scores > threshold
    rows = []
    for column, bins in EXTENT_BINS.items():
        values = pd.to_numeric(external[column], errors="coerce").fillna(0.0).to_numpy()
        for low, high in bins:
            inside = (values >= low) & (values <= (np.inf if high is None else high))
            if not inside.any():
                continue
            row: dict[str, Any] = {"extent": column, "bin": _bin_label(low, high), "n": int(inside.sum())}
            row.update({name: float(flagged[inside].mean()) for name, flagged in flags.items()})
            rows.append(row)
    return pd.DataFrame(rows)
