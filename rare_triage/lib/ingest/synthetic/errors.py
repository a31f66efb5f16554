"""Realistic source errors at a configurable rate, so validation has something to quarantine.

Kinds: an impossible vital value, an unknown code (HPO, ICD-10 or LOINC), a duplicated encounter row and a
missing key (patient_id of an encounter, encounter_id of a symptom row). ``error_rate=0`` leaves data clean.
"""

import numpy as np
import pandas as pd

from rare_triage.lib.schema import RAW_DIAGNOSES, RAW_ENCOUNTERS, RAW_SYMPTOMS, RAW_VITALS

ERROR_KINDS = ("impossible_vital", "unknown_code", "duplicate_encounter", "missing_key")
IMPOSSIBLE_VITALS = (
    ("8310-5", 60.0, "Cel"),
    ("8867-4", 400.0, "/min"),
    ("59408-5", 130.0, "%"),
    ("8480-6", 400.0, "mm[Hg]"),
)
UNKNOWN_HPO = "HP:9999999"
UNKNOWN_ICD10 = "ZZZ.9"
UNKNOWN_LOINC = "99999-9"
ERROR_LOG_COLUMNS = ("encounter_id", "kind", "table", "detail")


def _stacked(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one after the other, empty ones left out (their columns' dtypes would otherwise take part)."""
    kept = [f for f in frames if not f.empty]
    return pd.concat(kept, ignore_index=True) if kept else frames[0].iloc[0:0]


def _append(frame: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    if extra.empty:
        return frame
    return pd.concat([frame, extra[frame.columns].astype(frame.dtypes.to_dict())], ignore_index=True)


def _symptom_rows(encounter_ids: object, hpo_id: str) -> pd.DataFrame:
    ids = pd.Series(encounter_ids, dtype=object)
    return pd.DataFrame(
        {"encounter_id": ids, "hpo_id": hpo_id, "present": True, "severity": np.nan, "duration_days": np.nan}
    )


def inject_errors(
    tables: dict[str, pd.DataFrame], error_rate: float, rng: np.random.Generator
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Corrupt about ``error_rate`` of the encounters, one error each; returns the tables and a log of what was done.

    The encounters and vitals frames passed in are modified in place (the generator owns them).
    """
    tables = dict(tables)
    encounters = tables[RAW_ENCOUNTERS]
    vitals = tables[RAW_VITALS]
    count = int(rng.binomial(len(encounters), error_rate)) if len(encounters) else 0
    chosen = np.sort(rng.choice(len(encounters), size=count, replace=False))
    kinds = rng.integers(0, len(ERROR_KINDS), size=count)
    variants = rng.integers(0, 12, size=count)
    ids = encounters["encounter_id"].to_numpy()[chosen]
    logs = []

    vital_errors = kinds == 0
    spec = pd.DataFrame(
        [IMPOSSIBLE_VITALS[v % len(IMPOSSIBLE_VITALS)] for v in variants[vital_errors]],
        columns=["loinc_code", "value", "unit"],
    ).assign(encounter_id=ids[vital_errors])
    located = spec.merge(
        vitals[["encounter_id", "loinc_code"]].reset_index(names="position"),
        on=["encounter_id", "loinc_code"],
        how="left",
    ).drop_duplicates(["encounter_id", "loinc_code"])
    existing = located["position"].notna().to_numpy()
    vitals.loc[located.loc[existing, "position"].astype(np.int64).to_numpy(), "value"] = located.loc[
        existing, "value"
    ].to_numpy()
    new_vitals = [located.loc[~existing]]
    logs.append(pd.DataFrame({"encounter_id": spec["encounter_id"], "kind": "impossible_vital", "table": RAW_VITALS,
                              "detail": spec["loinc_code"] + "=" + spec["value"].astype(str)}))  # fmt: skip

    unknown = kinds == 1
    to_symptom, to_diagnosis = unknown & (variants % 3 == 0), unknown & (variants % 3 == 1)
    to_vital = unknown & (variants % 3 == 2)
    new_symptoms = [_symptom_rows(ids[to_symptom], UNKNOWN_HPO)]
    new_diagnoses = pd.DataFrame(
        {"encounter_id": ids[to_diagnosis], "code_system": "ICD10", "code": UNKNOWN_ICD10, "rank": 9}
    )
    new_vitals.append(
        pd.DataFrame({"encounter_id": ids[to_vital], "loinc_code": UNKNOWN_LOINC, "value": 1.0, "unit": "1"})
    )
    for mask, table, detail in ((to_symptom, RAW_SYMPTOMS, UNKNOWN_HPO), (to_diagnosis, RAW_DIAGNOSES, UNKNOWN_ICD10),
                                (to_vital, RAW_VITALS, UNKNOWN_LOINC)):  # fmt: skip
        logs.append(pd.DataFrame({"encounter_id": ids[mask], "kind": "unknown_code", "table": table, "detail": detail}))

    duplicate = kinds == 2
    new_encounters = encounters.iloc[chosen[duplicate]]
    logs.append(pd.DataFrame({"encounter_id": ids[duplicate], "kind": "duplicate_encounter", "table": RAW_ENCOUNTERS,
                              "detail": "duplicated row"}))  # fmt: skip

    missing = kinds == 3
    no_patient, no_encounter = missing & (variants % 2 == 0), missing & (variants % 2 == 1)
    encounters.loc[chosen[no_patient], "patient_id"] = None
    new_symptoms.append(_symptom_rows([None] * int(no_encounter.sum()), "HP:0012378"))
    logs.append(pd.DataFrame({"encounter_id": ids[no_patient], "kind": "missing_key", "table": RAW_ENCOUNTERS,
                              "detail": "patient_id"}))  # fmt: skip
    logs.append(pd.DataFrame({"encounter_id": ids[no_encounter], "kind": "missing_key", "table": RAW_SYMPTOMS,
                              "detail": "encounter_id"}))  # fmt: skip

    tables[RAW_VITALS] = _append(vitals, _stacked(new_vitals))
    tables[RAW_ENCOUNTERS] = _append(encounters, new_encounters)
    tables[RAW_SYMPTOMS] = _append(tables[RAW_SYMPTOMS], _stacked(new_symptoms))
    tables[RAW_DIAGNOSES] = _append(tables[RAW_DIAGNOSES], new_diagnoses)
    log = pd.concat(logs, ignore_index=True)[list(ERROR_LOG_COLUMNS)]
    return tables, log.sort_values("encounter_id", kind="stable", ignore_index=True)
