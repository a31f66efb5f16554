"""Encounter features: each rule on tiny hand-made tables over a consistent slice of HPO."""

import math
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from rare_triage.lib import schema
from rare_triage.lib.features import build as features
from rare_triage.lib.reference.icd10 import Icd10Acuity
from rare_triage.lib.reference.loaders import icd10_acuity_lookup

FEVER, RECURRENT_FEVER = "HP:0001945", "HP:0001954"
SEIZURE, FOCAL_SEIZURE = "HP:0001250", "HP:0007359"
ABDOMINAL_PAIN, EPISODIC_ABDOMINAL_PAIN = "HP:0002027", "HP:0002574"
PAIN, LIMB_PAIN, HEADACHE = "HP:0012531", "HP:0009763", "HP:0002315"
NERVOUS, METABOLISM, DIGESTIVE, CONSTITUTIONAL = "HP:0000707", "HP:0001939", "HP:0025031", "HP:0025142"

VOCABULARY = [FEVER, SEIZURE, ABDOMINAL_PAIN]
SYSTEMS = [NERVOUS, METABOLISM, DIGESTIVE, CONSTITUTIONAL]
ACUITY = {"J00": "mild", "J11.1": "acute", "E11.9": "chronic"}

TERM_ROLLUP = pd.DataFrame(
    [
        (FEVER, FEVER),
        (RECURRENT_FEVER, FEVER),
        (SEIZURE, SEIZURE),
        (FOCAL_SEIZURE, SEIZURE),
        (ABDOMINAL_PAIN, ABDOMINAL_PAIN),
        (EPISODIC_ABDOMINAL_PAIN, ABDOMINAL_PAIN),
    ],
    columns=["hpo_id", "vocab_id"],
)
TERM_SYSTEM = pd.DataFrame(
    [
        (FEVER, METABOLISM),
        (RECURRENT_FEVER, METABOLISM),
        (SEIZURE, NERVOUS),
        (FOCAL_SEIZURE, NERVOUS),
        (HEADACHE, NERVOUS),
        (ABDOMINAL_PAIN, DIGESTIVE),
        (ABDOMINAL_PAIN, CONSTITUTIONAL),
        (EPISODIC_ABDOMINAL_PAIN, DIGESTIVE),
        (EPISODIC_ABDOMINAL_PAIN, CONSTITUTIONAL),
        (PAIN, CONSTITUTIONAL),
        (LIMB_PAIN, CONSTITUTIONAL),
        *((system, system) for system in SYSTEMS),
    ],
    columns=["hpo_id", "system_id"],
)
VOCAB_ANCESTORS = pd.DataFrame(
    [
        *((FEVER, a) for a in (FEVER, "HP:0004370", "HP:0012337", METABOLISM, "HP:0000118", "HP:0000001")),
        *((SEIZURE, a) for a in (SEIZURE, "HP:0012638", NERVOUS, "HP:0000118", "HP:0000001")),
        *(
            (ABDOMINAL_PAIN, a)
            for a in (ABDOMINAL_PAIN, "HP:0011458", PAIN, "HP:0025032", DIGESTIVE, CONSTITUTIONAL, "HP:0000118")
        ),
        (ABDOMINAL_PAIN, "HP:0000001"),
    ],
    columns=["vocab_id", "ancestor_id"],
)
# information content: fever is annotated to many diseases, a focal seizure to few
TERM_IC = pd.DataFrame(
    [(FEVER, 2.5), (RECURRENT_FEVER, 4.5), (SEIZURE, 1.3), (FOCAL_SEIZURE, 5.0), (ABDOMINAL_PAIN, 3.0)],
    columns=["hpo_id", "information_content"],
)


def encounters(*keys: str | None, **columns: object) -> pd.DataFrame:
    """Encounters with plausible values; keyword arguments override a column (scalar or list)."""
    n = len(keys)
    frame = pd.DataFrame(
        {
            "encounter_key": list(keys),
            "patient_key": [f"p-{key}" for key in keys],
            "partition_day": "2025-03-01",
            "encounter_year": 2025,
            "age_years": 42,
            "age_band": "40-49",
            "sex": "F",
            "centre_id": "C01",
            "centre_level": "primary",
            "region": "North",
            "zip3": "123",
            "consultation_type": "primary_care",
            "prior_visits_365d": pd.array([2] * n, dtype="Int64"),
        }
    )
    for name, value in columns.items():
        frame[name] = value
    return frame


def table(name: str, rows: Sequence[tuple[object, ...]] | None = None) -> pd.DataFrame:
    columns = list(schema.ANON_COLUMNS[name])
    if rows:
        return pd.DataFrame(rows, columns=columns)
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


def anon(enc: pd.DataFrame, **children: Sequence[tuple[object, ...]]) -> dict[str, pd.DataFrame]:
    tables = {name: table(name, children.get(name)) for name in schema.ANON_TABLES}
    tables[schema.ANON_ENCOUNTERS] = enc
    return tables


def build(tables: dict[str, pd.DataFrame], **options: object) -> pd.DataFrame:
    kwargs: dict[str, object] = {
        "term_rollup": TERM_ROLLUP,
        "term_system": TERM_SYSTEM,
        "vocab_ancestors": VOCAB_ANCESTORS,
        "term_ic": TERM_IC,
        "vocabulary_ids": VOCABULARY,
        "system_ids": SYSTEMS,
        "icd10_acuity": ACUITY,
        **options,
    }
    return features.build_encounter_features(tables, **kwargs).set_index("encounter_key", drop=False)  # type: ignore[arg-type]


def symptom(key: str, hpo_id: str, present: bool, severity: float = np.nan, duration: float = np.nan) -> tuple:
    return (key, hpo_id, present, severity, duration)


def is_null(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


hpo = schema.hpo_feature_name
sys_ = schema.system_feature_name


def test_columns_follow_the_schema_order_and_the_given_vocabulary_order() -> None:
    out = build(anon(encounters("e1")))
    vocab_cols = [hpo(FEVER), hpo(SEIZURE), hpo(ABDOMINAL_PAIN)]
    system_cols = [sys_(NERVOUS), sys_(METABOLISM), sys_(DIGESTIVE), sys_(CONSTITUTIONAL)]
    expected = [
        *schema.FEATURE_KEY_COLUMNS,
        *schema.FEATURE_CATEGORICAL_COLUMNS,
        *schema.FEATURE_NUMERIC_COLUMNS,
        *vocab_cols,
        *system_cols,
        schema.LABEL_COLUMN,
    ]
    assert list(out.columns) == expected
    assert features.features_table_columns(VOCABULARY, SYSTEMS) == expected
    assert features.feature_columns(VOCABULARY, SYSTEMS) == expected[3:-1]
    reordered = build(anon(encounters("e1")), vocabulary_ids=[SEIZURE, FEVER, ABDOMINAL_PAIN])
    first_vocab = expected.index(hpo(FEVER))
    assert list(reordered.columns)[first_vocab : first_vocab + 3] == [hpo(SEIZURE), hpo(FEVER), hpo(ABDOMINAL_PAIN)]


def test_numeric_and_flag_columns_are_float64_and_text_columns_are_str() -> None:
    out = build(anon(encounters("e1")))
    numeric = [c for c in out.columns if c not in (*schema.FEATURE_KEY_COLUMNS, *schema.FEATURE_CATEGORICAL_COLUMNS)]
    assert all(out[c].dtype == np.float64 for c in numeric if c != schema.LABEL_COLUMN)
    assert out.loc["e1", "sex"] == "F"
    assert out.loc["e1", "label"] == "none"


def test_a_specific_present_term_rolls_up_to_its_vocabulary_term_and_system() -> None:
    out = build(anon(encounters("e1"), symptoms=[symptom("e1", FOCAL_SEIZURE, True)])).loc["e1"]
    assert out[hpo(SEIZURE)] == 1.0
    assert out[sys_(NERVOUS)] == 1.0
    assert is_null(out[hpo(FEVER)]) and is_null(out[sys_(METABOLISM)])
    assert out["n_systems_involved"] == 1.0


def test_a_term_in_two_systems_counts_both() -> None:
    out = build(anon(encounters("e1"), symptoms=[symptom("e1", EPISODIC_ABDOMINAL_PAIN, True)])).loc["e1"]
    assert out[hpo(ABDOMINAL_PAIN)] == 1.0
    assert out[sys_(DIGESTIVE)] == 1.0 and out[sys_(CONSTITUTIONAL)] == 1.0
    assert out["n_systems_involved"] == 2.0


def test_an_excluded_ancestor_marks_the_vocabulary_term_absent_but_an_excluded_descendant_does_not() -> None:
    rows = [
        symptom("by_ancestor", NERVOUS, False),  # "no nervous system abnormality" rules out Seizure
        symptom("by_itself", SEIZURE, False),
        symptom("by_descendant", FOCAL_SEIZURE, False),  # no focal seizure says nothing about seizures
    ]
    out = build(anon(encounters("by_ancestor", "by_itself", "by_descendant"), symptoms=rows))
    assert out.loc["by_ancestor", hpo(SEIZURE)] == 0.0
    assert out.loc["by_itself", hpo(SEIZURE)] == 0.0
    assert is_null(out.loc["by_descendant", hpo(SEIZURE)])
    assert is_null(out.loc["by_ancestor", hpo(FEVER)])


def test_a_system_is_absent_only_when_it_or_phenotypic_abnormality_is_excluded() -> None:
    rows = [
        symptom("system", NERVOUS, False),
        symptom("everything", schema.PHENOTYPIC_ABNORMALITY_HPO, False),
        symptom("term_only", SEIZURE, False),
    ]
    out = build(anon(encounters("system", "everything", "term_only"), symptoms=rows))
    assert out.loc["system", sys_(NERVOUS)] == 0.0
    assert is_null(out.loc["system", sys_(DIGESTIVE)])
    assert all(out.loc["everything", sys_(s)] == 0.0 for s in SYSTEMS)
    assert all(out.loc["everything", hpo(v)] == 0.0 for v in VOCABULARY)
    assert is_null(out.loc["term_only", sys_(NERVOUS)])
    assert (out["n_systems_involved"] == 0.0).all()


def test_present_wins_over_absent() -> None:
    rows = [
        symptom("e1", FOCAL_SEIZURE, True),
        symptom("e1", SEIZURE, False),
        symptom("e1", NERVOUS, False),
        symptom("e2", FEVER, False),
        symptom("e2", FEVER, True),
    ]
    out = build(anon(encounters("e1", "e2"), symptoms=rows))
    assert out.loc["e1", hpo(SEIZURE)] == 1.0
    assert out.loc["e1", sys_(NERVOUS)] == 1.0
    assert out.loc["e2", hpo(FEVER)] == 1.0


def test_without_symptoms_every_flag_is_unknown_and_counts_are_zero() -> None:
    out = build(anon(encounters("e1"))).loc["e1"]
    flags = [*features.vocabulary_feature_columns(VOCABULARY), *features.system_feature_columns(SYSTEMS)]
    assert all(is_null(out[c]) for c in flags)
    assert out["n_systems_involved"] == 0.0
    assert out["comorbidity_count"] == 0.0
    assert out[["n_present_terms", "n_specific_terms", "phenotype_ic_max", "phenotype_ic_sum"]].tolist() == [0.0] * 4
    assert is_null(out["fever_score"]) and is_null(out["pain_score"]) and is_null(out["symptom_duration_days"])


def test_phenotype_specificity_counts_distinct_present_terms_and_their_information_content() -> None:
    rows = [
        symptom("e1", FEVER, True),
        symptom("e1", FEVER, True),  # a repeated row counts once
        symptom("e1", FOCAL_SEIZURE, True),
        symptom("e1", RECURRENT_FEVER, True),
        symptom("e1", ABDOMINAL_PAIN, False),  # absent terms do not count
        symptom("e1", "HP:0031417", True),  # not in the IC table: a term of IC 0
        symptom("e2", ABDOMINAL_PAIN, False),
    ]
    out = build(anon(encounters("e1", "e2"), symptoms=rows))
    e1 = out.loc["e1"]
    assert e1["n_present_terms"] == 4.0
    assert e1["n_specific_terms"] == 2.0  # IC >= schema.SPECIFIC_TERM_IC (4.0): recurrent fever, focal seizure
    assert e1["phenotype_ic_max"] == 5.0
    assert e1["phenotype_ic_sum"] == pytest.approx(2.5 + 5.0 + 4.5)
    e2 = out.loc["e2"]
    assert e2[["n_present_terms", "n_specific_terms", "phenotype_ic_max", "phenotype_ic_sum"]].tolist() == [0.0] * 4


def test_more_than_64_vocabulary_terms_use_a_second_mask_chunk() -> None:
    vocab = [f"HP:99{i:05d}" for i in range(70)]
    rollup = pd.DataFrame({"hpo_id": vocab, "vocab_id": vocab})
    ancestors = pd.DataFrame({"vocab_id": vocab, "ancestor_id": vocab})
    rows = [symptom("e1", vocab[0], True), symptom("e1", vocab[65], True), symptom("e1", vocab[69], False)]
    out = build(
        anon(encounters("e1"), symptoms=rows), term_rollup=rollup, vocab_ancestors=ancestors, vocabulary_ids=vocab
    ).loc["e1"]
    flags = out[features.vocabulary_feature_columns(vocab)]
    assert flags[hpo(vocab[0])] == 1.0 and flags[hpo(vocab[65])] == 1.0 and flags[hpo(vocab[69])] == 0.0
    assert flags.notna().sum() == 3


def test_vitals_pivot_by_loinc_with_the_mean_of_repeated_values() -> None:
    vitals = [
        ("e1", "8310-5", 38.0, "Cel"),
        ("e1", "8310-5", 39.0, "Cel"),
        ("e1", "8867-4", 110.0, "/min"),
        ("e1", schema.SPO2_ALT_LOINC, 93.0, "%"),
        ("e1", "8480-6", 120.0, "mm[Hg]"),
        ("e1", "29463-7", 70.0, "kg"),  # body weight: not a feature
    ]
    out = build(anon(encounters("e1", "e2"), vitals=vitals))
    assert out.loc["e1", "temperature_c"] == pytest.approx(38.5)
    assert out.loc["e1", "heart_rate"] == 110.0
    assert out.loc["e1", "spo2"] == 93.0
    assert out.loc["e1", "systolic_bp"] == 120.0
    assert is_null(out.loc["e1", "diastolic_bp"]) and is_null(out.loc["e1", "respiratory_rate"])
    assert out.loc["e2", ["temperature_c", "heart_rate", "spo2"]].isna().all()


def test_a_vital_in_an_unexpected_unit_is_rejected() -> None:
    vitals = [("e1", "8310-5", 101.3, "[degF]")]
    with pytest.raises(ValueError, match=r"vitals\.unit: 8310-5 in '\[degF\]' \(expected 'Cel'\)"):
        build(anon(encounters("e1"), vitals=vitals))


def test_fever_score_comes_from_present_terms_rolling_up_to_fever() -> None:
    rows = [
        symptom("e1", RECURRENT_FEVER, True, severity=7.0),
        symptom("e1", FEVER, True, severity=5.0),
        symptom("e1", FOCAL_SEIZURE, True, severity=9.0),
        symptom("e2", FEVER, False, severity=8.0),
    ]
    out = build(anon(encounters("e1", "e2"), symptoms=rows))
    assert out.loc["e1", "fever_score"] == 7.0
    assert is_null(out.loc["e2", "fever_score"])


def test_pain_score_comes_from_present_pain_terms_and_the_pain_score_vital() -> None:
    rows = [
        symptom("rolled_up", EPISODIC_ABDOMINAL_PAIN, True, severity=6.0),
        symptom("rolled_up", HEADACHE, True, severity=9.0),  # Headache is not under Pain in HPO
        symptom("root", PAIN, True, severity=4.0),
        symptom("limb", LIMB_PAIN, True, severity=5.0),
        symptom("absent", ABDOMINAL_PAIN, False, severity=8.0),
        symptom("vital", ABDOMINAL_PAIN, True, severity=3.0),
    ]
    vitals = [("vital", schema.PAIN_SCORE_LOINC, 8.0, "{score}")]
    tables = anon(encounters("rolled_up", "root", "limb", "absent", "vital"), symptoms=rows, vitals=vitals)
    out = build(tables)
    assert out.loc["rolled_up", "pain_score"] == 6.0
    assert out.loc["root", "pain_score"] == 4.0
    assert is_null(out.loc["limb", "pain_score"])  # no vocabulary term links Limb pain to Pain
    assert is_null(out.loc["absent", "pain_score"])
    assert out.loc["vital", "pain_score"] == 8.0
    assert build(tables, pain_terms={LIMB_PAIN}).loc["limb", "pain_score"] == 5.0


def test_symptom_duration_is_the_longest_present_symptom() -> None:
    rows = [
        symptom("e1", FEVER, True, duration=3.0),
        symptom("e1", SEIZURE, True, duration=30.0),
        symptom("e1", ABDOMINAL_PAIN, False, duration=400.0),
        symptom("e2", FEVER, True),
    ]
    out = build(anon(encounters("e1", "e2"), symptoms=rows))
    assert out.loc["e1", "symptom_duration_days"] == 30.0
    assert is_null(out.loc["e2", "symptom_duration_days"])


def test_comorbidities_count_distinct_codes_and_prior_visits_keep_their_nulls() -> None:
    enc = encounters("e1", "e2", prior_visits_365d=pd.array([3, None], dtype="Int64"))
    out = build(anon(enc, comorbidities=[("e1", "I10"), ("e1", "I10"), ("e1", "E11.9")]))
    assert out.loc["e1", "comorbidity_count"] == 2.0
    assert out.loc["e2", "comorbidity_count"] == 0.0
    assert out.loc["e1", "prior_visits_365d"] == 3.0
    assert is_null(out.loc["e2", "prior_visits_365d"])


def test_label_orphan_wins_then_primary_icd10_acuity_then_none() -> None:
    diagnoses = [
        ("orphan", "ICD10", "J00", 1),
        ("orphan", "ORPHA", "ORPHA:558", 2),
        ("mild", "ICD10", "J00", 1),
        ("acute", "ICD10", "J11.1", 1),
        ("acute", "ICD10", "E11.9", 2),
        ("chronic", "ICD10", "E11.9", 1),
        ("tie", "ICD10", "J11.1", 1),
        ("tie", "ICD10", "E11.9", 1),
    ]
    keys = ("orphan", "mild", "acute", "chronic", "tie", "none")
    out = build(anon(encounters(*keys), diagnoses=diagnoses))
    assert out["label"].to_dict() == {
        "orphan": "orphan",
        "mild": "common_mild",
        "acute": "common_acute",
        "chronic": "common_chronic",
        "tie": "common_chronic",  # same rank: the lower code, E11.9
        "none": "none",
    }
    assert set(out["label"]) <= set(schema.LABELS)


def test_an_unknown_primary_icd10_code_raises_naming_it() -> None:
    with pytest.raises(ValueError, match=r"diagnoses\.code: .*'Z99\.9'"):
        build(anon(encounters("e1"), diagnoses=[("e1", "ICD10", "Z99.9", 1)]))


def test_an_unmapped_icd10_code_that_decides_no_label_is_accepted() -> None:
    diagnoses = [("e1", "ORPHA", "ORPHA:558", 1), ("e1", "ICD10", "Z99.9", 2), ("e2", "ICD10", "Z99.9", 2)]
    diagnoses.append(("e2", "ICD10", "J00", 1))
    out = build(anon(encounters("e1", "e2"), diagnoses=diagnoses))
    assert out["label"].tolist() == ["orphan", "common_mild"]


@pytest.mark.parametrize(
    ("diagnoses", "label"),
    [
        ([("ICD10", "S72.001A", 1)], "common_acute"),  # ICD-10-CM injury: its block
        ([("ICD10", "R51.9", 1)], "common_mild"),  # a symptom code
        ([("ICD10", "C50.911", 1), ("ICD10", "J00", 2)], "common_chronic"),
        ([("ICD10", "M54.5", 1)], "common_mild"),  # the project's rule, not the block (chronic)
        ([("ICD10", "Z00.00", 1)], "none"),  # examination: no disease
        ([("ICD10", "Z00.00", 1), ("ICD10", "J18.9", 2)], "common_acute"),  # a Z code decides nothing
        ([("ICD10", "Z23", 1), ("ORPHA", "ORPHA:558", 2)], "orphan"),
    ],
)
def test_the_real_lookup_labels_any_icd10_code_by_rule_or_block(diagnoses: list[tuple], label: str) -> None:
    rows = [("e1", *row) for row in diagnoses]
    out = build(anon(encounters("e1"), diagnoses=rows), icd10_acuity=icd10_acuity_lookup())
    assert out.loc["e1", "label"] == label


def test_an_unknown_code_before_the_primary_one_raises_after_it_not() -> None:
    lookup = Icd10Acuity({})
    before = [("e1", "ICD10", "Z00.00", 1), ("e1", "ICD10", "ZZZ.9", 2), ("e1", "ICD10", "J18.9", 3)]
    with pytest.raises(ValueError, match=r"diagnoses\.code: ICD10 code\(s\) \['ZZZ\.9'\] are unknown"):
        build(anon(encounters("e1"), diagnoses=before), icd10_acuity=lookup)
    after = [("e1", "ICD10", "J18.9", 1), ("e1", "ICD10", "ZZZ.9", 2)]
    assert build(anon(encounters("e1"), diagnoses=after), icd10_acuity=lookup)["label"].tolist() == ["common_acute"]


def test_one_row_per_encounter_in_input_order_ignoring_rows_of_unknown_encounters() -> None:
    keys = [f"k{i:03d}" for i in (5, 3, 9, 1, 7)]
    rows = [symptom("k003", FEVER, True), symptom("stranger", SEIZURE, True)]
    diagnoses = [("stranger", "ICD10", "Q99.9", 1)]  # would raise if it were not ignored
    out = build(anon(encounters(*keys), symptoms=rows, diagnoses=diagnoses))
    assert out["encounter_key"].tolist() == keys
    assert out.loc["k003", hpo(FEVER)] == 1.0
    assert out[hpo(SEIZURE)].isna().all()


def test_input_order_holds_beyond_one_duckdb_row_group() -> None:
    """Joins run in parallel above 122,880 rows: without the final ORDER BY the rows come back shuffled."""
    keys = [f"{i:032x}" for i in np.random.default_rng(7).permutation(150_000)]
    tables = anon(encounters(*keys))
    tables[schema.ANON_SYMPTOMS] = pd.DataFrame(
        {"encounter_key": keys[::3], "hpo_id": FEVER, "present": True, "severity": 1.0, "duration_days": 2.0}
    )
    tables[schema.ANON_VITALS] = pd.DataFrame(
        {"encounter_key": keys[::2], "loinc_code": "8310-5", "value": 37.0, "unit": "Cel"}
    )
    out = build(tables)
    assert out["encounter_key"].tolist() == keys
    assert (out[hpo(FEVER)].iloc[::3] == 1.0).all()
    assert out[hpo(FEVER)].iloc[1::3].isna().all()
    assert (out["temperature_c"].iloc[::2] == 37.0).all()


def test_arrow_tables_give_the_same_result_as_pandas() -> None:
    tables = anon(
        encounters("e1", "e2"),
        symptoms=[symptom("e1", FOCAL_SEIZURE, True, severity=2.0)],
        vitals=[("e2", "8310-5", 37.0, "Cel")],
        diagnoses=[("e1", "ICD10", "J00", 1)],
    )
    as_arrow = {name: pa.Table.from_pandas(frame, preserve_index=False) for name, frame in tables.items()}
    ontology = {
        name: pa.Table.from_pandas(frame, preserve_index=False)
        for name, frame in (("term_rollup", TERM_ROLLUP), ("term_system", TERM_SYSTEM))
    }
    pd.testing.assert_frame_equal(build(as_arrow, **ontology), build(tables))


def test_a_given_connection_is_used_and_left_clean() -> None:
    with duckdb.connect() as con:
        out = build(anon(encounters("e1")), connection=con)
        assert len(out) == 1
        leftovers = con.execute("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'rt_feat_%'")
        assert leftovers.fetchall() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop(schema.ANON_VITALS), r"anon: missing table\(s\) \['vitals'\]"),
        (lambda t: t[schema.ANON_SYMPTOMS].pop("present"), r"anon\['symptoms'\]: missing column\(s\) \['present'\]"),
        (
            lambda t: t.update(encounters=encounters("e1", "e1")),
            r"encounters\.encounter_key: repeated key\(s\) \['e1'\]",
        ),
        (lambda t: t.update(encounters=encounters(None)), r"encounters\.encounter_key: 1 null key"),
    ],
)
def test_bad_tables_are_rejected_naming_the_field(change: object, message: str) -> None:
    tables = anon(encounters("e1"))
    change(tables)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        build(tables)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"vocabulary_ids": ["HP:1", FEVER]}, r"vocabulary_ids: 'HP:1' is not an HPO id"),
        ({"system_ids": [NERVOUS, NERVOUS]}, r"system_ids: repeated id\(s\) \['HP:0000707'\]"),
        ({"icd10_acuity": {"J00": "severe"}}, r"icd10_acuity: 'J00' maps to 'severe'"),
        (
            {"term_rollup": TERM_ROLLUP.rename(columns={"vocab_id": "v"})},
            r"term_rollup: missing column\(s\) \['vocab_id'\]",
        ),
        ({"pain_terms": ["pain"]}, r"pain_terms: 'pain' is not an HPO id"),
        ({"term_ic": TERM_IC.rename(columns={"information_content": "ic"})}, r"term_ic: missing column"),
    ],
)
def test_bad_options_are_rejected_naming_the_field(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(anon(encounters("e1")), **options)


def phenotype_cases() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": ["PMID_1_case_a", "PMID_2_case_b", "PMID_3_case_c"],
            "sex": ["FEMALE", None, "M"],
            "age_years": [6.5, np.nan, 97.0],
            "observed": [[FOCAL_SEIZURE, RECURRENT_FEVER], [], [EPISODIC_ABDOMINAL_PAIN]],
            "excluded": [[ABDOMINAL_PAIN], [NERVOUS], None],
            "cohort": ["X", "Y", "Z"],
        }
    )


def test_encode_phenotype_cases_gives_anonymized_shaped_tables() -> None:
    tables = features.encode_phenotype_cases(phenotype_cases())
    assert set(tables) == set(schema.ANON_TABLES)
    for name, frame in tables.items():
        assert list(frame.columns) == list(schema.ANON_COLUMNS[name])
    enc = tables[schema.ANON_ENCOUNTERS].set_index("encounter_key")
    assert enc["sex"].tolist() == ["F", "U", "M"]
    assert enc["age_years"].tolist()[0] == 6 and pd.isna(enc["age_years"].tolist()[1])
    assert enc["age_years"].tolist()[2] == schema.AGE_TOP_CODE
    assert enc["age_band"].tolist() == ["0-9", None, "90+"]
    assert (enc["centre_id"] == features.EXTERNAL_CENTRE_ID).all()
    assert enc["consultation_type"].isna().all() and enc["prior_visits_365d"].isna().all()
    symptoms = tables[schema.ANON_SYMPTOMS]
    assert len(symptoms) == 5 and symptoms["present"].sum() == 3
    assert tables[schema.ANON_VITALS].empty and tables[schema.ANON_COMORBIDITIES].empty


def test_encoded_phenotype_cases_go_through_the_same_features_as_orphan() -> None:
    out = build(features.encode_phenotype_cases(phenotype_cases()), icd10_acuity={})
    assert out["encounter_key"].tolist() == ["PMID_1_case_a", "PMID_2_case_b", "PMID_3_case_c"]
    assert (out["label"] == schema.ORPHAN_LABEL).all()
    a, b, c = (out.iloc[i] for i in range(3))
    assert a[hpo(SEIZURE)] == 1.0 and a[hpo(FEVER)] == 1.0 and a[hpo(ABDOMINAL_PAIN)] == 0.0
    assert a["n_systems_involved"] == 2.0
    assert b[hpo(SEIZURE)] == 0.0 and b[sys_(NERVOUS)] == 0.0 and b["n_systems_involved"] == 0.0
    assert c[hpo(ABDOMINAL_PAIN)] == 1.0 and c["n_systems_involved"] == 2.0
    assert (
        out[["temperature_c", "fever_score", "pain_score", "symptom_duration_days", "prior_visits_365d"]]
        .isna()
        .all()
        .all()
    )
    assert out["consultation_type"].isna().all()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("sex", "female", r"cases\.sex: 'female' of case 'PMID_1_case_a'"),
        ("observed", ["HP:123"], r"cases\.observed: 'HP:123' of case 'PMID_1_case_a' is not an HPO id"),
        ("excluded", "HP:0000707", r"cases\.excluded: case 'PMID_1_case_a' has a string"),
        ("age_years", -1.0, r"cases\.age_years: negative age"),
    ],
)
def test_encode_phenotype_cases_rejects_bad_values(column: str, value: object, message: str) -> None:
    cases = phenotype_cases()
    cases.at[0, column] = value
    with pytest.raises(ValueError, match=message):
        features.encode_phenotype_cases(cases)


def test_encode_phenotype_cases_requires_its_columns_and_unique_ids() -> None:
    with pytest.raises(ValueError, match=r"cases: missing column\(s\) \['observed'\]"):
        features.encode_phenotype_cases(phenotype_cases().drop(columns="observed"))
    with pytest.raises(ValueError, match=r"cases\.case_id: must be unique"):
        features.encode_phenotype_cases(phenotype_cases().assign(case_id="same"))
