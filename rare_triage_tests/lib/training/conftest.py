"""A small synthetic features frame and a model trained on it (few trees: CI has 2 cores)."""

from dataclasses import dataclass

import pandas as pd
import pytest

from rare_triage.lib.testing.synthetic_features import PhenotypeLayout, default_layout, synthesize_features
from rare_triage.lib.training.candidates import ModelParams
from rare_triage.lib.training.train import TrainingConfig, TrainingOutcome, train_triage_model

SMALL_PARAMS = ModelParams(
    n_jobs=1,
    lr_max_iter=300,
    rf_n_estimators=15,
    rf_max_depth=6,
    xgb_n_estimators=25,
    xgb_max_depth=3,
    xgb_learning_rate=0.3,
)


@dataclass(frozen=True)
class Windows:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


@pytest.fixture(scope="session")
def layout() -> PhenotypeLayout:
    return default_layout()


@pytest.fixture(scope="session")
def features(layout: PhenotypeLayout) -> pd.DataFrame:
    """9,000 encounters over 12 days, about 2% orphan."""
    return synthesize_features(9000, start_day="2025-03-01", n_days=12, seed=7, layout=layout)


@pytest.fixture(scope="session")
def windows(features: pd.DataFrame) -> Windows:
    """Days 1-8 train, 9-10 validation, 11-12 test."""
    day = features["partition_day"]
    return Windows(
        train=features[day <= "2025-03-08"].reset_index(drop=True),
        validation=features[(day >= "2025-03-09") & (day <= "2025-03-10")].reset_index(drop=True),
        test=features[day >= "2025-03-11"].reset_index(drop=True),
    )


@pytest.fixture(scope="session")
def trained(windows: Windows) -> TrainingOutcome:
    """The whole training step with two candidates and 2-fold CV."""
    config = TrainingConfig(
        candidates=("logistic_regression+class_weight", "xgboost+class_weight"),
        cv_folds=2,
        cv_max_rows=4000,
        params=SMALL_PARAMS,
    )
    return train_triage_model(windows.train, windows.validation, config)
