"""Table contracts shared by every source, the governance step and the feature SQL.

Column names here are the contract between the sources (synthetic, landing zone,
FHIR), anonymization and the features. A source returns a ``dict[str, DataFrame]``
keyed by the ``RAW_*`` table names with exactly the columns listed.
"""

from typing import Final

# ---- raw extract (identifiers present, as a hospital extract has them) ----
RAW_PATIENTS: Final = "patients"
RAW_ENCOUNTERS: Final = "encounters"
RAW_VITALS: Final = "vitals"
RAW_SYMPTOMS: Final = "symptoms"
RAW_DIAGNOSES: Final = "diagnoses"
RAW_COMORBIDITIES: Final = "comorbidities"
RAW_TABLES: Final = (RAW_PATIENTS, RAW_ENCOUNTERS, RAW_VITALS, RAW_SYMPTOMS, RAW_DIAGNOSES, RAW_COMORBIDITIES)
RAW_CHILD_TABLES: Final = (RAW_VITALS, RAW_SYMPTOMS, RAW_DIAGNOSES, RAW_COMORBIDITIES)  # rows keyed by encounter_id

RAW_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    # one row per patient seen in the partition
    RAW_PATIENTS: (
        "patient_id",  # source-system key (str)
        "mrn",  # medical record number (str)
        "national_id",  # (str)
        "given_name",
        "family_name",
        "phone",
        "email",
        "street_address",
        "city",
        "zip_code",  # 5-digit (str)
        "birth_date",  # datetime64[ns] (date of birth)
        "sex",  # "F" | "M" | "U"
    ),
    # one row per encounter
    RAW_ENCOUNTERS: (
        "encounter_id",  # source-system key (str)
        "patient_id",
        "encounter_date",  # datetime64[ns], the day of the encounter (== partition day)
        "centre_id",  # str, e.g. "C01"
        "centre_level",  # "primary" | "secondary" | "tertiary"
        "region",  # str, first-level administrative region of the centre
        "consultation_type",  # see CONSULTATION_TYPES
        "prior_visits_365d",  # nullable Int64: visits in the 365 days before, as the source counts them (NA: unknown)
    ),
    # long format, LOINC-coded; one row per measured vital sign
    RAW_VITALS: (
        "encounter_id",
        "loinc_code",  # see VITAL_LOINC
        "value",  # float64
        "unit",  # UCUM: "Cel", "/min", "%", "mm[Hg]"
    ),
    # long format, HPO-coded; one row per symptom asked about or recorded
    RAW_SYMPTOMS: (
        "encounter_id",
        "hpo_id",  # "HP:0001945"
        "present",  # bool: True observed, False explicitly absent
        "severity",  # float64 0-10 or NaN; fever score on the Fever row, pain score on pain rows
        "duration_days",  # float64 days since onset or NaN
    ),
    RAW_DIAGNOSES: (
        "encounter_id",
        "code_system",  # "ICD10" | "ORPHA"
        "code",  # "J18.9" | "ORPHA:558" (ORPHA codes carry the prefix)
        "rank",  # int, 1 = primary diagnosis of the encounter
    ),
    # active problem list recorded at the encounter
    RAW_COMORBIDITIES: (
        "encounter_id",
        "icd10_code",
    ),
}

# Pandas dtype of every raw column (Arrow type in the lake: string, timestamp[ns], double, bool, int64), so a table
# keeps its types when empty or all-missing. Sources other than the synthetic generator are conformed to it.
RAW_STRING_DTYPE: Final = "string"  # pandas StringDtype: str or <NA>; an empty column is still Arrow string
_RAW_TYPED_COLUMNS: Final[dict[str, str]] = {
    "birth_date": "datetime64[ns]",
    "encounter_date": "datetime64[ns]",
    "prior_visits_365d": "Int64",
    "value": "float64",
    "present": "bool",
    "severity": "float64",
    "duration_days": "float64",
    "rank": "Int64",
}
RAW_DTYPES: Final[dict[str, dict[str, str]]] = {
    table: {column: _RAW_TYPED_COLUMNS.get(column, RAW_STRING_DTYPE) for column in columns}
    for table, columns in RAW_COLUMNS.items()
}

# The direct identifiers among these columns, and what governance does with each: see identifiers.py.

# ---- closed vocabularies: every categorical that can reach the anonymized tables and the model ----
# Governance (lib/governance/vocabulary.py) enforces them; what happens to a value outside each is written there:
# sex, centre level, consultation type, code system, LOINC code and unit, HPO / ICD-10 / ORPHA codes: the row is
# quarantined; centre_id and region: the value is published as OTHER_CATEGORY (an open world of sites and regions).
CENTRE_LEVELS: Final = ("primary", "secondary", "tertiary")
CONSULTATION_TYPES: Final = ("primary_care", "emergency", "outpatient_specialist", "inpatient", "telehealth")
SEXES: Final = ("F", "M", "U")
CODE_SYSTEMS: Final = ("ICD10", "ORPHA")
# Centre registry codes: "C" and 2 or 3 digits (C01 ... C999), as the synthetic source and the landing zone send them.
CENTRE_ID_PATTERN: Final = r"C\d{2,3}"
# First-level administrative regions of the countries served: Spain (autonomous communities and cities, the spelling
# of the synthetic source) and France (regions, as FHIR Organization.address.state carries them).
REGIONS_ES: Final = (
    "Andalucía", "Aragón", "Asturias", "Illes Balears", "Canarias", "Cantabria", "Castilla y León",
    "Castilla-La Mancha", "Cataluña", "Comunitat Valenciana", "Extremadura", "Galicia", "Madrid", "Murcia",
    "Navarra", "País Vasco", "La Rioja", "Ceuta", "Melilla",
)  # fmt: skip
REGIONS_FR: Final = (
    "Auvergne-Rhône-Alpes", "Bourgogne-Franche-Comté", "Bretagne", "Centre-Val de Loire", "Corse", "Grand Est",
    "Hauts-de-France", "Île-de-France", "Normandie", "Nouvelle-Aquitaine", "Occitanie", "Pays de la Loire",
    "Provence-Alpes-Côte d'Azur", "Guadeloupe", "Martinique", "Guyane", "La Réunion", "Mayotte",
)  # fmt: skip
REGIONS: Final = (*REGIONS_ES, *REGIONS_FR)
OTHER_CATEGORY: Final = "other"  # published centre_id / region when the source value is outside its vocabulary

# LOINC codes of the vital signs we read, with their feature name, unit and plausible range.
VITAL_LOINC: Final[dict[str, tuple[str, str, float, float]]] = {
    "8310-5": ("temperature_c", "Cel", 30.0, 45.0),
    "8867-4": ("heart_rate", "/min", 20.0, 250.0),
    "9279-1": ("respiratory_rate", "/min", 4.0, 80.0),
    "59408-5": ("spo2", "%", 50.0, 100.0),
    "8480-6": ("systolic_bp", "mm[Hg]", 50.0, 260.0),
    "8462-4": ("diastolic_bp", "mm[Hg]", 20.0, 160.0),
}
SPO2_ALT_LOINC: Final = "2708-6"  # also accepted for SpO2 (read as 59408-5)
VITAL_UNITS: Final = tuple(sorted({spec[1] for spec in VITAL_LOINC.values()}))  # UCUM units of VITAL_LOINC
PAIN_SCORE_LOINC: Final = "72514-3"

FEVER_HPO: Final = "HP:0001945"
PAIN_HPO: Final = "HP:0012531"  # "Pain": any present term rolling up to it carries the pain score
PHENOTYPIC_ABNORMALITY_HPO: Final = "HP:0000118"

# ---- anonymized tables (output of governance; no direct identifier) ----
ANON_ENCOUNTERS: Final = "encounters"
ANON_VITALS: Final = "vitals"
ANON_SYMPTOMS: Final = "symptoms"
ANON_DIAGNOSES: Final = "diagnoses"
ANON_COMORBIDITIES: Final = "comorbidities"
ANON_TABLES: Final = (ANON_ENCOUNTERS, ANON_VITALS, ANON_SYMPTOMS, ANON_DIAGNOSES, ANON_COMORBIDITIES)
ANON_CHILD_TABLES: Final = (ANON_VITALS, ANON_SYMPTOMS, ANON_DIAGNOSES, ANON_COMORBIDITIES)  # keyed by encounter_key

ANON_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    ANON_ENCOUNTERS: (
        "encounter_key",  # HMAC-SHA256 of the source encounter_id (hex, 32 chars)
        "patient_key",  # HMAC-SHA256 of the source patient_id (hex, 32 chars)
        "partition_day",  # str "YYYY-MM-DD": the extract partition, the only date element kept
        "encounter_year",  # int
        "age_years",  # int, age at the encounter, top-coded at 90
        "age_band",  # "0-9", "10-19", ..., "80-89", "90+" (or "*" where k-anonymity suppressed it)
        "sex",  # "F" | "M" | "U"
        "centre_id",
        "centre_level",
        "region",  # (or "*" where k-anonymity suppressed it)
        "zip3",  # first 3 ZIP digits, "000" where the 3-digit area is too small
        "consultation_type",
        "prior_visits_365d",  # int, visits of the same patient key in the 365 days before (0 when unknown)
    ),
    ANON_VITALS: ("encounter_key", "loinc_code", "value", "unit"),
    ANON_SYMPTOMS: ("encounter_key", "hpo_id", "present", "severity", "duration_days"),
    ANON_DIAGNOSES: ("encounter_key", "code_system", "code", "rank"),
    ANON_COMORBIDITIES: ("encounter_key", "icd10_code"),
}

# Rows left out of the raw tables at ingest (lib/ingest/raw_contract.py REJECT_COLUMNS), stored beside them.
RAW_REJECTS: Final = "rejects"

# Columns of quarantined_records
QUARANTINE_COLUMNS: Final = (
    "partition_day",
    "table",  # raw table the row came from
    "row_ref",  # HMAC of the row's source key (never the key itself)
    "field",  # the offending field
    "reason",  # a readable reason naming the field and the problem
    "row_json",  # the row with direct identifiers removed, as JSON
)

# ---- features ----
LABELS: Final = ("none", "common_mild", "common_acute", "common_chronic", "orphan")
ORPHAN_LABEL: Final = "orphan"
AGE_BANDS: Final = ("0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90+")
AGE_TOP_CODE: Final = 90

FEATURE_KEY_COLUMNS: Final = ("encounter_key", "patient_key", "partition_day")
FEATURE_CATEGORICAL_COLUMNS: Final = ("sex", "age_band", "centre_id", "centre_level", "region", "consultation_type")
# phenotype specificity of the present terms (see features.py and SPECIFIC_TERM_IC)
SPECIFICITY_COLUMNS: Final = ("n_present_terms", "n_specific_terms", "phenotype_ic_max", "phenotype_ic_sum")
FEATURE_NUMERIC_COLUMNS: Final = (
    "age_years",
    "temperature_c",
    "heart_rate",
    "respiratory_rate",
    "spo2",
    "systolic_bp",
    "diastolic_bp",
    "fever_score",
    "pain_score",
    "symptom_duration_days",
    "comorbidity_count",
    "prior_visits_365d",
    "n_systems_involved",
    *SPECIFICITY_COLUMNS,
)
# A present term is "specific" when at most e^-4 (1.8%) of the ORPHA diseases are annotated with it or below it.
SPECIFIC_TERM_IC: Final = 4.0
LABEL_COLUMN: Final = "label"


# Feature-column prefixes of the phenotype flags: vocabulary terms and organ-system groups.
VOCABULARY_PREFIX: Final = "hpo_"
SYSTEM_PREFIX: Final = "sys_"
PHENOTYPE_PREFIXES: Final = (VOCABULARY_PREFIX, SYSTEM_PREFIX)


def hpo_feature_name(hpo_id: str) -> str:
    """Feature column of a vocabulary term: HP:0001945 -> hpo_0001945."""
    return VOCABULARY_PREFIX + hpo_id.split(":", 1)[1]


def system_feature_name(hpo_id: str) -> str:
    """Feature column of an organ-system group under HP:0000118: HP:0000707 -> sys_0000707."""
    return SYSTEM_PREFIX + hpo_id.split(":", 1)[1]
