"""What a client sends the triage service for the platform's own data, and how the serving matrix is compared.

Shared by the skew tests (`rare_triage_tests/integration/test_serving_skew.py`: serving's encoder in process;
`test_serving_http_skew.py`: the running service over HTTP):
- `load_partition`: one materialized daily partition (raw extract, anonymized tables, its `encounter_features` rows,
  the reference tables) read back from the lake and the warehouse;
- `client_payloads`: every encounter of that partition as an HCE integrator sends it to `/v1/predict`;
- `published_case_payloads`: the platform's published cases as `PublishedCase` JSON, `phenopacket_document` as
  the phenopacket v2 document each comes from;
- `assert_same_matrix`: two float32 matrices equal cell for cell, NaN where NaN.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.pseudonymization import PseudonymizationResource
from rare_triage.lib import schema
from rare_triage.lib.reference.frames import reference_from_frames
from rare_triage.lib.reference.ontology import ReferenceTables

VITAL_OF_LOINC = {loinc: name for loinc, (name, _unit, _low, _high) in schema.VITAL_LOINC.items()}
VITAL_OF_LOINC[schema.SPO2_ALT_LOINC] = VITAL_OF_LOINC["59408-5"]


@dataclass(frozen=True)
class Partition:
    """One daily partition as materialized: `features` holds its `encounter_features` rows only."""

    raw: dict[str, pd.DataFrame]
    anonymized: dict[str, pd.DataFrame]
    features: pd.DataFrame
    reference: ReferenceTables


def load_partition(lake: dg.IOManager, warehouse: str, day: str) -> Partition:
    """The partition `day` read back through the lake's IO manager and from the warehouse's feature table."""
    with duckdb.connect(warehouse, read_only=True) as con:
        features = con.execute("SELECT * FROM features.encounter_features WHERE partition_day = ?", [day]).df()
    return Partition(
        raw=lake.load_input(dg.build_input_context(asset_key=c.RAW_EHR_EXTRACT, partition_key=day)),
        anonymized=lake.load_input(dg.build_input_context(asset_key=c.ANONYMIZED_ENCOUNTERS, partition_key=day)),
        features=features,
        reference=reference_from_frames(lake.load_input(dg.build_input_context(asset_key=c.HPO_REFERENCE_TABLES))),
    )


def completed_years(birth: pd.Timestamp, day: pd.Timestamp) -> float:
    """Age at the encounter as an HCE computes it."""
    return float(day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day)))


def client_payloads(part: Partition) -> list[dict[str, Any]]:
    """One JSON request per row of `encounter_features`, in its order.

    Demographics come from the raw extract (joined to the features through the run's pseudonym of the encounter
    id); vitals, symptoms and comorbidities from the rows governance accepted (a row it quarantines, the contract
    refuses). Scores are where the raw contract puts them: the fever score on the Fever row, pain scores on the
    other observed rows and the pain-score vital.
    """
    raw_encounters = part.raw[schema.RAW_ENCOUNTERS]
    patients = part.raw[schema.RAW_PATIENTS].drop_duplicates("patient_id").set_index("patient_id")
    pseudonymize = PseudonymizationResource(allow_local_default=True).pseudonymizer()
    raw_by_key = raw_encounters.set_index(pd.Index(pseudonymize.many(raw_encounters["encounter_id"])))

    vitals = part.anonymized[schema.ANON_VITALS]
    means = (
        vitals[vitals["loinc_code"].isin(VITAL_OF_LOINC)]
        .assign(feature=lambda v: v["loinc_code"].map(VITAL_OF_LOINC))
        .groupby(["encounter_key", "feature"])["value"]
        .mean()
    )
    pain_vitals = vitals[vitals["loinc_code"] == schema.PAIN_SCORE_LOINC].groupby("encounter_key")["value"].max()
    symptoms = part.anonymized[schema.ANON_SYMPTOMS].groupby("encounter_key")
    comorbidities = part.anonymized[schema.ANON_COMORBIDITIES].groupby("encounter_key")["icd10_code"].nunique()

    payloads = []
    for key in part.features["encounter_key"]:
        encounter = raw_by_key.loc[key]
        patient = patients.loc[encounter["patient_id"]]
        payload: dict[str, Any] = {
            "sex": patient["sex"],
            "age_years": completed_years(patient["birth_date"], encounter["encounter_date"]),
            "centre_id": encounter["centre_id"],
            "centre_level": encounter["centre_level"],
            "region": encounter["region"],
            "consultation_type": encounter["consultation_type"],
        }
        if not pd.isna(encounter["prior_visits_365d"]):
            payload["prior_visits_365d"] = int(encounter["prior_visits_365d"])
        if key in comorbidities.index:  # none recorded: the field is left out
            payload["comorbidity_count"] = int(comorbidities[key])
        if key in means.index:
            payload |= {feature: float(value) for feature, value in means[key].items()}
        pain = [float(pain_vitals[key])] if key in pain_vitals.index else []
        if key in symptoms.groups:
            rows = symptoms.get_group(key)
            observed = rows[rows["present"]]
            payload["hpo_observed"] = observed["hpo_id"].tolist()
            payload["hpo_excluded"] = rows.loc[~rows["present"], "hpo_id"].tolist()
            is_fever_row = observed["hpo_id"] == schema.FEVER_HPO
            fever = observed.loc[is_fever_row, "severity"].dropna()
            pain += observed.loc[~is_fever_row, "severity"].dropna().tolist()
            duration = observed["duration_days"].dropna()
            if len(fever):
                payload["fever_score"] = float(fever.max())
            if len(duration):
                payload["symptom_duration_days"] = float(duration.max())
        if pain:
            payload["pain_score"] = max(pain)
        payloads.append(payload)
    return payloads


def published_case_payloads(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `PublishedCase` JSON of flattened published-case records (`cases-dev.jsonl.gz`), in their order."""
    return [
        {"sex": r["sex"], "age": r["age"], "hpo_observed": r["observed"], "hpo_excluded": r["excluded"]}
        for r in records
    ]


def phenopacket_document(record: Mapping[str, Any]) -> dict[str, Any]:
    """The GA4GH phenopacket v2 JSON a flattened published-case record comes from: observed then excluded
    phenotypic features, the subject's sex and age (ISO 8601) when the record has them."""
    features: list[dict[str, Any]] = [{"type": {"id": h}} for h in record["observed"]]
    features += [{"type": {"id": h}, "excluded": True} for h in record["excluded"]]
    subject: dict[str, Any] = {"id": "subject"}
    if record.get("sex"):
        subject["sex"] = record["sex"]
    if record.get("age"):
        subject["timeAtLastEncounter"] = {"age": {"iso8601duration": record["age"]}}
    return {
        "id": record["id"],
        "subject": subject,
        "phenotypicFeatures": features,
        "metaData": {
            "created": "2025-01-01T00:00:00Z",
            "createdBy": "rare-triage tests",
            "phenopacketSchemaVersion": "2.0",
        },
    }


def assert_same_matrix(served: np.ndarray, platform: np.ndarray, columns: list[str]) -> None:
    """Equal cell for cell, NaN where NaN; else the differing columns with their first rows."""
    assert served.dtype == platform.dtype == np.float32
    assert served.shape == platform.shape
    differ = ~((served == platform) | (np.isnan(served) & np.isnan(platform)))
    report = {
        columns[j]: [(int(i), float(served[i, j]), float(platform[i, j])) for i in np.flatnonzero(differ[:, j])[:3]]
        for j in np.flatnonzero(differ.any(axis=0))
    }
    assert not report, f"served != platform (row, served, platform): {report}"
