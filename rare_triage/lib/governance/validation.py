"""Row-level validation of a raw extract: good rows go on, bad rows go to quarantine with a reason.

Every check is vectorised; Python loops only build the reason strings of bad rows.
A row with problems in several fields is quarantined once per field (so it may appear
several times in ``quarantined``) but is counted once in ``counts``, which count rows:
for every table ``in == valid + quarantined``. Children of a quarantined encounter are
quarantined with it ("encounter quarantined"), encounters of a quarantined patient too. An encounter with a
quarantined diagnosis row (the rows its label derives from) is held back the same way, never relabelled.
Text cells are screened for identifier content first (screening.py). Quarantined rows carry
``row_ref`` = pseudonym of the source key (a child row: of its encounter), a ``reason`` naming
table, field, rule and raw row number but never a value, and ``row_json`` without any direct
identifier (keys replaced by pseudonyms) in which only values that passed every check of their
column stay verbatim; the others are keyed fingerprints ("fp:" + 16 hex characters).
"""

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.governance.anonymize import age_in_years
from rare_triage.lib.governance.distinct import membership, test_distinct
from rare_triage.lib.governance.screening import FINGERPRINT_PREFIX, PatientIdentifierValues, screen_raw_table
from rare_triage.lib.governance.vocabulary import (
    OPEN_VOCABULARY_TESTS,
    ORPHA_CODE,
    VocabularyTests,
    in_vocabulary,
    raw_vocabulary_tests,
)
from rare_triage.lib.identifiers import IDENTIFIER_COLUMNS
from rare_triage.lib.reference.icd10 import is_icd10_code

MAX_AGE_YEARS = 120
SEVERITY_RANGE = (0.0, 10.0)
_HPO_ID = re.compile(r"HP:\d{7}")
_BLANKS = ("", " ", "  ", "\t", "\n", "\r\n", "\xa0")
ROW_FIELD = "row"  # the field of a whole-row problem (exact duplicate)
LABEL_HELD_BACK = "a diagnosis row was quarantined, the label could change"
NOT_ICD10 = "not an ICD-10 code (letter, 2 digits, optional dot and 1-4 characters)"
FINGERPRINT_HEX_CHARS = 16


class ExtractSchemaError(ValueError):
    """The extract does not have the tables or columns of the contract (nothing to quarantine)."""


@dataclass(frozen=True)
class ValidationResult:
    """Valid rows per raw table, quarantined rows (QUARANTINE_COLUMNS) and per-table row counts."""

    valid: dict[str, pd.DataFrame]
    quarantined: pd.DataFrame
    counts: dict[str, dict[str, int]]


Reason = str | Callable[[pd.DataFrame], Iterable[str]]
CodeTest = Callable[[str], bool] | frozenset[str]


class _Issues:
    """Collects (row position, field, reason) of the bad rows of each table."""

    def __init__(self) -> None:
        self.parts: dict[str, list[pd.DataFrame]] = {t: [] for t in schema.RAW_TABLES}

    def add(self, table: str, frame: pd.DataFrame, mask: pd.Series | np.ndarray, field: str, reason: Reason) -> None:
        """Flag the rows of ``frame`` where ``mask`` is true (NA counts as false)."""
        flags = mask.fillna(False).to_numpy(dtype=bool) if isinstance(mask, pd.Series) else np.asarray(mask, bool)
        if flags.any():
            positions = np.flatnonzero(flags)
            texts = [reason] * len(positions) if isinstance(reason, str) else list(reason(frame.iloc[positions]))
            self.add_positions(table, positions, field, texts)

    def add_positions(self, table: str, positions: np.ndarray, field: str, reasons: Sequence[str]) -> None:
        prefix = f"{table}.{field}: "
        self.parts[table].append(
            pd.DataFrame({"pos": positions, "field": field, "reason": [prefix + r for r in reasons]})
        )

    def table(self, table: str) -> pd.DataFrame:
        parts = self.parts[table]
        if not parts:
            return pd.DataFrame({"pos": pd.Series(dtype="int64"), "field": [], "reason": []})
        issues = pd.concat(parts, ignore_index=True).drop_duplicates(["pos", "field"])
        return issues.sort_values("pos", kind="stable").reset_index(drop=True)

    def bad(self, table: str, n_rows: int) -> np.ndarray:
        flags = np.zeros(n_rows, dtype=bool)
        for part in self.parts[table]:
            flags[part["pos"].to_numpy()] = True
        return flags


def _missing(values: pd.Series) -> pd.Series:
    """Null, empty or a common blank (sources strip text: see raw_frames), in one hash lookup."""
    return values.isna() | values.isin(_BLANKS)


def _key_index(keys: pd.Series) -> pd.Index:
    """Distinct keys as an Index, whose cached hash table serves many membership tests."""
    return pd.Index(pd.unique(keys.dropna()))


def _in_keys(values: pd.Series, keys: pd.Index) -> pd.Series:
    return pd.Series(keys.get_indexer(values) >= 0, index=values.index)


def _not_one_of(allowed: Iterable[str]) -> str:
    """Reason of a value outside an enumeration (the enumeration, never the value)."""
    return f"not one of {', '.join(allowed)}"


def _check_columns(tables: Mapping[str, pd.DataFrame]) -> None:
    missing_tables = [t for t in schema.RAW_TABLES if t not in tables]
    extra_tables = [t for t in tables if t not in schema.RAW_TABLES]
    if missing_tables or extra_tables:
        raise ExtractSchemaError(f"extract tables: missing {missing_tables}, unexpected {extra_tables}")
    for table in schema.RAW_TABLES:
        expected = schema.RAW_COLUMNS[table]
        missing = [c for c in expected if c not in tables[table].columns]
        extra = [c for c in tables[table].columns if c not in expected]
        if missing or extra:
            raise ExtractSchemaError(f"{table}: missing columns {missing}, unexpected columns {extra}")


def _as_dates(values: pd.Series) -> pd.Series:
    dates = pd.to_datetime(values, errors="coerce")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    return dates


def _check_patients(p: pd.DataFrame, issues: _Issues) -> None:
    t = schema.RAW_PATIENTS
    issues.add(t, p, _missing(p["patient_id"]), "patient_id", "missing")
    sex_missing = _missing(p["sex"])
    issues.add(t, p, sex_missing, "sex", "missing")
    issues.add(t, p, ~sex_missing & ~p["sex"].isin(schema.SEXES), "sex", _not_one_of(schema.SEXES))
    issues.add(t, p, _as_dates(p["birth_date"]).isna(), "birth_date", "missing or not a date")
    exact_duplicate = p.duplicated(keep="first")
    issues.add(t, p, exact_duplicate, ROW_FIELD, "exact duplicate of an earlier row")
    distinct = p[~exact_duplicate]
    conflicting_ids = distinct.loc[distinct["patient_id"].duplicated(keep=False), "patient_id"].dropna()
    issues.add(t, p, p["patient_id"].isin(conflicting_ids), "patient_id", "conflicting rows for the same patient id")


def _check_encounters(
    e: pd.DataFrame, p: pd.DataFrame, valid_patients: pd.DataFrame, partition_day: pd.Timestamp, issues: _Issues
) -> None:
    t = schema.RAW_ENCOUNTERS
    eid_missing = _missing(e["encounter_id"])
    pid_missing = _missing(e["patient_id"])
    issues.add(t, e, eid_missing, "encounter_id", "missing")
    issues.add(
        t,
        e,
        ~eid_missing & e["encounter_id"].duplicated(keep="first"),
        "encounter_id",
        "duplicate of an earlier encounter",
    )
    issues.add(t, e, pid_missing, "patient_id", "missing")
    known_patient = ~pid_missing & _in_keys(e["patient_id"], _key_index(p["patient_id"]))
    issues.add(t, e, ~pid_missing & ~known_patient, "patient_id", "unknown patient")
    issues.add(
        t,
        e,
        known_patient & ~_in_keys(e["patient_id"], _key_index(valid_patients["patient_id"])),
        "patient_id",
        "patient quarantined",
    )

    dates = _as_dates(e["encounter_date"])
    issues.add(t, e, dates.isna(), "encounter_date", "missing or not a date")
    off_day = dates.notna() & dates.dt.normalize().ne(partition_day)
    issues.add(
        t,
        e,
        off_day,
        "encounter_date",
        lambda bad: [f"{'before' if d < partition_day else 'after'} the partition day" for d in dates[bad.index]],
    )
    for column in ("centre_id", "region"):
        issues.add(t, e, _missing(e[column]), column, "missing")
    for column, allowed in (("centre_level", schema.CENTRE_LEVELS), ("consultation_type", schema.CONSULTATION_TYPES)):
        issues.add(t, e, ~e[column].isin(allowed), column, _not_one_of(allowed))
    visits = pd.to_numeric(e["prior_visits_365d"], errors="coerce")
    issues.add(t, e, visits.isna() & e["prior_visits_365d"].notna(), "prior_visits_365d", "not a number")
    issues.add(t, e, visits < 0, "prior_visits_365d", "negative visit count")

    birth = e["patient_id"].map(valid_patients.set_index("patient_id")["birth_date"])
    birth = _as_dates(birth)
    age = age_in_years(birth, dates)
    issues.add(t, e, birth > dates, "age_years", "birth date after the encounter date")
    issues.add(t, e, age > MAX_AGE_YEARS, "age_years", f"age above {MAX_AGE_YEARS} years")


def _check_children_keys(table: str, c: pd.DataFrame, raw_ids: pd.Index, valid_ids: pd.Index, issues: _Issues) -> None:
    missing = _missing(c["encounter_id"])
    known = ~missing & _in_keys(c["encounter_id"], raw_ids)
    issues.add(table, c, missing, "encounter_id", "missing")
    issues.add(table, c, ~missing & ~known, "encounter_id", "unknown encounter")
    issues.add(table, c, known & ~_in_keys(c["encounter_id"], valid_ids), "encounter_id", "encounter quarantined")
    issues.add(table, c, c.duplicated(keep="first"), ROW_FIELD, "exact duplicate of an earlier row")


_SPO2_LOINC = "59408-5"
_SYSTOLIC_LOINC = "8480-6"
_DIASTOLIC_LOINC = "8462-4"
_VITAL_SPEC = pd.DataFrame.from_dict(schema.VITAL_LOINC, orient="index", columns=["name", "unit", "low", "high"])


def _normalise_loinc(codes: pd.Series) -> pd.Series:
    """SpO2 coded 2708-6 is read as 59408-5."""
    return codes.mask(codes.eq(schema.SPO2_ALT_LOINC), _SPO2_LOINC)


def _vital_name(code: str) -> str:
    """temperature_c -> temperature, heart_rate -> heart rate."""
    return schema.VITAL_LOINC[code][0].removesuffix("_c").replace("_", " ")


def _check_vitals(v: pd.DataFrame, issues: _Issues) -> None:
    t = schema.RAW_VITALS
    code = v["loinc_code"]
    code_missing = _missing(code)
    known = code.isin(_VITAL_SPEC.index)
    issues.add(t, v, code_missing, "loinc_code", "missing")
    issues.add(t, v, ~known & ~code_missing, "loinc_code", "unknown LOINC code")
    unit_ok = known & v["unit"].eq(code.map(_VITAL_SPEC["unit"]))

    def unit_reason(bad: pd.DataFrame) -> list[str]:
        return [f"not the unit of {_vital_name(c)}, expected {schema.VITAL_LOINC[c][1]!r}" for c in bad["loinc_code"]]

    issues.add(t, v, known & ~unit_ok, "unit", unit_reason)
    value = pd.to_numeric(v["value"], errors="coerce")
    issues.add(t, v, value.isna(), "value", "missing or not a number")
    in_range = value.between(code.map(_VITAL_SPEC["low"]), code.map(_VITAL_SPEC["high"]))
    out_of_range = unit_ok & value.notna() & ~in_range

    def range_reason(bad: pd.DataFrame) -> list[str]:
        reasons = []
        for c in bad["loinc_code"]:
            _, unit, low, high = schema.VITAL_LOINC[c]
            reasons.append(f"{_vital_name(c)} outside plausible range {low:g}-{high:g} {unit}")
        return reasons

    issues.add(t, v, out_of_range, "value", range_reason)
    _check_blood_pressure(v, value[unit_ok & in_range], issues)


def _check_blood_pressure(v: pd.DataFrame, plausible_values: pd.Series, issues: _Issues) -> None:
    """Flag both rows when an encounter's systolic pressure is below its diastolic pressure."""
    code = v["loinc_code"][plausible_values.index]
    bp = pd.DataFrame({"encounter_id": v["encounter_id"][plausible_values.index], "value": plausible_values})
    bp["pos"] = bp.index
    systolic, diastolic = bp[code.eq(_SYSTOLIC_LOINC)], bp[code.eq(_DIASTOLIC_LOINC)]
    pairs = systolic.merge(diastolic, on="encounter_id", suffixes=("_sys", "_dia"))
    pairs = pairs[pairs["value_sys"] < pairs["value_dia"]]
    if len(pairs) == 0:
        return
    sys_reasons = ["systolic below diastolic in the same encounter"] * len(pairs)
    dia_reasons = ["diastolic above systolic in the same encounter"] * len(pairs)
    issues.add_positions(schema.RAW_VITALS, pairs["pos_sys"].to_numpy(), "value", sys_reasons)
    issues.add_positions(schema.RAW_VITALS, pairs["pos_dia"].to_numpy(), "value", dia_reasons)


def _is_hpo_id(value: object) -> bool:
    return isinstance(value, str) and _HPO_ID.fullmatch(value) is not None


def _orpha_number(value: object) -> float:
    """ORPHA:558 -> 558.0; NaN when the value is not an ORPHA code."""
    match = ORPHA_CODE.fullmatch(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else np.nan


def _check_symptoms(s: pd.DataFrame, known_hpo: CodeTest, issues: _Issues) -> None:
    t = schema.RAW_SYMPTOMS
    hpo = s["hpo_id"]
    hpo_missing = _missing(hpo)
    well_formed = test_distinct(hpo, _is_hpo_id, default=False)
    issues.add(t, s, hpo_missing, "hpo_id", "missing")
    issues.add(t, s, ~hpo_missing & ~well_formed, "hpo_id", "not an HPO id (HP:nnnnnnn)")
    is_known = membership(known_hpo)
    known = test_distinct(hpo, lambda h: isinstance(h, str) and _is_hpo_id(h) and bool(is_known(h)), default=False)
    issues.add(t, s, well_formed & ~known, "hpo_id", "unknown HPO term")
    present = s["present"]
    issues.add(t, s, present.isna(), "present", "missing")
    not_bool = present.notna() & ~present.isin([True, False])
    issues.add(t, s, not_bool, "present", "not true/false")
    low, high = SEVERITY_RANGE
    severity = pd.to_numeric(s["severity"], errors="coerce")
    issues.add(t, s, severity.isna() & s["severity"].notna(), "severity", "not a number")
    issues.add(t, s, (severity < low) | (severity > high), "severity", f"outside {low:g}-{high:g}")
    duration = pd.to_numeric(s["duration_days"], errors="coerce")
    issues.add(t, s, duration.isna() & s["duration_days"].notna(), "duration_days", "not a number")
    issues.add(t, s, duration < 0, "duration_days", "negative duration")


def _check_icd10(
    table: str, frame: pd.DataFrame, column: str, *, candidates: pd.Series, known_icd10: CodeTest, issues: _Issues
) -> None:
    """ICD-10 codes: the syntax first (ICD10_PATTERN), then membership of ``known_icd10``."""
    well_formed = test_distinct(frame[column], is_icd10_code, default=False)
    is_known = membership(known_icd10)
    known = test_distinct(frame[column], lambda c: is_icd10_code(c) and bool(is_known(str(c))), default=False)
    issues.add(table, frame, candidates & ~well_formed, column, NOT_ICD10)
    issues.add(table, frame, candidates & well_formed & ~known, column, "unknown ICD-10 code")


def _check_diagnoses(d: pd.DataFrame, known_icd10: CodeTest, known_orpha: frozenset[int], issues: _Issues) -> None:
    t = schema.RAW_DIAGNOSES
    system = d["code_system"]
    issues.add(t, d, ~system.isin(schema.CODE_SYSTEMS), "code_system", _not_one_of(schema.CODE_SYSTEMS))
    code_missing = _missing(d["code"])
    issues.add(t, d, code_missing, "code", "missing")
    _check_icd10(t, d, "code", candidates=system.eq("ICD10") & ~code_missing, known_icd10=known_icd10, issues=issues)
    is_orpha = system.eq("ORPHA") & ~code_missing
    codes, uniques = pd.factorize(d["code"], use_na_sentinel=True)
    numbers = np.fromiter((_orpha_number(u) for u in uniques), dtype=float, count=len(uniques))
    orpha_number = pd.Series(np.append(numbers, np.nan)[codes], index=d.index)
    issues.add(t, d, is_orpha & orpha_number.isna(), "code", "not an ORPHA code (ORPHA:<number>)")
    issues.add(t, d, is_orpha & orpha_number.notna() & ~orpha_number.isin(known_orpha), "code", "unknown ORPHA code")
    rank = pd.to_numeric(d["rank"], errors="coerce")
    issues.add(t, d, rank.isna(), "rank", "missing or not a number")
    issues.add(t, d, rank.notna() & ((rank < 1) | (rank % 1 != 0)), "rank", "not a positive integer")


def _hold_back_relabelled(e: pd.DataFrame, d: pd.DataFrame, issues: _Issues) -> None:
    """Quarantine each valid encounter one of whose diagnosis rows is bad: without the row its label could change.

    Exact duplicates are no reason (the first copy stays); call after the content checks of the diagnoses.
    """
    parts = [p.loc[p["field"].ne(ROW_FIELD), "pos"].to_numpy() for p in issues.parts[schema.RAW_DIAGNOSES]]
    positions = np.unique(np.concatenate(parts)) if parts else np.array([], dtype=int)
    if len(positions) == 0:
        return
    ids = d["encounter_id"].iloc[positions]
    held = _key_index(ids[~_missing(ids)])
    valid_so_far = ~issues.bad(schema.RAW_ENCOUNTERS, len(e))
    issues.add(
        schema.RAW_ENCOUNTERS, e, valid_so_far & _in_keys(e["encounter_id"], held), "encounter_id", LABEL_HELD_BACK
    )


def _check_comorbidities(c: pd.DataFrame, known_icd10: CodeTest, issues: _Issues) -> None:
    t = schema.RAW_COMORBIDITIES
    missing = _missing(c["icd10_code"])
    issues.add(t, c, missing, "icd10_code", "missing")
    _check_icd10(t, c, "icd10_code", candidates=~missing, known_icd10=known_icd10, issues=issues)


def _pseudonyms(keys: pd.Series, pseudonymize: Callable[[str], str]) -> pd.Series:
    """Pseudonym of each non-missing key, None where the key is missing."""
    usable = ~_missing(keys)
    out = pd.Series(None, index=keys.index, dtype=object)
    out[usable] = [pseudonymize(str(k)) for k in keys[usable]]
    return out


def _check_identifier_content(
    table: str,
    frame: pd.DataFrame,
    patient_values: PatientIdentifierValues,
    vocabulary: VocabularyTests,
    issues: _Issues,
) -> None:
    """Quarantine rows with identifier-shaped content or a patient's identifier value in any text column."""
    exempt = {column: test for (t, column), test in vocabulary.items() if t == table}
    for column, kinds in screen_raw_table(frame, patient_values, exempt).items():
        flagged = kinds.notna()
        texts = [f"identifier content ({kind})" for kind in kinds[flagged]]
        issues.add_positions(table, np.flatnonzero(flagged.to_numpy()), column, texts)


def fingerprint(value: object, pseudonymize: Callable[[str], str]) -> str:
    """Keyed fingerprint of a quarantined value: the same value gives the same fingerprint, never the value."""
    return FINGERPRINT_PREFIX + pseudonymize(f"quarantined-value:{value}")[:FINGERPRINT_HEX_CHARS]


def _hidden_cells(table: str, rows: pd.DataFrame, issues: pd.DataFrame) -> dict[str, np.ndarray]:
    """column -> rows whose value is kept out of row_json: the offending fields, and open-vocabulary misses."""
    flagged = issues.groupby("pos")["field"].agg(set)
    hidden = {}
    for column in rows.columns:
        hide = np.fromiter((column in flagged[p] for p in rows.index), dtype=bool, count=len(rows))
        test = OPEN_VOCABULARY_TESTS.get((table, column))
        if test is not None:
            hide |= ~in_vocabulary(rows[column], test).to_numpy()
        hide &= rows[column].notna().to_numpy()
        if hide.any():
            hidden[column] = hide
    return hidden


def _quarantine_rows(
    table: str,
    frame: pd.DataFrame,
    issues: pd.DataFrame,
    *,
    partition_day: str,
    pseudonymize: Callable[[str], str],
    row_numbers: np.ndarray,
) -> pd.DataFrame:
    """The QUARANTINE_COLUMNS rows of one table's issues (``frame`` is the table as received).

    Reasons name table, field, rule and the row number in the raw table; row_json keeps the values that passed
    every check of their column (closed vocabularies, identifier screening) and fingerprints the others.
    """
    positions = issues["pos"].drop_duplicates().to_numpy()
    rows = frame.iloc[positions]
    keys = {
        pseudonym: _pseudonyms(rows[source], pseudonymize)
        for source, pseudonym in (("encounter_id", "encounter_key"), ("patient_id", "patient_key"))
        if source in rows.columns
    }
    own_key = keys["patient_key" if table == schema.RAW_PATIENTS else "encounter_key"]
    missing_key = own_key.isna()
    refs = own_key.copy()
    refs[missing_key] = [pseudonymize(f"missing-key:{table}:{row_numbers[pos]}") for pos in own_key.index[missing_key]]
    safe = rows.drop(columns=[c for c in rows.columns if c in IDENTIFIER_COLUMNS])
    for column, hide in _hidden_cells(table, safe, issues).items():
        safe[column] = safe[column].astype(object)
        safe.loc[safe.index[hide], column] = [fingerprint(v, pseudonymize) for v in safe[column][hide]]
    safe = pd.concat([pd.DataFrame(keys), safe], axis=1)
    lines = safe.to_json(orient="records", lines=True, date_format="iso", default_handler=str).split("\n")
    row_json = pd.Series(lines[: len(positions)], index=rows.index, dtype=object)
    return pd.DataFrame(
        {
            "partition_day": partition_day,
            "table": table,
            "row_ref": issues["pos"].map(refs).astype(object),
            "field": issues["field"].astype(object),
            "reason": (issues["reason"] + [f" (row {row_numbers[p]})" for p in issues["pos"]]).astype(object),
            "row_json": issues["pos"].map(row_json).astype(object),
        }
    )


def validate_extract(
    tables: Mapping[str, pd.DataFrame],
    *,
    partition_day: str,
    known_icd10: CodeTest,
    known_orpha: frozenset[int],
    known_hpo: CodeTest,
    pseudonymize: Callable[[str], str],
    patient_values: PatientIdentifierValues | None = None,
    row_numbers: Mapping[str, np.ndarray] | None = None,
) -> ValidationResult:
    """Split a raw extract into valid rows and quarantined rows with readable reasons.

    Text cells are screened for identifier content first (``patient_values``: of the whole extract, by default of
    ``tables``); ``row_numbers`` give each row's number in the raw table (default: its position in ``tables``).
    ``known_icd10`` and ``known_hpo``: a code list or a predicate; an ICD-10 code must match ICD10_PATTERN as well.
    Raises ExtractSchemaError when a table or column of the contract is missing or extra.
    """
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", partition_day):
        raise ValueError(f"partition_day: {partition_day!r} is not YYYY-MM-DD")
    day = pd.Timestamp(partition_day)
    _check_columns(tables)
    frames = {t: tables[t][list(schema.RAW_COLUMNS[t])].reset_index(drop=True) for t in schema.RAW_TABLES}
    work = dict(frames)
    work[schema.RAW_VITALS] = frames[schema.RAW_VITALS].assign(
        loinc_code=_normalise_loinc(frames[schema.RAW_VITALS]["loinc_code"])
    )
    issues = _Issues()
    if patient_values is None:
        patient_values = PatientIdentifierValues.from_patients(frames[schema.RAW_PATIENTS])
    vocabulary = raw_vocabulary_tests(known_icd10, known_orpha, known_hpo)
    for table in schema.RAW_TABLES:  # first, so that a row with identifier content is quarantined for it
        _check_identifier_content(table, work[table], patient_values, vocabulary, issues)

    patients = work[schema.RAW_PATIENTS]
    _check_patients(patients, issues)
    valid_patients = patients[~issues.bad(schema.RAW_PATIENTS, len(patients))]
    encounters = work[schema.RAW_ENCOUNTERS]
    _check_encounters(encounters, patients, valid_patients, day, issues)
    _check_diagnoses(work[schema.RAW_DIAGNOSES], known_icd10, known_orpha, issues)
    _hold_back_relabelled(encounters, work[schema.RAW_DIAGNOSES], issues)
    raw_ids = _key_index(encounters["encounter_id"])
    valid_ids = _key_index(encounters.loc[~issues.bad(schema.RAW_ENCOUNTERS, len(encounters)), "encounter_id"])
    for table in schema.RAW_CHILD_TABLES:
        _check_children_keys(table, work[table], raw_ids, valid_ids, issues)
    _check_vitals(work[schema.RAW_VITALS], issues)
    _check_symptoms(work[schema.RAW_SYMPTOMS], known_hpo, issues)
    _check_comorbidities(work[schema.RAW_COMORBIDITIES], known_icd10, issues)

    valid, quarantined, counts = {}, [], {}
    for table in schema.RAW_TABLES:
        bad = issues.bad(table, len(work[table]))
        valid[table] = work[table][~bad].reset_index(drop=True)
        table_issues = issues.table(table)
        if len(table_issues):
            numbers = np.arange(len(bad)) if row_numbers is None else np.asarray(row_numbers[table])
            quarantined.append(
                _quarantine_rows(
                    table,
                    frames[table],
                    table_issues,
                    partition_day=partition_day,
                    pseudonymize=pseudonymize,
                    row_numbers=numbers,
                )
            )
        counts[table] = {"in": len(bad), "valid": int((~bad).sum()), "quarantined": int(bad.sum())}
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.QUARANTINE_COLUMNS})
    quarantine = pd.concat([empty, *quarantined], ignore_index=True) if quarantined else empty
    return ValidationResult(valid=valid, quarantined=quarantine[list(schema.QUARANTINE_COLUMNS)], counts=counts)
