"""reference_profile: what monitoring compares served requests with, published beside the version it describes."""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from rare_triage.defs.shared import keys as c
from rare_triage.lib import schema
from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.monitoring.profile import build_reference_profile
from rare_triage.lib.training.columns import model_inputs
from rare_triage.lib.training.thresholds import ThresholdPolicy, flag_orphan, in_review_band
from rare_triage.lib.training.windows import TrainingSet

GENERALISED = "*"  # the value k-anonymity writes where it suppressed a quasi-identifier


class ReferenceProfileConfig(dg.Config):
    max_rows: int = Field(default=200_000, description="training rows profiled at most (a seeded sample beyond)")
    bins: int = Field(default=10, description="quantile bins of a continuous feature")
    sample_size: int = Field(default=5000, description="reference values kept per feature for the KS test")
    seed: int = 0


def comparable_rows(rows: pd.DataFrame, categorical_columns: list[str]) -> pd.DataFrame:
    """Rows without a value k-anonymity generalised: a client sends exact values, never `*`, so rows the anonymizer
    coarsened (small centres, extreme ages) would show as drift that is only the anonymizer's doing."""
    generalised = np.zeros(len(rows), dtype=bool)
    for column in categorical_columns:
        generalised |= (rows[column].astype("string") == GENERALISED).fillna(False).to_numpy(dtype=bool)
    return rows.loc[~generalised]


@dg.asset(
    key=c.REFERENCE_PROFILE,
    group_name=c.GROUP_DEPLOYMENT,
    ins={"training_set": dg.AssetIn(key=c.TRAINING_SET), "triage_model": dg.AssetIn(key=c.TRIAGE_MODEL)},
    kinds={"python", "scipy"},
    description="The distribution of every model input and of the model's predictions on its training and "
    "validation rows (quantile bins, category shares, missing rates, a seeded sample per feature, class shares, "
    "flag and review rates): published with the version, so `drift_report` never needs the training data. Rows "
    "that k-anonymity generalised are left out (served requests carry exact values).",
)
def reference_profile(
    context: dg.AssetExecutionContext,
    config: ReferenceProfileConfig,
    training_set: TrainingSet,
    triage_model: ModelBundle,
) -> dg.Output[dict[str, Any]]:
    rows = pd.concat([training_set.train, training_set.validation], ignore_index=True)
    total = len(rows)
    # values only the generalised rows hold (a small centre) were still seen in training, and the model's own
    # categories are known to it: only a value outside both is "unseen"
    known = {
        column: sorted(
            (set(rows[column].dropna().astype(str)) | set(triage_model.categories.get(column, []))) - {GENERALISED}
        )
        for column in triage_model.categorical_columns
    }
    rows = comparable_rows(rows, triage_model.categorical_columns)
    generalised = total - len(rows)
    if len(rows) > config.max_rows:
        rows = rows.sample(n=config.max_rows, random_state=config.seed)
    if rows.empty:
        raise dg.Failure(description="reference_profile: no training row without a generalised value")
    proba = np.asarray(triage_model.pipeline.predict_proba(model_inputs(rows, triage_model.feature_columns)))
    policy = ThresholdPolicy.from_bundle(triage_model.thresholds, triage_model.needs_review)
    profile = build_reference_profile(
        rows,
        numeric_columns=triage_model.numeric_columns,
        categorical_columns=triage_model.categorical_columns,
        probabilities=proba,
        class_labels=triage_model.class_labels,
        orphan_flag=flag_orphan(proba, policy),
        needs_review=in_review_band(proba, policy),
        model_version=str(triage_model.mlflow_model_version),
        bins=config.bins,
        sample_size=config.sample_size,
        seed=config.seed,
        known_categories=known,
    )
    document = profile.to_dict()
    context.log.info("reference profile of %d of %d training rows", len(rows), total)
    return dg.Output(
        document,
        metadata={
            "rows_profiled": len(rows),
            "training_rows": total,
            "generalised_rows_left_out": generalised,
            "features": len(triage_model.feature_columns),
            "json_bytes": len(profile.to_json_bytes()),
            "mlflow_model_version": str(triage_model.mlflow_model_version),
            "label_shares": dg.MetadataValue.json(
                {k: round(float(v), 4) for k, v in rows[schema.LABEL_COLUMN].value_counts(normalize=True).items()}
                if schema.LABEL_COLUMN in rows
                else {}
            ),
        },
    )
