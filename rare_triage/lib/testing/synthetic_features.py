"""A synthetic features frame shaped like `features.encounter_features`, for tests and the benchmark.

Not a model of patients (the synthetic EHR source is): just the table's columns and dtypes with a
learnable, noisy label. The orphan class depends on red-flag terms and the number of organ systems
involved, overlapping with chronic multimorbid patients; duration and visit history overlap on purpose.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.features.build import features_table_columns
from rare_triage.lib.reference.loaders import load_vocabulary
from rare_triage.lib.reference.ontology import ReferenceTables

# Organ-system groups (children of HP:0000118) each vocabulary `system` value of the packaged CSV maps to.
CSV_SYSTEM_TO_HPO = {
    "GI/hepatic": ("HP:0025031",),
    "GU/renal": ("HP:0000119",),
    "cardiovascular": ("HP:0001626",),
    "constitutional": ("HP:0025142",),
    "musculoskeletal": ("HP:0033127",),
    "neuro/developmental": ("HP:0000707",),
    "psych/sleep": ("HP:0000707",),
    "respiratory/ENT": ("HP:0002086",),
    "skin/blood/immune/senses": ("HP:0001574", "HP:0001871", "HP:0002715", "HP:0000478"),
}
EXTRA_SYSTEMS = ("HP:0000152", "HP:0001507", "HP:0001939", "HP:0000818", "HP:0000598")
CENTRES = {  # centre_id: (centre_level, region)
    "C01": ("primary", "R1"),
    "C02": ("primary", "R1"),
    "C03": ("primary", "R2"),
    "C04": ("primary", "R3"),
    "C05": ("primary", "R4"),
    "C06": ("secondary", "R2"),
    "C07": ("secondary", "R3"),
    "C08": ("tertiary", "R1"),
}
# Per label (schema.LABELS order): expected present terms of each vocabulary group and extra organ systems.
_RATES = {
    "common": (0.3, 1.5, 1.8, 1.0, 0.7),
    "both": (0.1, 0.3, 0.8, 0.8, 1.2),
    "orphan_red_flag": (0.04, 0.06, 0.12, 0.2, 1.3),
}
_EXTRA_SYSTEM_RATES = (0.1, 0.1, 0.2, 0.4, 1.4)  # organ systems involved through terms outside the vocabulary
_DURATION_MEDIAN = (5.0, 3.0, 2.0, 45.0, 60.0)
_EXTRA_TERMS = (0.3, 0.8, 1.2, 1.0, 3.0)  # present terms outside the vocabulary, per label
_SPECIFIC_SHARE = (0.1, 0.15, 0.15, 0.15, 0.45)  # share of present terms of high information content, per label
_CONSULTATION_WEIGHTS = {  # primary_care, emergency, outpatient_specialist, inpatient, telehealth
    "none": (0.6, 0.1, 0.1, 0.02, 0.18),
    "common_mild": (0.6, 0.15, 0.05, 0.0, 0.2),
    "common_acute": (0.35, 0.45, 0.05, 0.1, 0.05),
    "common_chronic": (0.45, 0.1, 0.3, 0.05, 0.1),
    "orphan": (0.35, 0.15, 0.35, 0.1, 0.05),
}


@dataclass(frozen=True)
class PhenotypeLayout:
    """Vocabulary terms (hpo_id, group), organ-system ids, and the roll-up of terms to both."""

    vocabulary: pd.DataFrame
    system_ids: tuple[str, ...]
    term_system: pd.DataFrame  # hpo_id, system_id
    term_rollup: pd.DataFrame  # hpo_id, vocab_id


def default_layout() -> PhenotypeLayout:
    """The packaged vocabulary with a fixed term -> organ-system map (no ontology needed)."""
    vocabulary = load_vocabulary()
    pairs = [
        (hpo_id, CSV_SYSTEM_TO_HPO[group][i % len(CSV_SYSTEM_TO_HPO[group])])
        for i, (hpo_id, group) in enumerate(zip(vocabulary["hpo_id"], vocabulary["system"], strict=True))
    ]
    systems = tuple(dict.fromkeys([s for values in CSV_SYSTEM_TO_HPO.values() for s in values] + list(EXTRA_SYSTEMS)))
    rollup = pd.DataFrame({"hpo_id": vocabulary["hpo_id"], "vocab_id": vocabulary["hpo_id"]})
    return PhenotypeLayout(vocabulary, systems, pd.DataFrame(pairs, columns=["hpo_id", "system_id"]), rollup)


def layout_from_reference(tables: ReferenceTables) -> PhenotypeLayout:
    """The real vocabulary, organ systems and roll-up of the HPO reference tables."""
    return PhenotypeLayout(
        tables.vocabulary, tuple(tables.systems["system_id"]), tables.term_system, tables.term_rollup
    )


def _hex_keys(rng: np.random.Generator, n: int) -> list[str]:
    high, low = rng.integers(0, 2**63, n), rng.integers(0, 2**63, n)
    return [f"{a:016x}{b:016x}" for a, b in zip(high, low, strict=True)]


def synthesize_features(
    n_rows: int,
    *,
    start_day: str = "2025-01-01",
    n_days: int = 30,
    seed: int = 0,
    orphan_share: float = 0.02,
    layout: PhenotypeLayout | None = None,
) -> pd.DataFrame:
    """`n_rows` encounters spread over `n_days` daily partitions, columns of the features table in order."""
    if n_rows < 1 or n_days < 1:
        raise ValueError(f"synthesize_features: n_rows and n_days must be >= 1, got {n_rows}, {n_days}")
    if not 0.0 < orphan_share < 1.0:
        raise ValueError(f"orphan_share: must be in (0, 1), got {orphan_share}")
    layout = layout or default_layout()
    rng = np.random.default_rng(seed)
    others = np.array([0.27, 0.36, 0.20, 0.15])
    label_p = np.append(others / others.sum() * (1.0 - orphan_share), orphan_share)
    y = rng.choice(len(schema.LABELS), size=n_rows, p=label_p)
    columns = _keys(rng, y, start_day, n_days)
    columns.update(_demographics(rng, y))
    columns.update(_vitals(rng, y, columns["consultation_type"]))
    phenotypes, fever = _phenotypes(rng, y, layout)
    columns.update(_history(rng, y, columns["age_years"], fever))
    columns["n_systems_involved"] = phenotypes.pop("n_systems_involved")
    n_terms = phenotypes.pop("n_vocabulary_terms") + rng.poisson(np.asarray(_EXTRA_TERMS)[y])
    columns.update(synthetic_specificity(rng, n_terms, np.asarray(_SPECIFIC_SHARE)[y]))
    columns.update(phenotypes)
    columns[schema.LABEL_COLUMN] = np.asarray(schema.LABELS, dtype=object)[y]
    frame = pd.DataFrame(columns)
    return frame[features_table_columns(list(layout.vocabulary["hpo_id"]), list(layout.system_ids))]


def _keys(rng: np.random.Generator, y: np.ndarray, start_day: str, n_days: int) -> dict[str, np.ndarray]:
    n = len(y)
    patients = max(1, int(n * 0.7))
    first = dt.date.fromisoformat(start_day)
    days = np.asarray([(first + dt.timedelta(days=d)).isoformat() for d in range(n_days)], dtype=object)
    return {
        "encounter_key": np.asarray(_hex_keys(rng, n), dtype=object),
        "patient_key": np.asarray(_hex_keys(rng, patients), dtype=object)[rng.integers(0, patients, n)],
        "partition_day": days[np.sort(rng.integers(0, n_days, n))],
    }


def _demographics(rng: np.random.Generator, y: np.ndarray) -> dict[str, np.ndarray]:
    n = len(y)
    orphan, chronic = y == 4, y == 3
    age = rng.integers(0, 91, n).astype(float)
    age[chronic] = np.clip(rng.normal(62, 15, chronic.sum()), 18, 95).round()
    child = orphan & (rng.random(n) < 0.5)
    age[child] = rng.integers(0, 18, child.sum())
    age = np.minimum(age, schema.AGE_TOP_CODE)
    centre_ids = np.array(list(CENTRES), dtype=object)
    weights = np.full(len(centre_ids), 0.95 / (len(centre_ids) - 1))
    weights[-1] = 0.05
    centre = rng.choice(centre_ids, size=n, p=weights)
    centre[orphan & (rng.random(n) < 0.25)] = centre_ids[-1]
    position = np.searchsorted(centre_ids, centre)
    consultation = np.empty(n, dtype=object)
    for index, label in enumerate(schema.LABELS):
        rows = y == index
        types = np.array(schema.CONSULTATION_TYPES, dtype=object)
        consultation[rows] = rng.choice(types, size=rows.sum(), p=_CONSULTATION_WEIGHTS[label])
    return {
        "sex": rng.choice(np.array(schema.SEXES, dtype=object), size=n, p=[0.5, 0.49, 0.01]),
        "age_band": np.asarray(schema.AGE_BANDS, dtype=object)[np.minimum(age.astype(int) // 10, 9)],
        "centre_id": centre,
        "centre_level": np.array([v[0] for v in CENTRES.values()], dtype=object)[position],
        "region": np.array([v[1] for v in CENTRES.values()], dtype=object)[position],
        "consultation_type": consultation,
        "age_years": age,
    }


def _vitals(rng: np.random.Generator, y: np.ndarray, consultation: np.ndarray) -> dict[str, np.ndarray]:
    n, acute = len(y), y == 2
    vitals = {
        "temperature_c": (36.9, 0.4, 1.3),
        "heart_rate": (78.0, 12.0, 16.0),
        "respiratory_rate": (15.0, 3.0, 4.0),
        "spo2": (97.5, 1.2, -2.0),
        "systolic_bp": (124.0, 14.0, 0.0),
        "diastolic_bp": (79.0, 9.0, 0.0),
    }
    out = {}
    for name, (mean, sd, acute_shift) in vitals.items():
        values = rng.normal(mean, sd, n) + acute * acute_shift * rng.random(n)
        values[(consultation == "telehealth") | (rng.random(n) < 0.1)] = np.nan
        out[name] = values.round(1)
    return out


def _phenotypes(
    rng: np.random.Generator, y: np.ndarray, layout: PhenotypeLayout
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """hpo_*/sys_* columns and n_systems_involved; also whether Fever is present (for the fever score)."""
    n = len(y)
    vocab_ids = list(layout.vocabulary["hpo_id"])
    groups = layout.vocabulary["group"].to_numpy()
    present = np.zeros((n, len(vocab_ids)), dtype=bool)
    for group, rates in _RATES.items():
        members = np.flatnonzero(groups == group)
        if len(members):
            p = (np.asarray(rates)[y] / len(members))[:, None]
            present[:, members] = rng.random((n, len(members)), dtype=np.float32) < p
    fever = np.zeros(n, dtype=bool)
    if schema.FEVER_HPO in vocab_ids:
        index = vocab_ids.index(schema.FEVER_HPO)
        present[:, index] |= (y == 2) & (rng.random(n) < 0.5)
        fever = present[:, index].copy()
    absent = ~present & (rng.random((n, len(vocab_ids)), dtype=np.float32) < 0.06)
    terms = np.where(present, 1.0, np.where(absent, 0.0, np.nan))

    system_index = {s: i for i, s in enumerate(layout.system_ids)}
    vocab_index = {h: i for i, h in enumerate(vocab_ids)}
    rollup = np.zeros((len(vocab_ids), len(layout.system_ids)), dtype=np.float32)
    for hpo_id, system_id in layout.term_system[["hpo_id", "system_id"]].itertuples(index=False):
        if hpo_id in vocab_index and system_id in system_index:
            rollup[vocab_index[hpo_id], system_index[system_id]] = 1.0
    involved = (present.astype(np.float32) @ rollup) > 0
    extra_rate = (np.asarray(_EXTRA_SYSTEM_RATES)[y] / len(layout.system_ids))[:, None]
    involved |= rng.random((n, len(layout.system_ids)), dtype=np.float32) < extra_rate
    excluded = ~involved & (rng.random((n, len(layout.system_ids)), dtype=np.float32) < 0.1)
    systems = np.where(involved, 1.0, np.where(excluded, 0.0, np.nan))
    out = {schema.hpo_feature_name(h): terms[:, j] for j, h in enumerate(vocab_ids)}
    out.update({schema.system_feature_name(s): systems[:, j] for j, s in enumerate(layout.system_ids)})
    out["n_systems_involved"] = involved.sum(axis=1).astype(float)
    out["n_vocabulary_terms"] = present.sum(axis=1).astype(float)
    return out, fever


def synthetic_specificity(
    rng: np.random.Generator, n_terms: np.ndarray, specific_share: np.ndarray | float
) -> dict[str, np.ndarray]:
    """n_present_terms, n_specific_terms, phenotype_ic_max and phenotype_ic_sum for rows with `n_terms` present
    terms, each specific (information content 4-8) with probability `specific_share`, else of IC 1-4."""
    n_terms = np.asarray(n_terms, dtype=np.int64)
    n_specific = rng.binomial(n_terms, np.broadcast_to(specific_share, n_terms.shape))
    n_plain = n_terms - n_specific
    top_specific = np.where(n_specific > 0, 4.0 + 4.0 * rng.beta(1.0 + n_specific, 1.0), 0.0)
    top_plain = np.where(n_plain > 0, 1.0 + 3.0 * rng.beta(1.0 + n_plain, 1.0), 0.0)
    total = n_specific * rng.uniform(4.5, 6.5, n_terms.shape) + n_plain * rng.uniform(1.5, 3.0, n_terms.shape)
    return {
        "n_present_terms": n_terms.astype(float),
        "n_specific_terms": n_specific.astype(float),
        "phenotype_ic_max": np.maximum(top_specific, top_plain),
        "phenotype_ic_sum": np.maximum(total, np.maximum(top_specific, top_plain)),
    }


def _history(rng: np.random.Generator, y: np.ndarray, age: np.ndarray, fever: np.ndarray) -> dict[str, np.ndarray]:
    """Scores, duration, comorbidities and visits: overlapping between orphan and chronic on purpose."""
    n, acute, chronic, orphan = len(y), y == 2, y == 3, y == 4
    fever_score = np.full(n, np.nan)
    fever_score[fever] = rng.integers(1, 11, fever.sum())
    pain = np.where(rng.random(n) < 0.4, np.clip(rng.normal(3 + 2 * acute, 2.5, n), 0, 10).round(), np.nan)
    duration = np.exp(np.log(np.asarray(_DURATION_MEDIAN)[y]) + rng.normal(0, 1.4, n)).round(1)
    duration[rng.random(n) < 0.15] = np.nan
    return {
        "fever_score": fever_score,
        "pain_score": pain,
        "symptom_duration_days": duration,
        "comorbidity_count": (rng.poisson(age / 35.0) + chronic).astype(float),
        "prior_visits_365d": rng.poisson(1.0 + age / 40.0 + 2.0 * chronic + 1.5 * orphan).astype(float),
    }
