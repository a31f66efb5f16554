"""Micro-batched POST /v1/predict through the app: concurrent requests scored in one model call answer exactly
what each one scored alone answers, each with its own request id and log line; a failed call fails each request
of its batch (503) and the next batch is served; a batch is scored by one model snapshot, the one served when it
runs, even when a reload swaps the model while the batch is open; and over real HTTP concurrent predictions
agree with the model loaded in the test process.

In process (httpx's ASGI transport: the app and the client share one event loop), requests reach the handler
at their own pace, so these tests turn the idle trigger off and let a generous window (`WINDOW_MS`) gather the
concurrent requests.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import numpy as np
import pytest
from litestar import Litestar

from serving import microbatch
from serving.api.runtime import STATE_KEY, Runtime, prepare_model
from serving.app import create_app
from serving.bucket import LocalBucket
from serving.contract import Encounter
from serving.model_store import LoadedModel, load_version
from serving.prediction_log import PredictionLog
from serving.settings import Settings
from serving.tests.http_server import publish_release, running_server, service_env
from serving.tests.published import MAX_FEATURES, Release, build_release
from serving.weighing import InputWeigher

T = TypeVar("T")
WINDOW_MS = 1000  # gathers every request of a test into one batch; a lone one still waits at most this
GUARD_S = 30.0
ENCOUNTERS: list[dict[str, Any]] = [
    {},
    {"sex": "F", "age_years": 7, "temperature_c": 38.4, "hpo_observed": ["HP:0001250", "HP:0001945"]},
    {"sex": "M", "age_years": 54, "centre_id": "C01", "region": "madrid", "consultation_type": "emergency"},
    {"hpo_observed": ["HP:0001945"], "hpo_excluded": ["HP:0002027"], "fever_score": 6},
    {"sex": "U", "age_years": 90, "heart_rate": 130, "spo2": 91, "prior_visits_365d": 3},
    {"hpo_observed": ["HP:9999999", "HP:0000005"], "pain_score": 8, "symptom_duration_days": 12},
]
COMPARED = (
    "class",
    "outcome",
    "probabilities",
    "orphan_probability",
    "orphan_flag",
    "needs_review",
    "hpo",
    "weighed_most",
)


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(main(), GUARD_S)

    return asyncio.run(guarded())


@pytest.fixture
def window_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches close on the window or max_batch only (see the module doc)."""
    monkeypatch.setattr(microbatch, "IDLE_ROUNDS", 10**9)


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    publish_release(root, build_release(seed=0, n_features=MAX_FEATURES))
    return root


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(model version, rows) of every scoring model call, in order (the weigher's occlusion call of a linear model
    is left out: test_weighing.py counts it)."""
    seen: list[tuple[str, int]] = []
    original = LoadedModel.predict_proba
    original_weigh = InputWeigher.weigh

    def recording(self: LoadedModel, features: np.ndarray) -> np.ndarray:
        seen.append((self.version, len(features)))
        return original(self, features)

    def weigh_unrecorded(self: InputWeigher, matrix: np.ndarray, orphan: np.ndarray, predict: Any) -> Any:
        model = predict.__self__
        return original_weigh(self, matrix, orphan, lambda features: original(model, features))

    monkeypatch.setattr(LoadedModel, "predict_proba", recording)
    monkeypatch.setattr(InputWeigher, "weigh", weigh_unrecorded)
    return seen


def settings(home: Path, bucket: Path, **variables: str) -> Settings:
    return Settings.from_env(
        {"MODEL_ENV": "dev", "RARE_TRIAGE_HOME": str(home), "RARE_TRIAGE_BUCKET_URI": str(bucket), **variables}
    )


def log_lines(home: Path) -> list[dict[str, Any]]:
    """Every logged line, in writing order: the files closed at the app's stop (shipped or not), then the open one."""
    folder = home / "serving" / "logs"
    paths = sorted(folder.rglob("predicciones_dev.*.txt"), key=lambda path: path.name)
    paths += [folder / "predicciones_dev.txt"] if (folder / "predicciones_dev.txt").exists() else []
    return [json.loads(line) for path in paths for line in path.read_bytes().splitlines()]


@contextlib.asynccontextmanager
async def in_process(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` in this event loop, the app's lifespan (model loaded, reloader) around it."""
    async with (
        app.lifespan(),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]  # Litestar's narrower ASGI types
            base_url="http://testserver",
            timeout=GUARD_S,
        ) as client,
    ):
        yield client


async def post_all(client: httpx.AsyncClient, encounters: list[dict[str, Any]]) -> list[httpx.Response]:
    return list(await asyncio.gather(*(client.post("/v1/predict", json=encounter) for encounter in encounters)))


def test_concurrent_predictions_share_one_call_and_equal_the_unbatched_ones(
    tmp_path: Path, bucket: Path, calls: list[tuple[str, int]], window_only: None
) -> None:
    sent = ENCOUNTERS * 3
    batched_app = create_app(settings(tmp_path / "batched", bucket, SERVING_MICROBATCH_WAIT_MS=str(WINDOW_MS)))
    alone_app = create_app(settings(tmp_path / "alone", bucket, SERVING_MICROBATCH_WAIT_MS="0"))

    async def main() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with in_process(batched_app) as client:
            batched = await post_all(client, sent)
        async with in_process(alone_app) as client:
            alone = [await client.post("/v1/predict", json=encounter) for encounter in sent]
        return batched, alone

    batched, alone = run_async(main)

    assert [version_rows[1] for version_rows in calls] == [len(sent)] + [1] * len(sent)
    assert [r.status_code for r in batched + alone] == [200] * (2 * len(sent))
    for ours, theirs in zip(batched, alone, strict=True):
        a, b = ours.json(), theirs.json()
        assert {key: a[key] for key in COMPARED if key != "probabilities"} == {
            key: b[key] for key in COMPARED if key != "probabilities"
        }
        assert list(a["probabilities"].values()) == pytest.approx(list(b["probabilities"].values()), abs=1e-6)
        assert a["request_id"] == ours.headers["X-Request-ID"]
    ids = [response.json()["request_id"] for response in batched]
    assert len(set(ids)) == len(sent)
    lines = log_lines(tmp_path / "batched")
    assert [line["request_id"] for line in lines] == ids
    assert [line["inputs"] for line in lines] == [
        msgspec.to_builtins(msgspec.convert(encounter, Encounter)) for encounter in sent
    ]
    assert len({line["timestamp"] for line in lines}) == 1  # one call, one log instant


def test_a_failed_call_fails_each_request_of_its_batch_and_the_next_batch_is_served(
    tmp_path: Path, bucket: Path, calls: list[tuple[str, int]], window_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings(tmp_path / "home", bucket, SERVING_MICROBATCH_WAIT_MS=str(WINDOW_MS)))
    original = PredictionLog._append  # each line's os.write

    def disk_full(self: PredictionLog, line: bytes) -> None:
        raise OSError(28, "No space left on device")

    async def main() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with in_process(app) as client:
            monkeypatch.setattr(PredictionLog, "_append", disk_full)
            failed = await post_all(client, ENCOUNTERS)
            monkeypatch.setattr(PredictionLog, "_append", original)
            served = await post_all(client, ENCOUNTERS)
        return failed, served

    failed, served = run_async(main)

    assert [rows for _, rows in calls] == [len(ENCOUNTERS), len(ENCOUNTERS)]
    assert [r.status_code for r in failed] == [503] * len(ENCOUNTERS)
    assert all("prediction log cannot be written" in r.json()["detail"] for r in failed)
    assert [r.status_code for r in served] == [200] * len(ENCOUNTERS)
    assert len(log_lines(tmp_path / "home")) == len(ENCOUNTERS)


def test_a_batch_is_scored_by_the_model_served_when_it_runs_even_if_swapped_while_open(
    tmp_path: Path, bucket: Path, calls: list[tuple[str, int]], window_only: None
) -> None:
    newer_release: Release = build_release(seed=1, mlflow_model_version="2", n_features=MAX_FEATURES)
    publish_release(tmp_path / "newer", newer_release)
    newer = load_version(LocalBucket(tmp_path / "newer"), "dev", tmp_path / "cache", prepare=prepare_model)
    app = create_app(settings(tmp_path / "home", bucket, SERVING_MICROBATCH_WAIT_MS=str(WINDOW_MS)))
    runtime: Runtime = app.state[STATE_KEY]

    async def swap_while_open() -> None:
        await asyncio.sleep(WINDOW_MS / 1000 / 3)  # the requests have joined the batch; the window is still open
        runtime.holder.swap(newer)

    async def main() -> tuple[str, list[httpx.Response]]:
        async with in_process(app) as client:
            assert runtime.holder.model is not None
            first = runtime.holder.model.version
            responses, _ = await asyncio.gather(post_all(client, ENCOUNTERS), swap_while_open())
        return first, responses

    first, responses = run_async(main)

    assert first != newer.version
    assert calls == [(newer.version, len(ENCOUNTERS))]
    assert {r.json()["model_version"] for r in responses} == {newer.version}
    expected = newer.predict_proba(
        newer.prepared.encoder.encode([msgspec.convert(encounter, Encounter) for encounter in ENCOUNTERS]).matrix
    )
    for response, row in zip(responses, expected, strict=True):
        assert list(response.json()["probabilities"].values()) == pytest.approx(row.tolist(), abs=1e-6)


@pytest.fixture
def server_release() -> Release:
    return build_release(seed=0, n_features=MAX_FEATURES)


@pytest.fixture
def local_model(tmp_path: Path, server_release: Release) -> LoadedModel:
    publish_release(tmp_path / "local", server_release)
    return load_version(LocalBucket(tmp_path / "local"), "dev", tmp_path / "local-cache", prepare=prepare_model)


@pytest.fixture
def served(tmp_path: Path, server_release: Release) -> Iterator[str]:
    publish_release(tmp_path / "served", server_release)
    env = service_env(tmp_path / "home", tmp_path / "served", SERVING_MICROBATCH_MAX="8")
    with running_server(env, tmp_path / "work") as server:
        yield server.base_url


def test_over_http_concurrent_predictions_agree_with_the_model(served: str, local_model: LoadedModel) -> None:
    sent = ENCOUNTERS * 8

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served, timeout=GUARD_S) as client:
            return list(await asyncio.gather(*(client.post("/v1/predict", json=encounter) for encounter in sent)))

    responses = run_async(main)

    assert [r.status_code for r in responses] == [200] * len(sent)
    assert len({r.headers["X-Request-ID"] for r in responses}) == len(sent)
    expected = local_model.predict_proba(
        local_model.prepared.encoder.encode([msgspec.convert(encounter, Encounter) for encounter in sent]).matrix
    )
    for response, row in zip(responses, expected, strict=True):
        body = response.json()
        assert body["request_id"] == response.headers["X-Request-ID"]
        assert list(body["probabilities"].values()) == pytest.approx(row.tolist(), abs=1e-6)
