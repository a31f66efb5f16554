"""Encounter features: one row per encounter from the anonymized tables, built with DuckDB SQL.

Keys, categoricals and the label leave as str (None when NULL); every number, flag and count as
float64 (NaN when NULL / unknown). Rules:
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
- phenotype specificity, over the distinct present terms: n_present_terms, n_specific_terms (information
  content >= schema.SPECIFIC_TERM_IC), phenotype_ic_max and phenotype_ic_sum (information content from
  `term_ic`, see ontology.ReferenceTables; a term missing there counts as a term of IC 0). 0 when none.
- label: "orphan" when any ORPHA diagnosis; else "common_<acuity>" of the primary ICD10 diagnosis, the
  first (lowest rank, then code) whose acuity is not None (a Z code has none); else "none". An ICD10 code
  unknown to the acuity lookup raises when it would come before that primary one.
Child rows whose encounter_key is not among the encounters are ignored; a NULL `present` is
neither present nor absent. Rows come back in the order of the encounters table.
"""

import re
from collections.abc import Collection, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol, TypeAlias

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from rare_triage.lib import schema

Table: TypeAlias = pd.DataFrame | pa.Table

ACUITIES = ("mild", "acute", "chronic")
PAIN_SCORE_FEATURE = "pain_score"
EXTERNAL_CENTRE_ID = "external"
# Published cases are confirmed rare-disease patients whose diagnoses carry no ORPHA code.
EXTERNAL_ORPHA_CODE = "ORPHA:unspecified"

TERM_ROLLUP_COLUMNS = ("hpo_id", "vocab_id")
TERM_SYSTEM_COLUMNS = ("hpo_id", "system_id")
VOCAB_ANCESTORS_COLUMNS = ("vocab_id", "ancestor_id")
TERM_IC_COLUMNS = ("hpo_id", "information_content")
PHENOTYPE_CASE_COLUMNS = ("case_id", "sex", "age_years", "observed", "excluded")

_HPO_ID = re.compile(r"HP:\d{7}")
_PREFIX = "rt_feat_"  # names of the views and temp tables sql/ reads and creates
_PHENOPACKET_SEX = {"MALE": "M", "FEMALE": "F", "UNKNOWN_SEX": "U", "OTHER_SEX": "U"}


class AcuityLookup(Protocol):
    """ICD-10 code -> acuity, None for no disease acuity; KeyError for an unknown code (a dict, Icd10Acuity)."""

    def __getitem__(self, code: str, /) -> str | None: ...


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
    term_ic: Table,
    vocabulary_ids: Sequence[str],
    system_ids: Sequence[str],
    icd10_acuity: AcuityLookup,
    pain_terms: Collection[str] = (),
    fever_terms: Collection[str] = (),
    connection: duckdb.DuckDBPyConnection | None = None,
    as_arrow: bool = False,
) -> pd.DataFrame | pa.Table:
    """One row per encounter with `features_table_columns(vocabulary_ids, system_ids)` (see module doc).

    `as_arrow` returns a pyarrow Table instead (compact strings, no pandas copy) for large partitions.
    """
    vocab = _checked_ids(vocabulary_ids, "vocabulary_ids")
    systems = _checked_ids(system_ids, "system_ids")
    inputs = _checked_inputs(
        anon, term_rollup=term_rollup, term_system=term_system, vocab_ancestors=vocab_ancestors, term_ic=term_ic
    )
    if isinstance(icd10_acuity, Mapping):
        for code in icd10_acuity:
            _checked_acuity(icd10_acuity, code)
    inputs.update(_lookup_tables(vocab, systems, pain_terms=pain_terms, fever_terms=fever_terms))
    con = duckdb.connect() if connection is None else connection.cursor()
    try:
        for name, table in inputs.items():
            con.register(_PREFIX + name, table)
        con.register(_PREFIX + "acuity", _acuity_table(con, icd10_acuity))
        for statement in _staging_sql():
            con.execute(statement)
        _raise_on_bad_rows(con)
        if as_arrow:
            return con.sql(_features_sql(vocab, systems)).to_arrow_table()
        return con.execute(_features_sql(vocab, systems)).df()
    finally:
        con.close()


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
        "term_ic": TERM_IC_COLUMNS,
    }
    for name, table in ontology.items():
        _require_columns(table, expected[name], name)
        inputs["in_" + name] = table
    return inputs


def _checked_acuity(icd10_acuity: AcuityLookup, code: str) -> str | None:
    """The acuity of ``code``; KeyError when the lookup does not know it, ValueError when it is not an acuity."""
    acuity = icd10_acuity[code]
    if acuity is not None and acuity not in ACUITIES:
        raise ValueError(f"icd10_acuity: {code!r} maps to {acuity!r}, expected one of {list(ACUITIES)} or None")
    return acuity


def _acuity_table(con: duckdb.DuckDBPyConnection, icd10_acuity: AcuityLookup) -> pa.Table:
    """code, acuity of every distinct ICD10 code of the diagnoses the lookup knows (acuity NULL: no disease)."""
    codes = con.execute(
        f"""SELECT DISTINCT CAST(code AS VARCHAR) FROM {_PREFIX}in_diagnoses
        WHERE CAST(code_system AS VARCHAR) = 'ICD10' AND code IS NOT NULL ORDER BY 1"""
    ).fetchall()
    rows = []
    for (code,) in codes:
        try:
            rows.append((code, _checked_acuity(icd10_acuity, code)))
        except KeyError:
            continue  # unknown: _raise_on_bad_rows names it where it could decide a label
    return _small_table(rows, _LOOKUP_SCHEMAS["acuity"])


def _lookup_tables(
    vocab: list[str],
    systems: list[str],
    *,
    pain_terms: Collection[str],
    fever_terms: Collection[str],
) -> dict[str, pa.Table]:
    """Small tables the SQL joins: column indexes, vital codes, fever/pain roots and extras."""
    vitals: list[tuple[str, str, str | None]] = [
        (loinc, name, unit) for loinc, (name, unit, _low, _high) in schema.VITAL_LOINC.items()
    ]
    spo2_name, spo2_unit = schema.VITAL_LOINC["59408-5"][:2]
    vitals += [(schema.SPO2_ALT_LOINC, spo2_name, spo2_unit), (schema.PAIN_SCORE_LOINC, PAIN_SCORE_FEATURE, None)]
    score_terms = [("fever", schema.FEVER_HPO), ("pain", schema.PAIN_HPO)]
    score_terms += [("fever", t) for t in _checked_ids(list(dict.fromkeys(fever_terms)), "fever_terms")]
    score_terms += [("pain", t) for t in _checked_ids(list(dict.fromkeys(pain_terms)), "pain_terms")]
    rows: dict[str, list[tuple[Any, ...]]] = {
        "vocab_index": [(hpo_id, *_mask_bit(i)) for i, hpo_id in enumerate(vocab)],
        "system_index": [(hpo_id, *_mask_bit(i)) for i, hpo_id in enumerate(systems)],
        "vital_codes": vitals,
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


def _sql(name: str, **parts: object) -> str:
    """A template of sql/ with its parts filled in."""
    return (resources.files(__package__) / "sql" / name).read_text(encoding="utf-8").format(**parts)


def _staging_sql() -> list[str]:
    """Typed encounters with an integer id, symptoms keyed by it, primary diagnoses, ontology bit tables."""
    script = _sql("staging.sql", null_rank=_NULL_RANK, phenotypic_abnormality=schema.PHENOTYPIC_ABNORMALITY_HPO)
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return [statement for statement in code.split(";") if statement.strip()]


_NULL_RANK = 2**63 - 1  # a diagnosis without rank comes after every ranked one


def _raise_on_bad_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Reject null or repeated encounter keys, vitals in an unexpected unit and unknown ICD10 codes that could
    decide a label."""
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
        f"""SELECT DISTINCT unknown_icd10 FROM {p}diag
        WHERE NOT has_orpha AND unknown_icd10 IS NOT NULL ORDER BY 1 LIMIT 10"""
    ).fetchall()
    if unknown:
        raise ValueError(f"diagnoses.code: ICD10 code(s) {[r[0] for r in unknown]} are unknown to icd10_acuity")


def _mask_aggregates(n_vocab: int, n_systems: int) -> str:
    """Per kind and 64-column chunk, OR the bits of the present and of the absent rows: a handful of aggregates for
    82 terms and 23 systems instead of one filtered aggregate per column (10x slower on a million encounters)."""
    return ", ".join(
        f"bit_or(t.bit) FILTER (WHERE t.kind = '{kind}' AND t.chunk = {c} AND t.state = {state}) AS {kind}_{name}_{c}"
        for kind, n_columns in (("vocab", n_vocab), ("system", n_systems))
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


def _mask_bit(index: int) -> tuple[int, int]:
    """The chunk of a column's mask and its bit value inside it."""
    chunk, bit = divmod(index, _MASK_BITS)
    return chunk, 1 << bit


def _chunks(n_columns: int) -> int:
    return max(1, -(-n_columns // _MASK_BITS))


_MASK_BITS = 64  # a UBIGINT mask holds 64 columns


def _features_sql(vocab: list[str], systems: list[str]) -> str:
    """The query producing the features table, columns in `features_table_columns` order."""
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
        "n_present_terms": "coalesce(n_present_terms, 0)",
        "n_specific_terms": "coalesce(n_specific_terms, 0)",
        "phenotype_ic_max": "coalesce(phenotype_ic_max, 0)",
        "phenotype_ic_sum": "coalesce(phenotype_ic_sum, 0)",
    }
    assert tuple(numeric) == schema.FEATURE_NUMERIC_COLUMNS, "numeric expressions out of step with the schema"
    label = f"""CASE WHEN coalesce(has_orpha, false) THEN '{schema.ORPHAN_LABEL}'
        WHEN primary_icd10 IS NULL THEN 'none' ELSE 'common_' || acuity END"""
    expressions = [
        *schema.FEATURE_KEY_COLUMNS,
        *schema.FEATURE_CATEGORICAL_COLUMNS,
        *(f"CAST({expr} AS DOUBLE)" for expr in numeric.values()),
        *(_mask_column("vocab", i) for i in range(len(vocab))),
        *(_mask_column("system", i) for i in range(len(systems))),
        label,
    ]
    names = features_table_columns(vocab, systems)
    select = [f"{expr} AS {name}" for expr, name in zip(expressions, names, strict=True)]
    return _sql(
        "encounter_features.sql",
        vital_aggregates=vital_aggs,
        pain_feature=PAIN_SCORE_FEATURE,
        specific_ic=repr(float(schema.SPECIFIC_TERM_IC)),
        mask_aggregates=_mask_aggregates(len(vocab), len(systems)),
        select_list=",\n    ".join(select),
    )


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
