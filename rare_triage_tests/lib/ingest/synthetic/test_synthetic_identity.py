"""Per-patient hashing and the fake identities it yields."""

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.ingest.synthetic import SyntheticConfig, population_for
from rare_triage.lib.ingest.synthetic.hashing import hash_choice, hash_normal, hash_uniform
from rare_triage.lib.ingest.synthetic.identity import build_patients, digits
from rare_triage.lib.ingest.synthetic.names import GIVEN_NAMES_F, GIVEN_NAMES_M
from rare_triage.lib.reference.ontology import ReferenceTables

DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def test_hash_uniform_is_a_pure_function_of_seed_index_salt() -> None:
    index = np.arange(100_000)
    first = hash_uniform(3, index, 7)
    assert np.array_equal(first, hash_uniform(3, index, 7))
    assert np.array_equal(first[500:600], hash_uniform(3, index[500:600], 7))
    assert not np.array_equal(first, hash_uniform(4, index, 7))
    assert not np.array_equal(first, hash_uniform(3, index, 8))
    assert first.min() >= 0.0
    assert first.max() < 1.0
    assert first.mean() == pytest.approx(0.5, abs=0.01)
    normal = hash_normal(3, index, 7)
    assert normal.mean() == pytest.approx(0.0, abs=0.02)
    assert normal.std() == pytest.approx(1.0, abs=0.02)


def test_hash_choice_follows_weights_and_rejects_empty() -> None:
    picks = hash_choice(1, np.arange(50_000), 2, [1.0, 3.0, 0.0])
    shares = np.bincount(picks, minlength=3) / picks.size
    assert shares == pytest.approx([0.25, 0.75, 0.0], abs=0.01)
    with pytest.raises(ValueError, match="weights"):
        hash_choice(1, np.arange(3), 2, [0.0, 0.0])


def test_digits_zero_pads_without_loops() -> None:
    assert digits(np.array([0, 7, 123456789]), 9).tolist() == ["000000000", "000000007", "123456789"]
    assert digits(np.array([5, 42]), 2).tolist() == ["05", "42"]


@pytest.fixture(scope="module")
def patients(reference_tables: ReferenceTables) -> pd.DataFrame:
    population = population_for(SyntheticConfig(seed=5, population_size=50_000), reference_tables)
    return build_patients(population, np.arange(50_000))


def test_identifiers_are_unique_and_well_formed(patients: pd.DataFrame) -> None:
    for column in ("patient_id", "mrn", "national_id", "phone"):
        assert patients[column].is_unique, column
    numbers = patients["national_id"].str[:8].astype(int)
    letters = patients["national_id"].str[8]
    assert (letters == numbers.map(lambda number: DNI_LETTERS[number % 23])).all()
    assert patients["zip_code"].str.fullmatch(r"\d{5}").all()
    assert patients["phone"].str.fullmatch(r"\+34 [67]\d{2} \d{3} \d{3}").all()
    assert patients["email"].str.fullmatch(r"[a-z]+\.[a-z]+\d{2}@[a-z.]+").all()
    assert patients["mrn"].str.fullmatch(r"MRN\d{8}").all()
    assert set(patients["sex"]) == {"F", "M", "U"}
    assert patients["family_name"].str.count(" ").ge(1).all()
    assert patients["birth_date"].dtype == "datetime64[ns]"


def test_identity_is_the_same_for_any_subset_of_patients(
    reference_tables: ReferenceTables, patients: pd.DataFrame
) -> None:
    population = population_for(SyntheticConfig(seed=5, population_size=50_000), reference_tables)
    some = np.array([49_999, 3, 17_000])
    again = build_patients(population, some)
    pd.testing.assert_frame_equal(again, patients.iloc[some].reset_index(drop=True))


def test_given_names_follow_sex(patients: pd.DataFrame) -> None:
    assert patients.loc[patients["sex"] == "F", "given_name"].isin(GIVEN_NAMES_F).all()
    assert patients.loc[patients["sex"] == "M", "given_name"].isin(GIVEN_NAMES_M).all()
