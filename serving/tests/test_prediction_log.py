"""The prediction log: whole lines from several processes across rotations, tolerant reading, shipping layout."""

import datetime as dt
import fcntl
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import msgspec
import pytest

from serving.bucket import LocalBucket
from serving.prediction_log import (
    SHIPPED_DIR,
    PredictionLog,
    PredictionRecord,
    ShippingConflictError,
    closed_logs,
    read_log_lines,
    ship_closed_logs,
)
from serving.tests.log_writer import record
from serving.tests.s3_support import admin_client, serving_bucket

DAY = dt.datetime(2026, 1, 2, 23, 59, 30, tzinfo=dt.UTC)


def at(moment: dt.datetime, worker: str = "t", index: int = 0) -> PredictionRecord:
    return msgspec.structs.replace(record(worker, index), timestamp=moment)


def all_lines(folder: Path, env: str = "dev") -> list[Path]:
    active = folder / f"predicciones_{env}.txt"
    return [*closed_logs(folder, env), *([active] if active.exists() else [])]


def test_one_json_line_per_record(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "dev") as log:
        log.write(record("a", 1))
        log.write_many([record("a", 2), record("a", 3)])

    data = (tmp_path / "predicciones_dev.txt").read_bytes()
    lines = read_log_lines(data)
    assert data.count(b"\n") == 3
    assert [r.request_id for r in lines.records] == ["a-1", "a-2", "a-3"]
    assert (lines.rejected, lines.truncated) == (0, 0)
    first = msgspec.json.decode(data.split(b"\n")[0])
    assert sorted(first) == sorted(
        [
            "timestamp",
            "request_id",
            "model_version",
            "inputs",
            "probabilities",
            "predicted_class",
            "orphan_flag",
            "needs_review",
            "latency_ms",
        ]
    )
    assert first["timestamp"].endswith("Z")


def test_a_record_time_must_be_utc() -> None:
    with pytest.raises(ValueError, match="is not in UTC"):
        at(dt.datetime(2026, 1, 2, 12, tzinfo=dt.timezone(dt.timedelta(hours=1))))


def test_lines_are_checked_before_writing(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "dev") as log:
        for line in (b"no newline", b"two\nlines\n"):
            with pytest.raises(ValueError, match="ends with its only newline"):
                log.write_line(line)


def test_rotation_by_size_keeps_every_line_whole(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "dev", max_bytes=4096, hourly=False) as log:
        for index in range(100):
            log.write(record("s", index))

    closed = closed_logs(tmp_path, "dev")
    assert len(closed) > 5
    assert all(path.stat().st_size <= 4096 for path in closed)
    ids = [r.request_id for path in all_lines(tmp_path) for r in read_log_lines(path.read_bytes()).records]
    assert ids == [f"s-{index}" for index in range(100)]
    assert all(
        path.name.startswith("predicciones_dev.") and path.name.endswith(f".{os.getpid()}.txt") for path in closed
    )


def test_rotation_by_hour(tmp_path: Path) -> None:
    now = [DAY.timestamp()]
    log = PredictionLog(tmp_path, "dev", max_bytes=0, clock=lambda: now[0])
    log.write(at(DAY))
    active = tmp_path / "predicciones_dev.txt"
    os.utime(active, (DAY.timestamp(), DAY.timestamp()))  # last written in hour 23

    log.write(at(DAY + dt.timedelta(seconds=10)))  # same hour: same file
    os.utime(active, (DAY.timestamp(), DAY.timestamp()))
    assert closed_logs(tmp_path, "dev") == []

    now[0] = (DAY + dt.timedelta(minutes=1)).timestamp()  # 00:00:30 the next day
    log.write(at(DAY + dt.timedelta(minutes=1)))
    log.close()

    [closed] = closed_logs(tmp_path, "dev")
    assert closed.name == f"predicciones_dev.20260103T000030.000000Z.{os.getpid()}.txt"
    assert len(read_log_lines(closed.read_bytes()).records) == 2
    assert len(read_log_lines(active.read_bytes()).records) == 1


def test_an_idle_log_is_rotated_on_request(tmp_path: Path) -> None:
    now = [DAY.timestamp()]
    with PredictionLog(tmp_path, "dev", clock=lambda: now[0]) as log:
        log.write(at(DAY))
        os.utime(log.path, (DAY.timestamp(), DAY.timestamp()))
        assert log.rotate_if_due() is None

        now[0] += 3600
        closed = log.rotate_if_due()

        assert closed is not None and closed_logs(tmp_path, "dev") == [closed]
        assert log.rotate_if_due() is None  # the new file is empty


def test_rotate_now_closes_a_file_with_lines_whatever_its_age(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, "dev", clock=DAY.timestamp) as log:
        assert log.rotate_now() is None  # no file yet
        log.write(at(DAY))
        assert log.rotate_if_due() is None  # neither full nor an hour old

        closed = log.rotate_now()

        assert closed is not None and closed_logs(tmp_path, "dev") == [closed]
        assert len(closed.read_bytes().splitlines()) == 1
        log.write(at(DAY, index=1))  # the writer reopens the path
        assert log.path.read_bytes().count(b"\n") == 1
        log.path.write_bytes(b"")
        assert log.rotate_now() is None  # an empty file stays


def test_a_writer_follows_a_rotation_done_by_another(tmp_path: Path) -> None:
    """Two logs on one folder behave as two processes: each has its own descriptors and flock."""
    first = PredictionLog(tmp_path, "dev", max_bytes=0, hourly=False)
    second = PredictionLog(tmp_path, "dev", max_bytes=0, hourly=False)
    first.write(record("first", 0))
    second.write(record("second", 0))
    os.rename(first.path, tmp_path / "predicciones_dev.20260101T000000.000000Z.1.txt")  # as a rotator does

    second.write(record("second", 1))
    first.write(record("first", 1))
    first.close()
    second.close()

    [closed] = closed_logs(tmp_path, "dev")
    assert [r.request_id for r in read_log_lines(closed.read_bytes()).records] == ["first-0", "second-0"]
    assert [r.request_id for r in read_log_lines(first.path.read_bytes()).records] == ["second-1", "first-1"]


def test_three_processes_append_across_rotations(tmp_path: Path) -> None:
    workers, per_worker, max_bytes = 3, 1500, 64 * 1024
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serving.tests.log_writer",
                str(tmp_path),
                "dev",
                f"w{w}",
                str(per_worker),
                str(max_bytes),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for w in range(workers)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()

    files = all_lines(tmp_path)
    reads = [read_log_lines(path.read_bytes()) for path in files]
    ids = [r.request_id for lines in reads for r in lines.records]
    assert sum(lines.rejected + lines.truncated for lines in reads) == 0
    assert len(ids) == workers * per_worker
    assert set(ids) == {f"w{w}-{i}" for w in range(workers) for i in range(per_worker)}
    closed = closed_logs(tmp_path, "dev")
    assert len(closed) >= 10
    assert len({path.name.rsplit(".", 2)[1] for path in closed}) >= 2  # rotated by more than one process
    # the size is checked before appending, under the shared lock: writers appending at the same moment may each
    # add their line, so a file ends at most one line per other writer past the limit
    longest = max(len(line) + 1 for path in files for line in path.read_bytes().split(b"\n"))
    assert all(path.stat().st_size <= max_bytes + (workers - 1) * longest for path in closed)
    for w in range(workers):  # each worker's lines stay in its own order across files
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(f"w{w}-")]
        assert mine == sorted(mine)


def test_a_forked_worker_opens_its_own_descriptors(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, "dev", max_bytes=8192, hourly=False)
    log.write(record("parent", 0))
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which exits without returning to pytest
        code = 0
        try:
            for index in range(300):
                log.write(record("child", index))
        except BaseException:
            code = 1
        os._exit(code)
    for index in range(1, 301):
        log.write(record("parent", index))
    _, status = os.waitpid(child, 0)
    log.close()

    assert os.waitstatus_to_exitcode(status) == 0
    reads = [read_log_lines(path.read_bytes()) for path in all_lines(tmp_path)]
    ids = {r.request_id for lines in reads for r in lines.records}
    assert sum(lines.rejected + lines.truncated for lines in reads) == 0
    assert ids == {f"parent-{i}" for i in range(301)} | {f"child-{i}" for i in range(300)}


def test_a_truncated_last_line_and_a_garbage_line_are_counted_not_fatal() -> None:
    good = msgspec.json.encode(record("a", 1)) + b"\n"
    other = msgspec.json.encode(record("a", 2)) + b"\n"

    lines = read_log_lines(good + b'{"not": "a record"}\n' + b"\n" + other + other[:40])

    assert [r.request_id for r in lines.records] == ["a-1", "a-2"]
    assert (lines.rejected, lines.truncated) == (2, 1)
    empty = read_log_lines(b"")
    assert (empty.records, empty.rejected, empty.truncated) == ([], 0, 0)


def test_a_line_with_a_non_utc_time_is_rejected() -> None:
    line = msgspec.json.encode(record("a", 1)).replace(b'Z"', b'+01:00"', 1) + b"\n"

    assert read_log_lines(line).rejected == 1


def rotated_log(folder: Path, moments: list[dt.datetime], rotate_at: dt.datetime) -> Path:
    now = [moments[0].timestamp()]
    with PredictionLog(folder, "dev", clock=lambda: now[0]) as log:
        for index, moment in enumerate(moments):
            now[0] = moment.timestamp()
            log.write(at(moment, index=index))
            os.utime(log.path, (moment.timestamp(), moment.timestamp()))
        now[0] = rotate_at.timestamp()
        closed = log.rotate_if_due()
    assert closed is not None
    return closed


def test_closed_logs_are_shipped_by_the_day_of_their_lines(tmp_path: Path) -> None:
    logs, bucket_root = tmp_path / "logs", tmp_path / "bucket"
    bucket_root.mkdir()
    closed = rotated_log(logs, [DAY, DAY + dt.timedelta(seconds=20)], rotate_at=DAY + dt.timedelta(minutes=5))
    data = closed.read_bytes()
    bucket = LocalBucket(bucket_root)

    keys = ship_closed_logs(bucket, logs, "dev")

    assert closed.name.startswith("predicciones_dev.20260103T")  # closed after midnight ...
    assert keys == [f"predictions/env=dev/dt=2026-01-02/{closed.name}"]  # ... filed under its lines' day
    assert bucket.get_bytes(keys[0]) == data
    assert not closed.exists() and (logs / SHIPPED_DIR / closed.name).read_bytes() == data
    with PredictionLog(logs, "dev") as log:
        log.write(record("after", 0))
    assert ship_closed_logs(bucket, logs, "dev") == []  # the open file is never shipped
    assert bucket.list("predictions/") == keys


def test_a_large_closed_log_is_shipped_without_holding_it_in_memory(tmp_path: Path) -> None:
    logs, bucket_root = tmp_path / "logs", tmp_path / "bucket"
    bucket_root.mkdir()
    closed = rotated_log(logs, [DAY], rotate_at=DAY + dt.timedelta(hours=1))
    with closed.open("ab") as handle:  # 32 MB more (lines no record decodes: the day is the first record's)
        handle.write((b"x" * 1023 + b"\n") * (32 * 1024))
    size = closed.stat().st_size
    bucket = LocalBucket(bucket_root)

    tracemalloc.start()
    try:
        keys = ship_closed_logs(bucket, logs, "dev")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert keys == [f"predictions/env=dev/dt=2026-01-02/{closed.name}"]
    assert (bucket_root / keys[0]).stat().st_size == size
    assert peak < size / 8, f"peak Python allocation {peak} bytes for a {size}-byte log"


def test_an_upload_whose_move_was_interrupted_counts_as_shipped(tmp_path: Path) -> None:
    logs, bucket_root = tmp_path / "logs", tmp_path / "bucket"
    bucket_root.mkdir()
    closed = rotated_log(logs, [DAY], rotate_at=DAY + dt.timedelta(hours=1))
    bucket = LocalBucket(bucket_root)
    bucket.put_new(f"predictions/env=dev/dt=2026-01-02/{closed.name}", closed.read_bytes())

    assert ship_closed_logs(bucket, logs, "dev") == [f"predictions/env=dev/dt=2026-01-02/{closed.name}"]
    assert (logs / SHIPPED_DIR / closed.name).exists()


def test_other_bytes_under_the_key_are_a_conflict(tmp_path: Path) -> None:
    logs, bucket_root = tmp_path / "logs", tmp_path / "bucket"
    bucket_root.mkdir()
    closed = rotated_log(logs, [DAY], rotate_at=DAY + dt.timedelta(hours=1))
    bucket = LocalBucket(bucket_root)
    bucket.put_new(f"predictions/env=dev/dt=2026-01-02/{closed.name}", b"something else\n")

    with pytest.raises(ShippingConflictError, match="holds other bytes"):
        ship_closed_logs(bucket, logs, "dev")
    assert closed.exists()


def test_one_shipper_at_a_time(tmp_path: Path) -> None:
    logs, bucket_root = tmp_path / "logs", tmp_path / "bucket"
    bucket_root.mkdir()
    closed = rotated_log(logs, [DAY], rotate_at=DAY + dt.timedelta(hours=1))
    held = os.open(logs / ".predicciones_dev.ship.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert ship_closed_logs(LocalBucket(bucket_root), logs, "dev") == []
    finally:
        os.close(held)
    assert closed.exists()


def test_nothing_to_ship_from_a_missing_folder(tmp_path: Path, bucket_root: Path) -> None:
    assert ship_closed_logs(LocalBucket(bucket_root), tmp_path / "none", "dev") == []


@pytest.mark.integration
def test_shipping_to_s3(tmp_path: Path, s3_endpoint: str, s3_bucket_name: str) -> None:
    closed = rotated_log(tmp_path, [DAY], rotate_at=DAY + dt.timedelta(hours=1))

    keys = ship_closed_logs(serving_bucket(s3_endpoint, s3_bucket_name, "lake"), tmp_path, "dev")

    stored = admin_client(s3_endpoint).get_object(Bucket=s3_bucket_name, Key=f"lake/{keys[0]}")["Body"].read()
    assert keys == [f"predictions/env=dev/dt=2026-01-02/{closed.name}"]
    assert stored == (tmp_path / SHIPPED_DIR / closed.name).read_bytes()
