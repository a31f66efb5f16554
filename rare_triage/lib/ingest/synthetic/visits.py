"""Who is seen where on a day: daily volume, patient sampling (repeat visits), centre, consultation type."""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rare_triage.lib.ingest.synthetic.config import CentreSpec, SyntheticConfig
from rare_triage.lib.ingest.synthetic.population import REGION_NAMES, Population
from rare_triage.lib.schema import CENTRE_LEVELS

WEEKDAY_FACTORS = np.array([1.15, 1.05, 1.0, 1.0, 0.95, 1.0, 1.0])  # Monday..Sunday (weekend scaled separately)
# Probability of each centre level for patients without / with an orphan disease (referral to tertiary care).
LEVEL_PROBABILITIES = {False: np.array([0.68, 0.24, 0.08]), True: np.array([0.30, 0.30, 0.40])}
# Consultation type (schema.CONSULTATION_TYPES order) by centre level (schema.CENTRE_LEVELS order).
CONSULTATION_BY_LEVEL = np.array(
    [
        [0.74, 0.04, 0.00, 0.00, 0.22],  # primary
        [0.04, 0.38, 0.33, 0.15, 0.10],  # secondary
        [0.00, 0.27, 0.45, 0.18, 0.10],  # tertiary
    ]
)
HOME_REGION_PREFERENCE = 12.0  # a centre in the patient's region is this much more likely than one elsewhere
PRIOR_VISITS_UNKNOWN_SHARE = 0.08  # the source does not always know the visit count


@dataclass(frozen=True)
class Visits:
    """The day's encounters before any clinical content, one entry per encounter."""

    patient: npt.NDArray[np.int64]
    centre: npt.NDArray[np.int16]  # index into ``centres``
    level: npt.NDArray[np.int8]  # index into CENTRE_LEVELS
    consultation: npt.NDArray[np.int8]  # index into CONSULTATION_TYPES
    prior_visits: npt.NDArray[np.int64]  # -1 where unknown
    centres: tuple[CentreSpec, ...]


def daily_volume(day: dt.date, config: SyntheticConfig, rng: np.random.Generator) -> int:
    """Encounters on ``day``: weekday/weekend pattern, winter peak, Poisson noise."""
    factor = WEEKDAY_FACTORS[day.weekday()] * (config.weekend_factor if day.weekday() >= 5 else 1.0)
    season = 1.0 + config.seasonal_amplitude * np.cos(2.0 * np.pi * (day.timetuple().tm_yday - 15) / 365.25)
    return int(rng.poisson(config.encounters_per_day * factor * season))


def orphan_rate_multiplier(day: dt.date, config: SyntheticConfig) -> float:
    """Product of the ``orphan_multiplier`` of case-mix drifts in force."""
    return float(np.prod([float(s.params.get("orphan_multiplier", 1.0)) for s in config.active_drift(day, "case_mix")]))


def _pick_rows(rng: np.random.Generator, cumulative: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """One column per row of a row-wise cumulative probability matrix."""
    draws = rng.random(cumulative.shape[0]) * cumulative[:, -1]
    return np.minimum((cumulative < draws[:, None]).sum(axis=1), cumulative.shape[1] - 1)


def _centre_table(centres: tuple[CentreSpec, ...]) -> npt.NDArray[np.float64]:
    """Cumulative centre weights per (home region, level), shape (regions, levels, centres)."""
    table = np.zeros((len(REGION_NAMES), len(CENTRE_LEVELS), len(centres)))
    for column, centre in enumerate(centres):
        level = CENTRE_LEVELS.index(centre.level)
        for row, region in enumerate(REGION_NAMES):
            table[row, level, column] = centre.capacity * (HOME_REGION_PREFERENCE if centre.region == region else 1.0)
    return np.cumsum(table, axis=2)


def sample_visits(
    day: dt.date, config: SyntheticConfig, population: Population, count: int, rng: np.random.Generator
) -> Visits:
    """Draw the day's patients (proportional to their visit rate, so frequent visitors repeat) and their care path."""
    rate = population.visit_rate.copy()
    rate[population.birth_day > (day - dt.date(1970, 1, 1)).days] = 0.0  # not born yet on this day
    multiplier = orphan_rate_multiplier(day, config)
    if multiplier != 1.0:
        rate[population.is_orphan] *= multiplier
    if rate.sum() <= 0:
        count = 0  # nobody of this population is born yet on this day
    patient = rng.choice(population.size, size=count, p=rate / max(rate.sum(), 1e-300)).astype(np.int64)
    orphan = population.is_orphan[patient]

    centres = config.centres_on(day)
    table = _centre_table(centres)
    available = table[:, :, -1].sum(axis=0) > 0
    level = np.empty(count, dtype=np.int8)
    for is_orphan, probabilities in LEVEL_PROBABILITIES.items():
        rows = np.flatnonzero(orphan == is_orphan)
        weights = np.where(available, probabilities, 0.0)
        level[rows] = _pick_rows(rng, np.broadcast_to(np.cumsum(weights), (rows.size, weights.size)))
    region = population.region[patient]
    centre = _pick_rows(rng, table[region, level]).astype(np.int16)
    consultation = _pick_rows(rng, np.cumsum(CONSULTATION_BY_LEVEL, axis=1)[level]).astype(np.int8)

    expected_per_year = rate[patient] / rate.sum() * config.encounters_per_day * 365.0
    prior = rng.poisson(expected_per_year).astype(np.int64)
    prior[rng.random(count) < PRIOR_VISITS_UNKNOWN_SHARE] = -1
    return Visits(patient, centre, level, consultation, prior, centres)
