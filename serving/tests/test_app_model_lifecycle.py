"""The served model over its life, over real HTTP: no model at start, a bucket that goes away, a start from the
cache, a hot swap under concurrent clients, and a corrupt version refused while the old one keeps serving."""

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.tests.http_server import Server, publish_release, running_server, service_env, wait_for
from serving.tests.published import MAX_FEATURES, build_release, folder_put, point, version_key

ENCOUNTER = {"sex": "F", "age_years": 7, "hpo_observed": ["HP:0001250"]}
CLIENT_THREADS = 4
REQUESTS_BEFORE_SWAP = 20  # per thread, before the new version is published
REQUESTS_AFTER_SWAP = 20  # per thread, once /v1/model shows the new version
MAX_REQUESTS = 1000  # per thread, whatever happens
LOOP_TIMEOUT_S = 60.0


def served_version(client: httpx.Client) -> str | None:
    response = client.get("/v1/model")
    return str(response.json()["version"]) if response.status_code == 200 else None


def metric_value(client: httpx.Client, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


@pytest.mark.parametrize("bucket_exists", [True, False], ids=["no-pointer", "no-bucket"])
def test_without_a_model_the_service_is_alive_but_not_ready(tmp_path: Path, bucket_exists: bool) -> None:
    bucket = tmp_path / "bucket"
    if bucket_exists:
        bucket.mkdir()

    with running_server(service_env(tmp_path / "home", bucket), tmp_path / "work") as server, server.client() as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        predict = client.post("/v1/predict", json=ENCOUNTER)
        batch = client.post("/v1/predict/batch", json={"encounters": [ENCOUNTER]})
        model = client.get("/v1/model")
        ready_metric = metric_value(client, "rare_triage_serving_model_ready")

    reason = "no pointer" if bucket_exists else "does not exist"
    assert ready.status_code == 503
    assert ready.json()["ready"] is False and reason in ready.json()["detail"]
    for response in (predict, batch, model):
        assert response.status_code == 503
        assert response.json()["detail"].startswith("no model loaded for env dev: ")
        assert reason in response.json()["detail"]
    assert ready_metric == 0


def test_the_service_keeps_serving_when_the_bucket_goes_and_starts_from_its_cache(tmp_path: Path) -> None:
    bucket, home = tmp_path / "bucket", tmp_path / "home"
    release = build_release(n_features=MAX_FEATURES)
    publish_release(bucket, release)
    env = service_env(home, bucket)

    with running_server(env, tmp_path / "work") as server, server.client() as client:
        assert client.post("/v1/predict", json=ENCOUNTER).status_code == 200
        shutil.rmtree(bucket)
        failing = wait_for(
            lambda: client.get("/ready").json()["last_check_error"], what="the reloader notices the bucket is gone"
        )
        still = [client.post("/v1/predict", json=ENCOUNTER) for _ in range(5)]
        ready = client.get("/ready")

    assert "does not exist" in failing
    assert all(r.status_code == 200 and r.json()["model_version"] == release.version for r in still)
    assert ready.status_code == 200 and ready.json()["source"] == "bucket"

    with running_server(env, tmp_path / "work") as server, server.client() as client:
        ready = client.get("/ready")
        predicted = client.post("/v1/predict", json=ENCOUNTER)
        model = client.get("/v1/model")

    body = ready.json()
    assert ready.status_code == 200
    assert (body["source"], body["served_from_cache"], body["model_version"]) == ("cache", True, release.version)
    assert "local cache" in body["detail"] and "could not be read" in body["detail"]
    assert (predicted.status_code, predicted.json()["model_version"]) == (200, release.version)
    assert (model.json()["source"], model.json()["served_from_cache"]) == ("cache", True)


@dataclass
class ClientLoop:
    """One thread of sequential predictions, noting each answer's status and model version."""

    server: Server
    stop: threading.Event
    answers: list[tuple[int, str | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        deadline = time.monotonic() + LOOP_TIMEOUT_S
        with self.server.client() as client:
            while not self.stop.is_set() and len(self.answers) < MAX_REQUESTS and time.monotonic() < deadline:
                try:
                    response = client.post("/v1/predict", json=ENCOUNTER)
                except httpx.HTTPError as exc:  # noted: the test fails on any
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                version = response.json().get("model_version") if response.status_code == 200 else None
                self.answers.append((response.status_code, version))

    def count(self, version: str) -> int:
        return sum(1 for _, seen in self.answers if seen == version)


def test_a_new_version_is_swapped_in_under_load_without_a_failed_request(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    old = build_release(seed=0, n_features=MAX_FEATURES)
    new = build_release(seed=1, mlflow_model_version="2", n_features=MAX_FEATURES)
    publish_release(bucket, old)
    stop = threading.Event()

    with running_server(service_env(tmp_path / "home", bucket), tmp_path / "work") as server:
        loops = [ClientLoop(server, stop) for _ in range(CLIENT_THREADS)]
        threads = [threading.Thread(target=loop.run, name=f"client-{i}") for i, loop in enumerate(loops)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: all(len(loop.answers) >= REQUESTS_BEFORE_SWAP for loop in loops), what="clients busy")
            publish_release(bucket, new)
            with server.client() as client:
                wait_for(lambda: served_version(client) == new.version, what="the new version served")
                loads = metric_value(client, "rare_triage_serving_model_loads_total")
            wait_for(lambda: all(loop.count(new.version) >= REQUESTS_AFTER_SWAP for loop in loops), what="clients")
        finally:
            stop.set()
            for thread in threads:
                thread.join(LOOP_TIMEOUT_S)

    assert not any(thread.is_alive() for thread in threads)
    assert [loop.errors for loop in loops] == [[]] * CLIENT_THREADS
    for loop in loops:
        statuses = {status for status, _ in loop.answers}
        versions = [version for _, version in loop.answers]
        assert statuses == {200}
        first_new = versions.index(new.version)
        assert set(versions[:first_new]) == {old.version}  # the old version until the swap...
        assert set(versions[first_new:]) == {new.version}  # ...and never again after it
    assert loads == 2


def test_a_corrupt_version_is_refused_and_the_served_one_stays(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    good = build_release(seed=0, n_features=MAX_FEATURES)
    corrupt = build_release(seed=2, mlflow_model_version="3", n_features=MAX_FEATURES)
    publish_release(bucket, good)

    with running_server(service_env(tmp_path / "home", bucket), tmp_path / "work") as server, server.client() as client:
        publish_release(bucket, corrupt, move_pointer=False)
        onnx = bucket.joinpath(*version_key(corrupt.version, "model.onnx").split("/"))
        onnx.write_bytes(onnx.read_bytes()[:-1] + b"\x01")  # tampered after publication
        point(folder_put(bucket), "dev", corrupt)

        model = wait_for(lambda: (body := client.get("/v1/model").json())["refused"] and body, what="the refusal")
        predicted = client.post("/v1/predict", json=ENCOUNTER)
        ready = client.get("/ready")
        refusals = metric_value(client, "rare_triage_serving_model_refusals_total")
        refused_metric = metric_value(client, "rare_triage_serving_model_refused", version=corrupt.version)
        served_metric = metric_value(
            client, "rare_triage_serving_model_info", version=good.version, env="dev", source="bucket"
        )

    assert model["version"] == good.version
    [refusal] = model["refused"]
    assert refusal["version"] == corrupt.version and "sha256" in refusal["reason"]
    assert model["refusals_total"] == 1
    assert (predicted.status_code, predicted.json()["model_version"]) == (200, good.version)
    assert ready.status_code == 200 and ready.json()["refused"][0]["version"] == corrupt.version
    assert (refusals, refused_metric, served_metric) == (1, 1, 1)


def test_a_version_refused_at_start_up_leaves_the_service_not_ready_until_a_good_one_is_pointed(
    tmp_path: Path,
) -> None:
    bucket = tmp_path / "bucket"
    corrupt = build_release(seed=3, n_features=MAX_FEATURES)
    good = build_release(seed=4, mlflow_model_version="2", n_features=MAX_FEATURES)
    publish_release(bucket, corrupt)
    (bucket / version_key(corrupt.version, "phenotype_encoding.json")).write_bytes(b"{}\n")

    with running_server(service_env(tmp_path / "home", bucket), tmp_path / "work") as server, server.client() as client:
        ready = client.get("/ready")
        predict = client.post("/v1/predict", json=ENCOUNTER)
        time.sleep(1.0)  # five reload intervals: the refused version is not retried meanwhile
        refusals = metric_value(client, "rare_triage_serving_model_refusals_total")
        publish_release(bucket, good)
        wait_for(lambda: client.get("/ready").status_code == 200, what="ready once a good version is pointed")
        served = client.post("/v1/predict", json=ENCOUNTER)

    assert ready.status_code == 503
    assert f"version {corrupt.version} refused" in ready.json()["detail"]
    assert ready.json()["refused"][0]["version"] == corrupt.version
    assert predict.status_code == 503 and "refused" in predict.json()["detail"]
    assert refusals == 1
    assert (served.status_code, served.json()["model_version"]) == (200, good.version)
