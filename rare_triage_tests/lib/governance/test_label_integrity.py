"""Governance never changes a label: a bad diagnosis row holds its encounter back, any real code is accepted."""

import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.features.build import build_encounter_features
from rare_triage.lib.governance.anonymize import Pseudonymizer
from rare_triage.lib.governance.govern import GovernanceCodes, govern_extract, known_orpha_codes
from rare_triage.lib.governance.validation import LABEL_HELD_BACK
from rare_triage.lib.reference.loaders import icd10_acuity_lookup, load_orphanet_epidemiology
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage_tests.helpers.governance_extract import PARTITION_DAY, TEST_KEY, raw_extract

PSEUDONYMIZE = Pseudonymizer(TEST_KEY)


def hpo_only_orpha_code(reference_tables: ReferenceTables) -> int:
    """An ORPHA disease of HPO's annotations missing from the 2021 Orphanet epidemiology list."""
    epidemiology = set(load_orphanet_epidemiology()["orpha_code"])
    return min(set(reference_tables.orpha_diseases["orpha_code"]) - epidemiology)


def codes(reference_tables: ReferenceTables, orpha: frozenset[int]) -> GovernanceCodes:
    hpo = frozenset(reference_tables.hpo_terms["hpo_id"])
    return GovernanceCodes(icd10=icd10_acuity_lookup().__contains__, orpha=orpha, hpo=hpo)


def labels(raw: dict[str, pd.DataFrame], codes: GovernanceCodes, reference_tables: ReferenceTables) -> dict:
    """Raw encounter id -> label after governance and features (k = 1: three encounters only)."""
    result = govern_extract(raw, partition_day=PARTITION_DAY, pseudonymizer=PSEUDONYMIZE, codes=codes, k=1)
    features = build_encounter_features(
        result.anonymized, icd10_acuity=icd10_acuity_lookup(), **reference_tables.feature_encoding()
    )
    raw_id = {PSEUDONYMIZE(e): e for e in raw[schema.RAW_ENCOUNTERS]["encounter_id"]}
    return {raw_id[k]: label for k, label in zip(features["encounter_key"], features["label"], strict=True)}


def with_diagnosis_code(encounter_id: str, code_system: str, code: str) -> dict[str, pd.DataFrame]:
    """The helper extract with the first diagnosis of ``encounter_id`` recoded."""
    raw = raw_extract()
    diagnoses = raw[schema.RAW_DIAGNOSES]
    row = diagnoses.index[diagnoses["encounter_id"].eq(encounter_id)][0]
    diagnoses.loc[row, ["code_system", "code"]] = [code_system, code]
    return raw


def test_the_clean_extract_keeps_its_labels(reference_tables: ReferenceTables) -> None:
    orpha = known_orpha_codes(reference_tables.orpha_diseases["orpha_code"], [558])
    assert labels(raw_extract(), codes(reference_tables, orpha), reference_tables) == {
        "E-9001": "common_acute",
        "E-9002": "common_chronic",
        "E-9003": "orphan",
    }


def test_an_unknown_orpha_code_holds_the_orphan_encounter_back_instead_of_relabelling_it(
    reference_tables: ReferenceTables,
) -> None:
    """Issue 9, item 13: E-9003 (ORPHA + J06.9) used to come out common_acute with every check green."""
    code = hpo_only_orpha_code(reference_tables)
    raw = with_diagnosis_code("E-9003", "ORPHA", f"ORPHA:{code}")
    epidemiology_only = known_orpha_codes(load_orphanet_epidemiology()["orpha_code"])
    result = govern_extract(
        raw, partition_day=PARTITION_DAY, pseudonymizer=PSEUDONYMIZE, codes=codes(reference_tables, epidemiology_only)
    )
    q = result.quarantined
    encounter_reasons = q.loc[q["table"] == schema.RAW_ENCOUNTERS, "reason"].tolist()
    assert f"encounters.encounter_id: {LABEL_HELD_BACK} (row 2)" in encounter_reasons
    assert labels(raw, codes(reference_tables, epidemiology_only), reference_tables) == {
        "E-9001": "common_acute",
        "E-9002": "common_chronic",
    }
    assert str(code) not in " ".join(q["reason"])


def test_an_orpha_code_known_to_hpo_only_means_orphan(reference_tables: ReferenceTables) -> None:
    code = hpo_only_orpha_code(reference_tables)
    raw = with_diagnosis_code("E-9003", "ORPHA", f"ORPHA:{code}")
    orpha = known_orpha_codes(reference_tables.orpha_diseases["orpha_code"], load_orphanet_epidemiology()["orpha_code"])
    assert labels(raw, codes(reference_tables, orpha), reference_tables)["E-9003"] == "orphan"


@pytest.mark.parametrize(
    ("code", "label"),
    [("S72.001A", "common_acute"), ("E78.5", "common_chronic"), ("R51.9", "common_mild"), ("Z00.00", "none")],
)
def test_any_icd10_cm_code_is_accepted_and_labelled_by_its_block(
    reference_tables: ReferenceTables, code: str, label: str
) -> None:
    raw = with_diagnosis_code("E-9001", "ICD10", code)
    raw[schema.RAW_COMORBIDITIES].loc[0, "icd10_code"] = "Z87.891"  # history of nicotine dependence
    result = govern_extract(
        raw,
        partition_day=PARTITION_DAY,
        pseudonymizer=PSEUDONYMIZE,
        codes=codes(reference_tables, frozenset({558})),
        k=1,
    )
    assert result.quarantined.empty
    assert labels(raw, codes(reference_tables, frozenset({558})), reference_tables)["E-9001"] == label


def test_a_snomed_diagnosis_stays_quarantined_and_holds_its_encounter_back(reference_tables: ReferenceTables) -> None:
    raw = with_diagnosis_code("E-9001", "SNOMED", "38341003")
    assert "E-9001" not in labels(raw, codes(reference_tables, frozenset({558})), reference_tables)


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        (([558, 778], [778, 1]), {1, 558, 778}),
        ((pd.Series([558], dtype="int64"), ["80"]), {80, 558}),
        ((), set()),
    ],
)
def test_known_orpha_codes_is_the_union_as_integers(sources: tuple, expected: set[int]) -> None:
    assert known_orpha_codes(*sources) == expected
