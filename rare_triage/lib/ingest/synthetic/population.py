"""The persistent synthetic population: who exists, their age, sex, home region, disease and visit rate.

Every attribute is a pure function of (seed, patient index) and the reference data, so the same patient
has the same attributes on every day. Orphan diseases are drawn by Orphanet prevalence-class weight and
ages of orphan patients follow the disease's Orphanet onset classes (Orphadata 2021-03-01, CC BY 4.0).
"""

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from rare_triage.lib.ingest.synthetic.catalog import ONSET_CATEGORIES, Catalog
from rare_triage.lib.ingest.synthetic.hashing import hash_choice, hash_normal, hash_uniform
from rare_triage.lib.ingest.synthetic.names import REGION_WEIGHTS

REGION_NAMES = tuple(REGION_WEIGHTS)
SEX_CODES = ("F", "M", "U")
UNKNOWN_SEX_SHARE = 0.003

# Age pyramid: share of the population in 5-year bands 0-4 ... 100-104 (includes ages over 89 on purpose).
AGE_BAND_SHARES = np.array(
    [4.5, 5.0, 5.0, 5.0, 5.2, 5.6, 6.2, 7.0, 7.8, 7.8, 7.4, 6.8, 6.0, 5.2, 4.6, 3.8, 2.8, 1.8, 0.9, 0.3, 0.05]
)
# Relative visit rate by age (infants and the old visit more often).
VISIT_RATE_AGES = np.array([0.0, 2.0, 6.0, 18.0, 40.0, 60.0, 80.0, 100.0])
VISIT_RATE_VALUES = np.array([2.0, 1.4, 0.8, 0.6, 0.65, 1.0, 1.7, 1.9])
VISIT_FRAILTY_SD = 0.8  # log-normal spread of visit rates between patients
ORPHAN_VISIT_MULTIPLIER = 1.4
# Orphanet onset class -> (first age, mean extra years after it) of patients seen with the disease.
ONSET_AGE: dict[str, tuple[float, float]] = {
    "Antenatal": (0.0, 7.0),
    "Neonatal": (0.0, 7.0),
    "Infancy": (0.1, 8.0),
    "Childhood": (2.0, 10.0),
    "Adolescent": (11.0, 12.0),
    "Adult": (18.0, 18.0),
    "Elderly": (60.0, 9.0),
}
MAX_AGE = 104.0

# salts of the per-patient hash streams (never reuse one for two purposes)
SALT_SEX, SALT_SEX_U, SALT_AGE_BAND, SALT_AGE_IN_BAND, SALT_REGION = 11, 12, 13, 14, 15
SALT_ORPHAN, SALT_DISEASE, SALT_ONSET, SALT_ONSET_AGE, SALT_FRAILTY, SALT_ALL_AGES = 21, 22, 23, 24, 25, 26


@dataclass(frozen=True, eq=False)
class Population:
    """Per-patient arrays, indexed by patient index 0..size-1."""

    seed: int
    size: int
    reference_date: dt.date
    birth_day: npt.NDArray[np.int64]  # days since 1970-01-01
    sex: npt.NDArray[np.int8]  # index into SEX_CODES
    region: npt.NDArray[np.int8]  # index into REGION_NAMES
    disease: npt.NDArray[np.int32]  # row of ref.orpha_diseases, -1 for patients without an orphan disease
    visit_rate: npt.NDArray[np.float64]  # relative rate of visits (orphan multiplier included)

    @property
    def is_orphan(self) -> npt.NDArray[np.bool_]:
        return self.disease >= 0


def _orphan_ages(
    seed: int, index: npt.NDArray[np.int64], disease: npt.NDArray[np.int32], catalog: Catalog
) -> npt.NDArray[np.float64]:
    onsets = catalog.disease_onsets
    lengths = onsets.lengths[disease]
    pick = np.minimum((hash_uniform(seed, index, SALT_ONSET) * lengths).astype(np.int64), lengths - 1)
    onset = onsets.codes[onsets.offsets[disease] + pick]
    first = np.array([ONSET_AGE.get(name, (0.0, 0.0))[0] for name in ONSET_CATEGORIES])[onset]
    mean_extra = np.array([ONSET_AGE.get(name, (0.0, 0.0))[1] for name in ONSET_CATEGORIES])[onset]
    ages = first - mean_extra * np.log1p(-hash_uniform(seed, index, SALT_ONSET_AGE))
    all_ages = onset == ONSET_CATEGORIES.index("All ages")
    ages[all_ages] = 85.0 * hash_uniform(seed, index[all_ages], SALT_ALL_AGES)
    return np.minimum(ages, MAX_AGE)


@lru_cache(maxsize=4)
def build_population(
    seed: int, size: int, orphan_share: float, reference_date: dt.date, catalog: Catalog
) -> Population:
    """Derive the population; cached because every day of the same world reuses it."""
    index = np.arange(size, dtype=np.int64)
    sex = np.where(hash_uniform(seed, index, SALT_SEX) < 0.5, 0, 1).astype(np.int8)
    sex[hash_uniform(seed, index, SALT_SEX_U) < UNKNOWN_SEX_SHARE] = 2
    band = hash_choice(seed, index, SALT_AGE_BAND, AGE_BAND_SHARES)
    ages = np.minimum(5.0 * band + 5.0 * hash_uniform(seed, index, SALT_AGE_IN_BAND), MAX_AGE)
    region = hash_choice(seed, index, SALT_REGION, list(REGION_WEIGHTS.values())).astype(np.int8)

    disease = np.full(size, -1, dtype=np.int32)
    orphan = np.flatnonzero(hash_uniform(seed, index, SALT_ORPHAN) < orphan_share)
    if orphan.size:
        disease[orphan] = hash_choice(seed, orphan, SALT_DISEASE, catalog.disease_weights)
        ages[orphan] = _orphan_ages(seed, orphan, disease[orphan], catalog)

    frailty = np.exp(VISIT_FRAILTY_SD * hash_normal(seed, index, SALT_FRAILTY) - VISIT_FRAILTY_SD**2 / 2)
    visit_rate = np.interp(ages, VISIT_RATE_AGES, VISIT_RATE_VALUES) * frailty
    visit_rate[orphan] *= ORPHAN_VISIT_MULTIPLIER
    reference_day = (reference_date - dt.date(1970, 1, 1)).days
    birth_day = reference_day - np.round(ages * 365.25).astype(np.int64)
    return Population(seed, size, reference_date, birth_day, sex, region, disease, visit_rate)
