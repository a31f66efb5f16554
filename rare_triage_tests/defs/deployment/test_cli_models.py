"""`status`, `promote` and `rollback` through `rare_triage.cli.main`: verified states, tampered files, a missing
bucket folder, an S3 bucket on a real S3 API (moto on 127.0.0.1) and a frozen S3 endpoint."""

import hashlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from rare_triage.cli import main
from rare_triage.defs.deployment.registry import record_hashes
from rare_triage.defs.shared.mlflow import DEFAULT_REGISTERED_MODEL, MlflowTracking
from rare_triage.lib.deployment.bucket import Bucket, LocalBucket, S3Bucket
from rare_triage.lib.deployment.manifest import manifest_to_bytes
from rare_triage.lib.deployment.model_bundle import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL
from rare_triage.lib.deployment.publication import (
    Pointer,
    PublishedVersion,
    manifest_key,
    move_pointer,
    pointer_key,
    publish_model,
    read_pointer,
    sidecar_key,
)
from rare_triage_tests.fixtures_s3 import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    frozen_endpoint,
    make_bucket,
    s3_client,
    s3_server,
)
from rare_triage_tests.helpers.published_model_factory import manifest_for, publish_format_1, release_for

__all__ = ["frozen_endpoint", "s3_server"]  # pytest fixtures used by name below

GUARD_S = 300  # wall-clock guard against a hang, not a speed assertion
BETTER = {METRIC_ORPHAN_RECALL: 0.93, METRIC_EXTERNAL_VALIDATION_SHARE: 0.81}
TABLE = "phenotype_encoding.json"


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A sqlite MLflow registry with versions 1 and 2 of the registered model."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(DEFAULT_REGISTERED_MODEL)
    for n in (1, 2):
        client.create_model_version(DEFAULT_REGISTERED_MODEL, source=str(tmp_path / f"artifacts-{n}"))
    return uri


def _serve(bucket: Bucket, tracking_uri: str | None = None) -> tuple[PublishedVersion, PublishedVersion]:
    """prod -> version 1, dev -> version 2 (better); hashes tagged in the registry as publication does."""
    one = publish_model(bucket, release_for(b"model one", "1"))
    two = publish_model(bucket, release_for(b"model two", "2", **BETTER))
    if tracking_uri is not None:
        for published, number in ((one, "1"), (two, "2")):
            record_hashes(MlflowTracking(tracking_uri=tracking_uri), published, number)
    move_pointer(bucket, "prod", one.version)
    move_pointer(bucket, "dev", two.version)
    return one, two


def _environ(tmp_path: Path, tracking_uri: str, **extra: str) -> dict[str, str]:
    return {
        "RARE_TRIAGE_HOME": str(tmp_path / "home"),
        "RARE_TRIAGE_MLFLOW_TRACKING_URI": tracking_uri,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        **extra,
    }


@pytest.fixture
def local(tmp_path: Path, tracking_uri: str) -> Iterator[tuple[LocalBucket, dict[str, str], Any]]:
    bucket = LocalBucket(tmp_path / "bucket")
    yield (
        bucket,
        _environ(tmp_path, tracking_uri, RARE_TRIAGE_BUCKET_URI=str(bucket.root)),
        _serve(bucket, tracking_uri),
    )


def test_status_verifies_each_env(
    local: tuple[LocalBucket, dict[str, str], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _, environ, (one, two) = local

    assert main(["status"], environ) == 0

    out = capsys.readouterr().out
    assert f"dev: {two.version} ok (since " in out
    assert f"prod: {one.version} ok (since " in out
    assert "model registry rare-triage version 2" in out
    assert f"published: {one.version}, {two.version}" in out


def test_status_reports_a_garbage_manifest_naming_the_version(
    local: tuple[LocalBucket, dict[str, str], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, environ, (one, two) = local
    (bucket.root / manifest_key(two.version)).write_bytes(b"\x00\xff not a manifest \x89")

    assert main(["status"], environ) == 1

    captured = capsys.readouterr()
    out = captured.out
    assert "status: MISMATCH" in captured.err
    assert f"dev: {two.version} MISMATCH: manifest.json" in out
    assert "manifest: not valid UTF-8 JSON" in out
    assert f"prod: {one.version} ok" in out
    assert f"{two.version} (unreadable)" in out
    assert "Traceback" not in out


def test_promote_refuses_a_tampered_manifest_even_with_a_rewritten_pointer(
    local: tuple[LocalBucket, dict[str, str], Any], tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, environ, (one, two) = local
    tampered = manifest_for(b"model two", "2", **{METRIC_ORPHAN_RECALL: 0.99}) | {"thresholds": {"orphan": 0.01}}
    data = manifest_to_bytes(tampered)
    (bucket.root / manifest_key(two.version)).write_bytes(data)

    dev = read_pointer(bucket, "dev")
    assert dev is not None
    forged = Pointer(**{**vars(dev), "manifest_sha256": hashlib.sha256(data).hexdigest()})
    bucket.put_bytes(pointer_key("dev"), forged.to_bytes(), if_absent=False)

    assert main(["promote", "--tolerance", "0.0"], environ) == 1

    err = capsys.readouterr().err
    assert f"promotion refused: version {two.version}: manifest.json" in err
    assert "recorded by model registry rare-triage version 2" in err
    assert read_pointer(bucket, "prod").version == one.version  # type: ignore[union-attr]
    champion = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_registered_model(
        DEFAULT_REGISTERED_MODEL
    )
    assert "champion" not in (champion.aliases or {})
    assert main(["status"], environ) == 1
    captured = capsys.readouterr()
    assert "MISMATCH" in captured.err
    assert "recorded by model registry rare-triage version 2" in captured.out


def test_status_promote_and_rollback_refuse_a_tampered_table_file(
    local: tuple[LocalBucket, dict[str, str], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, environ, (one, two) = local
    table = bucket.root / sidecar_key(two.version, TABLE)
    table.write_bytes(table.read_bytes().replace(b"0.912", b"0.001"))
    problem = f"{two.version}/{TABLE} ("

    assert main(["status"], environ) == 1
    out = capsys.readouterr().out
    assert f"dev: {two.version} MISMATCH: {problem}" in out and "does not match its manifest entry" in out
    assert f"prod: {one.version} ok" in out
    assert main(["promote", "--tolerance", "0.0"], environ) == 1
    assert f"promotion refused: version {two.version}: {problem}" in capsys.readouterr().err
    assert main(["rollback", "--env", "prod", "--version", two.version], environ) == 1
    assert f"rollback of prod to {two.version} refused: version {two.version}: {problem}" in capsys.readouterr().err
    assert read_pointer(bucket, "prod").version == one.version  # type: ignore[union-attr]


def test_status_reports_a_missing_table_file(
    local: tuple[LocalBucket, dict[str, str], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, environ, (one, two) = local
    (bucket.root / sidecar_key(one.version, TABLE)).unlink()

    assert main(["status"], environ) == 1

    out = capsys.readouterr().out
    assert f"prod: {one.version} MISMATCH: incomplete in {bucket.uri}: {one.version}/{TABLE}, listed in" in out
    assert f"dev: {two.version} ok" in out


def test_status_names_a_version_of_manifest_format_1_and_fails_only_where_it_is_served(
    local: tuple[LocalBucket, dict[str, str], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, environ, (one, two) = local
    old = publish_format_1(bucket, b"model zero", "3")  # registry version 3 does not exist: no tags to compare

    assert main(["status"], environ) == 0
    out = capsys.readouterr().out
    assert f"{old} (older manifest format, not servable)" in out
    assert f"  version {old}: manifest format 1 is not 2" in out
    assert f"prod: {one.version} ok" in out and f"dev: {two.version} ok" in out

    prod = read_pointer(bucket, "prod")
    assert prod is not None
    hashes = {
        "manifest_sha256": hashlib.sha256(bucket.get_bytes(manifest_key(old))).hexdigest(),
        "onnx_sha256": hashlib.sha256(b"model zero").hexdigest(),
    }
    bucket.put_bytes(pointer_key("prod"), Pointer(**{**vars(prod), "version": old, **hashes}).to_bytes(), False)

    assert main(["status"], environ) == 1
    captured = capsys.readouterr()
    assert f"prod: {old} MISMATCH: manifest format 1 is not 2" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert main(["promote", "--tolerance", "0.0"], environ) == 1
    assert f"promotion refused: version {old}: manifest format 1 is not 2" in capsys.readouterr().err


def test_a_missing_bucket_folder_is_named_not_taken_for_an_empty_bucket(
    tmp_path: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "buckte"
    environ = _environ(tmp_path, tracking_uri, RARE_TRIAGE_BUCKET_URI=str(missing))

    assert main(["status"], environ) == 1
    assert f"bucket folder {missing} does not exist" in capsys.readouterr().err
    assert main(["promote"], environ) == 1
    assert f"bucket folder {missing} does not exist" in capsys.readouterr().err
    assert main(["rollback", "--env", "prod", "--version", "v1-0123456789ab"], environ) == 1
    assert f"bucket folder {missing} does not exist" in capsys.readouterr().err
    assert not missing.exists()


@pytest.mark.integration
def test_status_promote_and_rollback_on_an_s3_bucket(
    s3_server: str, tmp_path: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"models-{uuid.uuid4().hex[:12]}"
    make_bucket(s3_server, name)
    one, two = _serve(S3Bucket(s3_client(s3_server), name, "rare"), tracking_uri)
    environ = _environ(
        tmp_path,
        tracking_uri,
        RARE_TRIAGE_BUCKET_URI=f"s3://{name}/rare",
        RARE_TRIAGE_S3_ENDPOINT_URL=s3_server,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
    )

    assert main(["status"], environ) == 0
    assert f"prod: {one.version} ok" in capsys.readouterr().out
    assert main(["promote", "--tolerance", "0.0"], environ) == 0
    out = capsys.readouterr()
    assert f"prod: {two.version} ok" in out.out
    assert "promote_to_prod failed" not in out.err and "could not be read" not in out.err
    assert main(["rollback", "--env", "prod", "--version", one.version], environ) == 0
    out = capsys.readouterr()
    assert f"prod: {one.version} ok" in out.out
    assert "rollback failed" not in out.err and "could not be read" not in out.err
    assert main(["status"], environ) == 0
    assert f"prod: {one.version} ok" in capsys.readouterr().out

    assert main(["status"], {**environ, "RARE_TRIAGE_BUCKET_URI": "s3://no-such-bucket/rare"}) == 1
    assert f"bucket s3://no-such-bucket does not exist at {s3_server}" in capsys.readouterr().err

    stored = b"".join(p.read_bytes() for p in (tmp_path / "dagster_home").rglob("*") if p.is_file())
    assert SECRET_KEY.encode() not in stored  # credentials are never written into the run storage


@pytest.mark.integration
def test_status_on_a_frozen_endpoint_fails_naming_it(
    frozen_endpoint: str, tmp_path: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = _environ(
        tmp_path,
        tracking_uri,
        RARE_TRIAGE_BUCKET_URI="s3://models/rare",
        RARE_TRIAGE_S3_ENDPOINT_URL=frozen_endpoint,
        RARE_TRIAGE_S3_CONNECT_TIMEOUT="1",
        RARE_TRIAGE_S3_READ_TIMEOUT="1",
        RARE_TRIAGE_S3_MAX_ATTEMPTS="2",
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
    )

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(main, ["status"], environ).result(timeout=GUARD_S) == 1

    message = capsys.readouterr().err
    assert f"s3 endpoint {frozen_endpoint}" in message
    assert "connect timeout 1 s, read timeout 1 s, 2 attempts" in message
    assert SECRET_KEY not in message
