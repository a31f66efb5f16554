"""Pseudonyms, key loading, Safe-Harbor generalisation and the identifier-leak guard."""

import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance.anonymize import (
    HMAC_KEY_ENV_VAR,
    LOCAL_DEVELOPMENT_HMAC_KEY,
    IdentifierLeakError,
    PseudonymizationKeyError,
    Pseudonymizer,
    age_band,
    age_in_years,
    anonymize_extract,
    assert_no_identifiers,
    load_pseudonymization_key,
    local_development_key_hex,
    zip3,
)
from rare_triage.lib.identifiers import DATE_IDENTIFIERS, IDENTIFIER_COLUMNS
from rare_triage_tests.helpers.governance_extract import (
    PARTITION_DAY,
    TEST_KEY,
    anonymized_extract,
    raw_extract,
    validate,
)

OTHER_KEY = bytes(range(1, 33))


# ---- pseudonyms ----


def test_pseudonym_is_truncated_hmac_sha256() -> None:
    expected = hmac.new(TEST_KEY, b"E-9001", hashlib.sha256).hexdigest()[:32]
    assert Pseudonymizer(TEST_KEY)("E-9001") == expected


def test_pseudonyms_are_deterministic_and_key_dependent() -> None:
    ids = ["E-9001", "E-9002", "P-1001"]
    first, again = Pseudonymizer(TEST_KEY).many(ids), Pseudonymizer(TEST_KEY).many(ids)
    other = Pseudonymizer(OTHER_KEY).many(ids)
    assert first == again
    assert len(set(first)) == 3
    assert not set(first) & set(other)
    assert all(len(p) == 32 and int(p, 16) >= 0 for p in first)


def test_series_hashes_each_distinct_key_once_and_keeps_the_index() -> None:
    values = pd.Series(["a", "b", "a", "c"], index=[10, 11, 12, 13], name="patient_id")
    pseudonymizer = Pseudonymizer(TEST_KEY)
    out = pseudonymizer.series(values)
    assert out.tolist() == pseudonymizer.many(values)
    assert out.index.tolist() == [10, 11, 12, 13]


@pytest.mark.parametrize("missing", [None, np.nan])
def test_missing_keys_cannot_be_pseudonymized(missing: object) -> None:
    with pytest.raises(ValueError, match="missing"):
        Pseudonymizer(TEST_KEY).series(pd.Series(["a", missing], name="encounter_id"))
    with pytest.raises(ValueError, match="missing"):
        Pseudonymizer(TEST_KEY)(missing)  # type: ignore[arg-type]


def test_short_keys_are_refused_and_the_key_never_printed() -> None:
    with pytest.raises(PseudonymizationKeyError, match="at least 32 bytes"):
        Pseudonymizer(b"short")
    assert TEST_KEY.hex() not in repr(Pseudonymizer(TEST_KEY))


# ---- key loading ----


def test_key_is_read_as_hex() -> None:
    key = load_pseudonymization_key({HMAC_KEY_ENV_VAR: OTHER_KEY.hex()}, allow_local_default=False)
    assert key == OTHER_KEY


@pytest.mark.parametrize("environ", [{}, {HMAC_KEY_ENV_VAR: ""}, {HMAC_KEY_ENV_VAR: "  "}])
def test_missing_key_is_an_error_naming_the_variable(environ: dict[str, str]) -> None:
    with pytest.raises(PseudonymizationKeyError, match=f"{HMAC_KEY_ENV_VAR} is not set"):
        load_pseudonymization_key(environ, allow_local_default=False)


def test_missing_key_falls_back_to_the_public_development_key_only_when_allowed() -> None:
    assert load_pseudonymization_key({}, allow_local_default=True) == LOCAL_DEVELOPMENT_HMAC_KEY
    assert bytes.fromhex(local_development_key_hex()) == LOCAL_DEVELOPMENT_HMAC_KEY
    with pytest.raises(PseudonymizationKeyError, match="public local development key"):
        load_pseudonymization_key({HMAC_KEY_ENV_VAR: local_development_key_hex()}, allow_local_default=False)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ab" * 31, "too short: 31 bytes, at least 32 required"),
        ("zz" * 32, "is not valid hex"),
    ],
    ids=["too short", "not hex"],
)
def test_unusable_key_is_an_error_that_does_not_echo_it(value: str, message: str) -> None:
    with pytest.raises(PseudonymizationKeyError, match=message) as error:
        load_pseudonymization_key({HMAC_KEY_ENV_VAR: value}, allow_local_default=True)
    assert HMAC_KEY_ENV_VAR in str(error.value)
    assert value not in str(error.value)


# ---- generalisation ----


@pytest.mark.parametrize(
    ("birth", "at", "age"),
    [
        ("1980-06-01", "2024-03-15", 43),
        ("1980-03-15", "2024-03-15", 44),
        ("1980-03-16", "2024-03-15", 43),
        ("2000-02-29", "2024-02-28", 23),
        ("2000-02-29", "2024-03-01", 24),
        ("2024-03-15", "2024-03-15", 0),
    ],
)
def test_age_in_completed_years(birth: str, at: str, age: int) -> None:
    result = age_in_years(pd.Series([pd.Timestamp(birth)]), pd.Series([pd.Timestamp(at)]))
    assert result.tolist() == [age]


@pytest.mark.parametrize(
    ("age", "band"), [(0, "0-9"), (9, "0-9"), (10, "10-19"), (45, "40-49"), (89, "80-89"), (90, "90+"), (104, "90+")]
)
def test_age_band(age: int, band: str) -> None:
    assert age_band(pd.Series([age], dtype="Int64")).tolist() == [band]


@pytest.mark.parametrize(
    ("zip_code", "expected"),
    [
        ("02139", "021"),
        ("90210-1234", "902"),
        (" 10001 ", "100"),
        ("03601", "000"),  # 036: fewer than 20,000 people
        ("89301", "000"),  # 893
        ("2139", "000"),  # not a 5-digit ZIP
        ("ABCDE", "000"),
        (None, "000"),
    ],
)
def test_zip3_safe_harbor(zip_code: str | None, expected: str) -> None:
    assert zip3(pd.Series([zip_code], dtype=object)).tolist() == [expected]


def test_zip3_allowlist_publishes_only_listed_prefixes() -> None:
    out = zip3(pd.Series(["02139", "90210", "03601"]), allowlist=frozenset({"902", "036"}))
    assert out.tolist() == ["000", "902", "036"]


# ---- anonymize_extract ----


def test_anonymized_tables_have_exactly_the_contract_columns() -> None:
    anon = anonymized_extract()
    assert set(anon) == set(schema.ANON_TABLES)
    for table in schema.ANON_TABLES:
        assert list(anon[table].columns) == list(schema.ANON_COLUMNS[table])


def test_anonymized_encounters_generalise_dates_ages_and_places() -> None:
    encounters = anonymized_extract()[schema.ANON_ENCOUNTERS]
    pseudonymize = Pseudonymizer(TEST_KEY)
    by_key = encounters.set_index("encounter_key")
    e1, e2, e3 = (by_key.loc[pseudonymize(e)] for e in ("E-9001", "E-9002", "E-9003"))
    assert (e1["age_years"], e1["age_band"], e1["zip3"], e1["sex"]) == (43, "40-49", "021", "F")
    assert (e2["age_years"], e2["age_band"], e2["zip3"]) == (90, "90+", "000")  # 95 years, ZIP 036..
    assert (e3["age_years"], e3["age_band"], e3["zip3"]) == (0, "0-9", "902")
    assert e1["patient_key"] == pseudonymize("P-1001")
    assert encounters["encounter_year"].eq(2024).all()
    assert encounters["partition_day"].eq(PARTITION_DAY).all()
    assert encounters["prior_visits_365d"].tolist() == [2, 0, 0]  # unknown counts as 0
    assert encounters["prior_visits_365d"].dtype == np.int64


def test_children_carry_their_encounter_key() -> None:
    anon = anonymized_extract()
    pseudonymize = Pseudonymizer(TEST_KEY)
    raw_vitals = raw_extract()[schema.RAW_VITALS]
    assert anon[schema.ANON_VITALS]["encounter_key"].tolist() == pseudonymize.many(raw_vitals["encounter_id"])
    assert anon[schema.ANON_VITALS]["loinc_code"].tolist()[2] == "59408-5"


def test_every_planted_identifier_is_gone_column_and_value() -> None:
    """Names, national id, MRN, phone, email, address, city, ZIP, birth date and source ids: none survives."""
    raw = raw_extract()
    anon = anonymized_extract()
    assert_no_identifiers(anon, raw)

    planted: set[str] = set()
    for column in IDENTIFIER_COLUMNS:
        for table in (schema.RAW_PATIENTS, schema.RAW_ENCOUNTERS):
            if column in raw[table].columns:
                values = raw[table][column].dropna()
                if column in DATE_IDENTIFIERS:
                    values = values.dt.strftime("%Y-%m-%d")
                planted |= set(values.astype(str))
    # the newborn's birth date and every encounter date are the partition day, which is published on purpose
    planted -= {PARTITION_DAY}
    assert len(planted) == 3 * 11 + 3 - 1, "11 identifiers per patient, 3 encounter ids, minus the newborn's birth"
    for table, frame in anon.items():
        assert not set(IDENTIFIER_COLUMNS) & set(frame.columns), table
        cells = {str(v) for column in frame.columns for v in frame[column].dropna()}
        assert not cells & planted, f"{table} holds raw identifier values"
        text_cells = {str(v) for c in frame.columns if not c.endswith("_key") for v in frame[c].dropna()}
        assert not {v for v in planted for cell in text_cells if v in cell}, f"{table} embeds identifiers"


def _leak_region(anon: dict[str, pd.DataFrame], value: str) -> dict[str, pd.DataFrame]:
    out = {t: f.copy() for t, f in anon.items()}
    out[schema.ANON_ENCOUNTERS].loc[0, "region"] = value
    return out


@pytest.mark.parametrize(
    ("value", "source"),
    [
        ("Aurelia", "patients.given_name"),
        ("Quenby", "patients.family_name"),
        ("MRN-55501", "patients.mrn"),
        ("123-45-6789", "patients.national_id"),
        ("+1-555-0101", "patients.phone"),
        ("aurelia.q@example.org", "patients.email"),
        ("12 Larkspur Lane", "patients.street_address"),
        ("02139", "patients.zip_code"),
        ("1980-06-01", "patients.birth_date"),
        ("P-1001", "patients.patient_id"),
        ("E-9001", "encounters.encounter_id"),
    ],
)
def test_a_leaked_identifier_value_is_caught_without_printing_it(value: str, source: str) -> None:
    with pytest.raises(IdentifierLeakError, match=rf"{source} appear verbatim .*encounters\.region") as error:
        assert_no_identifiers(_leak_region(anonymized_extract(), value), raw_extract())
    assert value not in str(error.value)


@pytest.mark.parametrize("column", ["given_name", "birth_date", "encounter_id", "zip_code", "encounter_date"])
def test_an_identifier_column_is_caught(column: str) -> None:
    anon = anonymized_extract()
    anon[schema.ANON_SYMPTOMS] = anon[schema.ANON_SYMPTOMS].assign(**{column: "x"})
    with pytest.raises(IdentifierLeakError, match=rf"'symptoms' has identifier column\(s\) \['{column}'\]"):
        assert_no_identifiers(anon, raw_extract())


def test_a_leak_in_a_child_code_column_is_caught() -> None:
    anon = anonymized_extract()
    anon[schema.ANON_DIAGNOSES].loc[0, "code"] = "MRN-55502"
    with pytest.raises(IdentifierLeakError, match=r"patients\.mrn .*diagnoses\.code"):
        assert_no_identifiers(anon, raw_extract())


def test_anonymize_rejects_children_of_unknown_encounters() -> None:
    valid = validate(raw_extract()).valid
    valid[schema.RAW_VITALS].loc[0, "encounter_id"] = "E-404"
    with pytest.raises(ValueError, match=r"vitals\.encounter_id: 1 rows reference no valid encounter"):
        anonymize_extract(
            valid, partition_day=PARTITION_DAY, pseudonymizer=Pseudonymizer(TEST_KEY), zip3_allowlist=None
        )
