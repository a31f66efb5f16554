"""What each encounter is about: orphan disease, a common condition by acuity, a check-up; and the problem list.

Common conditions, their seasonality, age ranges and sex shares come from suggested_common_conditions.csv;
chronic comorbidities (with age-rising prevalence, so multimorbidity rises with age) from
chronic_comorbidities.csv.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rare_triage.lib.ingest.synthetic.catalog import Catalog
from rare_triage.lib.ingest.synthetic.config import SyntheticConfig
from rare_triage.lib.ingest.synthetic.hashing import hash_uniform
from rare_triage.lib.reference.loaders import ACUITIES, COMORBIDITY_PREVALENCE_AGES

CATEGORIES = ("none", "mild", "acute", "chronic", "orphan")
NONE, MILD, ACUTE, CHRONIC, ORPHAN = range(5)
# Category of a non-orphan encounter by consultation type (CONSULTATION_TYPES order): none, mild, acute, chronic.
CATEGORY_BY_CONSULTATION = np.array(
    [
        [0.22, 0.30, 0.23, 0.25],  # primary_care
        [0.04, 0.16, 0.65, 0.15],  # emergency
        [0.15, 0.10, 0.10, 0.65],  # outpatient_specialist
        [0.02, 0.03, 0.60, 0.35],  # inpatient
        [0.15, 0.35, 0.15, 0.35],  # telehealth
    ]
)
ACUTE_SEASON_AMPLITUDE = 0.3  # acute share peaks in winter
ACTIVE_CHRONIC_BOOST = 6.0  # a chronic visit is mostly about a condition on the patient's problem list
ORPHAN_INTERCURRENT_SHARE = 0.15  # orphan patients also catch colds
COMORBIDITY_RECORDED = np.array([0.92, 0.85, 0.95, 0.97, 0.75])  # by consultation type: problem-list completeness
SALT_COMORBIDITY = 100  # + comorbidity index


@dataclass(frozen=True)
class Clinical:
    """Per-encounter clinical content."""

    category: npt.NDArray[np.int8]  # index into CATEGORIES
    condition: npt.NDArray[np.int16]  # row of the conditions table, -1 for none/orphan without intercurrent
    comorbidity_active: npt.NDArray[np.bool_]  # (encounters, comorbidities)
    comorbidity_recorded: npt.NDArray[np.bool_]  # (encounters, comorbidities)


def comorbidity_activity(
    seed: int,
    patient: npt.NDArray[np.int64],
    age: npt.NDArray[np.float64],
    sex: npt.NDArray[np.int8],
    catalog: Catalog,
) -> npt.NDArray[np.bool_]:
    """Active chronic conditions: a fixed per-patient draw under an age-rising prevalence (so they accumulate),
    inside the condition's age window (global developmental delay before school age, failure to thrive in infancy)."""
    knots = np.asarray(COMORBIDITY_PREVALENCE_AGES)
    # linear interpolation between the age knots, held flat outside: the knot pair and weight of each encounter
    clipped = np.clip(age, knots[0], knots[-1])
    upper = np.clip(np.searchsorted(knots, clipped, side="right"), 1, knots.size - 1)
    lower = upper - 1
    weight = (clipped - knots[lower]) / (knots[upper] - knots[lower])
    # one row per condition while filling (contiguous writes), returned as (encounters, conditions)
    active = np.zeros((len(catalog.comorbidity_icd10), patient.size), dtype=np.bool_)
    for column, prevalence in enumerate(catalog.comorbidity_prevalence):
        share_female = catalog.comorbidity_share_female[column]
        sex_factor = np.array([share_female / 0.5, (1.0 - share_female) / 0.5, 1.0])[sex]
        low, high = catalog.comorbidity_age[column]
        at_age = prevalence[lower] + (prevalence[upper] - prevalence[lower]) * weight
        threshold = at_age * sex_factor * ((age >= low) & (age <= high))
        rows = np.flatnonzero(threshold > 0)  # a pure per-patient hash: drawing it only where it can matter is exact
        active[column, rows] = hash_uniform(seed, patient[rows], SALT_COMORBIDITY + column) < threshold[rows]
    return np.ascontiguousarray(active.T)


def _season(
    day: dt.date, peak_month: npt.NDArray[np.float64], amplitude: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    month = 1.0 + (day.timetuple().tm_yday - 1) / 365.25 * 12.0
    return 1.0 + amplitude * np.cos(2.0 * np.pi * (month - peak_month) / 12.0)


def _condition_weights(
    day: dt.date,
    age: npt.NDArray[np.float64],
    sex: npt.NDArray[np.int8],
    active: npt.NDArray[np.bool_],
    catalog: Catalog,
) -> npt.NDArray[np.float32]:
    """Unnormalised weight of each condition for each encounter (age range, sex share, season, problem list)."""
    table = catalog.condition_table
    base = table["weight_within_acuity"].to_numpy() * _season(
        day, table["peak_month"].to_numpy(), table["season_amplitude"].fillna(0.0).to_numpy()
    )
    share_female = table["share_female"].to_numpy()
    weights = np.empty((age.size, len(table)), dtype=np.float32)
    for column in range(len(table)):
        eligible = (age >= table["age_min"].iat[column]) & (age <= table["age_max"].iat[column])
        sex_factor = np.array([share_female[column] / 0.5, (1 - share_female[column]) / 0.5, 1.0])[sex]
        weights[:, column] = base[column] * eligible * sex_factor
        comorbidity = catalog.condition_comorbidity[column]
        if comorbidity >= 0:
            weights[:, column] *= np.where(active[:, comorbidity], ACTIVE_CHRONIC_BOOST, 1.0)
    return weights


def _choose(weights: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.int16]:
    cumulative = np.cumsum(weights, axis=1)
    draws = rng.random(weights.shape[0]) * cumulative[:, -1]
    chosen = np.minimum((cumulative <= draws[:, None]).sum(axis=1), weights.shape[1] - 1)
    return np.where(cumulative[:, -1] > 0, chosen, -1).astype(np.int16)


def assign_clinical(
    *,
    day: dt.date,
    config: SyntheticConfig,
    catalog: Catalog,
    patient: npt.NDArray[np.int64],
    age: npt.NDArray[np.float64],
    sex: npt.NDArray[np.int8],
    orphan: npt.NDArray[np.bool_],
    consultation: npt.NDArray[np.int8],
    rng: np.random.Generator,
) -> Clinical:
    """Category, condition and problem list of each encounter."""
    count = patient.size
    active = comorbidity_activity(config.seed, patient, age, sex, catalog)
    acute_factor = 1.0 + ACUTE_SEASON_AMPLITUDE * np.cos(2.0 * np.pi * (day.timetuple().tm_yday - 15) / 365.25)
    for scenario in config.active_drift(day, "case_mix"):
        acute_factor *= float(scenario.params.get("acute_multiplier", 1.5))
    probabilities = CATEGORY_BY_CONSULTATION * np.array([1.0, 1.0, acute_factor, 1.0])
    cumulative = np.cumsum(probabilities, axis=1)[consultation]
    draws = rng.random(count) * cumulative[:, -1]
    category = np.minimum((cumulative <= draws[:, None]).sum(axis=1), 3).astype(np.int8)

    weights = _condition_weights(day, age, sex, active, catalog)
    acuity_of = catalog.condition_acuity
    condition = np.full(count, -1, dtype=np.int16)
    intercurrent = orphan & (rng.random(count) < ORPHAN_INTERCURRENT_SHARE)
    category[intercurrent] = np.where(rng.random(int(intercurrent.sum())) < 0.5, MILD, ACUTE)
    category[orphan & ~intercurrent] = ORPHAN
    # fall back to a milder category where no condition of the drawn one fits the patient (e.g. chronic at age 2)
    for wanted in (CHRONIC, ACUTE, MILD):
        rows = np.flatnonzero(category == wanted)
        mask = acuity_of == ACUITIES.index(CATEGORIES[wanted])
        chosen = _choose(weights[rows] * mask, rng)
        condition[rows] = chosen
        if wanted != MILD:
            category[rows[chosen < 0]] = wanted - 1
    category[(category == MILD) & (condition < 0)] = NONE
    category[orphan] = ORPHAN

    chronic_rank1 = catalog.condition_comorbidity[np.maximum(condition, 0)]
    needs_entry = (condition >= 0) & (chronic_rank1 >= 0)
    active[np.flatnonzero(needs_entry), chronic_rank1[needs_entry]] = True
    completeness = COMORBIDITY_RECORDED[consultation]
    recorded = np.zeros_like(active)
    encounter, column = np.nonzero(active)  # one draw per active condition, not per (encounter, condition)
    kept = rng.random(encounter.size) < completeness[encounter]
    recorded[encounter[kept], column[kept]] = True
    recorded[np.flatnonzero(needs_entry), chronic_rank1[needs_entry]] = True
    return Clinical(category, condition, active, recorded)
