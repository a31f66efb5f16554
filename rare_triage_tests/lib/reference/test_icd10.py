"""ICD-10 syntax and acuity: the project's rule for its own codes, the chapter or block for any other code."""

import itertools
import string

import pytest

from rare_triage.lib.reference import loaders
from rare_triage.lib.reference.icd10 import ICD10_BLOCKS, Icd10Acuity, block_of, is_icd10_code

REAL_CODES = [
    "E11.9",  # type 2 diabetes
    "J18.9",  # pneumonia
    "I10",  # essential hypertension (no dot)
    "S72.001A",  # ICD-10-CM fracture of femur, initial encounter (7 characters)
    "T84.50XA",  # ICD-10-CM placeholder X
    "Z00.00",  # ICD-10-CM general examination
    "U07.1",  # COVID-19
    "F03",  # WHO dementia category
    "F03.90",  # ICD-10-CM dementia
    "A09",
    "M54.5",
]
NOT_CODES = [
    "ZZZ.9",  # the synthetic generator's unknown code
    "e11.9",  # lower case
    "E11.",  # dot without characters
    "E119",  # no dot
    "E1",
    "E11.12345",  # five characters after the dot
    "11.9",
    "E11 .9",
    " E11.9",
    "I1O",  # letter O for zero
    "233604007",  # a SNOMED CT code
    "ORPHA:558",
    "",
    None,
    11.9,
]


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_icd10_and_icd10_cm_codes_are_well_formed(code: str) -> None:
    assert is_icd10_code(code)


@pytest.mark.parametrize("value", NOT_CODES)
def test_other_values_are_not_icd10_codes(value: object) -> None:
    assert not is_icd10_code(value)


def test_every_category_a00_to_z99_falls_in_a_block() -> None:
    for letter, digits in itertools.product(string.ascii_uppercase, range(100)):
        block_of(f"{letter}{digits:02d}")


def test_blocks_are_ranges_and_no_block_is_hidden_by_an_earlier_one() -> None:
    for index, block in enumerate(ICD10_BLOCKS):
        assert is_icd10_code(block.first) and is_icd10_code(block.last) and block.first <= block.last
        assert block.acuity in (*loaders.ACUITIES, None)
        assert block.reason
        earlier = ICD10_BLOCKS[:index]
        assert not any(e.first <= block.first and block.last <= e.last for e in earlier), block


@pytest.mark.parametrize(
    ("code", "acuity"),
    [
        ("A41.9", "acute"),  # sepsis
        ("B18.2", "chronic"),  # chronic hepatitis C, before A00-B99
        ("C50.911", "chronic"),  # breast cancer
        ("D49.9", "chronic"),
        ("D64.9", "chronic"),  # anaemia
        ("E78.5", "chronic"),  # hyperlipidaemia
        ("F41.1", "chronic"),
        ("G03.9", "acute"),  # meningitis
        ("G40.9", "chronic"),  # epilepsy
        ("H10.9", "mild"),  # conjunctivitis
        ("H66.90", "acute"),  # otitis media
        ("I21.9", "acute"),  # myocardial infarction, before I00-I99
        ("I48.91", "chronic"),  # atrial fibrillation
        ("J06.9", "acute"),  # upper respiratory infection
        ("J44.1", "chronic"),  # COPD, J40-J47
        ("J47.9", "chronic"),  # bronchiectasis, last of J40-J47
        ("J39.9", "acute"),
        ("K35.80", "acute"),  # appendicitis
        ("K50.90", "chronic"),  # Crohn disease
        ("L30.9", "mild"),  # dermatitis
        ("M81.0", "chronic"),  # osteoporosis
        ("N18.3", "chronic"),  # chronic kidney disease
        ("N20.0", "acute"),  # kidney stone
        ("O80", "acute"),
        ("P07.30", "acute"),
        ("Q90.9", "chronic"),  # Down syndrome without an ORPHA code
        ("R51.9", "mild"),  # headache
        ("S72.001A", "acute"),
        ("T78.40XA", "acute"),
        ("U07.1", "acute"),
        ("W19.XXXA", "acute"),
        ("Z00.00", None),
        ("Z23", None),
    ],
)
def test_block_acuity_of_real_codes(code: str, acuity: str | None) -> None:
    assert block_of(code).acuity == acuity


@pytest.mark.parametrize(
    ("code", "acuity"),
    [
        ("J00", "mild"),  # the project's rule: a common cold is mild (its block J00-J99: acute)
        ("G44.2", "mild"),  # tension headache (block: chronic)
        ("M54.5", "mild"),  # low back pain (block: chronic)
        ("N39.0", "acute"),
        ("I10", "chronic"),
        ("J18.9", "acute"),
        ("I10.1", "chronic"),  # no rule of its own: the block
        ("Z00.00", None),
    ],
)
def test_the_lookup_prefers_the_projects_rule(code: str, acuity: str | None) -> None:
    assert loaders.icd10_acuity_lookup()[code] == acuity


@pytest.mark.parametrize("value", ["ZZZ.9", "e11.9", "E119", ""])
def test_the_lookup_raises_key_error_on_a_value_that_is_no_code(value: str) -> None:
    lookup = Icd10Acuity({"J00": "mild"})
    assert value not in lookup
    with pytest.raises(KeyError):
        lookup[value]


def test_the_lookup_agrees_with_the_17_conditions_and_knows_every_synthetic_code() -> None:
    lookup = loaders.icd10_acuity_lookup()
    for code, acuity in loaders.icd10_acuity().items():
        assert lookup[code] == acuity
    for code in loaders.known_icd10_codes():
        assert code in lookup and lookup[code] in loaders.ACUITIES


def test_the_lookup_cannot_be_changed_through_its_mapping() -> None:
    with pytest.raises(TypeError):
        loaders.icd10_acuity_lookup().specific["J00"] = "acute"  # type: ignore[index]
