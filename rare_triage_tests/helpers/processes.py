"""Server processes for integration tests and benchmarks: started on 127.0.0.1 in their own process group, output to
files, every wait bounded, stopped by their pid (SIGTERM to the group, a bounded wait, then SIGKILL).

A server such as a Dagster code server spawns children (run workers, step processes) and `mlflow server` spawns
workers: each is started as the leader of a new session, so the group whose id is its pid holds them all and
nothing survives the stop.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
STOP_SECONDS = 20.0
LOG_TAIL_CHARS = 4000


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's choice, so xdist workers do not collide)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def venv_bin(name: str) -> str:
    """An executable of the running interpreter's environment (dagster, dagster-daemon, mlflow)."""
    return str(Path(sys.executable).with_name(name))


@dataclass
class Started:
    """One started server: its process (leader of its own process group) and the file holding its output."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    _stream: IO[bytes] | None = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the process's output (stdout and stderr together)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]


def start(
    name: str, command: Sequence[str], *, env: Mapping[str, str], log_dir: Path, cwd: Path | None = None
) -> Started:
    """Start `command` as the leader of a new process group, stdout and stderr to `log_dir/<name>.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    stream = log.open("ab")
    try:
        process = subprocess.Popen(
            list(command),
            stdout=stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException:
        stream.close()
        raise
    return Started(name, process, log, stream)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop(started: Started, timeout: float = STOP_SECONDS) -> None:
    """SIGTERM to the process group led by `started.pid`, wait up to `timeout` s for the leader, then SIGKILL the
    group; the group is always killed at the end so that no child (run worker, server worker) outlives it."""
    try:
        if started.alive():
            _signal_group(started.pid, signal.SIGTERM)
            try:
                started.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(started.pid, signal.SIGKILL)
                started.process.wait(timeout=timeout)
        _signal_group(started.pid, signal.SIGKILL)  # children left behind by a leader that exited on SIGTERM
    finally:
        if started._stream is not None:
            started._stream.close()


@contextlib.contextmanager
def running(
    name: str, command: Sequence[str], *, env: Mapping[str, str], log_dir: Path, cwd: Path | None = None
) -> Iterator[Started]:
    """`start` on entry, `stop` on exit whatever happened."""
    started = start(name, command, env=env, log_dir=log_dir, cwd=cwd)
    try:
        yield started
    finally:
        stop(started)


class NotReadyError(RuntimeError):
    """A wait ran out of time or a watched process exited; the message carries the processes' output."""


def report(processes: Sequence[Started]) -> str:
    """The state and the end of the output of each process, for failure messages."""
    parts = []
    for p in processes:
        state = "running" if p.alive() else f"exited {p.process.returncode}"
        parts.append(f"--- {p.name} (pid {p.pid}, {state}, {p.log}) ---\n{p.tail()}")
    return "\n".join(parts)


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    watch: Sequence[Started] = (),
    interval: float = 0.5,
) -> T:
    """Call `probe` until it returns something other than None (exceptions count as not yet), at most `timeout` s;
    fail early if a watched process exits."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except Exception as error:
            value, last_error = None, error
        if value is not None:
            return value
        dead = [p for p in watch if not p.alive()]
        if dead or time.monotonic() > deadline:
            reason = f"{', '.join(p.name for p in dead)} exited" if dead else f"not within {timeout:.0f} s"
            raise NotReadyError(f"{what}: {reason} (last error: {last_error!r})\n{report(watch)}")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 2.0) -> bool | None:
    """True when `url` answers 200, None otherwise (a probe for `wait_for`)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return True if response.status == 200 else None


def port_open(port: int, host: str = LOOPBACK) -> bool | None:
    """True when something accepts connections on host:port, None otherwise."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return True if sock.connect_ex((host, port)) == 0 else None
