"""The training step: candidate search with cross-validation on the training window, the chosen candidate
refitted on the whole window, calibration and thresholds from the validation window."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from rare_triage.lib.training.augmentation import (
    IncidentalAugmentation,
    check_augmentation,
    incidental_augmentation,
)
from rare_triage.lib.training.calibration import calibrate_pipeline, choose_calibration, compare_calibration
from rare_triage.lib.training.candidates import (
    DEFAULT_CANDIDATES,
    CandidateSpec,
    ModelParams,
    fit_candidate,
    single_threaded_blas,
)
from rare_triage.lib.training.columns import (
    FEATURE_SET_ALL,
    FEATURE_SETS,
    ORPHAN_INDEX,
    FeatureRoles,
    feature_roles,
    feature_set_columns,
    label_codes,
    model_inputs,
)
from rare_triage.lib.training.cross_validation import (
    DEFAULT_SELECTION_METRIC,
    DEFAULT_SELECTION_TOLERANCE,
    CandidateResult,
    check_selection_tolerance,
    choose_candidate,
    cross_validate_candidates,
    stratified_sample,
)
from rare_triage.lib.training.metrics import summary_metrics
from rare_triage.lib.training.robustness import PhenotypeItem, orphan_flags, per_term_flag_rates
from rare_triage.lib.training.targeted import TargetedRound, check_targeted, measured_round, raised_shares
from rare_triage.lib.training.thresholds import (
    DEFAULT_TARGET_RECALL,
    ThresholdPolicy,
    check_max_flag_rate,
    check_recall_confidence,
    tune_threshold_policy,
)
from rare_triage.lib.training.windows import require_all_labels


def _described(default: Any, description: str) -> Any:
    """A dataclass field with a default and the description the run configuration shows."""
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class TrainingConfig:
    """What the search tries and how the threshold is set (the Dagster config is built from these fields)."""

    feature_set: str = _described(FEATURE_SET_ALL, f"one of {list(FEATURE_SETS)}")
    candidates: tuple[str, ...] = _described(DEFAULT_CANDIDATES, "'<model>+<imbalance>[+two_stage]'")
    cv_folds: int = 3  # 0: no search, the single servable candidate is trained directly
    cv_max_rows: int = _described(200_000, "stratified sample of the training window for the search")
    selection_metric: str = DEFAULT_SELECTION_METRIC
    selection_tolerance: float = _described(
        DEFAULT_SELECTION_TOLERANCE,
        "candidates within this much of the best selection_metric are equivalent and the simplest "
        "(logistic_regression < random_forest < xgboost, then imbalance strategy) is chosen; 0 = best only",
    )
    target_recall: float = _described(DEFAULT_TARGET_RECALL, "orphan recall the threshold is tuned for (validation)")
    review_recall: float = _described(0.99, "recall the lower needs-review threshold is tuned for")
    max_flag_rate: float = _described(
        0.04,
        "flag-rate budget: the orphan threshold never flags more than this share of non-orphan "
        "validation encounters (1.0: none); the recall target gives way and the policy says so",
    )
    recall_confidence: float = _described(
        0.9,
        "the threshold reaches target_recall at this one-sided confidence over the validation orphans "
        "(Wilson lower bound; 0.5: the point estimate)",
    )
    calibration: str = _described("auto", "auto | none | sigmoid | isotonic")
    incidental_share: float = _described(
        0.5,
        "share of the non-orphan rows of each fit copied with incidental_terms random vocabulary terms added, so the "
        "model learns that a single extra finding is common in common disease (0: no augmentation; above 1: several "
        "copies per row, up to 4)",
    )
    incidental_terms: int = _described(2, "random vocabulary terms added to each augmented copy")
    incidental_orphan_share: float = _described(
        0.0,
        "the same for the orphan rows (incidental findings do not depend on the diagnosis; copying only the "
        "non-orphans teaches that any extra term, a red flag included, speaks against an orphan disease)",
    )
    targeted_rounds: int = _described(
        3,
        "refits of the chosen candidate that add single-term copies of non-orphan rows for the terms that raise the "
        "validation window's non-orphan flag rate above targeted_goal x its base rate when added alone (0: none; "
        "lib/training/targeted.py)",
    )
    targeted_goal: float = _described(1.6, "ratio to the base flag rate above which a term is targeted")
    targeted_step: float = _described(
        0.012, "share of the non-orphan rows copied with a targeted term, per unit of its ratio above the goal"
    )
    params: ModelParams = field(default_factory=ModelParams)

    def __post_init__(self) -> None:
        if not 0.0 < self.target_recall <= 1.0:
            raise ValueError(f"target_recall: must be in (0, 1], got {self.target_recall}")
        if not self.target_recall <= self.review_recall <= 1.0:
            raise ValueError(f"review_recall: must be in [target_recall, 1], got {self.review_recall}")
        check_recall_confidence(self.recall_confidence)
        check_max_flag_rate(self.max_flag_rate)
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise ValueError(f"cv_folds: must be 0 (no search) or >= 2, got {self.cv_folds}")
        if not self.candidates:
            raise ValueError("candidates: at least one candidate is needed")
        check_selection_tolerance(self.selection_tolerance)
        check_augmentation(self.incidental_share, self.incidental_terms, self.incidental_orphan_share)
        check_targeted(self.targeted_rounds, self.targeted_goal, self.targeted_step)

    def specs(self) -> list[CandidateSpec]:
        return [CandidateSpec.parse(name) for name in self.candidates]


@dataclass(frozen=True)
class TrainingOutcome:
    """The served pipeline and everything that explains it."""

    pipeline: Pipeline
    spec: CandidateSpec
    feature_columns: list[str]
    roles: FeatureRoles
    policy: ThresholdPolicy
    calibration: str
    calibration_report: dict[str, dict[str, float]]
    cv_results: list[CandidateResult]
    cv_rows: int
    selection_reason: str
    validation_metrics: dict[str, float]
    timings: dict[str, float]
    validation_proba: np.ndarray = field(repr=False)
    targeted_rounds: list[TargetedRound] = field(default_factory=list)
    targeted_shares: dict[str, float] = field(default_factory=dict)  # hpo_id -> share of the served fit

    def cv_table(self) -> pd.DataFrame:
        return pd.DataFrame([r.row() for r in self.cv_results])

    def targeted_table(self) -> pd.DataFrame:
        return pd.DataFrame([r.row() for r in self.targeted_rounds])


def train_triage_model(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    config: TrainingConfig,
    log: Callable[[str], None] | None = None,
    vocabulary_items: Callable[[list[str]], Sequence[PhenotypeItem]] | None = None,
) -> TrainingOutcome:
    """Search, refit, calibrate, set thresholds. Raises naming the window when a class is missing.
    `vocabulary_items(columns)` gives the vocabulary terms the incidental augmentation draws from (none: no
    augmentation)."""
    with single_threaded_blas():
        return _train(train, validation, config, log, vocabulary_items)


def _train(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    config: TrainingConfig,
    log: Callable[[str], None] | None,
    vocabulary_items: Callable[[list[str]], Sequence[PhenotypeItem]] | None = None,
) -> TrainingOutcome:
    require_all_labels(train, "train")
    require_all_labels(validation, "validation")
    say = log or (lambda _line: None)
    params = config.params
    columns = feature_set_columns(config.feature_set, list(train.columns))
    roles = feature_roles(columns)
    X, y = model_inputs(train, columns), label_codes(train["label"])
    timings: dict[str, float] = {}
    items = list(vocabulary_items(columns)) if vocabulary_items is not None else []
    augmentation = incidental_augmentation(
        items,
        config.incidental_share,
        config.incidental_terms,
        params.seed,
        config.incidental_orphan_share,
        targeted_later=config.targeted_rounds > 0,
    )

    started = time.perf_counter()
    results, best_spec, reason, cv_rows = _search(config, X, y, roles, say, augmentation=augmentation)
    timings["search_seconds"] = time.perf_counter() - started

    X_val, y_val = model_inputs(validation, columns), label_codes(validation["label"])
    timings["final_fit_seconds"] = timings["calibration_seconds"] = timings["targeted_seconds"] = 0.0
    fit, rounds, shares = _targeted_fits(
        _FitInputs(best_spec, X, y, X_val, y_val, roles, columns, items), config, augmentation, timings, say
    )
    final, method, report, p_val, policy = fit.final, fit.method, fit.report, fit.p_val, fit.policy
    return TrainingOutcome(
        pipeline=final,
        spec=best_spec,
        feature_columns=columns,
        roles=roles,
        policy=policy,
        calibration=method,
        calibration_report=report,
        cv_results=results,
        cv_rows=cv_rows,
        selection_reason=reason,
        validation_metrics=summary_metrics(y_val, p_val, policy),
        timings=timings,
        validation_proba=p_val,
        targeted_rounds=rounds,
        targeted_shares=shares,
    )


@dataclass(frozen=True)
class _FitInputs:
    """What every final fit of the chosen candidate reads."""

    spec: CandidateSpec
    X: pd.DataFrame
    y: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray
    roles: FeatureRoles
    columns: list[str]
    items: list[PhenotypeItem]


def _targeted_fits(
    inputs: _FitInputs,
    config: TrainingConfig,
    augmentation: IncidentalAugmentation | None,
    timings: dict[str, float],
    say: Callable[[str], None],
) -> tuple["_TunedFit", list[TargetedRound], dict[str, float]]:
    """The final fit, then up to `targeted_rounds` refits with targeted copies (lib/training/targeted.py): the last
    fit, the measurement of each fit on the validation window and the targeted shares of the last fit."""
    shares: dict[str, float] = {}
    rounds: list[TargetedRound] = []
    for round_ in range(config.targeted_rounds + 1):
        fit_augmentation = augmentation.with_targeted(shares) if augmentation is not None and shares else augmentation
        fit = _fit_and_tune(inputs, config, fit_augmentation, timings)
        say(f"fitted {inputs.spec.name} on {len(inputs.y)} rows, {len(shares)} targeted term(s)")
        if config.targeted_rounds == 0 or augmentation is None:
            break
        started = time.perf_counter()
        non_orphan = inputs.X_val.loc[inputs.y_val != ORPHAN_INDEX]
        base = orphan_flags(fit.final, non_orphan, inputs.columns, fit.policy)
        per_term = per_term_flag_rates(
            fit.final, non_orphan, fit.policy, feature_columns=inputs.columns, items=inputs.items, base_flags=base
        )
        raised = raised_shares(shares, per_term, config.targeted_goal, config.targeted_step)
        stop = round_ == config.targeted_rounds or raised == shares
        base_rate = float(base.mean()) if len(base) else float("nan")
        rounds.append(measured_round(round_, per_term, base_rate, config.targeted_goal, {} if stop else raised))
        timings["targeted_seconds"] += time.perf_counter() - started
        say(
            f"targeted augmentation, fit {round_}: worst single term on validation {rounds[-1].worst_label} "
            f"{rounds[-1].worst_ratio:.2f}x, {rounds[-1].terms_over_goal} term(s) above {config.targeted_goal:g}x"
        )
        if stop:
            break
        shares = raised
    return fit, rounds, shares


@dataclass(frozen=True)
class _TunedFit:
    final: Any
    method: str
    report: dict[str, dict[str, float]]
    p_val: np.ndarray
    policy: ThresholdPolicy


def _fit_and_tune(
    inputs: _FitInputs,
    config: TrainingConfig,
    augmentation: IncidentalAugmentation | None,
    timings: dict[str, float],
) -> _TunedFit:
    """Fit the candidate on the training rows, calibrate it on validation if that helps, tune the thresholds."""
    started = time.perf_counter()
    spec, X_val, y_val = inputs.spec, inputs.X_val, inputs.y_val
    fitted = fit_candidate(spec, inputs.X, inputs.y, inputs.roles, config.params, augmentation=augmentation)
    timings["final_fit_seconds"] += time.perf_counter() - started
    started = time.perf_counter()
    report = compare_calibration(fitted, X_val, y_val, seed=config.params.seed)
    method = choose_calibration(report, config.calibration)
    final = calibrate_pipeline(fitted, X_val, y_val, method) if method != "none" else fitted
    timings["calibration_seconds"] += time.perf_counter() - started
    p_val = final.predict_proba(X_val)
    policy = tune_threshold_policy(
        y_val,
        p_val,
        target_recall=config.target_recall,
        review_recall=config.review_recall,
        max_flag_rate=config.max_flag_rate,
        recall_confidence=config.recall_confidence,
    )
    return _TunedFit(final, method, report, p_val, policy)


def _search(
    config: TrainingConfig,
    X: pd.DataFrame,
    y: np.ndarray,
    roles: FeatureRoles,
    say: Callable[[str], None],
    *,
    augmentation: IncidentalAugmentation | None = None,
) -> tuple[list[CandidateResult], CandidateSpec, str, int]:
    specs = config.specs()
    if config.cv_folds == 0:
        servable = [s for s in specs if s.servable]
        if len(servable) != 1:
            raise ValueError(f"candidates: cv_folds=0 needs exactly one servable candidate, got {config.candidates}")
        return [], servable[0], f"{servable[0].name}: the only candidate configured (no search)", 0
    rows = stratified_sample(y, config.cv_max_rows, config.params.seed)
    results = cross_validate_candidates(
        specs,
        X.iloc[rows],
        y[rows],
        roles,
        config.params,
        n_splits=config.cv_folds,
        target_recall=config.target_recall,
        log=say,
        augmentation=augmentation,
    )
    best, reason = choose_candidate(
        results, config.selection_metric, config.target_recall, tolerance=config.selection_tolerance
    )
    return results, best.spec, reason, len(rows)


def fitted_categories(pipeline: Any, categorical: Sequence[str]) -> dict[str, list[str]]:
    """Category strings the fitted one-hot encoder knows, per categorical column (missing values left out)."""
    if not categorical:
        return {}
    encoder = pipeline.steps[0][1].named_transformers_["categorical"]
    if isinstance(encoder, Pipeline):  # imputer, then the one-hot encoder
        encoder = encoder.steps[-1][1]
    return {
        column: [str(v) for v in values if isinstance(v, str)]
        for column, values in zip(categorical, encoder.categories_, strict=True)
    }
