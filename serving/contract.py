"""The service's input contract: one encounter as an HCE integrator sends it, and one published case report.

Field names are the platform's raw / anonymized column names where one exists (`rare_triage.lib.schema`); every
field is optional. A value the platform would never let through its governance step (a vital outside its plausible
range, a systolic pressure below the diastolic one, a code outside a closed vocabulary, a malformed HPO id) is a
validation error naming the field (`msgspec.ValidationError`, "... - at `$.field`"), never a silent guess.

What a missing field becomes is the platform's encoding of that absence (see `serving.encoding`): NaN for a
measurement, the column's `missing_code` for a categorical, 0 for `comorbidity_count` and `prior_visits_365d`
(the platform counts no comorbidity row, and an unknown visit count, as none).

Closed and open vocabularies, as the platform's governance applies them (`rare_triage/lib/governance/vocabulary.py`):
- `sex`, `centre_level`, `consultation_type`: closed; any other value is a validation error (the platform
  quarantines the row).
- `centre_id`, `region`: open; a value outside the vocabulary (a centre id not shaped `C` + 2-3 digits, a region
  not among `REGIONS` once case, width and spacing are folded) is encoded as `OTHER_CATEGORY`, as the platform
  publishes it.
- Any published value that is not among the model's categories (manifest `input_schema`) gets the manifest's
  `unknown_code`: the model's one-hot encoder ignores it. The encoder reports those columns.

The vocabularies below copy `rare_triage.lib.schema` (serving imports nothing of the platform); the platform's
skew test (`rare_triage_tests/integration/test_serving_skew.py`) fails when they drift apart.
"""

from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

# ---- vocabularies (copies of rare_triage.lib.schema) ----
SEXES: Final = ("F", "M", "U")
CENTRE_LEVELS: Final = ("primary", "secondary", "tertiary")
CONSULTATION_TYPES: Final = ("primary_care", "emergency", "outpatient_specialist", "inpatient", "telehealth")
CENTRE_ID_PATTERN: Final = r"C\d{2,3}"
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
OTHER_CATEGORY: Final = "other"
AGE_BANDS: Final = ("0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90+")
AGE_TOP_CODE: Final = 90
# Published case reports (GA4GH phenopackets) code sex this way; the platform reads MALE/FEMALE as M/F and
# UNKNOWN_SEX, OTHER_SEX or no sex as U.
PHENOPACKET_SEX: Final = {"MALE": "M", "FEMALE": "F", "UNKNOWN_SEX": "U", "OTHER_SEX": "U"}

# ---- limits (the platform's validation rules, rare_triage/lib/governance/validation.py) ----
MAX_AGE_YEARS: Final = 120  # older is quarantined
SEVERITY_RANGE: Final = (0.0, 10.0)  # fever and pain scores
MAX_SYMPTOM_DURATION_DAYS: Final = 43_830.0  # 120 years: no symptom is older than the oldest patient
MAX_PRIOR_VISITS: Final = 10_000  # a sanity bound far above any real yearly count
MAX_COMORBIDITIES: Final = 1_000
MAX_HPO_TERMS: Final = 256  # per list; published cases list up to 174 excluded terms
MAX_TEXT_LENGTH: Final = 100
# An HPO id, as the platform's fullmatch of r"HP:\d{7}": the look-ahead keeps `$` from accepting a trailing newline.
HPO_ID_PATTERN: Final = r"^HP:\d{7}(?!\n)$"
# ISO 8601 duration of the platform's phenopacket loader (years, months, weeks, days), at least one number.
ISO8601_AGE_PATTERN: Final = (
    r"^P(?=\d)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?!\n)$"
)

Sex = Literal["F", "M", "U"]
CentreLevel = Literal["primary", "secondary", "tertiary"]
ConsultationType = Literal["primary_care", "emergency", "outpatient_specialist", "inpatient", "telehealth"]
PhenopacketSex = Literal["MALE", "FEMALE", "UNKNOWN_SEX", "OTHER_SEX", "F", "M", "U"]
# Litestar's OpenAPI generation drops a bound of 0 and the constraints of list items: both are restated for the schema
# (`extra_json_schema["extra"]` reaches the OpenAPI field as it is), so the documented contract is the enforced one.
MINIMUM_ZERO: Final = {"extra": {"minimum": 0}}
HpoId = Annotated[str, Meta(pattern=HPO_ID_PATTERN, description="HPO term id, e.g. HP:0001945")]
HpoIds = Annotated[
    list[HpoId],
    Meta(
        max_length=MAX_HPO_TERMS,
        extra_json_schema={"extra": {"items": {"type": "string", "pattern": HPO_ID_PATTERN}}},
    ),
]
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_LENGTH)]
PATIENT_ID_DESCRIPTION: Final = (
    "the hospital's patient identifier; never stored: only its keyed pseudonym is logged, to join later diagnoses "
    "for realized-performance monitoring"
)
PatientId = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_LENGTH, description=PATIENT_ID_DESCRIPTION)]
Score = Annotated[float, Meta(ge=SEVERITY_RANGE[0], le=SEVERITY_RANGE[1], extra_json_schema=MINIMUM_ZERO)]
# Vital signs: the plausible ranges of schema.VITAL_LOINC (outside, the platform quarantines the reading).
AgeYears = Annotated[
    float, Meta(ge=0, le=MAX_AGE_YEARS, description="completed years (floored)", extra_json_schema=MINIMUM_ZERO)
]
DurationDays = Annotated[float, Meta(ge=0, le=MAX_SYMPTOM_DURATION_DAYS, extra_json_schema=MINIMUM_ZERO)]
PriorVisits = Annotated[int, Meta(ge=0, le=MAX_PRIOR_VISITS, extra_json_schema=MINIMUM_ZERO)]
ComorbidityCount = Annotated[int, Meta(ge=0, le=MAX_COMORBIDITIES, extra_json_schema=MINIMUM_ZERO)]
TemperatureC = Annotated[float, Meta(ge=30.0, le=45.0, description="body temperature, Cel")]
HeartRate = Annotated[float, Meta(ge=20.0, le=250.0, description="heart rate, /min")]
RespiratoryRate = Annotated[float, Meta(ge=4.0, le=80.0, description="respiratory rate, /min")]
Spo2 = Annotated[float, Meta(ge=50.0, le=100.0, description="oxygen saturation, %")]
SystolicBp = Annotated[float, Meta(ge=50.0, le=260.0, description="systolic blood pressure, mm[Hg]")]
DiastolicBp = Annotated[float, Meta(ge=20.0, le=160.0, description="diastolic blood pressure, mm[Hg]")]


class Encounter(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True, omit_defaults=True):
    """One encounter. Vitals: one value each (several measurements: their mean, as the platform takes).

    `fever_score`: the severity recorded on the fever finding; the platform reads it only when a fever term (Fever,
    HP:0001945, or a term under it) is among `hpo_observed`, so without one it is dropped (and reported).
    `pain_score`: the highest pain severity (pain findings or the pain-score vital, LOINC 72514-3), taken as is.
    `symptom_duration_days`: days since the onset of the oldest observed finding; dropped (and reported) when
    `hpo_observed` holds no term of the HPO release, as the platform reads durations on observed findings only.
    `patient_id`: no model input; logged only as its keyed pseudonym `patient_key` (`serving.pseudonym`), dropped
    (and reported) when the service has no pseudonymization key.
    """

    patient_id: PatientId | None = None
    sex: Sex | None = None
    age_years: AgeYears | None = None
    centre_id: Text | None = None
    centre_level: CentreLevel | None = None
    region: Text | None = None
    consultation_type: ConsultationType | None = None
    temperature_c: TemperatureC | None = None
    heart_rate: HeartRate | None = None
    respiratory_rate: RespiratoryRate | None = None
    spo2: Spo2 | None = None
    systolic_bp: SystolicBp | None = None
    diastolic_bp: DiastolicBp | None = None
    fever_score: Score | None = None
    pain_score: Score | None = None
    symptom_duration_days: DurationDays | None = None
    prior_visits_365d: PriorVisits | None = None
    comorbidity_count: ComorbidityCount | None = None
    hpo_observed: HpoIds = msgspec.field(default_factory=list)
    hpo_excluded: HpoIds = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.systolic_bp is not None and self.diastolic_bp is not None and self.systolic_bp < self.diastolic_bp:
            # the platform quarantines both readings
            raise ValueError("systolic_bp: below diastolic_bp in the same encounter")


class PublishedCase(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True, omit_defaults=True):
    """A published rare-disease case report (GA4GH phenopacket subset): phenotype, age and sex only.

    `age` is the ISO 8601 duration of a phenopacket (`P6Y`, `P3M`, `P1Y6M`, `P2W`, `P10D`); missing stays missing.
    """

    sex: PhenopacketSex | None = None
    age: Annotated[str, Meta(pattern=ISO8601_AGE_PATTERN, max_length=32)] | None = None
    hpo_observed: HpoIds = msgspec.field(default_factory=list)
    hpo_excluded: HpoIds = msgspec.field(default_factory=list)
