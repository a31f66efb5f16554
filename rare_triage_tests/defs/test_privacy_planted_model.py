"""Planted identifiers through training, ONNX export and publication: none reaches MLflow, the bucket, or any other
file of the state folder outside the raw extract.

Two landing days carry the plants of `rare_triage_tests.helpers.planted` (identifiers typed into coded columns, a
full name as the region of 8 encounters): DAY in the training window, PLANTED_TEST_DAY in the test window, so the
planted days' rows are fitted (categories, cross-validation, calibration) and evaluated (subgroups, parity, behaviour,
operating points). Three ordinary synthetic landing days, with more orphan cases than a real day of this size, fill
the windows. Everything runs as `make run` does: the code location's own definitions and resources (landing-zone
source, MLflow in sqlite, the local bucket, all under one RARE_TRIAGE_HOME), reference_job, daily_ingest_job per day,
then train_and_publish_job. The training gates are run configuration: their thresholds are opened here (a 5-day
extract of 300 encounters a day cannot meet the issue's), so every gate is evaluated, passes, and published_model
writes the bucket by its production path.

The whole state folder (lake, quarantine, warehouse, Dagster run storage, event logs and compute logs, MLflow's
tracking store and artifacts, the bucket) is then searched for every planted string (`search_state`: bytes, decoded
Parquet / DuckDB / SQLite cells, zip members such as the skops model, ONNX protobuf strings).
"""

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import onnx
import pytest
from mlflow import MlflowClient

from rare_triage.defs.shared import keys
from rare_triage.defs.shared.ehr_source import DriftScenarioConfig, SyntheticEhrSource
from rare_triage.defs.shared.mlflow import DEFAULT_EXPERIMENT, DEFAULT_REGISTERED_MODEL, MLFLOW_DB
from rare_triage.lib import schema
from rare_triage.lib.deployment.onnx_export.feature_spec import SPEC_METADATA_KEY
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage_tests.helpers.code_location import code_location_in, failures, small_training_config
from rare_triage_tests.helpers.planted import (
    DAY,
    PLANTED_REGION,
    RAW_FOLDER,
    StateSearch,
    onnx_strings,
    planted_strings,
    search_state,
    write_landing_day,
    write_planted_day,
)

pytestmark = pytest.mark.slow

PLANTED_TEST_DAY = "2025-03-07"
ORDINARY_DAYS = ("2025-03-03", "2025-03-05", "2025-03-06")
DAYS = tuple(sorted((*ORDINARY_DAYS, DAY, PLANTED_TEST_DAY)))
TRAIN_DAYS, VALIDATION_DAYS, TEST_DAYS = DAYS[:2], DAYS[2:3], DAYS[3:]
MODELS = Path("bucket") / "models" / "rare-triage"
TRAIN_AND_PUBLISH_CONFIG = small_training_config(
    "logistic_regression+class_weight",
    validation_days=len(VALIDATION_DAYS),
    test_days=len(TEST_DAYS),
    external_validation={
        "max_cases": 150,
        "ablation_feature_sets": ["vocabulary_age_sex", "vocabulary_systems_age_sex"],
        "ablation_max_rows": 3000,
    },
)


def _ordinary_source() -> SyntheticEhrSource:
    """The planted days' population and size, with orphan patients visiting 6 times as often: about 25 orphan
    encounters a day instead of 4, so that every window holds each label."""
    case_mix = {"orphan_multiplier": 6.0, "acute_multiplier": 1.0}
    return SyntheticEhrSource(
        encounters_per_day=300,
        population_size=4000,
        error_rate=0.0,
        drift_scenarios=[DriftScenarioConfig(kind="case_mix", start=DAYS[0], params=case_mix)],
    )


@dataclass(frozen=True)
class PublishedRun:
    home: Path
    ingest: dict[str, dg.ExecuteInProcessResult]
    train_and_publish: dg.ExecuteInProcessResult

    def client(self) -> MlflowClient:
        uri = f"sqlite:///{self.home / 'mlflow' / MLFLOW_DB}"
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def dev_version(self) -> str:
        return str(json.loads((self.home / MODELS / "env" / "dev.json").read_text())["version"])

    def manifest(self) -> dict[str, Any]:
        return dict(json.loads((self.home / MODELS / self.dev_version() / "manifest.json").read_text()))


@pytest.fixture(scope="module")
def published_run(tmp_path_factory: pytest.TempPathFactory, reference_tables: ReferenceTables) -> PublishedRun:
    base = tmp_path_factory.mktemp("planted_model")
    home, landing = base / "home", base / "landing"
    for day in (DAY, PLANTED_TEST_DAY):
        write_planted_day(reference_tables, landing, day)
    source = _ordinary_source()
    for day in ORDINARY_DAYS:
        write_landing_day(source.read_day(dt.date.fromisoformat(day), reference_tables), landing, day)
    environ = {"RARE_TRIAGE_EHR_SOURCE": "landing", "RARE_TRIAGE_LANDING_URI": str(landing)}
    with code_location_in(home, environ) as (defs, instance):
        reference = defs.resolve_job_def(keys.REFERENCE_JOB).execute_in_process(instance=instance)
        assert reference.success, failures(reference)
        daily = defs.resolve_job_def(keys.DAILY_INGEST_JOB)
        ingest = {
            day: daily.execute_in_process(instance=instance, partition_key=day, raise_on_error=False) for day in DAYS
        }
        trained = defs.resolve_job_def(keys.TRAIN_AND_PUBLISH_JOB).execute_in_process(
            run_config=TRAIN_AND_PUBLISH_CONFIG, instance=instance, raise_on_error=False
        )
    return PublishedRun(home, ingest, trained)  # searched once the instance is closed and its storage written


def test_the_planted_days_are_trained_on_exported_and_published(published_run: PublishedRun) -> None:
    for day, result in published_run.ingest.items():
        assert result.success and not failures(result), (day, failures(result))
    result = published_run.train_and_publish
    assert result.success, failures(result)
    evaluations = {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed for e in result.get_asset_check_evaluations()
    }
    gates = {f"{key.asset_key.to_user_string()}:{key.name}" for key in keys.TRAINING_GATES}
    assert gates <= set(evaluations) and all(evaluations[g] for g in gates), evaluations
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert {keys.TRIAGE_MODEL, keys.ONNX_MODEL, keys.PUBLISHED_MODEL} <= materialized

    version = published_run.dev_version()
    assert result.output_for_node("published_model")["version"] == version
    folder = published_run.home / MODELS / version
    assert (folder / "model.onnx").stat().st_size > 0
    manifest = published_run.manifest()
    assert manifest["checks_passed"] is True and manifest["dagster_run_id"] == result.run_id
    assert sorted(manifest["training_partitions"]) == [*TRAIN_DAYS, *VALIDATION_DAYS]

    client = published_run.client()
    model_version = client.get_model_version(DEFAULT_REGISTERED_MODEL, manifest["mlflow_model_version"])
    assert model_version.run_id == manifest["mlflow_run_id"]
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.dagster_run_id = '{result.run_id}'")
    evaluation = next(r for r in runs if r.data.tags["dagster_asset"] == "model_evaluation")
    assert evaluation.data.params["test_partitions"] == ",".join(TEST_DAYS)
    artifacts = [a.path for a in client.list_artifacts(evaluation.info.run_id, "tables")]
    assert "tables/test_subgroups.csv" in artifacts


def _region_categories(schema_dict: dict[str, Any]) -> list[str]:
    region = next(c for c in schema_dict["columns"] if c["name"] == "region")
    return [c["value"] for c in region["categories"]]


def test_a_name_as_region_is_no_category_of_the_manifest_or_the_onnx_graph(published_run: PublishedRun) -> None:
    manifest = published_run.manifest()
    categories = _region_categories(manifest["input_schema"])
    # the planted region rows were trained on, generalised to `other` (the ordinary days know their regions)
    assert schema.OTHER_CATEGORY in categories, categories
    every_category = [
        c["value"] for column in manifest["input_schema"]["columns"] for c in column.get("categories", [])
    ]
    assert not [c for c in every_category if PLANTED_REGION.casefold() in c.casefold()]

    onnx_bytes = (published_run.home / MODELS / manifest["version"] / "model.onnx").read_bytes()
    assert not [s for s in onnx_strings(onnx_bytes) if PLANTED_REGION.casefold() in s.casefold()]
    metadata = {p.key: p.value for p in onnx.load_model_from_string(onnx_bytes).metadata_props}
    assert _region_categories(json.loads(metadata[SPEC_METADATA_KEY])) == categories


def _under(search: StateSearch, folder: str, decoding: str = "") -> list[str]:
    return [v for v in search.views if v.startswith(f"{folder}/") and decoding in v]


def test_no_planted_string_reaches_mlflow_the_bucket_or_any_other_file(published_run: PublishedRun) -> None:
    planted = planted_strings()
    search = search_state(published_run.home, planted)
    version = published_run.dev_version()

    # what was searched: every kind of file the run leaves, decoded
    assert _under(search, "mlflow", f"{MLFLOW_DB}#sqlite")
    assert [v for v in _under(search, "mlflow/artifacts", ".skops::") if v.endswith("schema.json")]
    assert _under(search, "mlflow/artifacts", "test_subgroups.csv")
    assert _under(search, "mlflow/artifacts", "MLmodel")
    assert _under(search, f"{MODELS}/{version}", "model.onnx#onnx-strings")
    assert _under(search, f"{MODELS}/{version}", "manifest.json")
    assert _under(search, f"{MODELS}/env", "dev.json")
    assert _under(search, "dagster_home", "#sqlite")
    assert _under(search, "dagster_home/storage", "compute_logs")
    # the run storage's pickled asset values: the windows' rows, the model bundle with its test features
    assert {"dagster_home/storage/training_set", "dagster_home/storage/triage_model"} <= set(search.views)
    assert _under(search, "lake/quarantined_records", "#parquet")
    assert [v for v in search.views if v.endswith(".duckdb#duckdb")]

    outside = search.outside(RAW_FOLDER)
    assert {value: [v for v in views if v.startswith(("mlflow/", "bucket/"))] for value, views in outside.items()} == {
        value: [] for value in planted
    }
    assert outside == {value: [] for value in planted}
    # the search does find them where they are: the raw extract keeps what the hospital sent, by design
    assert [value for value, views in search.hits.items() if not views] == [], search.hits
