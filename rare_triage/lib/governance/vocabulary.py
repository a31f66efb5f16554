"""The closed vocabularies of lib/schema.py applied to raw columns: membership and the published form.

Per column, what happens to a value outside its vocabulary:
- patients.sex, encounters.centre_level, encounters.consultation_type, vitals.loinc_code, vitals.unit,
  symptoms.hpo_id, diagnoses.code_system, diagnoses.code, comorbidities.icd10_code: the row is quarantined
  (validation.py; codes against the reference lists of the release).
- encounters.centre_id, encounters.region: published as ``schema.OTHER_CATEGORY`` ("other"), the encounter is kept.
  Regions match case- and spacing-insensitively and are published in the spelling of ``schema.REGIONS``.
"""

import re
from collections.abc import Callable
from typing import Final

import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.governance.distinct import fold, map_distinct, membership, test_distinct
from rare_triage.lib.reference.icd10 import is_icd10_code

_CENTRE_ID = re.compile(schema.CENTRE_ID_PATTERN)


_REGION_OF_FOLDED: Final = {fold(region): region for region in schema.REGIONS}


def canonical_region(value: object) -> str | None:
    """The vocabulary spelling of a region, or None when it is not one."""
    return _REGION_OF_FOLDED.get(fold(value)) if isinstance(value, str) else None


def is_centre_id(value: object) -> bool:
    """A centre registry code (C01 ... C999)."""
    return isinstance(value, str) and _CENTRE_ID.fullmatch(value) is not None


def published_regions(values: pd.Series) -> pd.Series:
    """Regions in vocabulary spelling, OTHER_CATEGORY for anything else (missing stays missing)."""
    return map_distinct(values, lambda value: canonical_region(value) or schema.OTHER_CATEGORY)


def published_centres(values: pd.Series) -> pd.Series:
    """Centre registry codes as they are, OTHER_CATEGORY for anything else (missing stays missing)."""
    return map_distinct(values, lambda value: value if is_centre_id(value) else schema.OTHER_CATEGORY)


def in_vocabulary(values: pd.Series, test: Callable[[str], object]) -> pd.Series:
    """Whether each value is a string accepted by ``test`` (its column's vocabulary), once per distinct value."""
    return test_distinct(values, lambda value: isinstance(value, str) and test(value), default=False)


VocabularyTests = dict[tuple[str, str], Callable[[str], object]]
ORPHA_CODE: Final = re.compile(r"ORPHA:(\d+)")  # the syntax of an Orphanet code
# Columns published as OTHER_CATEGORY outside their vocabulary (every other vocabulary column quarantines).
OPEN_VOCABULARY_TESTS: Final[VocabularyTests] = {
    (schema.RAW_ENCOUNTERS, "centre_id"): is_centre_id,
    (schema.RAW_ENCOUNTERS, "region"): canonical_region,
}


def raw_vocabulary_tests(
    known_icd10: Callable[[str], bool] | frozenset[str],
    known_orpha: frozenset[int],
    known_hpo: Callable[[str], bool] | frozenset[str],
) -> VocabularyTests:
    """(raw table, column) -> membership test of the column's closed vocabulary, for every text column."""
    in_icd10 = membership(known_icd10)

    def is_icd10(code: str) -> bool:
        return is_icd10_code(code) and bool(in_icd10(code))

    def is_diagnosis_code(code: str) -> bool:
        match = ORPHA_CODE.fullmatch(code)
        return is_icd10(code) or (match is not None and int(match.group(1)) in known_orpha)

    is_hpo = membership(known_hpo)
    loinc = frozenset({*schema.VITAL_LOINC, schema.SPO2_ALT_LOINC})
    return {
        (schema.RAW_PATIENTS, "sex"): frozenset(schema.SEXES).__contains__,
        **OPEN_VOCABULARY_TESTS,
        (schema.RAW_ENCOUNTERS, "centre_level"): frozenset(schema.CENTRE_LEVELS).__contains__,
        (schema.RAW_ENCOUNTERS, "consultation_type"): frozenset(schema.CONSULTATION_TYPES).__contains__,
        (schema.RAW_VITALS, "loinc_code"): loinc.__contains__,
        (schema.RAW_VITALS, "unit"): frozenset(schema.VITAL_UNITS).__contains__,
        (schema.RAW_SYMPTOMS, "hpo_id"): is_hpo,
        (schema.RAW_DIAGNOSES, "code_system"): frozenset(schema.CODE_SYSTEMS).__contains__,
        (schema.RAW_DIAGNOSES, "code"): is_diagnosis_code,
        (schema.RAW_COMORBIDITIES, "icd10_code"): is_icd10,
    }
