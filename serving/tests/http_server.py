"""The service over real HTTP for the app tests: `python -m serving` in a subprocess on 127.0.0.1 and a free port.

`running_server(env, workdir)` starts it with exactly the given environment (plus PATH), waits for /health and
stops it by pid on exit (SIGTERM, then SIGKILL), every wait bounded. The server's output goes to a file in
`workdir`, shown when it fails to start.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from serving.tests.published import Release, folder_put, publish

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
START_ATTEMPTS = 3  # a free port can be taken between the probe and the server's bind
POLL_S = 0.05
API_KEY = "test-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running service: its base URL, process and output file."""

    base_url: str
    process: subprocess.Popen[bytes]
    output: Path
    env: dict[str, str] = field(repr=False)

    def client(self, **options: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0, **options)

    def log(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


def service_env(home: Path, bucket: Path, **variables: str) -> dict[str, str]:
    """The environment of a dev service on a local bucket, checking its pointer every 0.2 s."""
    env = {
        "MODEL_ENV": "dev",
        "RARE_TRIAGE_HOME": str(home),
        "RARE_TRIAGE_BUCKET_URI": str(bucket),
        "SERVING_RELOAD_INTERVAL_S": "0.2",
    }
    env.update(variables)
    return env


def publish_release(bucket: Path, release: Release, env: str = "dev", *, move_pointer: bool = True) -> None:
    publish(folder_put(bucket), release, env, move_pointer=move_pointer)


def _wait_alive(server: Server, deadline: float) -> bool:
    """True once /health answers 200; False when the process exits first."""
    with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.TransportError):  # not listening yet: poll again until the deadline
                if client.get("/health").status_code == 200:
                    return True
            time.sleep(POLL_S)
    raise TimeoutError(f"server at {server.base_url} not alive within {STARTUP_TIMEOUT_S:g} s:\n{server.log()}")


def stop(server: Server) -> int:
    """SIGTERM the server's pid and wait; SIGKILL if it does not end in time. Its exit status."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(STOP_TIMEOUT_S)


def start(env: Mapping[str, str], workdir: Path) -> Server:
    """Start `python -m serving` with `env` on a free port; return once /health answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1", **env}
        full_env.update(SERVING_HOST=HOST, SERVING_PORT=str(port))
        output = workdir / f"server-{port}.log"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "serving"], cwd=workdir, env=full_env, stdout=sink, stderr=subprocess.STDOUT
            )
        server = Server(f"http://{HOST}:{port}", process, output, full_env)
        try:
            if _wait_alive(server, time.monotonic() + STARTUP_TIMEOUT_S):
                return server
        except BaseException:
            stop(server)
            raise
        if "address already in use" not in server.log().lower() or attempt == START_ATTEMPTS:
            raise RuntimeError(f"server exited with status {process.returncode}:\n{server.log()}")
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_server(env: Mapping[str, str], workdir: Path) -> Iterator[Server]:
    server = start(env, workdir)
    try:
        yield server
    finally:
        stop(server)


def wait_for(condition: Callable[[], Any], *, timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy (returned), at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not met within {timeout_s:g} s")
        time.sleep(POLL_S)
