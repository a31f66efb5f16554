"""Pandera contracts of the governance outputs: the anonymized tables and quarantined_records.

They check what anonymization promises (exact columns, 32-hex pseudonyms, ages 0-90,
Safe-Harbor ZIP3, k-anonymity's "*") so a bad output fails before it is stored.
"""

import json
from collections.abc import Mapping

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from rare_triage.lib import schema
from rare_triage.lib.identifiers import IDENTIFIER_COLUMNS

PSEUDONYM_PATTERN = r"^[0-9a-f]{32}$"
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
SUPPRESSED = "*"  # value of a quasi-identifier suppressed by k-anonymity
_BAND_OF_DECADE = dict(enumerate(schema.AGE_BANDS))


class AnonEncounters(pa.DataFrameModel):
    """One row per encounter; age_years is NA exactly where k-anonymity suppressed age_band."""

    encounter_key: Series[str] = pa.Field(str_matches=PSEUDONYM_PATTERN, unique=True)
    patient_key: Series[str] = pa.Field(str_matches=PSEUDONYM_PATTERN)
    partition_day: Series[str] = pa.Field(str_matches=DAY_PATTERN)
    encounter_year: Series[int] = pa.Field(ge=1900, le=2100)
    age_years: Series[pd.Int64Dtype] = pa.Field(ge=0, le=schema.AGE_TOP_CODE, nullable=True)
    age_band: Series[str] = pa.Field(isin=[*schema.AGE_BANDS, SUPPRESSED])
    sex: Series[str] = pa.Field(isin=[*schema.SEXES, SUPPRESSED])
    centre_id: Series[str] = pa.Field(str_matches=rf"^(?:{schema.CENTRE_ID_PATTERN}|{schema.OTHER_CATEGORY}|\*)$")
    centre_level: Series[str] = pa.Field(isin=[*schema.CENTRE_LEVELS, SUPPRESSED])
    region: Series[str] = pa.Field(isin=[*schema.REGIONS, schema.OTHER_CATEGORY, SUPPRESSED])
    zip3: Series[str] = pa.Field(str_matches=r"^\d{3}$")
    consultation_type: Series[str] = pa.Field(isin=list(schema.CONSULTATION_TYPES))
    prior_visits_365d: Series[int] = pa.Field(ge=0)

    class Config:
        name = "anonymized encounters"
        strict = True
        ordered = True

    @pa.dataframe_check(error="age_band must be the band of age_years, or '*' with age_years missing")
    def age_band_matches_age(cls, df: pd.DataFrame) -> Series[bool]:
        decade = (df["age_years"] // 10).clip(upper=len(schema.AGE_BANDS) - 1)
        expected = decade.map(_BAND_OF_DECADE).astype(object).where(df["age_years"].notna(), SUPPRESSED)
        return df["age_band"].eq(expected)

    @pa.dataframe_check(error="encounter_year must be the year of partition_day")
    def year_matches_partition(cls, df: pd.DataFrame) -> Series[bool]:
        return df["partition_day"].str[:4].eq(df["encounter_year"].astype(str))


class AnonVitals(pa.DataFrameModel):
    """Vital signs, LOINC-coded (SpO2 as 59408-5), in the unit and plausible range of their code."""

    encounter_key: Series[str] = pa.Field(str_matches=PSEUDONYM_PATTERN)
    loinc_code: Series[str] = pa.Field(isin=list(schema.VITAL_LOINC))
    value: Series[float]
    unit: Series[str]

    class Config:
        name = "anonymized vitals"
        strict = True
        ordered = True

    @pa.dataframe_check(error="unit and value must match the unit and plausible range of the LOINC code")
    def unit_and_range(cls, df: pd.DataFrame) -> Series[bool]:
        spec = pd.DataFrame.from_dict(schema.VITAL_LOINC, orient="index", columns=["name", "unit", "low", "high"])
        code = df["loinc_code"]
        in_range = df["value"].between(code.map(spec["low"]), code.map(spec["high"]))
        return df["unit"].eq(code.map(spec["unit"])) & in_range


class AnonSymptoms(pa.DataFrameModel):
    """Symptoms, HPO-coded, present or explicitly absent."""

    encounter_key: Series[str] = pa.Field(str_matches=PSEUDONYM_PATTERN)
    hpo_id: Series[str] = pa.Field(str_matches=r"^HP:\d{7}$")
    present: Series[bool]
    severity: Series[float] = pa.Field(ge=0, le=10, nullable=True)
    duration_days: Series[float] = pa.Field(ge=0, nullable=True)

    class Config:
        name = "anonymized symptoms"
        strict = True
        ordered = True


class AnonDiagnoses(pa.DataFrameModel):
    """Diagnoses, ICD-10 or ORPHA (with its prefix), ranked from 1."""

    encounter_key: Series[str] = pa.Field(str_matches=PSEUDONYM_PATTERN)
    code_system: Series[str] = pa.Field(isin=list(schema.CODE_SYSTEMS))
    code: Series[str] = pa.Field(str_length={"min_value": 1})
    rank: Series[int] = pa.Field(ge=1)

    class Config:
        name = "anonymized diagnoses"
        strict = True
        ordered = True

    @pa.dataframe_check(error="an ORPHA code must read ORPHA:<number>")
    def orpha_prefix(cls, df: pd.DataFrame) -> Series[bool]:
        return df["code_system"].ne("ORPHA") | df["code"].str.fullmatch(r"ORPHA:\d+")


class AnonComorbidities(pa.DataFrameModel):
    """Active problem list, ICD-10."""

    encounter_key: Series[str] = pa.Field(str_matches=PSEUDONYM_PATTERN)
    icd10_code: Series[str] = pa.Field(str_length={"min_value": 1})

    class Config:
        name = "anonymized comorbidities"
        strict = True
        ordered = True


class QuarantinedRecords(pa.DataFrameModel):
    """Rejected rows: a pseudonymous reference, the field, a readable reason, the row without identifiers."""

    partition_day: Series[str] = pa.Field(str_matches=DAY_PATTERN)
    table: Series[str] = pa.Field(isin=list(schema.RAW_TABLES))
    row_ref: Series[str] = pa.Field(str_matches=PSEUDONYM_PATTERN)
    field: Series[str] = pa.Field(str_length={"min_value": 1})
    reason: Series[str] = pa.Field(str_length={"min_value": 1})
    row_json: Series[str]

    class Config:
        name = "quarantined_records"
        strict = True
        ordered = True

    @pa.check("row_json", element_wise=True, error="row_json must be a JSON object without direct identifiers")
    def row_json_without_identifiers(cls, text: str) -> bool:
        try:
            row = json.loads(text)
        except (TypeError, ValueError):
            return False
        return isinstance(row, dict) and set(row).isdisjoint(IDENTIFIER_COLUMNS)


ANON_MODELS: dict[str, type[pa.DataFrameModel]] = {
    schema.ANON_ENCOUNTERS: AnonEncounters,
    schema.ANON_VITALS: AnonVitals,
    schema.ANON_SYMPTOMS: AnonSymptoms,
    schema.ANON_DIAGNOSES: AnonDiagnoses,
    schema.ANON_COMORBIDITIES: AnonComorbidities,
}


def validate_anonymized(tables: Mapping[str, pd.DataFrame]) -> None:
    """Validate every anonymized table (pandera SchemaErrors, all failures of the first bad table).

    Raises KeyError for a missing table and ValueError when a child row references an
    encounter_key that is not in the encounters table.
    """
    missing = [t for t in schema.ANON_TABLES if t not in tables]
    if missing:
        raise KeyError(f"anonymized tables missing: {missing}")
    for table, model in ANON_MODELS.items():
        model.validate(tables[table], lazy=True)
    encounter_keys = pd.Index(tables[schema.ANON_ENCOUNTERS]["encounter_key"])
    for table in schema.ANON_TABLES[1:]:
        orphans = int((encounter_keys.get_indexer(tables[table]["encounter_key"]) < 0).sum())
        if orphans:
            raise ValueError(f"{table}.encounter_key: {orphans} rows reference no anonymized encounter")


def validate_quarantine(quarantined: pd.DataFrame) -> None:
    """Validate quarantined_records (pandera SchemaErrors)."""
    QuarantinedRecords.validate(quarantined, lazy=True)


def typed_when_empty(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The anonymized tables, an empty one rebuilt with its contract dtypes (text as pandas "string"), so a day whose
    every row was quarantined stores typed Parquet columns, never null-typed ones that downstream joins reject."""
    typed = dict(tables)
    for table, model in ANON_MODELS.items():
        if table in typed and typed[table].empty:
            dtypes = {column: str(spec.dtype) for column, spec in model.to_schema().columns.items()}
            typed[table] = pd.DataFrame(
                {column: pd.Series(dtype="string" if dtype == "str" else dtype) for column, dtype in dtypes.items()}
            )
    return typed


def typed_quarantine_when_empty(quarantined: pd.DataFrame) -> pd.DataFrame:
    """quarantined_records, rebuilt with its contract dtypes when empty (a day without a quarantined row), so its
    Parquet columns are typed like any other day's, never null-typed."""
    if not quarantined.empty:
        return quarantined
    dtypes = {column: str(spec.dtype) for column, spec in QuarantinedRecords.to_schema().columns.items()}
    return pd.DataFrame(
        {column: pd.Series(dtype="string" if dtype == "str" else dtype) for column, dtype in dtypes.items()}
    )
