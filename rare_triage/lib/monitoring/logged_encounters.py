"""Logged requests -> the platform's feature rows, computed by the platform's own feature SQL.

The inputs of each logged prediction become anonymized-shaped tables (the inverse of what a client sends for an
encounter, `rare_triage_tests/helpers/serving_payloads.py`), which `build_encounter_features` turns into feature
rows exactly as the `encounter_features` asset does. An encounter's inputs map to:
- encounters: sex, centre level and consultation type as sent; centre_id and region in their published form
  (`governance.vocabulary`); age floored and top-coded at 90 with its band; prior visits as sent, 0 when missing
  (governance counts an unknown visit count as none); zip3 NULL (no model input);
- vitals: one row per vital sent, in the unit of its LOINC code; `pain_score` as the pain-score vital (72514-3);
- symptoms: one row per HPO id of the release (ids outside it are dropped, as governance quarantines their rows),
  observed ones carrying `symptom_duration_days` and, on fever terms that are not pain terms, `fever_score`;
- comorbidities: `comorbidity_count` rows of distinct placeholder codes; diagnoses: none.
A published case (the phenopacket endpoint) maps as `build.encode_phenotype_cases` maps one, without its ORPHA
diagnosis, and its feature row keeps what a case holds (`case_encoding.phenotype_only`: its comorbidity count is
missing). With no diagnosis the feature rows' `label` is "none", as for any encounter without one: it says nothing
of the outcome (`performance` joins outcomes from later encounters).

Keys: `encounter_key` is the first 32 hex of sha256 of the request id (request ids are uuid4, with `-<i>` in a
batch, not the anonymized tables' 32-hex shape), kept beside the request id; `patient_key` the logged one, else
"unlinked-<encounter_key>", which no HMAC pseudonym can equal; `partition_day` the UTC day of the log timestamp.
"""

import hashlib
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec
import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.features.build import build_encounter_features, encode_phenotype_cases
from rare_triage.lib.features.case_encoding import phenotype_only
from rare_triage.lib.governance.vocabulary import published_centres, published_regions
from rare_triage.lib.monitoring.prediction_logs import PUBLISHED_CASE, LoggedInputs, input_kind
from rare_triage.lib.reference.frames import reference_from_frames
from rare_triage.lib.reference.loaders import icd10_acuity_lookup, parse_iso8601_age
from rare_triage.lib.reference.ontology import ReferenceTables

UNLINKED_PREFIX: Final = "unlinked-"
PAIN_SCORE_UNIT: Final = "{score}"
COMORBIDITY_PLACEHOLDER: Final = "logged-comorbidity-{}"
_KEY_DOMAIN: Final = b"rare-triage prediction log request\x00"
_VITALS: Final = tuple((name, loinc, unit) for loinc, (name, unit, _low, _high) in schema.VITAL_LOINC.items())
_INPUTS: Final = msgspec.json.Decoder(LoggedInputs)


def logged_encounter_key(request_id: str) -> str:
    """The 32-hex encounter key of a logged request (deterministic, so a request keeps its key across runs)."""
    return hashlib.sha256(_KEY_DOMAIN + request_id.encode("utf-8")).hexdigest()[:32]


def logged_feature_rows(records: pd.DataFrame, reference: Mapping[str, pd.DataFrame] | ReferenceTables) -> pd.DataFrame:
    """`request_id` and the features table's columns of each record (`prediction_logs` records: request_id,
    timestamp, inputs, optional patient_key), in record order. `reference`: the `hpo_reference_tables` frames the
    `encounter_features` asset reads, or their ReferenceTables."""
    ref = reference if isinstance(reference, ReferenceTables) else reference_from_frames(dict(reference))
    inputs = _decoded(records)
    tables = _anonymized_tables(records, inputs, ref)
    features = build_encounter_features(tables, icd10_acuity=icd10_acuity_lookup(), **ref.feature_encoding())
    assert isinstance(features, pd.DataFrame)
    # a published case holds its phenotype, age and sex only: encoded as the platform's external validation does
    is_case = np.array([input_kind(i) == PUBLISHED_CASE for i in inputs], dtype=bool)
    if is_case.any():
        features.loc[is_case] = phenotype_only(features.loc[is_case])
    features.insert(0, "request_id", records["request_id"].astype(str).to_numpy())
    return features


def logged_anonymized_tables(records: pd.DataFrame, reference: ReferenceTables) -> dict[str, pd.DataFrame]:
    """The anonymized-shaped tables of the records (see the module doc), encounters in record order."""
    return _anonymized_tables(records, _decoded(records), reference)


def _decoded(records: pd.DataFrame) -> list[LoggedInputs]:
    """Each record's logged inputs, after checking the records' columns and request ids."""
    missing = [c for c in ("request_id", "timestamp", "inputs") if c not in records.columns]
    if missing:
        raise ValueError(f"records: missing column(s) {missing}")
    if records["request_id"].astype(str).duplicated().any():
        raise ValueError("records.request_id: repeated request id(s); read logs with read_shipped_logs to dedup")
    return [_INPUTS.decode(text) for text in records["inputs"]]


def _anonymized_tables(
    records: pd.DataFrame, inputs: list[LoggedInputs], reference: ReferenceTables
) -> dict[str, pd.DataFrame]:
    keys = [logged_encounter_key(r) for r in records["request_id"].astype(str)]
    is_case = np.array([input_kind(i) == PUBLISHED_CASE for i in inputs], dtype=bool)
    patient_keys = _patient_keys(records, keys)
    days = pd.to_datetime(records["timestamp"], utc=True).dt.strftime("%Y-%m-%d").to_numpy()

    encounter_rows = [i for i in range(len(keys)) if not is_case[i]]
    case_rows = [i for i in range(len(keys)) if is_case[i]]
    parts = [
        _encounter_tables([inputs[i] for i in encounter_rows], [keys[i] for i in encounter_rows], reference),
        _case_tables([inputs[i] for i in case_rows], [keys[i] for i in case_rows]),
    ]
    tables = {name: _concat([p[name] for p in parts]) for name in schema.ANON_TABLES}
    order = np.argsort(np.array(encounter_rows + case_rows, dtype=np.int64), kind="stable")
    encounters = tables[schema.ANON_ENCOUNTERS].iloc[order].reset_index(drop=True)
    encounters["patient_key"] = patient_keys
    encounters["partition_day"] = days
    encounters["encounter_year"] = pd.array([int(day[:4]) for day in days], dtype="Int64")
    tables[schema.ANON_ENCOUNTERS] = encounters
    return tables


def _patient_keys(records: pd.DataFrame, keys: list[str]) -> list[str]:
    logged = records["patient_key"] if "patient_key" in records.columns else pd.Series([None] * len(records))
    return [
        UNLINKED_PREFIX + key if value is None or pd.isna(value) else str(value)
        for value, key in zip(logged, keys, strict=True)
    ]


def score_terms(reference: ReferenceTables, root: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """Terms whose severity the feature SQL reads as a `root` score: the root, `extra`, and every term rolling up to
    a vocabulary term under the root (`sql/staging.sql`, rt_feat_score_terms)."""
    ancestors = reference.vocab_ancestors
    under_root = set(ancestors.loc[ancestors["ancestor_id"] == root, "vocab_id"])
    rollup = reference.term_rollup
    return frozenset({root, *extra, *rollup.loc[rollup["vocab_id"].isin(under_root), "hpo_id"]})


def _encounter_tables(
    inputs: list[LoggedInputs], keys: list[str], reference: ReferenceTables
) -> dict[str, pd.DataFrame]:
    known = set(reference.term_information_content["hpo_id"])
    pain = score_terms(reference, schema.PAIN_HPO, tuple(reference.pain_terms["hpo_id"]))
    fever = score_terms(reference, schema.FEVER_HPO) - pain
    vitals: list[tuple[str, str, float, str]] = []
    symptoms: list[tuple[str, str, bool, float, float]] = []
    comorbidities: list[tuple[str, str]] = []
    for key, given in zip(keys, inputs, strict=True):
        vitals += [
            (key, loinc, getattr(given, name), unit)
            for name, loinc, unit in _VITALS
            if getattr(given, name) is not None
        ]
        if given.pain_score is not None:
            vitals.append((key, schema.PAIN_SCORE_LOINC, given.pain_score, PAIN_SCORE_UNIT))
        fever_score = np.nan if given.fever_score is None else given.fever_score
        duration = np.nan if given.symptom_duration_days is None else given.symptom_duration_days
        symptoms += [
            (key, hpo_id, True, fever_score if hpo_id in fever else np.nan, duration)
            for hpo_id in given.hpo_observed
            if hpo_id in known
        ]
        symptoms += [(key, hpo_id, False, np.nan, np.nan) for hpo_id in given.hpo_excluded if hpo_id in known]
        comorbidities += [(key, COMORBIDITY_PLACEHOLDER.format(i)) for i in range(given.comorbidity_count or 0)]
    ages = np.array([np.nan if i.age_years is None else i.age_years for i in inputs], dtype=np.float64)
    ages = np.floor(np.minimum(ages, schema.AGE_TOP_CODE))
    encounters = pd.DataFrame(
        {
            "encounter_key": pd.Series(keys, dtype=object),
            "patient_key": None,
            "partition_day": None,
            "encounter_year": pd.array([pd.NA] * len(keys), dtype="Int64"),
            "age_years": pd.array(ages, dtype="Int64"),
            "age_band": [_age_band(age) for age in ages],
            "sex": [i.sex for i in inputs],
            "centre_id": published_centres(_stripped([i.centre_id for i in inputs])).to_numpy(),
            "centre_level": [i.centre_level for i in inputs],
            "region": published_regions(_stripped([i.region for i in inputs])).to_numpy(),
            "zip3": None,
            "consultation_type": [i.consultation_type for i in inputs],
            "prior_visits_365d": pd.array([i.prior_visits_365d or 0 for i in inputs], dtype="Int64"),
        },
        columns=list(schema.ANON_COLUMNS[schema.ANON_ENCOUNTERS]),
    )
    return {
        schema.ANON_ENCOUNTERS: encounters,
        schema.ANON_VITALS: _frame(schema.ANON_VITALS, vitals, value="float64"),
        schema.ANON_SYMPTOMS: _frame(
            schema.ANON_SYMPTOMS, symptoms, present="bool", severity="float64", duration_days="float64"
        ),
        schema.ANON_DIAGNOSES: _frame(schema.ANON_DIAGNOSES, [], rank="int64"),
        schema.ANON_COMORBIDITIES: _frame(schema.ANON_COMORBIDITIES, comorbidities),
    }


def _case_tables(inputs: list[LoggedInputs], keys: list[str]) -> dict[str, pd.DataFrame]:
    cases = pd.DataFrame(
        {
            "case_id": pd.Series(keys, dtype=object),
            "sex": pd.Series([i.sex for i in inputs], dtype=object),
            "age_years": np.array([parse_iso8601_age(i.age) for i in inputs], dtype=np.float64),
            "observed": pd.Series([i.hpo_observed for i in inputs], dtype=object),
            "excluded": pd.Series([i.hpo_excluded for i in inputs], dtype=object),
        }
    )
    tables = encode_phenotype_cases(cases)
    tables[schema.ANON_DIAGNOSES] = _frame(schema.ANON_DIAGNOSES, [], rank="int64")
    return tables


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames one after the other; empty ones left out (their dtypes would decide nothing)."""
    filled = [frame for frame in frames if len(frame)]
    return pd.concat(filled, ignore_index=True) if len(filled) > 1 else (filled or frames)[0].reset_index(drop=True)


def _stripped(values: list[str | None]) -> pd.Series:
    """Text stripped as the landing zone's ingest strips it, missing kept missing."""
    return pd.Series([None if v is None else v.strip() for v in values], dtype=object)


def _age_band(age: float) -> str | None:
    if np.isnan(age):
        return None
    return schema.AGE_BANDS[min(int(age) // 10, len(schema.AGE_BANDS) - 1)]


def _frame(table: str, rows: Sequence[tuple[object, ...]], **dtypes: str) -> pd.DataFrame:
    columns = list(schema.ANON_COLUMNS[table])
    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame({c: [] for c in columns})
    return frame.astype({c: dtypes.get(c, object) for c in columns})
