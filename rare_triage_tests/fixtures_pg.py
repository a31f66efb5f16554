"""A throwaway PostgreSQL cluster on 127.0.0.1 for the shared-deployment tests (Debian's postgresql package)."""

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_tool(name: str) -> str:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL tool {name!r} not found: install Debian's postgresql package (.ci/run does)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres system user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[dict[str, str]]:
    """Connection settings of a fresh cluster (trust auth on 127.0.0.1), stopped and removed at teardown."""
    root = Path(tempfile.mkdtemp(prefix="rare-triage-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([_pg_tool("initdb"), "-D", str(data), "-U", "triage", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    subprocess.run(
        _as_postgres([_pg_tool("pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"]),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            _as_postgres([_pg_tool("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "triage", "dagster"]),
            check=True,
            capture_output=True,
        )
        yield {"user": "triage", "password": "", "host": "127.0.0.1", "port": str(port), "db": "dagster"}
    finally:
        subprocess.run(_as_postgres([_pg_tool("pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), check=False)
        shutil.rmtree(root, ignore_errors=True)
