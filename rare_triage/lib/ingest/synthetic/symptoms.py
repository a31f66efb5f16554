"""Long HPO symptom rows: condition symptoms, chronic-comorbidity symptoms, orphan features, incidental findings.

Orphan patients carry a fixed subset of their disease's phenotypes (each kept with its phenotype.hpoa
frequency, HPO release 2025-01-16, by a per-patient hash) and each visit records part of that subset.
Non-orphan patients get comorbidity symptoms, incidental findings and nonspecific complaints across organ
systems, some of them orphan-red-flag-like, so that multi-system involvement alone is not a giveaway.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rare_triage.lib.ingest.synthetic.catalog import Catalog
from rare_triage.lib.ingest.synthetic.clinical import NONE, ORPHAN, Clinical
from rare_triage.lib.ingest.synthetic.hashing import hash_uniform

SOURCE_CONDITION, SOURCE_COMORBIDITY, SOURCE_ORPHAN, SOURCE_INCIDENTAL, SOURCE_SCREENING = range(5)
ASKED_ABSENT = np.array([0.15, 0.25, 0.2, 0.3, 0.1])  # by consultation type: a listed symptom is asked and denied
ORPHAN_RECORDED_SHARE = 0.45  # share of a patient's carried features written down at one visit
ORPHAN_ABSENT_SHARE = 0.04  # non-carried features of the disease explicitly looked for and absent
INCIDENTAL_RATE = 0.3  # mean incidental findings per encounter at age 0, rising with age
INCIDENTAL_RATE_PER_YEAR = 0.006
SCREENING_HPO = ("HP:0001945", "HP:0012735", "HP:0002094", "HP:0100749", "HP:0001824")
SCREENING_SHARE = 0.35  # check-ups that record a few denied screening questions
# duration of symptoms (days) by source: log-normal median, log sd, share missing per encounter
ORPHAN_DURATION = (150.0, 1.5, 0.5)
COMORBIDITY_DURATION = (300.0, 1.0, 0.4)
INCIDENTAL_DURATION = (20.0, 1.5, 0.4)
CONDITION_DURATION_MISSING = 0.15
OTHER_PAIN = (3.5, 2.0)  # pain score mean, sd on pain rows not caused by the encounter's condition
SCORE_MISSING = 0.1
SALT_CARRIED = 200
MAX_FEATURES_PER_DISEASE = 4096


@dataclass(frozen=True)
class Symptoms:
    """Symptom rows (``encounter`` is the position of the encounter in the day) and per-encounter fever."""

    encounter: npt.NDArray[np.int64]
    term: npt.NDArray[np.int64]
    present: npt.NDArray[np.bool_]
    severity: npt.NDArray[np.float64]
    duration_days: npt.NDArray[np.float64]
    fever_excess_c: npt.NDArray[np.float64]  # per encounter: degrees above 37 when febrile, else 0


def _condition_rows(
    catalog: Catalog, clinical: Clinical, consultation: npt.NDArray[np.int8], rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    rows = np.flatnonzero(clinical.condition >= 0)
    owner, item = catalog.condition_symptoms.explode(clinical.condition[rows])
    encounter = rows[owner]
    present = rng.random(item.size) < catalog.condition_symptoms.values[item]
    keep = present | (rng.random(item.size) < ASKED_ABSENT[consultation[encounter]])
    return encounter[keep], catalog.condition_symptoms.codes[item[keep]], present[keep]


def _comorbidity_rows(
    catalog: Catalog, clinical: Clinical, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    encounter, comorbidity = np.nonzero(clinical.comorbidity_active)
    owner, item = catalog.comorbidity_symptoms.explode(comorbidity)
    shown = rng.random(item.size) < catalog.comorbidity_symptoms.values[item]
    return encounter[owner[shown]], catalog.comorbidity_symptoms.codes[item[shown]]


def _orphan_rows(
    *,
    seed: int,
    catalog: Catalog,
    clinical: Clinical,
    patient: npt.NDArray[np.int64],
    disease: npt.NDArray[np.int32],
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    rows = np.flatnonzero(clinical.category == ORPHAN)
    phenotypes = catalog.disease_phenotypes
    owner, item = phenotypes.explode(disease[rows])
    encounter = rows[owner]
    position = item - phenotypes.offsets[disease[encounter]]
    carried = (
        hash_uniform(seed, patient[encounter] * MAX_FEATURES_PER_DISEASE + position, SALT_CARRIED)
        < phenotypes.values[item]
    )
    recorded = carried & (rng.random(item.size) < ORPHAN_RECORDED_SHARE)
    # every orphan visit records at least one feature: the first carried one, else the most frequent one
    has_any = np.bincount(owner, weights=recorded, minlength=rows.size) > 0
    has_carried = np.bincount(owner, weights=carried, minlength=rows.size) > 0
    first_item_row = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=rows.size))[:-1]])
    first_carried = np.full(rows.size, -1, dtype=np.int64)
    carried_rows = np.flatnonzero(carried)
    carrier, first_index = np.unique(owner[carried_rows], return_index=True)
    first_carried[carrier] = carried_rows[first_index]
    fix = np.flatnonzero(~has_any)
    recorded[np.where(has_carried[fix], first_carried[fix], first_item_row[fix])] = True
    absent = ~carried & (rng.random(item.size) < ORPHAN_ABSENT_SHARE)
    keep = recorded | absent
    return encounter[keep], phenotypes.codes[item[keep]], recorded[keep]


def _incidental_rows(
    catalog: Catalog, age: npt.NDArray[np.float64], rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    counts = rng.poisson(INCIDENTAL_RATE + INCIDENTAL_RATE_PER_YEAR * age)
    encounter = np.repeat(np.arange(age.size, dtype=np.int64), counts)
    cumulative = np.cumsum(catalog.incidental_weights)
    pick = np.minimum(
        np.searchsorted(cumulative, rng.random(encounter.size) * cumulative[-1], side="right"), cumulative.size - 1
    )
    low, high = catalog.incidental_age[pick, 0], catalog.incidental_age[pick, 1]
    fits = (age[encounter] >= low) & (age[encounter] <= high)
    return encounter[fits], catalog.incidental_codes[pick[fits]]


def _screening_rows(
    catalog: Catalog, clinical: Clinical, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    codes = np.array([int(np.flatnonzero(catalog.terms == hpo)[0]) for hpo in SCREENING_HPO], dtype=np.int64)
    rows = np.flatnonzero((clinical.category == NONE) & (rng.random(clinical.category.size) < SCREENING_SHARE))
    asked = rng.random((rows.size, codes.size)) < 0.5
    encounter, column = np.nonzero(asked)
    return rows[encounter], codes[column]


def _episode_durations(catalog: Catalog, clinical: Clinical, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Days since onset per (source, encounter); NaN where the record has no duration."""
    count = clinical.category.size
    durations = np.full((5, count), np.nan)
    table = catalog.condition_table
    has_condition = clinical.condition >= 0
    condition = clinical.condition[has_condition]
    median = table["duration_days_median"].to_numpy()[condition]
    log_sd = table["duration_log_sd"].to_numpy()[condition]
    durations[SOURCE_CONDITION, has_condition] = median * np.exp(log_sd * rng.standard_normal(condition.size))
    durations[SOURCE_CONDITION, rng.random(count) < CONDITION_DURATION_MISSING] = np.nan
    for source, (median_days, spread, missing) in (
        (SOURCE_ORPHAN, ORPHAN_DURATION),
        (SOURCE_COMORBIDITY, COMORBIDITY_DURATION),
        (SOURCE_INCIDENTAL, INCIDENTAL_DURATION),
    ):
        durations[source] = median_days * np.exp(spread * rng.standard_normal(count))
        durations[source, rng.random(count) < missing] = np.nan
    return durations


def _score(
    rng: np.random.Generator, mean: npt.NDArray[np.float64], sd: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    score = np.clip(np.round(mean + sd * rng.standard_normal(mean.size)), 0.0, 10.0)
    score[rng.random(mean.size) < SCORE_MISSING] = np.nan
    return score


def build_symptoms(
    *,
    seed: int,
    catalog: Catalog,
    clinical: Clinical,
    patient: npt.NDArray[np.int64],
    disease: npt.NDArray[np.int32],
    age: npt.NDArray[np.float64],
    consultation: npt.NDArray[np.int8],
    rng: np.random.Generator,
) -> Symptoms:
    """All symptom rows of the day, one per (encounter, term); a present row wins over an absent one."""
    condition_rows = _condition_rows(catalog, clinical, consultation, rng)
    comorbidity_rows = _comorbidity_rows(catalog, clinical, rng)
    orphan_rows = _orphan_rows(seed=seed, catalog=catalog, clinical=clinical, patient=patient, disease=disease, rng=rng)
    incidental_rows = _incidental_rows(catalog, age, rng)
    screening_rows = _screening_rows(catalog, clinical, rng)
    parts = [
        (*condition_rows, SOURCE_CONDITION),
        (*comorbidity_rows, np.ones(comorbidity_rows[0].size, dtype=np.bool_), SOURCE_COMORBIDITY),
        (*orphan_rows, SOURCE_ORPHAN),
        (*incidental_rows, np.ones(incidental_rows[0].size, dtype=np.bool_), SOURCE_INCIDENTAL),
        (*screening_rows, np.zeros(screening_rows[0].size, dtype=np.bool_), SOURCE_SCREENING),
    ]
    encounter = np.concatenate([part[0] for part in parts])
    term = np.concatenate([part[1] for part in parts])
    present = np.concatenate([part[2] for part in parts])
    source = np.concatenate([np.full(part[0].size, part[3], dtype=np.int8) for part in parts])

    order = np.lexsort((source, ~present, term, encounter))
    encounter, term, present, source = encounter[order], term[order], present[order], source[order]
    first = np.ones(encounter.size, dtype=np.bool_)
    first[1:] = (encounter[1:] != encounter[:-1]) | (term[1:] != term[:-1])
    encounter, term, present, source = encounter[first], term[first], present[first], source[first]

    durations = _episode_durations(catalog, clinical, rng)
    duration = durations[np.minimum(source, SOURCE_INCIDENTAL), encounter] * np.exp(
        0.15 * rng.standard_normal(encounter.size)
    )
    duration = np.round(duration)
    duration[~present | (source == SOURCE_SCREENING)] = np.nan

    count = clinical.category.size
    table = catalog.condition_table
    fever_row = present & (term == catalog.fever_code)
    febrile = np.zeros(count, dtype=np.bool_)
    febrile[encounter[fever_row]] = True
    temp_shift = np.where(
        clinical.condition >= 0, table["temp_shift_c"].to_numpy()[np.maximum(clinical.condition, 0)], 0.0
    )
    fever_excess = np.where(febrile, np.clip(np.maximum(temp_shift, 1.0) * rng.uniform(0.7, 1.3, count), 0.5, 3.5), 0.0)

    severity = np.full(encounter.size, np.nan)
    severity[fever_row] = np.clip(
        np.round(fever_excess[encounter[fever_row]] * 3.0 + rng.standard_normal(int(fever_row.sum()))), 0, 10
    )
    severity[fever_row & (rng.random(encounter.size) < SCORE_MISSING)] = np.nan
    pain_row = present & catalog.term_is_pain[term]
    own_condition = pain_row & (source == SOURCE_CONDITION)
    pain_condition = clinical.condition[encounter[own_condition]]
    severity[own_condition] = _score(
        rng, table["pain_mean"].to_numpy()[pain_condition], table["pain_sd"].to_numpy()[pain_condition]
    )
    other_pain = pain_row & ~own_condition
    n_other = int(other_pain.sum())
    severity[other_pain] = _score(rng, np.full(n_other, OTHER_PAIN[0]), np.full(n_other, OTHER_PAIN[1]))
    return Symptoms(encounter, term, present, severity, duration, fever_excess)
