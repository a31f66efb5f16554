"""Synthetic EHR source: deterministic daily extracts of a persistent synthetic population.

Public entry point: ``generate_extract(day, config, ref)``.
"""

from rare_triage.lib.ingest.synthetic.config import (
    DEFAULT_CENTRES,
    DRIFT_KINDS,
    CentreSpec,
    DriftScenario,
    SyntheticConfig,
)
from rare_triage.lib.ingest.synthetic.generator import generate_extract, population_for

__all__ = [
    "DEFAULT_CENTRES",
    "DRIFT_KINDS",
    "CentreSpec",
    "DriftScenario",
    "SyntheticConfig",
    "generate_extract",
    "population_for",
]
