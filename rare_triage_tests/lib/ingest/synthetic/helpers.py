"""Shared helpers of the synthetic-data tests."""

import datetime as dt

import pandas as pd

from rare_triage.lib.ingest.synthetic import SyntheticConfig, generate_extract
from rare_triage.lib.reference.loaders import icd10_acuity
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.schema import RAW_DIAGNOSES, RAW_ENCOUNTERS, RAW_TABLES


def generate_days(config: SyntheticConfig, ref: ReferenceTables, days: list[dt.date]) -> dict[str, pd.DataFrame]:
    """Extracts of several days concatenated per table."""
    extracts = [generate_extract(day, config, ref) for day in days]
    return {name: pd.concat([extract[name] for extract in extracts], ignore_index=True) for name in RAW_TABLES}


def encounter_labels(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """none / mild / acute / chronic / orphan per encounter_id, from the rank-1 diagnosis."""
    encounters, diagnoses = tables[RAW_ENCOUNTERS], tables[RAW_DIAGNOSES]
    labels = pd.Series("none", index=pd.Index(encounters["encounter_id"].unique()))
    primary = diagnoses[diagnoses["rank"] == 1]
    icd = primary[primary["code_system"] == "ICD10"]
    labels[icd["encounter_id"].to_numpy()] = icd["code"].map(icd10_acuity()).to_numpy()
    labels[primary.loc[primary["code_system"] == "ORPHA", "encounter_id"].to_numpy()] = "orphan"
    return labels


def systems_per_encounter(tables: dict[str, pd.DataFrame], ref: ReferenceTables) -> pd.Series:
    """Number of organ-system groups (children of HP:0000118) of the present symptoms, per encounter_id."""
    symptoms = tables["symptoms"]
    present = symptoms[symptoms["present"]]
    counts = present.merge(ref.term_system, on="hpo_id").groupby("encounter_id")["system_id"].nunique()
    return counts.reindex(tables[RAW_ENCOUNTERS]["encounter_id"].unique(), fill_value=0)
