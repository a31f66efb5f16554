"""EHR sources behind one resource interface: the synthetic generator (default) or the integrators' landing zone."""

import datetime as dt
import logging
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow.fs as pafs
from pydantic import Field

from rare_triage.defs.shared.s3 import S3Connection
from rare_triage.lib.ingest.landing_zone import LandingDay, read_landing_day_with_rejects
from rare_triage.lib.ingest.synthetic import DriftScenario, SyntheticConfig, generate_extract
from rare_triage.lib.lake_fs import resolve_filesystem
from rare_triage.lib.reference.ontology import ReferenceTables

logger = logging.getLogger(__name__)


class EhrSource(dg.ConfigurableResource):
    """Reads one day of raw EHR extract as the RAW_* tables of `rare_triage.lib.schema`."""

    def read_day(self, day: dt.date, reference: ReferenceTables) -> dict[str, pd.DataFrame]:
        """The raw tables of `day`."""
        raise NotImplementedError

    def read_day_with_rejects(self, day: dt.date, reference: ReferenceTables) -> LandingDay:
        """The raw tables of `day` and the source rows left out of them (none unless the source parses files)."""
        return LandingDay(self.read_day(day, reference))

    @property
    def source_name(self) -> str:
        """Short name recorded in asset metadata."""
        raise NotImplementedError


class DriftScenarioConfig(dg.Config):
    """A drift switched on from `start` (YYYY-MM-DD): thermometer_offset, case_mix or new_centre."""

    kind: str
    start: str
    params: dict[str, Any] = Field(default_factory=dict)


class SyntheticEhrSource(EhrSource):
    """Synthetic extracts grounded in HPO's Orphanet annotations and Orphanet prevalence; deterministic per day."""

    seed: int = 20250101
    encounters_per_day: int = 2000
    population_size: int = 200_000
    error_rate: float = 0.002
    drift_scenarios: list[DriftScenarioConfig] = Field(default_factory=list)

    @property
    def source_name(self) -> str:
        return "synthetic"

    def synthetic_config(self) -> SyntheticConfig:
        scenarios = tuple(
            DriftScenario(kind=s.kind, start=dt.date.fromisoformat(s.start), params=dict(s.params))
            for s in self.drift_scenarios
        )
        return SyntheticConfig(
            seed=self.seed,
            encounters_per_day=self.encounters_per_day,
            population_size=self.population_size,
            error_rate=self.error_rate,
            drift=scenarios,
        )

    def read_day(self, day: dt.date, reference: ReferenceTables) -> dict[str, pd.DataFrame]:
        return generate_extract(day, self.synthetic_config(), reference)


class LandingZoneEhrSource(EhrSource, S3Connection):
    """Extracts dropped by integrators: `<root_uri>/<YYYY-MM-DD>/` with CSV, Parquet or FHIR R4 Bundles."""

    root_uri: str

    @property
    def source_name(self) -> str:
        return "landing_zone"

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """The landing zone's filesystem and its root path inside it."""
        return resolve_filesystem(self.root_uri, self.s3_options())

    def read_day(self, day: dt.date, reference: ReferenceTables) -> dict[str, pd.DataFrame]:
        return self.read_day_with_rejects(day, reference).tables

    def read_day_with_rejects(self, day: dt.date, reference: ReferenceTables) -> LandingDay:
        fs, root = self.filesystem()
        landing = read_landing_day_with_rejects(root, day, filesystem=fs)
        rejected = {table: n for table, n in landing.reject_counts().items() if n}
        if rejected:  # counts only: a reject carries file, line, column and rule, never row content
            logger.warning("landing zone %s: rejected rows per table %s (quarantined by governance)", day, rejected)
        return landing
