"""The prediction log: one JSON line per prediction in `predicciones_<env>.txt`, shared by every worker process.

Writing. Each process opens the file with O_WRONLY | O_APPEND | O_CREAT and writes each line, newline included,
with one `os.write`: the kernel appends it whole at the end of the file, so lines of several processes never
interleave (Python's buffered files and logging handlers split long lines and must not be used here).

Rotation, by size (`max_bytes`, checked before each append: writers appending at the same moment may each add
their line, so a file can end a few lines past it) and by hour (`hourly`: the file's last write, its mtime, was
in an earlier UTC hour, so a file holds the lines of one hour). Every process decides for itself and they
coordinate through `flock` on a lock file beside the log:
  - a write (one line, or the lines of one `write_many` call) holds the lock shared while it checks that its
    descriptor is still the file at the log's path (same device and inode; else another process rotated it and
    this one reopens the path) and while it appends;
  - a rotation holds it exclusive: it re-checks under the lock (another process may have rotated meanwhile) and
    renames the file to `predicciones_<env>.<UTC time>.<pid>.txt`; the next write of every process then finds a
    new inode at the path and reopens it, O_CREAT making whoever comes first create the new file.
So no write can land in a file after it was closed, and a closed file is complete: shipping may read it at once.
Threads of one process are serialised by a lock of their own (flock locks belong to the open file, shared by all
threads). After a fork a process opens its own descriptors (a shared lock description would not exclude).
Lines reach the kernel at once; a crash of the machine (not of the process) may lose the last ones, and a write
cut short (disk full) leaves a truncated line that `read_log_lines` counts and skips.

Shipping (`ship_closed_logs`) uploads every closed file to `predictions/env=<env>/dt=<day of its first line>/<file>`
in the bucket, never over an existing object, then moves it to `shipped/` beside the log.
"""

import datetime as dt
import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from serving.bucket import BucketWriter, ObjectExistsError

SHIPPED_DIR = "shipped"
_STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_ENV = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_HOUR_S = 3600
_UTC_OFFSET = dt.timedelta(0)


class PredictionRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One logged prediction: what came in (the validated model inputs), what came out, which model, how fast.

    `patient_key`: the keyed pseudonym of the request's `patient_id` (`serving.pseudonym`), absent when none was
    sent or the service has no key; the patient id itself is never logged.
    """

    timestamp: dt.datetime  # UTC
    request_id: str
    model_version: str
    inputs: dict[str, Any]
    probabilities: dict[str, float]  # by class label
    predicted_class: str
    orphan_flag: bool
    needs_review: bool
    latency_ms: float
    patient_key: str | None = None

    def __post_init__(self) -> None:
        if self.timestamp.utcoffset() != _UTC_OFFSET:
            raise ValueError(f"timestamp {self.timestamp.isoformat()} is not in UTC")


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(PredictionRecord)


class ShippingConflictError(RuntimeError):
    """The bucket holds other bytes under a closed log's key."""


def log_name(env: str) -> str:
    """The name of `env`'s open log file."""
    if not _ENV.match(env):
        raise ValueError(f"env: {env!r} must be lowercase letters, digits, '-' or '_' (e.g. dev, prod)")
    return f"predicciones_{env}.txt"


def _closed_pattern(env: str) -> re.Pattern[str]:
    return re.compile(rf"^predicciones_{re.escape(env)}\.(?P<stamp>\d{{8}}T\d{{6}}\.\d{{6}}Z)\.(?P<pid>\d+)\.txt$")


class PredictionLog:
    """Appends `PredictionRecord`s to `<folder>/predicciones_<env>.txt`; safe with any number of worker processes
    and threads writing the same folder (see the module's docstring for the design)."""

    def __init__(
        self,
        folder: str | Path,
        env: str,
        *,
        max_bytes: int = 64 * 1_048_576,
        hourly: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"prediction log max_bytes: {max_bytes} is negative (0: no size limit)")
        self.folder, self.env = Path(folder).resolve(), env
        self.path = self.folder / log_name(env)
        self.max_bytes, self.hourly = max_bytes, hourly
        self._clock = clock
        self._lock_path = self.folder / f".predicciones_{env}.lock"
        self._thread_lock = threading.Lock()
        self._pid: int | None = None
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None

    def __enter__(self) -> "PredictionLog":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def write(self, record: PredictionRecord) -> None:
        """Append `record` as one line with one `os.write`, rotating the file first when it is due."""
        self._write_lines((_ENCODER.encode(record) + b"\n",))

    def write_many(self, records: Iterable[PredictionRecord]) -> None:
        """`write` each record (one line and one `os.write` each), under one hold of the lock (see `write_lines`)."""
        self._write_lines([_ENCODER.encode(record) + b"\n" for record in records])

    def write_line(self, line: bytes) -> None:
        """Append one complete line (ending with its only newline) with one `os.write`."""
        self.write_lines((line,))

    def write_lines(self, lines: Sequence[bytes]) -> None:
        """Append complete lines (each ending with its only newline), in order, each with its own `os.write`.

        The lock is taken once for all of them and the descriptor checked once (no other process can rotate the
        file meanwhile: that needs the lock exclusive); rotation is still decided before each append, counting the
        lines appended so far. A failed append raises and leaves the lines after it unwritten."""
        for line in lines:
            if not line.endswith(b"\n") or b"\n" in line[:-1]:
                raise ValueError("a log line ends with its only newline")
        self._write_lines(lines)

    def _write_lines(self, lines: Sequence[bytes]) -> None:
        if not lines:
            return
        max_bytes, hourly, clock = self.max_bytes, self.hourly, self._clock
        with self._thread_lock:
            lock_fd = self._lock_fd_of_this_process()
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
            try:
                stat = self._current()
                size, mtime = stat.st_size, stat.st_mtime
                for line in lines:
                    adding = len(line)
                    if size and (  # `_due` of what a stat would now tell
                        (max_bytes and size + adding > max_bytes)
                        or (hourly and int(mtime // _HOUR_S) < int(clock() // _HOUR_S))
                    ):
                        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # converting may let another rotator in first: re-check
                        stat = self._current()
                        if self._due(stat, adding):
                            self._rotate()
                            stat = self._current()
                        size = stat.st_size
                    self._append(line)
                    # what this append made of the file (the kernel's clock sets its mtime)
                    size, mtime = size + adding, time.time()
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def rotate_if_due(self) -> Path | None:
        """Close the open file if its hour has passed or it is full (an idle log is otherwise rotated only by the
        next write); return the closed file's path."""
        with self._thread_lock:
            lock_fd = self._lock_fd_of_this_process()
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                if self._due(self._current(), 0):
                    return self._rotate()
                return None
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def rotate_now(self) -> Path | None:
        """Close the open file whatever its size or hour, unless it is empty or absent (at a graceful stop: its lines
        are shipped now rather than after the next start); return the closed file's path. Another process still
        writing simply reopens the path at its next write."""
        with self._thread_lock:
            lock_fd = self._lock_fd_of_this_process()
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                try:
                    if os.stat(self.path).st_size == 0:
                        return None
                except FileNotFoundError:
                    return None
                return self._rotate()
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close this process's descriptors (the file stays open for the others)."""
        with self._thread_lock:
            for fd in (self._fd, self._lock_fd):
                if fd is not None and self._pid == os.getpid():
                    os.close(fd)
            self._fd = self._lock_fd = self._ident = self._pid = None

    def _lock_fd_of_this_process(self) -> int:
        if self._pid != os.getpid():  # first use, or a forked child holding its parent's descriptors
            self._fd = self._ident = None
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._pid = os.getpid()
        assert self._lock_fd is not None
        return self._lock_fd

    def _current(self) -> os.stat_result:
        """fstat of the descriptor, reopened first if the path names another file (rotated) or none."""
        try:
            at_path = os.stat(self.path)
            ident: tuple[int, int] | None = (at_path.st_dev, at_path.st_ino)
        except FileNotFoundError:
            ident = None
        if self._fd is None or ident is None or ident != self._ident:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            opened = os.fstat(self._fd)
            self._ident = (opened.st_dev, opened.st_ino)
            return opened
        return os.fstat(self._fd)

    def _due(self, stat: os.stat_result, adding: int) -> bool:
        if stat.st_size == 0:
            return False
        if self.max_bytes and stat.st_size + adding > self.max_bytes:
            return True
        return self.hourly and int(stat.st_mtime // _HOUR_S) < int(self._clock() // _HOUR_S)

    def _rotate(self) -> Path:
        """Rename the open file to a closed name not yet taken (called under the exclusive lock)."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        for step in range(1000):
            stamp = (now + dt.timedelta(microseconds=step)).strftime(_STAMP_FORMAT)
            target = self.folder / f"predicciones_{self.env}.{stamp}.{os.getpid()}.txt"
            if not target.exists():  # only rotators create closed names, and they hold the exclusive lock
                os.rename(self.path, target)
                return target
        raise RuntimeError(f"no free closed name for {self.path} at {now.isoformat()}")

    def _append(self, line: bytes) -> None:
        assert self._fd is not None
        written = os.write(self._fd, line)
        if written != len(line):
            os.write(self._fd, b"\n")  # end the fragment so the next line stays whole; readers count it as rejected
            raise OSError(f"{self.path}: wrote {written} of {len(line)} bytes (disk full?)")


@dataclass(frozen=True)
class LogLines:
    """What a log file holds: its valid records, its lines that are not records, and a cut-off last line."""

    records: list[PredictionRecord] = field(repr=False)
    rejected: int = 0
    truncated: int = 0


def read_log_lines(data: bytes) -> LogLines:
    """Parse a log file's bytes: a last line without its newline (a write cut short) counts as truncated, a line
    that is not a valid record as rejected; neither stops the reading."""
    lines = data.split(b"\n")
    last = lines.pop()
    records: list[PredictionRecord] = []
    rejected = 0
    for line in lines:
        try:
            records.append(_DECODER.decode(line))
        except (msgspec.DecodeError, ValueError):
            rejected += 1
    return LogLines(records, rejected=rejected, truncated=1 if last else 0)


def closed_logs(folder: str | Path, env: str) -> list[Path]:
    """`env`'s closed (rotated, not yet shipped) log files in `folder`, oldest first."""
    pattern = _closed_pattern(env)
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        (path for path in folder.iterdir() if pattern.match(path.name) and path.is_file()),
        key=lambda path: (pattern.match(path.name).group("stamp"), path.name),  # type: ignore[union-attr]
    )


def log_day(path: Path) -> dt.date:
    """The UTC day of a closed file's first valid record (read line by line), else of the time in its name."""
    with path.open("rb") as lines:
        for line in lines:
            if not line.endswith(b"\n"):  # a cut last line is no record
                break
            try:
                return _DECODER.decode(line[:-1]).timestamp.date()
            except (msgspec.DecodeError, ValueError):
                continue
    match = re.search(r"\.(\d{8})T", path.name)
    if match is None:
        raise ValueError(f"{path.name}: no valid record and no time in the name")
    return dt.datetime.strptime(match.group(1), "%Y%m%d").date()


def file_sha256(path: Path) -> bytes:
    """The sha256 digest of a file, read 1 MiB at a time."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def shipped_key(env: str, day: dt.date, name: str) -> str:
    """Where a closed log goes in the bucket."""
    return f"predictions/env={env}/dt={day.isoformat()}/{name}"


def ship_closed_logs(bucket: BucketWriter, folder: str | Path, env: str) -> list[str]:
    """Upload `env`'s closed logs in `folder` and move each to `<folder>/shipped/` once stored; return the keys.

    One process ships at a time (a non-blocking flock: another process already shipping makes this call return
    no keys). A key already holding the same bytes (an upload whose move was interrupted) counts as shipped;
    other bytes there raise ShippingConflictError. Bucket errors propagate, leaving the file to the next call.
    """
    folder = Path(folder)
    log_name(env)
    if not folder.is_dir():
        return []
    lock_fd = os.open(folder / f".predicciones_{env}.ship.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []
        shipped: list[str] = []
        for path in closed_logs(folder, env):
            key = shipped_key(env, log_day(path), path.name)
            try:
                bucket.put_new_file(key, path)  # streamed: a 64 MB log is never held in memory whole
            except ObjectExistsError:
                if hashlib.sha256(bucket.get_bytes(key)).digest() != file_sha256(path):
                    raise ShippingConflictError(f"{bucket.uri}/{key} holds other bytes than {path}") from None
            (folder / SHIPPED_DIR).mkdir(exist_ok=True)
            os.rename(path, folder / SHIPPED_DIR / path.name)
            shipped.append(key)
        return shipped
    finally:
        os.close(lock_fd)
