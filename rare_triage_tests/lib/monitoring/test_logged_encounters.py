"""Logged requests re-encoded by the platform: the feature rows of a logged encounter are the `encounter_features`
row it came from, and a logged published case is its `external_features` row (label aside)."""

import datetime as dt
import gzip
import json
import math
from typing import Any

import dagster as dg
import msgspec
import numpy as np
import pandas as pd
import pytest

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.pseudonymization import PseudonymizationResource
from rare_triage.defs.shared.resources import build_resources, warehouse_path
from rare_triage.lib import schema
from rare_triage.lib.features.build import feature_columns
from rare_triage.lib.monitoring.logged_encounters import (
    UNLINKED_PREFIX,
    logged_encounter_key,
    logged_feature_rows,
)
from rare_triage.lib.monitoring.prediction_logs import PUBLISHED_CASE, parse_prediction_log
from rare_triage.lib.reference.frames import reference_to_frames
from rare_triage.lib.reference.loaders import PHENOPACKETS_JSONL, load_phenopackets
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.training.external import external_features
from rare_triage_tests.helpers.materialize import check_results, local_environ, materialize_day, materialize_reference
from rare_triage_tests.helpers.serving_payloads import (
    Partition,
    client_payloads,
    load_partition,
    published_case_payloads,
)
from serving.contract import Encounter, PublishedCase
from serving.prediction_log import PredictionRecord

DAY = "2025-03-03"
LOGGED_AT = dt.datetime(2025, 3, 3, 23, 59, 59, 999_999, tzinfo=dt.UTC)  # the last instant of DAY
PROBABILITIES = {"none": 0.6, "common_mild": 0.1, "common_acute": 0.1, "common_chronic": 0.1, "orphan": 0.1}


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> Partition:
    """A small synthetic day (about 200 encounters) materialized raw -> anonymized -> features with k-anonymity 1
    (k-anonymity generalises small classes in the training data only: a service is sent the real values)."""
    home = tmp_path_factory.mktemp("logged_encounters")
    environ = local_environ(home, RARE_TRIAGE_ENCOUNTERS_PER_DAY="200")
    resources = build_resources(environ)
    resources[c.PSEUDONYMIZATION] = PseudonymizationResource(allow_local_default=True, k_anonymity=1)
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    result = materialize_day(resources, instance, DAY)
    assert all(check_results(result).values()), check_results(result)
    return load_partition(resources[c.PARQUET_IO_MANAGER], warehouse_path(environ), DAY)


def log_bytes(inputs: list[Any], patient_keys: list[str | None]) -> bytes:
    """The service's log lines for these validated inputs (its own record type and encoder)."""
    out = []
    for i, (given, patient_key) in enumerate(zip(inputs, patient_keys, strict=True)):
        line = msgspec.to_builtins(
            PredictionRecord(
                timestamp=LOGGED_AT,
                request_id=f"7d0f4a52-8a55-4e0e-9a77-3f0d4e4a2b11-{i}",
                model_version="3",
                inputs=msgspec.to_builtins(given),
                probabilities=PROBABILITIES,
                predicted_class="none",
                orphan_flag=False,
                needs_review=False,
                latency_ms=1.0,
            )
        )
        if patient_key is not None:
            line["patient_key"] = patient_key
        out.append(msgspec.json.encode(line) + b"\n")
    return b"".join(out)


def assert_same_features(logged: pd.DataFrame, platform: pd.DataFrame, columns: list[str]) -> None:
    """Equal column by column, NaN where NaN; else the differing columns with their first rows."""
    assert len(logged) == len(platform)
    report = {}
    for name in columns:
        ours, theirs = logged[name].to_numpy(), platform[name].to_numpy()
        if name in schema.FEATURE_CATEGORICAL_COLUMNS:
            same = np.array([a == b or (pd.isna(a) and pd.isna(b)) for a, b in zip(ours, theirs, strict=True)])
        else:
            ours, theirs = ours.astype(float), theirs.astype(float)
            same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
        if not same.all():
            report[name] = [(int(i), ours[i], theirs[i]) for i in np.flatnonzero(~same)[:3]]
    assert not report, f"logged != platform (row, logged, platform): {report}"


def model_columns(reference: ReferenceTables) -> list[str]:
    return feature_columns(reference.vocabulary["hpo_id"].tolist(), reference.systems["system_id"].tolist())


def test_logged_encounters_get_the_features_of_their_partition(partition: Partition) -> None:
    features = partition.features
    requests = msgspec.convert(client_payloads(partition), list[Encounter])
    patient_keys = [key if i % 3 else None for i, key in enumerate(features["patient_key"])]
    parsed = parse_prediction_log(log_bytes(requests, patient_keys), source="predictions/env=test/dt=2025-03-03/f")
    assert parsed.n_rejected == 0 and parsed.parsed == len(features) >= 150

    logged = logged_feature_rows(parsed.records, reference_to_frames(partition.reference))

    assert_same_features(logged, features, model_columns(partition.reference))
    assert logged["request_id"].tolist() == parsed.records["request_id"].tolist()
    assert logged["encounter_key"].tolist() == [logged_encounter_key(r) for r in logged["request_id"]]
    assert logged["patient_key"].tolist() == [
        key if key is not None else UNLINKED_PREFIX + encounter
        for key, encounter in zip(patient_keys, logged["encounter_key"], strict=True)
    ]
    assert (logged["partition_day"] == DAY).all()
    assert (logged[schema.LABEL_COLUMN] == "none").all()  # no diagnosis is logged
    # the partition exercises what matters: scores, durations, comorbidities, missing vitals, absent terms
    for name in ("fever_score", "pain_score", "symptom_duration_days", "temperature_c"):
        assert 0 < features[name].notna().sum() < len(features), name
    assert (features["comorbidity_count"] > 1).any()


def test_logged_published_cases_get_their_external_features(partition: Partition) -> None:
    with gzip.open(PHENOPACKETS_JSONL, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for _, line in zip(range(60), handle, strict=False)]
    requests = msgspec.convert(published_case_payloads(records), list[PublishedCase])
    parsed = parse_prediction_log(log_bytes(requests, [None] * len(requests)), source="f")
    cases = load_phenopackets().iloc[: len(records)]
    assert cases["id"].tolist() == [r["id"] for r in records]

    logged = logged_feature_rows(parsed.records, partition.reference)

    assert (parsed.records["input_kind"] == PUBLISHED_CASE).sum() > len(records) / 2  # others: no sex and no age
    platform = external_features(cases.reset_index(drop=True), partition.reference)
    is_case = (parsed.records["input_kind"] == PUBLISHED_CASE).to_numpy()
    columns = model_columns(partition.reference)
    assert_same_features(logged[is_case].reset_index(drop=True), platform[is_case].reset_index(drop=True), columns)


@pytest.fixture(scope="module")
def one_of_each(reference_tables: ReferenceTables) -> pd.DataFrame:
    """Hand-made records: a febrile child with an id outside the release and comorbidities, an old man with a pain
    score and no fever term, a published case."""
    inputs: list[Any] = [
        Encounter(
            sex="F",
            age_years=4.9,
            centre_id=" C07 ",
            region="madrid",
            consultation_type="emergency",
            temperature_c=39.2,
            fever_score=7.0,
            symptom_duration_days=3.0,
            comorbidity_count=2,
            hpo_observed=["HP:0001945", "HP:9999999"],
            hpo_excluded=["HP:0001250"],
        ),
        Encounter(
            sex="M", age_years=97.0, centre_id="Hospital X", fever_score=4.0, pain_score=6.0, prior_visits_365d=3
        ),
        PublishedCase(sex="MALE", age="P1Y6M", hpo_observed=["HP:0001250"]),
    ]
    records = parse_prediction_log(log_bytes(inputs, [None, "ab" * 16, None]), source="f").records
    return logged_feature_rows(records, reference_to_frames(reference_tables))


@pytest.mark.parametrize(
    ("row", "column", "expected"),
    [
        (0, "age_years", 4.0),
        (0, "age_band", "0-9"),
        (0, "centre_id", "C07"),
        (0, "region", "Madrid"),
        (0, "fever_score", 7.0),  # on the observed fever term
        (0, "symptom_duration_days", 3.0),
        (0, "comorbidity_count", 2.0),
        (0, "prior_visits_365d", 0.0),  # missing: none, as governance counts it
        (0, "n_present_terms", 1.0),  # HP:9999999 is outside the release: dropped as governance does
        (0, "pain_score", math.nan),
        (0, "centre_level", None),
        (1, "age_years", 90.0),
        (1, "age_band", "90+"),
        (1, "centre_id", "other"),
        (1, "fever_score", math.nan),  # no fever term observed
        (1, "pain_score", 6.0),
        (1, "prior_visits_365d", 3.0),
        (1, "n_present_terms", 0.0),
        (1, "patient_key", "ab" * 16),
        (2, "sex", "M"),
        (2, "age_years", 1.0),
        (2, "centre_id", "external"),
        (2, "comorbidity_count", math.nan),  # a case report says nothing of the problem list
        (2, "prior_visits_365d", math.nan),
        (2, "n_present_terms", 1.0),
        (2, "label", "none"),  # no ORPHA diagnosis for a logged case
    ],
)
def test_each_logged_field_lands_where_the_platform_reads_it(
    one_of_each: pd.DataFrame, row: int, column: str, expected: object
) -> None:
    value = one_of_each[column].iloc[row]
    if isinstance(expected, float) and math.isnan(expected):
        assert pd.isna(value)
    else:
        assert value == expected


def test_repeated_request_ids_are_refused(reference_tables: ReferenceTables) -> None:
    records = parse_prediction_log(log_bytes([Encounter()], [None]), source="f").records
    with pytest.raises(ValueError, match=r"records\.request_id: repeated"):
        logged_feature_rows(pd.concat([records, records]), reference_tables)
