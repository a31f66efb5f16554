"""The rare-triage code location: assembles assets, checks, jobs, sensors and resources; nothing else."""

import dagster as dg

from rare_triage.deployment import DEPLOYMENT_ASSETS, DEPLOYMENT_CHECKS, DEPLOYMENT_JOBS
from rare_triage.features.assets import encounter_features
from rare_triage.governance.assets import anonymized_and_quarantined
from rare_triage.ingest.assets import raw_ehr_extract
from rare_triage.ingest.jobs import daily_ingest_job, daily_ingest_schedule, landing_zone_sensor, reference_job
from rare_triage.reference.assets import hpo_reference_tables
from rare_triage.resources import build_resources
from rare_triage.training import TRAINING_ASSETS, TRAINING_CHECKS, TRAINING_JOBS
from rare_triage.training_jobs import train_and_publish_job


def build_definitions() -> dg.Definitions:
    """Every definition, with resources chosen from the environment at load time."""
    return dg.Definitions(
        assets=[
            hpo_reference_tables,
            raw_ehr_extract,
            anonymized_and_quarantined,
            encounter_features,
            *TRAINING_ASSETS,
            *DEPLOYMENT_ASSETS,
        ],
        asset_checks=[*TRAINING_CHECKS, *DEPLOYMENT_CHECKS],
        jobs=[reference_job, daily_ingest_job, *TRAINING_JOBS, train_and_publish_job, *DEPLOYMENT_JOBS],
        schedules=[daily_ingest_schedule],
        sensors=[landing_zone_sensor],
        resources=build_resources(),
    )


defs = dg.definitions(build_definitions)
