"""Jobs, schedule and the landing-zone sensor that move a day from raw extract to features."""

import re

import dagster as dg
import pyarrow.fs as pafs

from rare_triage import constants as c
from rare_triage.ingest.resources import EhrSource, LandingZoneEhrSource

DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")

reference_job = dg.define_asset_job(
    "reference_job",
    selection=dg.AssetSelection.assets(c.HPO_REFERENCE_TABLES),
    description="Derive the HPO / Orphanet reference tables (once per HPO release).",
)

daily_ingest_job = dg.define_asset_job(
    "daily_ingest_job",
    selection=dg.AssetSelection.groups(c.GROUP_INGEST, c.GROUP_GOVERNANCE, c.GROUP_FEATURES),
    partitions_def=c.DAILY_PARTITIONS,
    description="One day: raw extract -> validation, quarantine, anonymization -> encounter features, with checks.",
)

daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    daily_ingest_job,
    hour_of_day=2,
    description="Every night, yesterday's partition. Off by default: switch it on where a daily source exists.",
)


def landing_days(source: LandingZoneEhrSource) -> list[str]:
    """Day folders (YYYY-MM-DD) present in the landing zone, sorted."""
    fs, root = source.filesystem()
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return []
    entries = fs.get_file_info(pafs.FileSelector(root, recursive=False))
    names = (e.base_name for e in entries if e.type == pafs.FileType.Directory)
    return sorted(n for n in names if DAY_FOLDER.match(n))


@dg.sensor(
    job=daily_ingest_job,
    minimum_interval_seconds=300,
    description=(
        "Launches the daily job once for each day folder integrators drop in the landing zone (late folders "
        "included: the run key is the day, so a day is never launched twice)."
    ),
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, ehr_source: EhrSource) -> dg.SensorResult:
    if not isinstance(ehr_source, LandingZoneEhrSource):
        return dg.SensorResult(skip_reason="EHR source is not the landing zone (RARE_TRIAGE_EHR_SOURCE=landing)")
    valid = set(c.DAILY_PARTITIONS.get_partition_keys())
    days = [d for d in landing_days(ehr_source) if d in valid]
    context.log.info("landing zone holds %d day folder(s)", len(days))
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"landing-{d}", partition_key=d) for d in days])
