"""Reading shipped prediction logs: the service's own lines parse, every other line is refused with a reason that
names the field, keeps no text of the line, and a file shipped twice counts once."""

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import pytest

from rare_triage.lib.monitoring.prediction_logs import (
    ENCOUNTER,
    PUBLISHED_CASE,
    RECORD_COLUMNS,
    REJECTED_COLUMNS,
    TRUNCATED_REASON,
    parse_prediction_log,
    read_shipped_logs,
)
from serving.contract import Encounter, PublishedCase
from serving.prediction_log import PredictionLog, PredictionRecord

SECRET = "Juana Secreta 555-0101"
PATIENT_KEY = "0123456789abcdef0123456789abcdef"


def record(**changes: Any) -> dict[str, Any]:
    """A valid line as a dict; `changes` replace (or with None, remove) top-level fields."""
    line: dict[str, Any] = {
        "timestamp": "2025-03-03T10:15:00.123456Z",
        "request_id": "7d0f4a52-8a55-4e0e-9a77-3f0d4e4a2b11",
        "model_version": "3",
        "inputs": {"sex": "F", "age_years": 34.0, "temperature_c": 38.6, "hpo_observed": ["HP:0001945"]},
        "probabilities": {"none": 0.5, "common_mild": 0.2, "common_acute": 0.1, "common_chronic": 0.1, "orphan": 0.1},
        "predicted_class": "none",
        "orphan_flag": False,
        "needs_review": True,
        "latency_ms": 1.25,
        "patient_key": PATIENT_KEY,
    }
    for name, value in changes.items():
        if value is None:
            del line[name]
        else:
            line[name] = value
    return line


def lines(*records: Any) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_a_valid_line_becomes_one_typed_row() -> None:
    parsed = parse_prediction_log(lines(record(), record(request_id="r2", patient_key=None)), source="k1")

    assert (parsed.lines_read, parsed.parsed, parsed.n_rejected, parsed.truncated) == (2, 2, 0, 0)
    frame = parsed.records
    assert list(frame.columns) == list(RECORD_COLUMNS)
    assert str(frame["timestamp"].dtype) == "datetime64[us, UTC]"
    assert frame["timestamp"][0] == pd.Timestamp("2025-03-03T10:15:00.123456Z")
    assert frame["patient_key"].tolist() == [PATIENT_KEY, None]
    assert frame[["source", "line_number", "input_kind"]].values.tolist() == [
        ["k1", 1, ENCOUNTER],
        ["k1", 2, ENCOUNTER],
    ]
    assert frame["p_orphan"].tolist() == [0.1, 0.1] and frame["p_none"].tolist() == [0.5, 0.5]
    assert frame["orphan_flag"].dtype == bool and bool(frame["needs_review"][0])
    assert json.loads(frame["inputs"][0]) == record()["inputs"]  # the logged inputs, as JSON text


def test_lines_written_by_the_service_parse(tmp_path: Path) -> None:
    """Serving's own writer and contract: an encounter and a phenopacket case, each in the form it is logged."""
    base = record()
    encounter = Encounter(sex="M", age_years=61.0, systolic_bp=150.0, diastolic_bp=90.0, hpo_excluded=["HP:0001250"])
    case = PublishedCase(sex="FEMALE", age="P6Y", hpo_observed=["HP:0001250"])
    with PredictionLog(tmp_path, "test", hourly=False) as log:
        for i, inputs in enumerate((encounter, case)):
            log.write(
                PredictionRecord(
                    timestamp=dt.datetime(2025, 3, 3, 10, tzinfo=dt.UTC),
                    request_id=f"req-{i}",
                    model_version="3",
                    inputs=msgspec.to_builtins(inputs),
                    probabilities=base["probabilities"],
                    predicted_class="none",
                    orphan_flag=False,
                    needs_review=False,
                    latency_ms=0.5,
                )
            )
    parsed = parse_prediction_log((tmp_path / "predicciones_test.txt").read_bytes(), source="file")

    assert parsed.n_rejected == 0
    assert parsed.records["input_kind"].tolist() == [ENCOUNTER, PUBLISHED_CASE]
    assert parsed.records["patient_key"].isna().all()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (record(probabilities={"none": 0.9, "common_mild": 0.1, "common_acute": 0, "common_chronic": 0}),
         "probabilities.orphan: missing"),
        (record(probabilities={**record()["probabilities"], "rare": 0.0}), "probabilities: unknown field"),
        (record(probabilities={**record()["probabilities"], "orphan": 0.3}),
         "probabilities: sum is not 1 within 0.001"),
        (record(probabilities={**record()["probabilities"], "orphan": "0.1"}),
         "probabilities.orphan: wrong type (expected float, got str)"),
        (record(timestamp="2025-03-03T10:15:00+01:00"), "timestamp: not UTC"),
        (record(timestamp="2025-03-03T10:15:00"), "timestamp: not UTC"),
        (record(timestamp="yesterday"), "timestamp: not an RFC 3339 datetime"),
        (record(timestamp=None), "timestamp: missing"),
        (record(request_id=5), "request_id: wrong type (expected str, got int)"),
        (record(request_id=""), "request_id: length out of range"),
        (record(predicted_class=SECRET), "predicted_class: not an allowed value"),
        (record(orphan_flag="yes"), "orphan_flag: wrong type (expected bool, got str)"),
        (record(latency_ms=-1.0), "latency_ms: out of range"),
        (record(patient_key=PATIENT_KEY.upper()), "patient_key: not 32 lowercase hex characters"),
        (record(patient_key=PATIENT_KEY[:31] + "g"), "patient_key: not 32 lowercase hex characters"),
        (record(patient_key="12345"), "patient_key: not 32 lowercase hex characters"),
        (record(**{SECRET: 1}), "line: unknown field"),
        (record(inputs={"sex": "F", SECRET: 1}), "inputs: unknown field"),
        (record(inputs={"sex": SECRET}), "inputs.sex: not an allowed value"),
        (record(inputs={"temperature_c": 50.0}), "inputs.temperature_c: out of range"),
        (record(inputs={"hpo_observed": ["HP:0001945", SECRET]}), "inputs.hpo_observed[1]: not an HPO id"),
        (record(inputs={"hpo_excluded": "HP:0001945"}), "inputs.hpo_excluded: wrong type (expected array, got str)"),
        (record(inputs={"systolic_bp": 80.0, "diastolic_bp": 90.0}), "inputs.systolic_bp: below diastolic_bp"),
        (record(inputs={"age": "P6Y", "temperature_c": 37.0}),
         "inputs: case fields (age, phenopacket sex) mixed with encounter field(s) ['temperature_c']"),
        (record(inputs=[SECRET]), "inputs: wrong type (expected object, got array)"),
        ([SECRET], "line: wrong type (expected object, got array)"),
    ],
)  # fmt: skip
def test_an_invalid_line_is_refused_naming_the_field(line: Any, reason: str) -> None:
    parsed = parse_prediction_log(lines(record(), line), source="k")

    assert parsed.parsed == 1 and parsed.n_rejected == 1
    assert parsed.rejected["reason"].tolist() == [reason]
    assert parsed.rejected["line_number"].tolist() == [2]


@pytest.mark.parametrize(
    ("text", "reason"),
    [(b"{not json " + SECRET.encode(), "not JSON"), (b"", "empty line"), (b"\xff\xfe" + SECRET.encode(), "not JSON")],
)
def test_a_line_that_is_not_json_is_refused(text: bytes, reason: str) -> None:
    parsed = parse_prediction_log(text + b"\n" + lines(record()), source="k")
    assert parsed.rejected["reason"].tolist() == [reason] and parsed.parsed == 1


def test_a_refused_line_keeps_its_hash_and_length_never_its_text() -> None:
    bad = json.dumps(record(inputs={"sex": "F", "name": SECRET})).encode()
    parsed = parse_prediction_log(bad + b"\n", source="k")

    assert list(parsed.rejected.columns) == list(REJECTED_COLUMNS)
    row = parsed.rejected.iloc[0]
    assert row["line_sha256"] == hashlib.sha256(bad).hexdigest() and row["line_bytes"] == len(bad)
    assert not any("Secreta" in str(value) or "name" in str(value) for value in parsed.rejected.to_numpy().ravel())


def test_a_last_line_without_its_newline_is_truncated_not_parsed() -> None:
    complete = lines(record(request_id="a"), record(request_id="b"))
    cut = json.dumps(record(request_id="c")).encode()  # a whole record, but its write was cut before the newline

    parsed = parse_prediction_log(complete + cut, source="k")

    assert (parsed.lines_read, parsed.parsed, parsed.n_rejected, parsed.truncated) == (3, 2, 1, 1)
    assert parsed.rejected[["line_number", "reason"]].values.tolist() == [[3, TRUNCATED_REASON]]
    assert parsed.records["request_id"].tolist() == ["a", "b"]


def test_an_empty_file_gives_empty_typed_tables() -> None:
    parsed = parse_prediction_log(b"", source="k")
    assert (parsed.lines_read, parsed.parsed, parsed.n_rejected) == (0, 0, 0)
    assert list(parsed.records.columns) == list(RECORD_COLUMNS)
    assert list(parsed.rejected.columns) == list(REJECTED_COLUMNS)


def test_a_file_shipped_twice_counts_once() -> None:
    first = lines(record(request_id="a"), record(request_id="b"), [1])
    second = lines(record(request_id="c"))
    keys = ["predictions/env=prod/dt=2025-03-03/f1.txt", "predictions/env=prod/dt=2025-03-04/f1.txt", "f2"]

    parsed = read_shipped_logs([(keys[0], first), (keys[1], first), (keys[2], second)])

    assert parsed.records["request_id"].tolist() == ["a", "b", "c"]
    assert parsed.records["source"].tolist() == [keys[0], keys[0], keys[2]]
    assert parsed.duplicates_dropped == 2
    assert parsed.rejected["source"].tolist() == [keys[0], keys[1]]  # refused lines are not request ids: both kept
    assert parsed.lines_read == 7 == parsed.parsed + parsed.n_rejected + parsed.duplicates_dropped


def test_no_object_gives_empty_tables() -> None:
    parsed = read_shipped_logs([])
    assert parsed.parsed == parsed.n_rejected == parsed.lines_read == 0
    assert list(parsed.records.columns) == list(RECORD_COLUMNS)
