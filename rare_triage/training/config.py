"""Run configuration of the training assets and checks (defaults from the issue; every threshold is config)."""

import dagster as dg
from pydantic import Field

from rare_triage.lib.training.ablation import FEATURE_SETS
from rare_triage.lib.training.candidates import DEFAULT_CANDIDATES, ModelParams
from rare_triage.lib.training.columns import FEATURE_SET_ALL
from rare_triage.lib.training.train import TrainingConfig

FEATURES_TABLE = "features.encounter_features"
_TRAINING = TrainingConfig()  # the library's defaults, mirrored by TriageModelConfig


class TrainingSetConfig(dg.Config):
    """Explicit windows (all six days) or the last N days relative to the latest partition present."""

    table: str = Field(default=FEATURES_TABLE, description="DuckDB table of the encounter features")
    train_start: str | None = None
    train_end: str | None = None
    validation_start: str | None = None
    validation_end: str | None = None
    test_start: str | None = None
    test_end: str | None = None
    train_days: int = Field(default=0, description="days of training before validation; 0 = every earlier day")
    validation_days: int = Field(default=7, description="days of the validation window (before the test window)")
    test_days: int = Field(default=7, description="days of the test window, ending on the latest partition")

    def explicit_bounds(self) -> dict[str, str | None] | None:
        bounds = {
            "train_start": self.train_start,
            "train_end": self.train_end,
            "validation_start": self.validation_start,
            "validation_end": self.validation_end,
            "test_start": self.test_start,
            "test_end": self.test_end,
        }
        return bounds if any(bounds.values()) else None


class TriageModelConfig(dg.Config):
    """Candidate search, threshold policy and the hyper-parameters of the families."""

    feature_set: str = Field(default=FEATURE_SET_ALL, description=f"one of {list(FEATURE_SETS)}")
    candidates: list[str] = Field(default=list(DEFAULT_CANDIDATES), description="'<model>+<imbalance>[+two_stage]'")
    cv_folds: int = 3
    cv_max_rows: int = Field(default=200_000, description="stratified sample of the training window for the search")
    selection_metric: str = _TRAINING.selection_metric
    selection_tolerance: float = Field(
        default=_TRAINING.selection_tolerance,
        description="candidates within this much of the best selection_metric are equivalent and the simplest "
        "(logistic_regression < random_forest < xgboost, then imbalance strategy) is chosen; 0 = best only",
    )
    target_recall: float = Field(
        default=_TRAINING.target_recall, description="orphan recall the threshold is tuned for (validation)"
    )
    review_recall: float = Field(
        default=_TRAINING.review_recall, description="recall the lower needs-review threshold is tuned for"
    )
    recall_confidence: float = Field(
        default=_TRAINING.recall_confidence,
        description="the threshold reaches target_recall at this one-sided confidence over the validation orphans "
        "(Wilson lower bound; 0.5: the point estimate)",
    )
    max_flag_rate: float = Field(
        default=_TRAINING.max_flag_rate,
        description="flag-rate budget: the orphan threshold never flags more than this share of non-orphan "
        "validation encounters (1.0: none); the recall target gives way and the policy says so",
    )
    calibration: str = Field(default="auto", description="auto | none | sigmoid | isotonic")
    seed: int = 0
    n_jobs: int = 2
    lr_c: float = 1.0
    rf_n_estimators: int = 100
    rf_max_depth: int = 12
    rf_min_samples_leaf: int = 10
    xgb_n_estimators: int = 300
    xgb_max_depth: int = 6
    xgb_learning_rate: float = 0.1
    oversampling_ratio: float = 0.3
    phenotype_unknown_as_absent: bool = True

    def model_params(self) -> ModelParams:
        return ModelParams(
            seed=self.seed,
            n_jobs=self.n_jobs,
            lr_c=self.lr_c,
            rf_n_estimators=self.rf_n_estimators,
            rf_max_depth=self.rf_max_depth,
            rf_min_samples_leaf=self.rf_min_samples_leaf,
            xgb_n_estimators=self.xgb_n_estimators,
            xgb_max_depth=self.xgb_max_depth,
            xgb_learning_rate=self.xgb_learning_rate,
            oversampling_ratio=self.oversampling_ratio,
            phenotype_unknown_as_absent=self.phenotype_unknown_as_absent,
        )

    def training_config(self) -> TrainingConfig:
        return TrainingConfig(
            feature_set=self.feature_set,
            candidates=tuple(self.candidates),
            cv_folds=self.cv_folds,
            cv_max_rows=self.cv_max_rows,
            selection_metric=self.selection_metric,
            selection_tolerance=self.selection_tolerance,
            target_recall=self.target_recall,
            review_recall=self.review_recall,
            max_flag_rate=self.max_flag_rate,
            recall_confidence=self.recall_confidence,
            calibration=self.calibration,
            params=self.model_params(),
        )


class ModelEvaluationConfig(dg.Config):
    min_subgroup_orphans: int = Field(default=20, description="subgroups with fewer orphan cases are not gated")
    behaviour_sample: int = 500
    elderly_age: float = 65.0
    min_chronic_conditions: int = Field(default=2, description="'several chronic conditions': comorbidity_count >=")
    seed: int = 0


class ExternalValidationConfig(dg.Config):
    ablation: bool = Field(default=True, description="refit the chosen candidate on each feature set")
    ablation_feature_sets: list[str] = Field(default=list(FEATURE_SETS))
    ablation_max_rows: int = 200_000
    max_cases: int = Field(default=0, description="score at most this many real cases (0 = all)")


class OrphanRecallGateConfig(dg.Config):
    min_recall: float = 0.90


class OrphanPrAucGateConfig(dg.Config):
    min_prevalence_multiple: float = 5.0


class SubgroupRecallGateConfig(dg.Config):
    min_recall: float = 0.80
    min_orphans: int = 20
    attributes: list[str] = Field(default=["age_band", "sex"])


class ExternalValidationGateConfig(dg.Config):
    min_share: float = 0.85
    max_test_non_orphan_flag_rate: float = 0.05
