"""prediction_logs, prediction_log_rejects, drift_report and model_performance materialized through the code location
on log files written by the service's own log writer: counts, rejects kept with their reasons (never the line),
and realized performance from later diagnoses of the same pseudonymous patient."""

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import msgspec
import pytest

from rare_triage.defs.shared import keys
from rare_triage.defs.shared.resources import warehouse_path
from rare_triage_tests.helpers.code_location import code_location_in, failures
from serving.prediction_log import PredictionRecord

pytestmark = pytest.mark.slow

DAY = "2025-03-10"
VERSION = "v1-0123456789ab"
SECRET = "Planted-Secret-4417"
LABELS = ("none", "common_mild", "common_acute", "common_chronic", "orphan")


def _record(index: int, *, orphan: float, patient_key: str | None) -> PredictionRecord:
    rest = (1.0 - orphan) / 4
    probabilities = {label: rest for label in LABELS[:-1]} | {"orphan": orphan}
    return PredictionRecord(
        timestamp=dt.datetime.fromisoformat(f"{DAY}T10:00:00+00:00") + dt.timedelta(seconds=index),
        request_id=f"req-{index}",
        model_version=VERSION,
        inputs={"sex": "F", "age_years": 40.0 + index, "temperature_c": 37.5, "hpo_observed": ["HP:0001945"]},
        probabilities=probabilities,
        predicted_class="orphan" if orphan > 0.5 else "none",
        orphan_flag=orphan > 0.5,
        needs_review=False,
        latency_ms=1.0,
        patient_key=patient_key,
    )


@dataclass(frozen=True)
class Monitored:
    """A home with the reference tables, DAY's log files in its bucket, and the monitoring job run on DAY."""

    home: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    result: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    home = tmp_path_factory.mktemp("monitoring_assets") / "home"
    with code_location_in(home, {"RARE_TRIAGE_EHR_SOURCE": "synthetic"}) as (defs, instance):
        reference = defs.resolve_job_def(keys.REFERENCE_JOB).execute_in_process(instance=instance)
        assert reference.success, failures(reference)
        _write_logs(home / "bucket")
        result = defs.resolve_job_def(keys.MONITORING_JOB).execute_in_process(
            instance=instance, partition_key=DAY, raise_on_error=False
        )
        assert result.success, failures(result)
        yield Monitored(home, defs, instance, result)


def _write_logs(bucket: Path) -> None:
    folder = bucket / "predictions" / "env=dev" / f"dt={DAY}"
    folder.mkdir(parents=True)
    encode = msgspec.json.Encoder().encode
    first = [_record(0, orphan=0.9, patient_key="a" * 32), _record(1, orphan=0.1, patient_key="b" * 32)]
    second = [_record(2, orphan=0.8, patient_key="c" * 32), _record(3, orphan=0.2, patient_key=None)]
    (folder / "predicciones_dev.1.txt").write_bytes(
        b"".join(encode(r) + b"\n" for r in first) + b'{"request_id": "' + SECRET.encode() + b'"}\n'
    )
    # the second file's last line was cut short
    (folder / "predicciones_dev.2.txt").write_bytes(b"".join(encode(r) + b"\n" for r in second) + b'{"timest')
    # the first file shipped again under another name: its predictions count once
    (folder / "predicciones_dev.3.txt").write_bytes((folder / "predicciones_dev.1.txt").read_bytes())


def test_logs_are_read_counted_rejected_with_reasons_and_reported(monitored: Monitored) -> None:
    path, result = monitored.home, monitored.result
    by_key = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    logs = by_key[keys.PREDICTION_LOGS]
    assert logs["files"].value == 3
    assert logs["parsed"].value == 4
    assert logs["duplicates_dropped"].value == 2
    assert logs["truncated"].value == 1
    assert logs["rejected"].value == 3  # the bad line twice (two files), the truncated line
    # the report: no reference profile is published for this version, so nothing is decided
    drift = by_key[keys.DRIFT_REPORT]
    assert drift["decision"].value == "insufficient_data"
    assert drift["groups"].value == [
        {"env": "dev", "model_version": VERSION, "predictions": 4, "decision": "no_reference"}
    ]

    with duckdb.connect(warehouse_path({"RARE_TRIAGE_HOME": str(path)}), read_only=True) as conn:
        rows = conn.execute(
            "select request_id, patient_key, p_orphan, hpo_0001945 from monitoring.prediction_logs"
        ).df()
        rejects = conn.execute("select * from monitoring.prediction_log_rejects").df()
    assert sorted(rows["request_id"]) == ["req-0", "req-1", "req-2", "req-3"]
    assert (rows["hpo_0001945"] == 1).all()  # the platform's encoding of the logged request
    assert len(rejects) == 3
    assert "truncated last line" in set(rejects["reason"])
    assert rejects["line_sha256"].str.fullmatch("[0-9a-f]{64}").all()
    assert SECRET not in rejects.to_csv()
    assert SECRET not in json.dumps({str(k): str(v) for k, v in by_key[keys.PREDICTION_LOG_REJECTS].items()})


def test_realized_performance_from_later_diagnoses(monitored: Monitored) -> None:
    path, defs, instance = monitored.home, monitored.defs, monitored.instance
    later = (dt.date.fromisoformat(DAY) + dt.timedelta(days=20)).isoformat()
    with duckdb.connect(warehouse_path({"RARE_TRIAGE_HOME": str(path)})) as conn:
        conn.execute("create schema if not exists features")
        conn.execute(
            "create table features.encounter_features as select * from (values "
            f"('{'a' * 32}', '{later}', 'orphan'), ('{'b' * 32}', '{later}', 'common_acute'), "
            f"('{'c' * 32}', '{later}', 'none')) t(patient_key, partition_day, label)"
        )
    asset = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and keys.MODEL_PERFORMANCE in a.keys)
    weeks = (dt.date.today() - dt.date.fromisoformat(DAY)).days // 7 + 2
    result = dg.materialize(
        [asset],
        instance=instance,
        resources=defs.resources,
        run_config={"ops": {"model_performance": {"config": {"weeks": weeks}}}},
    )
    table = result.output_for_node("model_performance")
    assert len(table) == 1
    row = table.iloc[0]
    # a: orphan flagged (hit), b: acute not flagged, c: flagged but none (false alarm), the fourth has no patient key
    assert (row["n_predictions"], row["n_labelled"], row["n_orphan"]) == (4, 3, 1)
    assert row["orphan_recall"] == 1.0
    assert row["precision"] == 0.5
