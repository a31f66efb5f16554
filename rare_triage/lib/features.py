"""Encounter features: one row per encounter from the anonymized tables, built with DuckDB SQL.

Rules (every number, flag and count leaves as float64, NaN meaning NULL / unknown):
- vitals: mean of the values of each LOINC code in `schema.VITAL_LOINC` (2708-6 counts as SpO2);
  there is no time of measurement in the anonymized vitals, so "last" would be arbitrary.
- fever_score: max severity over present fever terms; pain_score: max severity over present pain
  terms and pain-score vitals (LOINC 72514-3). A fever / pain term is the root (HP:0001945 /
  HP:0012531), a term rolling up to a vocabulary term that descends from the root, or a term of
  the caller's `fever_terms` / `pain_terms` (pass the root's descendants there to be complete).
- symptom_duration_days: max duration over present symptoms; comorbidity_count: distinct
  comorbidity codes (0 when none); prior_visits_365d: as recorded (NULL stays NULL).
- vocabulary term column: 1 when a present symptom rolls up to the term, else 0 when an excluded
  symptom is the term or one of its ancestors, else NULL. Present wins over absent.
- organ-system column: 1 when a present symptom rolls up to the system, else 0 when the system or
  HP:0000118 itself was excluded, else NULL. n_systems_involved counts the 1s.
- label: "orphan" when any ORPHA diagnosis; else "common_<acuity>" of the primary ICD10 diagnosis
  (lowest rank, then code); else "none". A primary ICD10 code missing from the acuity map raises.
Child rows whose encounter_key is not among the encounters are ignored; a NULL `present` is
neither present nor absent. Rows come back in the order of the encounters table.
"""

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from rare_triage.lib import schema

Table = pd.DataFrame | pa.Table

ACUITIES = ("mild", "acute", "chronic")
PAIN_SCORE_FEATURE = "pain_score"
EXTERNAL_CENTRE_ID = "external"
# Published cases are confirmed rare-disease patients whose diagnoses carry no ORPHA code.
EXTERNAL_ORPHA_CODE = "ORPHA:unspecified"

TERM_ROLLUP_COLUMNS = ("hpo_id", "vocab_id")
TERM_SYSTEM_COLUMNS = ("hpo_id", "system_id")
VOCAB_ANCESTORS_COLUMNS = ("vocab_id", "ancestor_id")
PHENOTYPE_CASE_COLUMNS = ("case_id", "sex", "age_years", "observed", "excluded")

_HPO_ID = re.compile(r"HP:\d{7}")
_PREFIX = "rt_feat_"  # names of the views and temp tables this module creates on the connection
_NUMERIC_SQL_TYPES = {"age_years": "DOUBLE", "prior_visits_365d": "DOUBLE"}
_PHENOPACKET_SEX = {"MALE": "M", "FEMALE": "F", "UNKNOWN_SEX": "U", "OTHER_SEX": "U"}


def vocabulary_feature_columns(vocabulary_ids: Sequence[str]) -> list[str]:
    """One column per vocabulary term, in the given order."""
    return [schema.hpo_feature_name(hpo_id) for hpo_id in _checked_ids(vocabulary_ids, "vocabulary_ids")]


def system_feature_columns(system_ids: Sequence[str]) -> list[str]:
    """One column per organ-system group, in the given order."""
    return [schema.system_feature_name(hpo_id) for hpo_id in _checked_ids(system_ids, "system_ids")]


def feature_columns(vocabulary_ids: Sequence[str], system_ids: Sequence[str]) -> list[str]:
    """The model input columns, in order: categoricals, numerics, vocabulary terms, systems."""
    return [
        *schema.FEATURE_CATEGORICAL_COLUMNS,
        *schema.FEATURE_NUMERIC_COLUMNS,
        *vocabulary_feature_columns(vocabulary_ids),
        *system_feature_columns(system_ids),
    ]


def features_table_columns(vocabulary_ids: Sequence[str], system_ids: Sequence[str]) -> list[str]:
    """All columns of the encounter features table: keys, model inputs, label."""
    return [*schema.FEATURE_KEY_COLUMNS, *feature_columns(vocabulary_ids, system_ids), schema.LABEL_COLUMN]


def build_encounter_features(
    anon: Mapping[str, Table],
    *,
    term_rollup: Table,
    term_system: Table,
    vocab_ancestors: Table,
    vocabulary_ids: Sequence[str],
    system_ids: Sequence[str],
    icd10_acuity: Mapping[str, str],
    pain_terms: Collection[str] = (),
    fever_terms: Collection[str] = (),
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """One row per encounter with `features_table_columns(vocabulary_ids, system_ids)` (see module doc)."""
    vocab = _checked_ids(vocabulary_ids, "vocabulary_ids")
    systems = _checked_ids(system_ids, "system_ids")
    inputs = _checked_inputs(anon, term_rollup=term_rollup, term_system=term_system, vocab_ancestors=vocab_ancestors)
    inputs.update(_lookup_tables(vocab, systems, icd10_acuity, pain_terms=pain_terms, fever_terms=fever_terms))
    con = duckdb.connect() if connection is None else connection.cursor()
    try:
        for name, table in inputs.items():
            con.register(_PREFIX + name, table)
        for statement in _staging_sql():
            con.execute(statement)
        _raise_on_bad_rows(con)
        result = con.execute(_features_sql(vocab, systems)).df()
    finally:
        con.close()
    result.columns = features_table_columns(vocab, systems)
    return result


def encode_phenotype_cases(
    cases: pd.DataFrame,
    *,
    partition_day: str | None = None,
    centre_id: str = EXTERNAL_CENTRE_ID,
    consultation_type: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Anonymized-shaped tables for phenotype-only cases (published case reports), labelled orphan.

    `cases` has case_id, sex ("F"/"M"/"U" or phenopacket MALE/FEMALE/...), age_years (NaN when
    unknown; floored, top-coded at 90), observed and excluded (lists of HPO ids). case_id becomes
    the encounter and patient key; vitals and comorbidities are empty, centre level, region, zip3
    and prior visits NULL, each case gets one ORPHA diagnosis so that its label is "orphan".
    """
    missing = [c for c in PHENOTYPE_CASE_COLUMNS if c not in cases.columns]
    if missing:
        raise ValueError(f"cases: missing column(s) {missing}")
    keys = cases["case_id"].astype("string")
    if keys.isna().any() or keys.duplicated().any():
        raise ValueError("cases.case_id: must be unique and not null")
    ages = pd.to_numeric(cases["age_years"], errors="raise").astype("float64").to_numpy()
    if (ages < 0).any():
        raise ValueError(f"cases.age_years: negative age {ages[ages < 0][0]}")
    ages = np.floor(np.minimum(ages, schema.AGE_TOP_CODE))
    encounters = pd.DataFrame(
        {
            "encounter_key": keys.astype(object).to_numpy(),
            "patient_key": keys.astype(object).to_numpy(),
            "partition_day": partition_day,
            "encounter_year": pd.array([pd.NA] * len(cases), dtype="Int64"),
            "age_years": pd.array(ages, dtype="Int64"),
            "age_band": [_age_band(age) for age in ages],
            "sex": [_case_sex(value, case) for value, case in zip(cases["sex"], keys, strict=True)],
            "centre_id": centre_id,
            "centre_level": None,
            "region": None,
            "zip3": None,
            "consultation_type": consultation_type,
            "prior_visits_365d": pd.array([pd.NA] * len(cases), dtype="Int64"),
        },
        columns=list(schema.ANON_COLUMNS[schema.ANON_ENCOUNTERS]),
    )
    rows = [
        (key, hpo_id, present)
        for key, observed, excluded in zip(keys, cases["observed"], cases["excluded"], strict=True)
        for hpo_ids, present in ((observed, True), (excluded, False))
        for hpo_id in _case_terms(hpo_ids, key, "observed" if present else "excluded")
    ]
    symptoms = pd.DataFrame(rows, columns=["encounter_key", "hpo_id", "present"]).astype({"present": bool})
    symptoms["severity"] = np.nan
    symptoms["duration_days"] = np.nan
    diagnoses = pd.DataFrame(
        {"encounter_key": encounters["encounter_key"], "code_system": "ORPHA", "code": EXTERNAL_ORPHA_CODE, "rank": 1}
    )
    return {
        schema.ANON_ENCOUNTERS: encounters,
        schema.ANON_VITALS: _empty(schema.ANON_VITALS, value="float64"),
        schema.ANON_SYMPTOMS: symptoms,
        schema.ANON_DIAGNOSES: diagnoses.astype({"rank": "int64"}),
        schema.ANON_COMORBIDITIES: _empty(schema.ANON_COMORBIDITIES),
    }


def _checked_ids(ids: Sequence[str], field: str) -> list[str]:
    """HPO ids as a list; raise naming the field on a malformed or repeated id."""
    if isinstance(ids, str):
        raise ValueError(f"{field}: expected a sequence of HPO ids, got the string {ids!r}")
    checked = list(ids)
    for hpo_id in checked:
        if not isinstance(hpo_id, str) or not _HPO_ID.fullmatch(hpo_id):
            raise ValueError(f"{field}: {hpo_id!r} is not an HPO id like 'HP:0001945'")
    repeated = sorted({hpo_id for hpo_id in checked if checked.count(hpo_id) > 1})
    if repeated:
        raise ValueError(f"{field}: repeated id(s) {repeated}")
    return checked


def _column_names(table: Any, field: str) -> list[str]:
    if isinstance(table, pd.DataFrame):
        return [str(c) for c in table.columns]
    if isinstance(table, pa.Table):
        return list(table.column_names)
    raise ValueError(f"{field}: expected a pandas DataFrame or a pyarrow Table, got {type(table).__name__}")


def _require_columns(table: Any, columns: Sequence[str], field: str) -> None:
    missing = [c for c in columns if c not in _column_names(table, field)]
    if missing:
        raise ValueError(f"{field}: missing column(s) {missing}")


def _checked_inputs(anon: Mapping[str, Table], **ontology: Table) -> dict[str, Table]:
    """The input tables keyed by view name, encounters with a `_row` position; raise on a missing column."""
    missing = [name for name in schema.ANON_TABLES if name not in anon]
    if missing:
        raise ValueError(f"anon: missing table(s) {missing} (pass empty tables for absent data)")
    inputs: dict[str, Table] = {}
    for name in schema.ANON_TABLES:
        _require_columns(anon[name], schema.ANON_COLUMNS[name], f"anon[{name!r}]")
        inputs["in_" + name] = anon[name]
    columns = list(schema.ANON_COLUMNS[schema.ANON_ENCOUNTERS])
    encounters = anon[schema.ANON_ENCOUNTERS]
    if isinstance(encounters, pd.DataFrame):
        encounters = pa.Table.from_pandas(encounters[columns], preserve_index=False)
    else:
        encounters = encounters.select(columns)
    inputs["in_" + schema.ANON_ENCOUNTERS] = encounters.append_column(
        "_row", pa.array(np.arange(encounters.num_rows, dtype=np.int64))
    )
    expected = {
        "term_rollup": TERM_ROLLUP_COLUMNS,
        "term_system": TERM_SYSTEM_COLUMNS,
        "vocab_ancestors": VOCAB_ANCESTORS_COLUMNS,
    }
    for name, table in ontology.items():
        _require_columns(table, expected[name], name)
        inputs["in_" + name] = table
    return inputs


def _lookup_tables(
    vocab: list[str],
    systems: list[str],
    icd10_acuity: Mapping[str, str],
    *,
    pain_terms: Collection[str],
    fever_terms: Collection[str],
) -> dict[str, pa.Table]:
    """Small tables the SQL joins: column indexes, vital codes, acuity map, fever/pain roots and extras."""
    for code, acuity in icd10_acuity.items():
        if acuity not in ACUITIES:
            raise ValueError(f"icd10_acuity: {code!r} maps to {acuity!r}, expected one of {list(ACUITIES)}")
    vitals = [(loinc, name, unit) for loinc, (name, unit, _low, _high) in schema.VITAL_LOINC.items()]
    spo2_name, spo2_unit = schema.VITAL_LOINC["59408-5"][:2]
    vitals += [(schema.SPO2_ALT_LOINC, spo2_name, spo2_unit), (schema.PAIN_SCORE_LOINC, PAIN_SCORE_FEATURE, None)]
    score_terms = [("fever", schema.FEVER_HPO), ("pain", schema.PAIN_HPO)]
    score_terms += [("fever", t) for t in _checked_ids(sorted(set(fever_terms)), "fever_terms")]
    score_terms += [("pain", t) for t in _checked_ids(sorted(set(pain_terms)), "pain_terms")]
    rows: dict[str, list[tuple[Any, ...]]] = {
        "vocab_index": [(hpo_id, *_mask_bit(i)) for i, hpo_id in enumerate(vocab)],
        "system_index": [(hpo_id, *_mask_bit(i)) for i, hpo_id in enumerate(systems)],
        "vital_codes": vitals,
        "acuity": [(str(code), acuity) for code, acuity in icd10_acuity.items()],
        "score_roots": [("fever", schema.FEVER_HPO), ("pain", schema.PAIN_HPO)],
        "score_extra": score_terms,
    }
    return {name: _small_table(rows[name], _LOOKUP_SCHEMAS[name]) for name in rows}


_LOOKUP_SCHEMAS: dict[str, dict[str, pa.DataType]] = {
    "vocab_index": {"vocab_id": pa.string(), "chunk": pa.int32(), "bit": pa.uint64()},
    "system_index": {"system_id": pa.string(), "chunk": pa.int32(), "bit": pa.uint64()},
    "vital_codes": {"loinc_code": pa.string(), "feature": pa.string(), "unit": pa.string()},
    "acuity": {"code": pa.string(), "acuity": pa.string()},
    "score_roots": {"kind": pa.string(), "root_id": pa.string()},
    "score_extra": {"kind": pa.string(), "hpo_id": pa.string()},
}


def _small_table(rows: list[tuple[Any, ...]], columns: dict[str, pa.DataType]) -> pa.Table:
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    return pa.table({name: pa.array(list(v), type=t) for (name, t), v in zip(columns.items(), values, strict=True)})


def _staging_sql() -> list[str]:
    """Typed encounters with an integer id, symptoms keyed by it, primary diagnoses and ontology indexes."""
    p = _PREFIX
    return [
        f"""CREATE OR REPLACE TEMP TABLE {p}enc AS SELECT
            CAST(_row AS BIGINT) AS eid,
            {", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in _ENCOUNTER_TEXT_COLUMNS)},
            {", ".join(f"CAST({c} AS DOUBLE) AS {c}" for c in _NUMERIC_SQL_TYPES)}
        FROM {p}in_encounters""",
        f"""CREATE OR REPLACE TEMP TABLE {p}sym AS SELECT e.eid, CAST(s.hpo_id AS VARCHAR) AS hpo_id,
            CAST(s.present AS BOOLEAN) AS present, CAST(s.severity AS DOUBLE) AS severity,
            CAST(s.duration_days AS DOUBLE) AS duration_days
        FROM {p}in_symptoms s JOIN {p}enc e ON e.encounter_key = CAST(s.encounter_key AS VARCHAR)""",
        f"""CREATE OR REPLACE TEMP TABLE {p}diag AS SELECT eid, has_orpha, primary_icd10.code AS primary_icd10
        FROM (
            SELECT e.eid, bool_or(d.code_system = 'ORPHA') AS has_orpha,
                min(struct_pack(rank := coalesce(d.rank, {_NULL_RANK}), code := d.code))
                    FILTER (WHERE d.code_system = 'ICD10') AS primary_icd10
            FROM (SELECT CAST(encounter_key AS VARCHAR) AS encounter_key, CAST(code_system AS VARCHAR) AS code_system,
                    CAST(code AS VARCHAR) AS code, CAST(rank AS BIGINT) AS rank FROM {p}in_diagnoses) d
            JOIN {p}enc e ON e.encounter_key = d.encounter_key
            GROUP BY e.eid
        )""",
        f"""CREATE OR REPLACE TEMP TABLE {p}present_vocab AS
        SELECT DISTINCT CAST(r.hpo_id AS VARCHAR) AS hpo_id, v.chunk, v.bit
        FROM {p}in_term_rollup r JOIN {p}vocab_index v ON v.vocab_id = CAST(r.vocab_id AS VARCHAR)""",
        f"""CREATE OR REPLACE TEMP TABLE {p}absent_vocab AS
        SELECT DISTINCT CAST(a.ancestor_id AS VARCHAR) AS hpo_id, v.chunk, v.bit
        FROM {p}in_vocab_ancestors a JOIN {p}vocab_index v ON v.vocab_id = CAST(a.vocab_id AS VARCHAR)""",
        f"""CREATE OR REPLACE TEMP TABLE {p}present_system AS
        SELECT DISTINCT CAST(t.hpo_id AS VARCHAR) AS hpo_id, s.chunk, s.bit
        FROM {p}in_term_system t JOIN {p}system_index s ON s.system_id = CAST(t.system_id AS VARCHAR)""",
        f"""CREATE OR REPLACE TEMP TABLE {p}absent_system AS
        SELECT system_id AS hpo_id, chunk, bit FROM {p}system_index
        UNION SELECT '{schema.PHENOTYPIC_ABNORMALITY_HPO}', chunk, bit FROM {p}system_index""",
        f"""CREATE OR REPLACE TEMP TABLE {p}score_terms AS SELECT hpo_id,
            bool_or(kind = 'fever') AS is_fever, bool_or(kind = 'pain') AS is_pain
        FROM (
            SELECT DISTINCT CAST(r.hpo_id AS VARCHAR) AS hpo_id, k.kind
            FROM {p}in_term_rollup r
            JOIN {p}in_vocab_ancestors a ON CAST(a.vocab_id AS VARCHAR) = CAST(r.vocab_id AS VARCHAR)
            JOIN {p}score_roots k ON k.root_id = CAST(a.ancestor_id AS VARCHAR)
            UNION ALL SELECT hpo_id, kind FROM {p}score_extra
        ) GROUP BY hpo_id""",
    ]


_ENCOUNTER_TEXT_COLUMNS = (*schema.FEATURE_KEY_COLUMNS, *schema.FEATURE_CATEGORICAL_COLUMNS)
_NULL_RANK = 2**63 - 1  # a diagnosis without rank comes after every ranked one


def _raise_on_bad_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Reject null or repeated encounter keys, vitals in an unexpected unit and unmapped primary ICD10 codes."""
    p = _PREFIX
    null_keys = con.execute(f"SELECT count(*) FROM {p}enc WHERE encounter_key IS NULL").fetchone()
    if null_keys and null_keys[0]:
        raise ValueError(f"encounters.encounter_key: {null_keys[0]} null key(s)")
    repeated = con.execute(
        f"SELECT encounter_key FROM {p}enc GROUP BY encounter_key HAVING count(*) > 1 ORDER BY 1 LIMIT 3"
    ).fetchall()
    if repeated:
        raise ValueError(f"encounters.encounter_key: repeated key(s) {[r[0] for r in repeated]}")
    bad_units = con.execute(
        f"""SELECT DISTINCT CAST(v.loinc_code AS VARCHAR), CAST(v.unit AS VARCHAR), c.unit
        FROM {p}in_vitals v JOIN {p}vital_codes c ON c.loinc_code = CAST(v.loinc_code AS VARCHAR)
        WHERE c.unit IS NOT NULL AND CAST(v.unit AS VARCHAR) IS DISTINCT FROM c.unit ORDER BY 1, 2 LIMIT 5"""
    ).fetchall()
    if bad_units:
        found = ", ".join(f"{loinc} in {unit!r} (expected {want!r})" for loinc, unit, want in bad_units)
        raise ValueError(f"vitals.unit: {found}")
    unknown = con.execute(
        f"""SELECT DISTINCT d.primary_icd10 FROM {p}diag d ANTI JOIN {p}acuity a ON a.code = d.primary_icd10
        WHERE NOT d.has_orpha AND d.primary_icd10 IS NOT NULL ORDER BY 1 LIMIT 10"""
    ).fetchall()
    if unknown:
        raise ValueError(
            f"diagnoses.code: primary ICD10 code(s) {[r[0] for r in unknown]} have no acuity in icd10_acuity"
        )


def _mask_aggregates(n_columns: int) -> str:
    """Per 64-column chunk, OR the bits of present and of absent (eid, chunk, bit, state) rows: 4 aggregates for 82
    terms instead of one filtered aggregate per term (which is 10x slower on a million encounters)."""
    return ", ".join(
        f"bit_or(s.bit) FILTER (WHERE s.chunk = {c} AND s.state = {state}) AS {name}_{c}"
        for c in range(_chunks(n_columns))
        for name, state in (("present", 1), ("absent", 0))
    )


def _mask_column(prefix: str, index: int) -> str:
    """1.0 when the column's present bit is set, else 0.0 when its absent bit is set, else NULL."""
    chunk, bit = divmod(index, _MASK_BITS)
    return (
        f"CASE WHEN ({prefix}_present_{chunk} >> {bit}) & 1 = 1 THEN 1.0 "
        f"WHEN ({prefix}_absent_{chunk} >> {bit}) & 1 = 1 THEN 0.0 END"
    )


def _mask_names(prefix: str, alias: str, n_columns: int) -> str:
    return ", ".join(
        f"{alias}.{state}_{c} AS {prefix}_{state}_{c}"
        for c in range(_chunks(n_columns))
        for state in ("present", "absent")
    )


def _mask_bit(index: int) -> tuple[int, int]:
    """The chunk of a column's mask and its bit value inside it."""
    chunk, bit = divmod(index, _MASK_BITS)
    return chunk, 1 << bit


def _chunks(n_columns: int) -> int:
    return max(1, -(-n_columns // _MASK_BITS))


_MASK_BITS = 64  # a UBIGINT mask holds 64 columns


def _states_sql(present_table: str, absent_table: str) -> str:
    """(eid, chunk, bit, state) rows: 1 for a present symptom rolling up to a column, 0 for an excluded ancestor."""
    p = _PREFIX
    return f"""
        SELECT sym.eid, t.chunk, t.bit, 1 AS state FROM {p}sym sym JOIN {p}{present_table} t ON t.hpo_id = sym.hpo_id
        WHERE sym.present
        UNION ALL
        SELECT sym.eid, t.chunk, t.bit, 0 AS state FROM {p}sym sym JOIN {p}{absent_table} t ON t.hpo_id = sym.hpo_id
        WHERE NOT sym.present"""


def _features_sql(vocab: list[str], systems: list[str]) -> str:
    """The single query producing the features table, columns in `features_table_columns` order."""
    p = _PREFIX
    vital_names = [name for name, _unit, _low, _high in schema.VITAL_LOINC.values()]
    vital_aggs = ", ".join(f"avg(v.value) FILTER (WHERE c.feature = '{n}') AS {n}" for n in vital_names)
    n_systems = " + ".join(f"coalesce(bit_count(system_present_{c}), 0)" for c in range(_chunks(len(systems))))
    numeric = {
        "age_years": "age_years",
        **{n: n for n in vital_names},
        "fever_score": "fever_score",
        "pain_score": "greatest(pain_score, vital_pain_score)",
        "symptom_duration_days": "symptom_duration_days",
        "comorbidity_count": "coalesce(comorbidity_count, 0)",
        "prior_visits_365d": "prior_visits_365d",
        "n_systems_involved": n_systems,
    }
    assert tuple(numeric) == schema.FEATURE_NUMERIC_COLUMNS, "numeric expressions out of step with the schema"
    label = f"""CASE WHEN coalesce(has_orpha, false) THEN '{schema.ORPHAN_LABEL}'
        WHEN primary_icd10 IS NULL THEN 'none' ELSE 'common_' || acuity END"""
    select = [
        *(f"{c}" for c in (*schema.FEATURE_KEY_COLUMNS, *schema.FEATURE_CATEGORICAL_COLUMNS)),
        *(f"CAST({expr} AS DOUBLE)" for expr in numeric.values()),
        *(_mask_column("vocab", i) for i in range(len(vocab))),
        *(_mask_column("system", i) for i in range(len(systems))),
        label,
    ]
    return f"""
    WITH vitals_agg AS (
        SELECT e.eid, {vital_aggs},
            max(v.value) FILTER (WHERE c.feature = '{PAIN_SCORE_FEATURE}') AS vital_pain_score
        FROM (SELECT CAST(encounter_key AS VARCHAR) AS encounter_key, CAST(loinc_code AS VARCHAR) AS loinc_code,
                CAST(value AS DOUBLE) AS value FROM {p}in_vitals) v
        JOIN {p}vital_codes c ON c.loinc_code = v.loinc_code
        JOIN {p}enc e ON e.encounter_key = v.encounter_key
        GROUP BY e.eid
    ), symptoms_agg AS (
        SELECT s.eid,
            max(s.severity) FILTER (WHERE t.is_fever) AS fever_score,
            max(s.severity) FILTER (WHERE t.is_pain) AS pain_score,
            max(s.duration_days) AS symptom_duration_days
        FROM {p}sym s LEFT JOIN {p}score_terms t ON t.hpo_id = s.hpo_id
        WHERE s.present GROUP BY s.eid
    ), comorbidities_agg AS (
        SELECT e.eid, count(DISTINCT CAST(c.icd10_code AS VARCHAR)) AS comorbidity_count
        FROM {p}in_comorbidities c JOIN {p}enc e ON e.encounter_key = CAST(c.encounter_key AS VARCHAR)
        GROUP BY e.eid
    ), vocab_masks AS (
        SELECT s.eid, {_mask_aggregates(len(vocab))} FROM ({_states_sql("present_vocab", "absent_vocab")}) s
        GROUP BY s.eid
    ), system_masks AS (
        SELECT s.eid, {_mask_aggregates(len(systems))} FROM ({_states_sql("present_system", "absent_system")}) s
        GROUP BY s.eid
    ), joined AS (
        SELECT e.*, va.* EXCLUDE (eid), sa.* EXCLUDE (eid), ca.* EXCLUDE (eid), dg.* EXCLUDE (eid), ac.acuity,
            {_mask_names("vocab", "vm", len(vocab))}, {_mask_names("system", "sm", len(systems))}
        FROM {p}enc e
        LEFT JOIN vitals_agg va ON va.eid = e.eid
        LEFT JOIN symptoms_agg sa ON sa.eid = e.eid
        LEFT JOIN comorbidities_agg ca ON ca.eid = e.eid
        LEFT JOIN vocab_masks vm ON vm.eid = e.eid
        LEFT JOIN system_masks sm ON sm.eid = e.eid
        LEFT JOIN {p}diag dg ON dg.eid = e.eid
        LEFT JOIN {p}acuity ac ON ac.code = dg.primary_icd10
        ORDER BY e.eid
    )
    SELECT {", ".join(select)} FROM joined"""


def _age_band(age: float) -> str | None:
    if np.isnan(age):
        return None
    return schema.AGE_BANDS[min(int(age) // 10, len(schema.AGE_BANDS) - 1)]


def _case_sex(value: object, case_id: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "U"
    if value in schema.SEXES:
        return str(value)
    if value in _PHENOPACKET_SEX:
        return _PHENOPACKET_SEX[str(value)]
    raise ValueError(f"cases.sex: {value!r} of case {case_id!r} is not one of {[*schema.SEXES, *_PHENOPACKET_SEX]}")


def _case_terms(hpo_ids: object, case_id: str, field: str) -> list[str]:
    if hpo_ids is None or (isinstance(hpo_ids, float) and np.isnan(hpo_ids)):
        return []
    if isinstance(hpo_ids, str):
        raise ValueError(f"cases.{field}: case {case_id!r} has a string, expected a list of HPO ids")
    terms = list(hpo_ids)  # type: ignore[call-overload]
    for hpo_id in terms:
        if not isinstance(hpo_id, str) or not _HPO_ID.fullmatch(hpo_id):
            raise ValueError(f"cases.{field}: {hpo_id!r} of case {case_id!r} is not an HPO id like 'HP:0001945'")
    return terms


def _empty(table: str, **dtypes: str) -> pd.DataFrame:
    columns = schema.ANON_COLUMNS[table]
    return pd.DataFrame({c: pd.Series([], dtype=dtypes.get(c, object)) for c in columns})
