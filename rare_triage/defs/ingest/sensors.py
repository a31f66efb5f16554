"""The landing-zone sensor: one daily-ingest run for each day folder integrators drop."""

import dagster as dg

from rare_triage.defs.shared import keys
from rare_triage.defs.shared.ehr_source import EhrSource, LandingZoneEhrSource
from rare_triage.lib.ingest.landing_zone import landing_days


@dg.sensor(
    job_name=keys.DAILY_INGEST_JOB,
    minimum_interval_seconds=300,
    description=(
        "Launches the daily job once for each day folder integrators drop in the landing zone (late folders "
        "included: the run key is the day, so a day is never launched twice). Off by default: the default EHR "
        "source is the synthetic generator, which has no landing zone; set RARE_TRIAGE_EHR_SOURCE=landing, then "
        "switch it on here."
    ),
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, ehr_source: EhrSource) -> dg.SensorResult:
    if not isinstance(ehr_source, LandingZoneEhrSource):
        return dg.SensorResult(skip_reason="EHR source is not the landing zone (RARE_TRIAGE_EHR_SOURCE=landing)")
    valid = set(keys.DAILY_PARTITIONS.get_partition_keys())
    days = [d for d in landing_days(*ehr_source.filesystem()) if d in valid]
    context.log.info("landing zone holds %d day folder(s)", len(days))
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"landing-{d}", partition_key=d) for d in days])
