"""The job that turns the feature partitions into a published, parity-checked ONNX model."""

import dagster as dg

from rare_triage import constants as c

train_and_publish_job = dg.define_asset_job(
    "train_and_publish_job",
    selection=dg.AssetSelection.groups(c.GROUP_TRAINING, c.GROUP_DEPLOYMENT),
    description=(
        "training_set -> candidates, thresholds -> triage_model (MLflow challenger), model_evaluation, "
        "external_validation -> blocking gates -> onnx_model (parity) -> published_model (bucket, env/dev.json)."
    ),
)
