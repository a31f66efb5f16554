"""Hot reload: a new verified version is swapped in atomically, a bad one refused while the previous keeps serving."""

import datetime as dt
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.bucket import LocalBucket
from serving.model_store import LoadedModel, ModelHolder, Reloader, load_initial, load_version, missing_row
from serving.tests.published import Release, build_release, folder_put, point, publish, version_key

T0 = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


class Clock:
    """A settable clock for the reloader."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def reloader(holder: ModelHolder, bucket: LocalBucket, cache_dir: Path, clock: Clock, **options: Any) -> Reloader:
    return Reloader(
        holder, bucket, "dev", cache_dir, interval_s=options.pop("interval_s", 30.0), clock=clock, **options
    )


def test_an_unchanged_pointer_changes_nothing(published: LocalBucket, cache_dir: Path, clock: Clock) -> None:
    model = load_version(published, "dev", cache_dir)
    holder = ModelHolder(model)

    assert reloader(holder, published, cache_dir, clock).check_once() == "unchanged"

    assert holder.model is model
    assert (holder.status.swaps_total, holder.status.last_check_at, holder.status.last_error) == (0, T0, None)


def test_a_new_version_is_swapped_in(bucket_root: Path, cache_dir: Path, clock: Clock) -> None:
    put = folder_put(bucket_root)
    first, second = build_release(seed=0), build_release(seed=1, mlflow_model_version="2")
    publish(put, first, "dev")
    bucket = LocalBucket(bucket_root)
    holder = ModelHolder(load_version(bucket, "dev", cache_dir))
    taken_by_a_request = holder.model
    publish(put, second, "dev")

    assert reloader(holder, bucket, cache_dir, clock).check_once() == "swapped"

    assert holder.model is not None and holder.model.version == second.version
    assert holder.status.swaps_total == 1
    assert taken_by_a_request is not None and taken_by_a_request.version == first.version  # still whole, usable
    assert taken_by_a_request.predict_proba(missing_row(first.manifest["input_schema"])).shape == (1, 5)


def publish_tampered(bucket_root: Path, release: Release) -> None:
    publish(folder_put(bucket_root), release, "dev")
    path = bucket_root.joinpath(*version_key(release.version, "phenotype_encoding.json").split("/"))
    path.write_bytes(path.read_bytes().replace(b"HP:0001945", b"HP:0001946"))


def test_a_corrupt_version_is_refused_and_the_previous_keeps_serving(
    published: LocalBucket, release: Release, cache_dir: Path, clock: Clock
) -> None:
    holder = ModelHolder(load_version(published, "dev", cache_dir))
    bad = build_release(seed=2, mlflow_model_version="2")
    publish_tampered(published.root, bad)
    polling = reloader(holder, published, cache_dir, clock, retry_refused_after_s=600)

    assert polling.check_once() == "refused"

    status = holder.status
    assert status.model is not None and status.model.version == release.version
    assert status.refusals_total == 1
    assert [(r.version, r.at) for r in status.refused] == [(bad.version, T0)]
    assert "phenotype_encoding.json" in status.refused[0].reason
    assert holder.model is not None and holder.model.source == "bucket"

    clock.advance(60)
    assert polling.check_once() == "refused-before"  # versions are immutable: not fetched again at every poll
    assert holder.status.refusals_total == 1

    clock.advance(600)
    assert polling.check_once() == "refused"
    assert holder.status.refusals_total == 2
    assert holder.model.version == release.version


def test_a_refused_version_repaired_later_is_served_after_the_retry_delay(
    published: LocalBucket, cache_dir: Path, clock: Clock
) -> None:
    holder = ModelHolder(load_version(published, "dev", cache_dir))
    new = build_release(seed=2, mlflow_model_version="2")
    publish_tampered(published.root, new)
    polling = reloader(holder, published, cache_dir, clock, retry_refused_after_s=120)
    assert polling.check_once() == "refused"

    publish(folder_put(published.root), new, "dev")  # the table file restored
    clock.advance(121)

    assert polling.check_once() == "swapped"
    assert holder.model is not None and holder.model.version == new.version


def test_an_unavailable_bucket_is_an_error_not_a_refusal(
    published: LocalBucket, release: Release, cache_dir: Path, clock: Clock
) -> None:
    holder = ModelHolder(load_version(published, "dev", cache_dir))
    polling = reloader(holder, published, cache_dir, clock)
    moved = published.root.with_name("moved")
    published.root.rename(moved)

    assert polling.check_once() == "error"
    assert holder.status.last_error is not None and "does not exist" in holder.status.last_error
    assert holder.status.refusals_total == 0
    assert holder.model is not None and holder.model.version == release.version

    moved.rename(published.root)
    clock.advance(30)
    assert polling.check_once() == "unchanged"
    assert (holder.status.last_error, holder.status.last_check_at) == (None, T0 + dt.timedelta(seconds=30))


def test_a_removed_pointer_keeps_the_model(published: LocalBucket, cache_dir: Path, clock: Clock) -> None:
    holder = ModelHolder(load_version(published, "dev", cache_dir))
    (published.root / "models" / "rare-triage" / "env" / "dev.json").unlink()

    assert reloader(holder, published, cache_dir, clock).check_once() == "error"
    assert holder.status.last_error is not None and "no pointer" in holder.status.last_error
    assert holder.model is not None


def test_served_from_cache_until_the_bucket_is_back(
    published: LocalBucket, release: Release, cache_dir: Path, clock: Clock
) -> None:
    load_version(published, "dev", cache_dir)
    moved = published.root.with_name("moved")
    published.root.rename(moved)
    holder = ModelHolder(load_initial(published, "dev", cache_dir))
    polling = reloader(holder, published, cache_dir, clock)
    assert holder.status.source == "cache"

    assert polling.check_once() == "error"
    assert holder.status.source == "cache"

    moved.rename(published.root)
    assert polling.check_once() == "swapped"
    assert holder.status.source == "bucket"
    assert holder.model is not None and holder.model.version == release.version


def test_a_service_started_without_model_loads_the_first_one(bucket_root: Path, cache_dir: Path, clock: Clock) -> None:
    holder = ModelHolder()
    bucket = LocalBucket(bucket_root)
    polling = reloader(holder, bucket, cache_dir, clock)
    assert not holder.status.ready

    assert polling.check_once() == "error"  # no pointer yet
    release = build_release(seed=4)
    publish(folder_put(bucket_root), release, "dev")
    assert polling.check_once() == "swapped"

    assert holder.status.ready and holder.model is not None and holder.model.version == release.version


def test_the_reloader_thread_polls_and_stops(bucket_root: Path, cache_dir: Path) -> None:
    put = folder_put(bucket_root)
    first, second = build_release(seed=0), build_release(seed=1, mlflow_model_version="2")
    publish(put, first, "dev")
    publish(put, second, "dev", move_pointer=False)
    bucket = LocalBucket(bucket_root)
    holder = ModelHolder(load_version(bucket, "dev", cache_dir))
    polling = Reloader(holder, bucket, "dev", cache_dir, interval_s=0.05)
    polling.start()
    try:
        point(put, "dev", second)
        deadline = time.monotonic() + 20
        while holder.model is not None and holder.model.version != second.version and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        polling.stop(timeout_s=20)

    assert holder.model is not None and holder.model.version == second.version
    assert holder.status.swaps_total == 1
    with pytest.raises(RuntimeError, match="already started"):
        polling.start()


def test_readers_always_see_a_whole_model_while_versions_swap(bucket_root: Path, cache_dir: Path) -> None:
    """Request threads take `holder.model` once and predict with it while the versions swap underneath."""
    put = folder_put(bucket_root)
    releases = [build_release(seed=seed, mlflow_model_version=str(seed + 1)) for seed in range(3)]
    for release in releases:
        publish(put, release, "dev", move_pointer=False)
    point(put, "dev", releases[0])
    bucket = LocalBucket(bucket_root)
    models: list[LoadedModel] = []
    for release in releases:
        point(put, "dev", release)
        models.append(load_version(bucket, "dev", cache_dir))
    holder = ModelHolder(models[0])
    row = missing_row(releases[0].manifest["input_schema"])
    expected = {model.version: model.predict_proba(row) for model in models}
    problems: list[str] = []
    stop = threading.Event()

    def request_loop() -> None:
        for _ in range(2000):
            if stop.is_set():
                return
            model = holder.model  # once per request
            assert model is not None
            if not np.array_equal(model.predict_proba(row), expected[model.version]):
                problems.append(model.version)

    readers = [threading.Thread(target=request_loop) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for swap in range(60):
            holder.swap(models[swap % len(models)])
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)

    assert problems == []
    assert holder.status.swaps_total == 60


def test_the_reloader_refuses_a_non_positive_interval(published: LocalBucket, cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="reload interval"):
        Reloader(ModelHolder(), published, "dev", cache_dir, interval_s=0)


def test_refusals_kept_are_bounded(published: LocalBucket, cache_dir: Path, clock: Clock) -> None:
    holder = ModelHolder(load_version(published, "dev", cache_dir))
    shutil.rmtree(cache_dir)
    polling = reloader(holder, published, cache_dir, clock, retry_refused_after_s=0)
    bad = build_release(seed=5, mlflow_model_version="2")
    publish_tampered(published.root, bad)

    for _ in range(25):
        clock.advance(1)
        assert polling.check_once() == "refused"

    assert holder.status.refusals_total == 25
    assert len(holder.status.refused) == 20
    assert holder.status.refused[-1].at == clock.now


def test_a_version_the_service_cannot_prepare_is_refused(
    published: LocalBucket, release: Release, cache_dir: Path, clock: Clock
) -> None:
    def prepare(model: LoadedModel) -> str:
        if model.version != release.version:
            raise ValueError("input_schema: unknown_code 0 is a category's code")
        return f"encoder {model.version}"

    holder = ModelHolder(load_version(published, "dev", cache_dir, prepare=prepare))
    new = build_release(seed=6, mlflow_model_version="2")
    publish(folder_put(published.root), new, "dev")

    assert reloader(holder, published, cache_dir, clock, prepare=prepare).check_once() == "refused"

    assert holder.model is not None and holder.model.prepared == f"encoder {release.version}"
    assert holder.status.refused[-1].reason == "prepare: ValueError: input_schema: unknown_code 0 is a category's code"
