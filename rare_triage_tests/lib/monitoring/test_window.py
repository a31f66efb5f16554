"""The drift window read from the warehouse in record batches, the rows prediction_logs stores, and the report per
environment and model version."""

from typing import Any

import duckdb
import msgspec
import numpy as np
import pandas as pd
import pytest

from rare_triage.lib.monitoring.drift import DriftConfig
from rare_triage.lib.monitoring.prediction_logs import parse_prediction_log, read_shipped_logs
from rare_triage.lib.monitoring.prediction_rows import prediction_rows
from rare_triage.lib.monitoring.profile import build_reference_profile
from rare_triage.lib.monitoring.window import UNREAD_COLUMNS, drift_by_group, overall_decision, read_window
from rare_triage.lib.reference.ontology import ReferenceTables
from serving.contract import Encounter, PublishedCase
from serving.prediction_log import PredictionRecord

LABELS = ("none", "common_mild", "common_acute", "common_chronic", "orphan")


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(5), n)
    return pd.DataFrame(
        {
            "log_day": np.where(rng.random(n) < 0.5, "2025-03-01", "2025-03-02"),
            "env": np.where(rng.random(n) < 0.7, "dev", "prod"),
            "model_version": "v1-0123456789ab",
            "input_kind": np.where(rng.random(n) < 0.9, "encounter", "published_case"),
            "request_id": [f"r{i}" for i in range(n)],
            "inputs": "{}",
            "temperature_c": np.where(rng.random(n) < 0.1, np.nan, rng.normal(37.0, 0.6, n).round(1)),
            "prior_visits_365d": rng.integers(0, 5, n),
            "sex": np.where(rng.random(n) < 0.05, None, rng.choice(["F", "M"], n)),
            "orphan_flag": rng.random(n) < 0.1,
            "needs_review": rng.random(n) < 0.05,
            **{f"p_{label}": proba[:, i] for i, label in enumerate(LABELS)},
        }
    )


@pytest.fixture
def warehouse() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.register("generated", _table(30_000))
    conn.execute("create table logs as select * from generated")
    return conn


def test_the_window_read_in_batches_equals_one_fetch(warehouse: duckdb.DuckDBPyConnection) -> None:
    window = read_window(warehouse, "logs", "log_day", ("2025-03-01", "2025-03-02"), batch_columns=3)
    expected = warehouse.execute("select * exclude (request_id, inputs) from logs where input_kind = 'encounter'").df()
    assert sorted(window.columns) == sorted(expected.columns)
    assert not set(UNREAD_COLUMNS) & set(window.columns)
    assert set(window["input_kind"]) == {"encounter"}
    np.testing.assert_array_equal(window["temperature_c"].to_numpy(), expected["temperature_c"].to_numpy())
    np.testing.assert_array_equal(window["prior_visits_365d"].to_numpy(), expected["prior_visits_365d"].to_numpy())
    assert window["orphan_flag"].dtype == bool and (window["orphan_flag"] == expected["orphan_flag"]).all()
    assert window["sex"].isna().sum() == expected["sex"].isna().sum() > 0
    assert window["sex"].astype(object).dropna().tolist() == expected["sex"].dropna().tolist()


def test_the_window_holds_only_its_days(warehouse: duckdb.DuckDBPyConnection) -> None:
    window = read_window(warehouse, "logs", "log_day", ("2025-03-02", "2025-03-08"))
    assert set(window["log_day"].astype(str)) == {"2025-03-02"}
    assert read_window(warehouse, "logs", "log_day", ("2024-01-01", "2024-01-07")).empty


def test_each_environment_is_reported_against_its_version_profile(warehouse: duckdb.DuckDBPyConnection) -> None:
    window = read_window(warehouse, "logs", "log_day", ("2025-03-01", "2025-03-02"))
    reference = _table(20_000, seed=1)
    proba = reference[[f"p_{label}" for label in LABELS]].to_numpy()
    profile = build_reference_profile(
        reference,
        numeric_columns=["temperature_c", "prior_visits_365d"],
        categorical_columns=["sex"],
        probabilities=proba,
        class_labels=LABELS,
        orphan_flag=reference["orphan_flag"].to_numpy(),
        needs_review=reference["needs_review"].to_numpy(),
        model_version="v1-0123456789ab",
    )
    shifted = window.assign(temperature_c=window["temperature_c"] + np.where(window["env"] == "prod", 1.0, 0.0))
    reports = drift_by_group(shifted, lambda version: profile, DriftConfig())
    decisions = {report.env: report.decision for report in reports}
    assert decisions == {"dev": "no_drift", "prod": "retrain"}
    assert sum(report.predictions for report in reports) == len(window)
    assert overall_decision(reports) == "retrain"
    unknown = drift_by_group(window, lambda version: None, DriftConfig())
    assert {report.decision for report in unknown} == {"no_reference"}
    assert overall_decision(unknown) == "insufficient_data"


def _records(n: int) -> pd.DataFrame:
    encode = msgspec.json.Encoder().encode
    lines = []
    for i in range(n):
        inputs: Any = (
            PublishedCase(sex="FEMALE", age="P3Y", hpo_observed=["HP:0001250"])
            if i % 5 == 4
            else Encounter(sex="F", age_years=float(i % 90), temperature_c=38.0, hpo_observed=["HP:0001945"])
        )
        record = PredictionRecord(
            timestamp=pd.Timestamp("2025-03-01T10:00:00Z").to_pydatetime(),
            request_id=f"req-{i}",
            model_version="v1-0123456789ab",
            inputs=msgspec.to_builtins(inputs),
            probabilities=dict.fromkeys(LABELS, 0.2),
            predicted_class="none",
            orphan_flag=False,
            needs_review=False,
            latency_ms=1.0,
            patient_key=f"{i:032x}" if i % 2 else None,
        )
        lines.append(encode(record) + b"\n")
    return parse_prediction_log(b"".join(lines), source="f").records


def test_stored_rows_are_the_same_whatever_the_chunk(reference_tables: ReferenceTables) -> None:
    records = _records(23)
    whole = prediction_rows(records, reference_tables, day="2025-03-01", chunk=1000).to_pandas()
    chunked = prediction_rows(records, reference_tables, day="2025-03-01", chunk=4).to_pandas()
    pd.testing.assert_frame_equal(whole, chunked)
    assert whole["request_id"].tolist() == [f"req-{i}" for i in range(23)]
    assert (whole["log_day"] == "2025-03-01").all()
    assert whole["patient_key"].tolist() == records["patient_key"].tolist()  # the record's own key
    assert "label" not in whole and "partition_day" not in whole
    assert whole.loc[whole["input_kind"] == "encounter", "hpo_0001945"].eq(1).all()
    with pytest.raises(ValueError, match="chunk"):
        prediction_rows(records, reference_tables, day="2025-03-01", chunk=0)


def test_quasi_identifiers_are_judged_on_unseen_values_only() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    labels = np.array(LABELS)

    def frame(centres: list[str], weights: list[float], size: int) -> pd.DataFrame:
        return pd.DataFrame({"centre_id": rng.choice(centres, size, p=weights), "x": rng.normal(0, 1, size)})

    reference = frame(["C01", "C02", "C03"], [0.6, 0.3, 0.1], n)  # small centres under-represented, as k leaves them
    proba = rng.dirichlet(np.ones(5), n)
    profile = build_reference_profile(
        reference,
        numeric_columns=["x"],
        categorical_columns=["centre_id"],
        probabilities=proba,
        class_labels=labels,
        orphan_flag=np.zeros(n, dtype=bool),
        needs_review=np.zeros(n, dtype=bool),
        model_version="v1-0123456789ab",
    )

    def decide(window: pd.DataFrame, config: DriftConfig) -> str:
        rows = window.assign(env="dev", model_version="v1-0123456789ab", orphan_flag=False, needs_review=False)
        for i, label in enumerate(LABELS):
            rows[f"p_{label}"] = proba[: len(rows), i]
        return drift_by_group(rows, lambda version: profile, config)[0].decision

    reshuffled = frame(["C01", "C02", "C03"], [0.4, 0.3, 0.3], 5000)  # the served shares, exact values
    assert decide(reshuffled, DriftConfig()) == "no_drift"
    assert decide(reshuffled, DriftConfig(unseen_only=())) == "retrain"  # what the biased shares alone would do
    new_centre = frame(["C01", "C02", "C03", "C90"], [0.4, 0.25, 0.25, 0.1], 5000)
    assert decide(new_centre, DriftConfig()) == "retrain"


def test_a_value_seen_only_in_generalised_training_rows_is_not_unseen() -> None:
    rng = np.random.default_rng(4)
    n = 10_000
    reference = pd.DataFrame({"sex": rng.choice(["F", "M"], n)})  # the "U" rows were generalised, so left out
    proba = rng.dirichlet(np.ones(5), n)

    def profile(known: dict[str, list[str]]) -> Any:
        return build_reference_profile(
            reference,
            numeric_columns=[],
            categorical_columns=["sex"],
            probabilities=proba,
            class_labels=LABELS,
            orphan_flag=np.zeros(n, dtype=bool),
            needs_review=np.zeros(n, dtype=bool),
            model_version="v1-0123456789ab",
            known_categories=known,
        )

    window = pd.DataFrame({"sex": rng.choice(["F", "M", "U"], 3000, p=[0.48, 0.48, 0.04])})
    window = window.assign(env="dev", model_version="v1-0123456789ab", orphan_flag=False, needs_review=False)
    for i, label in enumerate(LABELS):
        window[f"p_{label}"] = proba[:3000, i]
    assert drift_by_group(window, lambda version: profile({}), DriftConfig())[0].decision == "retrain"
    assert drift_by_group(window, lambda version: profile({"sex": ["F", "M", "U"]}), DriftConfig())[0].decision == (
        "no_drift"
    )


def test_a_day_without_logs_gives_an_empty_table_of_the_same_columns(reference_tables: ReferenceTables) -> None:
    empty = read_shipped_logs([]).records
    assert len(empty) == 0
    assert empty["request_id"].dtype == object  # text even without a row, like a day with logs
    rows = prediction_rows(empty, reference_tables, day="2025-03-01")
    full = prediction_rows(_records(3), reference_tables, day="2025-03-01")
    assert rows.num_rows == 0
    assert rows.column_names == full.column_names
