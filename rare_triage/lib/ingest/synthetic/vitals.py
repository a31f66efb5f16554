"""Vital signs as LOINC long rows, with setting-dependent missingness and the thermometer drift.

Condition shifts come from suggested_common_conditions.csv; a few chronic comorbidities shift vitals too
(COMORBIDITY_VITAL_SHIFTS). Codes, units and plausible ranges follow schema.VITAL_LOINC.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rare_triage.lib.ingest.synthetic.catalog import VITAL_SHIFT_COLUMNS, Catalog
from rare_triage.lib.ingest.synthetic.clinical import ORPHAN, Clinical
from rare_triage.lib.ingest.synthetic.config import CentreSpec, SyntheticConfig
from rare_triage.lib.schema import VITAL_LOINC

VITAL_CODES = tuple(VITAL_LOINC)  # temperature, heart rate, respiratory rate, SpO2, systolic, diastolic
# Probability that each vital (VITAL_CODES order) is measured, by consultation type (schema order).
MEASURED = np.array(
    [
        [0.55, 0.65, 0.30, 0.45, 0.70, 0.70],  # primary_care
        [0.97, 0.98, 0.93, 0.97, 0.97, 0.97],  # emergency
        [0.30, 0.55, 0.20, 0.30, 0.60, 0.60],  # outpatient_specialist
        [0.98, 0.99, 0.97, 0.98, 0.99, 0.99],  # inpatient
        [0.06, 0.02, 0.00, 0.03, 0.04, 0.04],  # telehealth: mostly nothing, sometimes self-reported
    ]
)
# Mean shift of (temperature, HR, RR, SpO2, SBP, DBP) when a chronic comorbidity is active.
COMORBIDITY_VITAL_SHIFTS: dict[str, tuple[float, ...]] = {
    "I10": (0, 2, 0, 0, 18, 9),
    "J44.9": (0, 5, 2, -2.5, 0, 0),
    "I50.9": (0, 6, 2, -1.5, -5, -2),
    "I48.9": (0, 12, 0, 0, 0, 0),
    "E66.9": (0, 3, 0, -0.5, 6, 4),
    "N18.9": (0, 0, 0, 0, 8, 3),
}
VITAL_DECIMALS = (1, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class Vitals:
    """Measured vitals: one row per (encounter, vital)."""

    encounter: npt.NDArray[np.int64]
    vital: npt.NDArray[np.int8]  # index into VITAL_CODES
    value: npt.NDArray[np.float64]


def _baseline(age: npt.NDArray[np.float64], rng: np.random.Generator) -> npt.NDArray[np.float64]:
    count = age.size
    values = np.empty((count, 6))
    values[:, 0] = 36.75 + 0.3 * rng.standard_normal(count)
    values[:, 1] = np.interp(age, [0, 1, 5, 12, 18], [135, 120, 100, 85, 75]) + 10 * rng.standard_normal(count)
    values[:, 2] = np.interp(age, [0, 1, 5, 12, 18], [38, 30, 22, 18, 15]) + 2.5 * rng.standard_normal(count)
    values[:, 3] = 97.6 - np.maximum(age - 60, 0) * 0.03 + 1.0 * rng.standard_normal(count)
    values[:, 4] = np.interp(age, [0, 5, 12, 18, 40, 80], [85, 95, 105, 115, 120, 138]) + 12 * rng.standard_normal(
        count
    )
    values[:, 5] = np.interp(age, [0, 5, 12, 18, 40, 80], [50, 58, 65, 72, 78, 80]) + 8 * rng.standard_normal(count)
    return values


def build_vitals(
    *,
    day: dt.date,
    config: SyntheticConfig,
    catalog: Catalog,
    clinical: Clinical,
    age: npt.NDArray[np.float64],
    fever_excess_c: npt.NDArray[np.float64],
    consultation: npt.NDArray[np.int8],
    centre: npt.NDArray[np.int16],
    centres: tuple[CentreSpec, ...],
    rng: np.random.Generator,
) -> Vitals:
    """Latent vitals from age, condition, comorbidities and fever; keep the measured ones."""
    count = age.size
    values = _baseline(age, rng)
    table = catalog.condition_table
    has_condition = clinical.condition >= 0
    shifts = table[list(VITAL_SHIFT_COLUMNS)].to_numpy()[clinical.condition[has_condition]]
    shifts[:, 0] = 0.0  # temperature follows the recorded fever instead
    values[has_condition] += shifts * rng.uniform(0.5, 1.5, (int(has_condition.sum()), 1))
    for column, code in enumerate(catalog.comorbidity_icd10):
        if code in COMORBIDITY_VITAL_SHIFTS:
            values[clinical.comorbidity_active[:, column]] += np.asarray(COMORBIDITY_VITAL_SHIFTS[code])
    orphan = clinical.category == ORPHAN
    values[orphan] += rng.normal(0.0, [0.15, 8.0, 2.0, 1.0, 8.0, 5.0], (int(orphan.sum()), 6))
    values[:, 0] += fever_excess_c
    values[:, 1] += 9.0 * fever_excess_c
    values[:, 2] += 1.5 * fever_excess_c
    values[:, 3] = np.minimum(values[:, 3], 100.0)
    values[:, 5] = np.minimum(values[:, 5], values[:, 4] - 15.0)
    for scenario in config.active_drift(day, "thermometer_offset"):
        at_centre = np.array([c.centre_id == scenario.params["centre_id"] for c in centres])[centre]
        values[at_centre, 0] += float(scenario.params.get("offset_c", 0.8))
    for column, decimals in enumerate(VITAL_DECIMALS):
        low, high = VITAL_LOINC[VITAL_CODES[column]][2:]
        values[:, column] = np.clip(np.round(values[:, column], decimals), low, high)

    measured = rng.random((count, 6)) < MEASURED[consultation]
    encounter, vital = np.nonzero(measured)
    return Vitals(encounter.astype(np.int64), vital.astype(np.int8), values[encounter, vital])
