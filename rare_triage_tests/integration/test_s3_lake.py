"""The Parquet lake and the landing zone on a real S3 API server on 127.0.0.1 (moto in server mode)."""

import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from rare_triage.defs.shared.resources import build_resources
from rare_triage.lib import schema
from rare_triage_tests.fixtures import LANDING_FIXTURES
from rare_triage_tests.fixtures_s3 import arrow_s3_filesystem, make_bucket, put_object, s3_client
from rare_triage_tests.helpers.materialize import check_results, local_environ, materialize_day, materialize_reference

pytestmark = pytest.mark.integration

LANDING_DAY = "2024-03-04"


def test_the_lake_lives_in_an_s3_bucket(s3_server: str, tmp_path: Path) -> None:
    make_bucket(s3_server, "lake")
    environ = local_environ(
        tmp_path, RARE_TRIAGE_LAKE_URI="s3://lake/rare-triage", RARE_TRIAGE_S3_ENDPOINT_URL=s3_server
    )
    resources = build_resources(environ)
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    result = materialize_day(resources, instance, "2025-02-10")
    assert all(check_results(result).values())
    keys = {o["Key"] for o in s3_client(s3_server).list_objects_v2(Bucket="lake", Prefix="rare-triage/")["Contents"]}
    for table in schema.ANON_TABLES:
        assert f"rare-triage/anonymized_encounters/partition_day=2025-02-10/{table}.parquet" in keys
    assert "rare-triage/hpo_reference_tables/all/term_rollup.parquet" in keys
    fs = arrow_s3_filesystem(s3_server)
    encounters = pq.read_table(
        "lake/rare-triage/anonymized_encounters/partition_day=2025-02-10/encounters.parquet", filesystem=fs
    )
    assert encounters.num_rows > 0
    assert not (tmp_path / "lake").exists()


def test_a_landing_zone_day_on_s3_flows_to_features(s3_server: str, tmp_path: Path) -> None:
    make_bucket(s3_server, "landing")
    for path in (LANDING_FIXTURES / LANDING_DAY).iterdir():
        put_object(s3_server, "landing", f"hce/{LANDING_DAY}/{path.name}", path.read_bytes())
    environ = local_environ(
        tmp_path,
        RARE_TRIAGE_EHR_SOURCE="landing",
        RARE_TRIAGE_LANDING_URI="s3://landing/hce",
        RARE_TRIAGE_S3_ENDPOINT_URL=s3_server,
    )
    resources = build_resources(environ)
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    result = materialize_day(resources, instance, LANDING_DAY, raise_on_error=False)
    assert result.success
    raw = next(m for m in result.get_asset_materialization_events() if m.asset_key.path == ["raw_ehr_extract"])
    assert raw.materialization.metadata["source"].value == "landing_zone"
    assert raw.materialization.metadata["encounters"].value > 0
    checks = check_results(result)
    assert checks["no_identifiers"] and checks["quarantine_accounting"] and checks["features_schema"]


def test_a_local_landing_zone_day_with_csv_and_fhir(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(LANDING_FIXTURES / LANDING_DAY, landing / LANDING_DAY)
    resources = build_resources(local_environ(tmp_path, RARE_TRIAGE_EHR_SOURCE="landing"))
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    result = materialize_day(resources, instance, LANDING_DAY)
    counts = (
        next(m for m in result.get_asset_materialization_events() if m.asset_key.path == ["anonymized_encounters"])
        .materialization.metadata["counts"]
        .value
    )
    assert counts["encounters"]["in"] == sum(counts["encounters"][f] for f in ("valid", "quarantined", "held"))
    csv_encounters = len((landing / LANDING_DAY / "encounters.csv").read_text().splitlines()) - 1
    assert counts["encounters"]["in"] > csv_encounters  # the FHIR bundles add encounters to the CSV ones


def test_s3_limits_reach_every_s3_resource(tmp_path: Path) -> None:
    environ = local_environ(
        tmp_path,
        RARE_TRIAGE_LAKE_URI="s3://lake/rare-triage",
        RARE_TRIAGE_EHR_SOURCE="landing",
        RARE_TRIAGE_LANDING_URI="s3://landing/hce",
        RARE_TRIAGE_BUCKET_URI="s3://models/rare",
        RARE_TRIAGE_S3_CONNECT_TIMEOUT="2",
        RARE_TRIAGE_S3_READ_TIMEOUT="9",
        RARE_TRIAGE_S3_MAX_ATTEMPTS="4",
    )
    resources = build_resources(environ)

    for key in ("parquet_io_manager", "parquet_arrow_input", "ehr_source", "bucket"):
        resource = resources[key]
        limits = (resource.s3_connect_timeout, resource.s3_read_timeout, resource.s3_max_attempts)
        assert limits == (2.0, 9.0, 4), key
