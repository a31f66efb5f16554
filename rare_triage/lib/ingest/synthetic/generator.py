"""The synthetic EHR source: one day's raw extract (schema.RAW_* tables) from (config, day, reference tables).

Deterministic: the same (config, day) and reference tables give identical frames. Patients persist across
days (identity from the seed and patient index). Orphanet data: Orphadata 2021-03-01, CC BY 4.0, "Orphanet /
Orphadata, INSERM"; phenotype frequencies: HPO phenotype.hpoa, release 2025-01-16.
"""

import datetime as dt

import numpy as np
import pandas as pd

from rare_triage.lib.ingest.synthetic.catalog import Catalog, build_catalog
from rare_triage.lib.ingest.synthetic.clinical import ORPHAN, Clinical, assign_clinical
from rare_triage.lib.ingest.synthetic.config import CentreSpec, SyntheticConfig
from rare_triage.lib.ingest.synthetic.errors import inject_errors
from rare_triage.lib.ingest.synthetic.identity import build_patients, digits
from rare_triage.lib.ingest.synthetic.population import Population, build_population
from rare_triage.lib.ingest.synthetic.symptoms import Symptoms, build_symptoms
from rare_triage.lib.ingest.synthetic.visits import Visits, daily_volume, sample_visits
from rare_triage.lib.ingest.synthetic.vitals import VITAL_CODES, Vitals, build_vitals
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.schema import (
    CENTRE_LEVELS,
    CONSULTATION_TYPES,
    RAW_COLUMNS,
    RAW_COMORBIDITIES,
    RAW_DIAGNOSES,
    RAW_ENCOUNTERS,
    RAW_PATIENTS,
    RAW_SYMPTOMS,
    RAW_VITALS,
    VITAL_LOINC,
)

SECONDARY_DIAGNOSIS_SHARE = 0.25  # encounters with a condition that also code one recorded comorbidity (rank 2)
_EPOCH = dt.date(1970, 1, 1)
_STREAMS = ("visits", "clinical", "symptoms", "vitals", "diagnoses", "errors")


def population_for(config: SyntheticConfig, ref: ReferenceTables) -> Population:
    """The persistent population of this configuration's world (cached)."""
    catalog = build_catalog(ref)
    return build_population(config.seed, config.population_size, config.orphan_share, config.reference_date, catalog)


def _encounters_frame(day: dt.date, visits: Visits, patient_id: np.ndarray) -> pd.DataFrame:
    count = visits.patient.size
    ids = "E" + day.strftime("%Y%m%d") + "-" + digits(np.arange(1, count + 1, dtype=np.int64), 7)
    centre_ids = np.array([c.centre_id for c in visits.centres], dtype=object)
    centre_regions = np.array([c.region for c in visits.centres], dtype=object)
    prior = pd.array(visits.prior_visits, dtype="Int64")
    prior[visits.prior_visits < 0] = pd.NA
    return pd.DataFrame(
        {
            "encounter_id": ids,
            "patient_id": patient_id,
            "encounter_date": np.full(count, np.datetime64(day, "ns")),
            "centre_id": centre_ids[visits.centre],
            "centre_level": np.array(CENTRE_LEVELS, dtype=object)[visits.level],
            "region": centre_regions[visits.centre],
            "consultation_type": np.array(CONSULTATION_TYPES, dtype=object)[visits.consultation],
            "prior_visits_365d": prior,
        }
    )


def _vitals_frame(ids: np.ndarray, vitals: Vitals, centre: np.ndarray, centres: tuple[CentreSpec, ...]) -> pd.DataFrame:
    codes = np.array(VITAL_CODES, dtype=object)[vitals.vital]
    spo2 = vitals.vital == VITAL_CODES.index("59408-5")
    codes[spo2] = np.array([c.spo2_loinc for c in centres], dtype=object)[centre[vitals.encounter[spo2]]]
    units = np.array([VITAL_LOINC[code][1] for code in VITAL_CODES], dtype=object)[vitals.vital]
    return pd.DataFrame(
        {"encounter_id": ids[vitals.encounter], "loinc_code": codes, "value": vitals.value, "unit": units}
    )


def _symptoms_frame(ids: np.ndarray, symptoms: Symptoms, catalog: Catalog) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "encounter_id": ids[symptoms.encounter],
            "hpo_id": catalog.terms[symptoms.term],
            "present": symptoms.present,
            "severity": symptoms.severity,
            "duration_days": symptoms.duration_days,
        }
    )


def _diagnoses_frame(
    ids: np.ndarray, clinical: Clinical, disease: np.ndarray, catalog: Catalog, rng: np.random.Generator
) -> pd.DataFrame:
    """Rank 1: ORPHA code or the condition; rank 2: an orphan patient's intercurrent condition or a comorbidity."""
    orphan = np.flatnonzero(clinical.category == ORPHAN)
    with_condition = np.flatnonzero(clinical.condition >= 0)
    condition_rank = np.where(clinical.category[with_condition] == ORPHAN, 2, 1)
    recorded = clinical.comorbidity_recorded[with_condition]
    own = catalog.condition_comorbidity[clinical.condition[with_condition]]
    recorded[np.flatnonzero(own >= 0), own[own >= 0]] = False
    wants = recorded.any(axis=1) & (rng.random(with_condition.size) < SECONDARY_DIAGNOSIS_SHARE)
    scores = rng.random((int(wants.sum()), recorded.shape[1])) * recorded[wants]
    secondary = with_condition[wants]
    encounter = np.concatenate([orphan, with_condition, secondary])
    rank = np.concatenate([np.ones(orphan.size, dtype=np.int64), condition_rank, condition_rank[wants] + 1])
    code = np.concatenate(
        [
            "ORPHA:" + catalog.disease_codes[disease[orphan]].astype(str).astype(object),
            catalog.condition_icd10[clinical.condition[with_condition]],
            catalog.comorbidity_icd10[scores.argmax(axis=1)],
        ]
    )
    system = np.array(["ORPHA", "ICD10"], dtype=object)[(np.arange(encounter.size) >= orphan.size).astype(np.int64)]
    order = np.lexsort((rank, encounter))
    return pd.DataFrame(
        {"encounter_id": ids[encounter[order]], "code_system": system[order], "code": code[order], "rank": rank[order]}
    )


def _comorbidities_frame(ids: np.ndarray, clinical: Clinical, catalog: Catalog) -> pd.DataFrame:
    encounter, column = np.nonzero(clinical.comorbidity_recorded)
    return pd.DataFrame({"encounter_id": ids[encounter], "icd10_code": catalog.comorbidity_icd10[column]})


def generate_extract(day: dt.date, config: SyntheticConfig, ref: ReferenceTables) -> dict[str, pd.DataFrame]:
    """One day's raw extract: the schema.RAW_* tables with exactly their columns (encounters add prior_visits_365d)."""
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise ValueError(f"day: expected a datetime.date, got {day!r}")
    catalog = build_catalog(ref)
    population = population_for(config, ref)
    streams = dict(
        zip(
            _STREAMS,
            (
                np.random.default_rng(s)
                for s in np.random.SeedSequence([config.seed, day.toordinal()]).spawn(len(_STREAMS))
            ),
            strict=True,
        )
    )
    count = daily_volume(day, config, streams["visits"])
    visits = sample_visits(day, config, population, count, streams["visits"])
    patient = visits.patient
    age = ((day - _EPOCH).days - population.birth_day[patient]) / 365.25
    sex = population.sex[patient]
    disease = population.disease[patient]
    clinical = assign_clinical(
        day=day,
        config=config,
        catalog=catalog,
        patient=patient,
        age=age,
        sex=sex,
        orphan=disease >= 0,
        consultation=visits.consultation,
        rng=streams["clinical"],
    )
    symptoms = build_symptoms(
        seed=config.seed,
        catalog=catalog,
        clinical=clinical,
        patient=patient,
        disease=disease,
        age=age,
        consultation=visits.consultation,
        rng=streams["symptoms"],
    )
    vitals = build_vitals(
        day=day,
        config=config,
        catalog=catalog,
        clinical=clinical,
        age=age,
        fever_excess_c=symptoms.fever_excess_c,
        consultation=visits.consultation,
        centre=visits.centre,
        centres=visits.centres,
        rng=streams["vitals"],
    )
    seen, first_seen = np.unique(patient, return_inverse=True)
    patients = build_patients(population, seen)
    encounters = _encounters_frame(day, visits, patients["patient_id"].to_numpy()[first_seen])
    ids = encounters["encounter_id"].to_numpy()
    vitals_frame = _vitals_frame(ids, vitals, visits.centre, visits.centres)
    del vitals
    symptoms_frame = _symptoms_frame(ids, symptoms, catalog)
    del symptoms
    tables = {
        RAW_PATIENTS: patients,
        RAW_ENCOUNTERS: encounters,
        RAW_VITALS: vitals_frame,
        RAW_SYMPTOMS: symptoms_frame,
        RAW_DIAGNOSES: _diagnoses_frame(ids, clinical, disease, catalog, streams["diagnoses"]),
        RAW_COMORBIDITIES: _comorbidities_frame(ids, clinical, catalog),
    }
    del clinical, vitals_frame, symptoms_frame, patients, encounters
    if config.error_rate > 0:
        tables, _ = inject_errors(tables, config.error_rate, streams["errors"])
    for name, columns in RAW_COLUMNS.items():
        if tuple(tables[name].columns) != columns:
            raise RuntimeError(f"synthetic table {name}: columns {list(tables[name].columns)} differ from {columns}")
    return tables
