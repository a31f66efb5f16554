"""The deployment files under deploy/, checked offline: nothing is pulled, started or fetched.

- deploy/compose.yaml: valid for the compose specification (check-jsonschema's vendored copy), the six services with
  the images and commands they are meant to run, a health check each, dependencies that wait for health, secrets
  only by interpolation from deploy/.env (compose.env.example lists them, placeholders only), and the PostgreSQL
  init script run against a real throwaway cluster.
- deploy/dagster.yaml and deploy/workspace.yaml: loaded by Dagster's own config validation.
- deploy/helm/dagster/values*.yaml: merged as Helm merges them and validated against the Dagster chart's schema
  vendored beside them (SCHEMA-SOURCE.md); the instance configuration they make is validated by Dagster itself.
- deploy/k8s/serving: each overlay rendered by a small kustomize (the subset the files use, refusing anything else)
  and every object validated against the Kubernetes v1.31 schemas vendored in deploy/k8s/schemas; the probes point
  at routes the service has (read from serving's source as text), the pods run as the image's non-root user.
Each validator is shown to refuse a planted violation, so a green run means the check ran.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.config_schema import process_workspace_config
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

from rare_triage.defs.shared import keys as c
from rare_triage_tests.fixtures_pg import _pg_tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "compose.env.example"
WORKSPACE = DEPLOY / "workspace.yaml"
INSTANCE = DEPLOY / "dagster.yaml"
INIT_SCRIPT = DEPLOY / "postgres-init" / "10-create-databases.sh"
HELM = DEPLOY / "helm" / "dagster"
HELM_SCHEMA = HELM / "values.schema.json"
K8S_SCHEMAS = DEPLOY / "k8s" / "schemas" / "v1.31.0-standalone-strict"
SERVING_K8S = DEPLOY / "k8s" / "serving"
OVERLAYS = {"dev": "rare-triage-dev", "prod": "rare-triage-prod"}

SERVICES = {"webserver", "daemon", "code-location", "instance-init", "postgres", "mlflow", "serving"}
DAGSTER_SERVICES = ("webserver", "daemon", "code-location", "instance-init")
ONE_SHOT = {"instance-init"}  # runs to completion before what depends on it
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|HMAC_KEY|ACCESS_KEY|PRIVATE_KEY")
# ${NAME}, ${NAME:?message} or ${NAME?message}: a value from the environment with no default written here.
PURE_INTERPOLATION = re.compile(r"\$\{[A-Z_][A-Z0-9_]*(?::?\?[^}]*)?\}")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")
URL_PASSWORD = re.compile(r"://[^/\s:@]+:([^@\s/]+)@")
PLACEHOLDER = "change-me"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


# --- What the code reads: environment variable names and routes, read from the source as text -----------------


@cache
def platform_env_names() -> frozenset[str]:
    """Every RARE_TRIAGE_* / AWS_* name in the platform's code, the names deploy/dagster.yaml reads, DAGSTER_HOME."""
    names = {"DAGSTER_HOME"}
    for path in (REPO / "rare_triage").rglob("*.py"):
        names.update(re.findall(r"\b(?:RARE_TRIAGE|AWS)_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
    return frozenset(names | instance_env_names())


@cache
def serving_env_names() -> frozenset[str]:
    """The variables the service reads (serving/settings.py and the pseudonym key's names)."""
    text = "".join((REPO / "serving" / name).read_text(encoding="utf-8") for name in ("settings.py", "pseudonym.py"))
    return frozenset(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', text))


def instance_env_names() -> set[str]:
    """The variables deploy/dagster.yaml takes values from (`env: NAME`)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, Mapping):
            if set(node) == {"env"} and isinstance(node["env"], str):
                names.add(node["env"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(load_yaml(INSTANCE))
    return names


def serving_routes() -> set[str]:
    """GET routes of serving/api/health.py, with their router's prefix."""
    text = (REPO / "serving" / "api" / "health.py").read_text(encoding="utf-8")
    prefix = re.search(r'Router\(\s*path="([^"]*)"', text)
    assert prefix, "serving/api/health.py: no Router(path=...)"
    paths = re.findall(r'@get\(\s*(?:path\s*=\s*)?"([^"]+)"', text)
    return {"/" + "/".join(p.strip("/") for p in (prefix.group(1), path) if p.strip("/")) for path in paths}


def serving_graceful_shutdown_s() -> int:
    found = re.search(r"^GRACEFUL_SHUTDOWN_S = (\d+)$", (REPO / "serving" / "__main__.py").read_text(), re.M)
    assert found, "serving/__main__.py: GRACEFUL_SHUTDOWN_S not found"
    return int(found.group(1))


def image_uid() -> int:
    """The user the service image runs as (the root Dockerfile's USER)."""
    found = re.search(r"^USER (\d+)(?::\d+)?$", (REPO / "Dockerfile").read_text(), re.M)
    assert found, "Dockerfile: no numeric USER"
    return int(found.group(1))


def test_routes_are_read_from_serving() -> None:
    assert {"/health", "/ready"} <= serving_routes()
    assert serving_graceful_shutdown_s() > 0


# --- Compose ---------------------------------------------------------------------------------------------------


def check_jsonschema_compose(path: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("check-jsonschema")
    command = str(tool) if tool.exists() else shutil.which("check-jsonschema")
    assert command, "check-jsonschema is not installed (requirements/dev.lock)"
    return subprocess.run(
        [command, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def secret_literals(document: Mapping[str, Any]) -> list[str]:
    """Places in a compose document where a secret is written rather than taken from the environment."""
    found = []
    for name, service in (document.get("services") or {}).items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not PURE_INTERPOLATION.fullmatch(value):
                found.append(f"{name}: {key} is not a bare ${{VAR}} interpolation")
    for text in walk_strings(document):
        for var, operator, default in INTERPOLATION.findall(text):
            if SECRET_NAME.search(var) and operator in {"-", ":-"}:
                found.append(f"{var} has a default written in the file: {default!r}")
        for password in URL_PASSWORD.findall(text):
            if not PURE_INTERPOLATION.fullmatch(password):
                found.append(f"a URL carries a password: {text!r}")
    return found


def interpolated_variables(document: Any) -> dict[str, bool]:
    """Variables a compose document interpolates (its comments aside): name -> has a default."""
    found: dict[str, bool] = {}
    for text in walk_strings(document):
        for var, operator, _ in INTERPOLATION.findall(text):
            found[var] = found.get(var, False) or operator in {"-", ":-"}
    return found


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"compose.env.example: not NAME=value: {line!r}"
            values[key.strip()] = value.strip()
    return values


def command_option(command: list[str], option: str) -> str:
    assert option in command, f"{option} missing from {command}"
    return command[command.index(option) + 1]


def test_compose_is_valid_for_the_compose_specification() -> None:
    result = check_jsonschema_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda d: d["services"]["serving"].update(restart_policy="always"), id="unknown-key"),
        pytest.param(lambda d: d["services"]["webserver"].update(depends_on=5), id="wrong-type"),
    ],
)
def test_compose_schema_refuses_a_broken_copy(tmp_path: Path, breakage: Any) -> None:
    document = compose()
    breakage(document)
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(document), encoding="utf-8")
    result = check_jsonschema_compose(broken)
    assert result.returncode != 0
    assert "services" in result.stdout + result.stderr


def test_compose_services_run_what_the_platform_needs() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    platform_image = services["code-location"]["image"]
    assert platform_image.startswith("${RARE_TRIAGE_CODE_LOCATION_IMAGE:-ghcr.io/")
    assert "/rare-triage-code-location" in platform_image
    for name in ("webserver", "daemon", "mlflow"):
        assert services[name]["image"] == platform_image, f"{name} runs the code-location image"

    assert services["webserver"]["command"] == [
        "dagster-webserver",
        *("-h", "0.0.0.0", "-p", "3000", "-w", "/opt/dagster/workspace.yaml"),
    ]
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    location = services["code-location"]["command"]
    assert location[:3] == ["dagster", "api", "grpc"]
    assert services["code-location"]["init"] is True, "SIGTERM reaches the server (graceful stop)"
    assert command_option(location, "-p") == "4000"
    module = command_option(location, "-m")
    assert importlib.util.find_spec(module) is not None, f"{module} is not importable"

    mlflow = services["mlflow"]["command"]
    assert mlflow[:2] == ["mlflow", "server"]
    backend = command_option(mlflow, "--backend-store-uri")
    assert backend.startswith("postgresql+psycopg2://") and backend.endswith("@postgres:5432/mlflow")
    artifacts = INTERPOLATION.fullmatch(command_option(mlflow, "--artifacts-destination"))
    assert artifacts, "--artifacts-destination comes from deploy/.env"
    assert env_example()[artifacts.group(1)].startswith("s3://")
    assert "PGPASSWORD" in environment(services["mlflow"])
    assert "mlflow" in command_option(mlflow, "--allowed-hosts").split(",")

    postgres = services["postgres"]
    assert ":-postgres:" in postgres["image"]
    assert "./postgres-init:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    data = [v for v in postgres["volumes"] if v.endswith(":/var/lib/postgresql/data")]
    assert data and data[0].split(":")[0] in compose()["volumes"], "PostgreSQL keeps its data in a named volume"
    assert set(environment(postgres)["RARE_TRIAGE_PG_DATABASES"].split()) == {"dagster", "mlflow"}

    serving = services["serving"]
    assert serving["image"].startswith("${RARE_TRIAGE_SERVING_IMAGE:-rare-triage-serving")
    serving_env = environment(serving)
    for name in ("MODEL_ENV", "RARE_TRIAGE_BUCKET_URI", "SERVING_API_KEY"):
        assert INTERPOLATION.fullmatch(serving_env[name]), f"serving: {name} comes from deploy/.env"
    assert serving["read_only"] is True
    assert serving["user"].split(":")[0] == str(image_uid())
    assert serving["cap_drop"] == ["ALL"]
    assert int(serving["stop_grace_period"].removesuffix("s")) > serving_graceful_shutdown_s()


def test_compose_health_checks_and_dependencies() -> None:
    services = compose()["services"]
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        if name in ONE_SHOT:
            assert test is None and service["restart"] == "no", f"{name} runs once"
        else:
            assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no health check"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert condition == {"condition": expected}, f"{name} starts before {dependency} is {expected}"
    assert "/ready" in " ".join(services["serving"]["healthcheck"]["test"])
    assert "/ready" in serving_routes()
    assert "grpc-health-check" in services["code-location"]["healthcheck"]["test"]
    for name in ("webserver", "daemon"):
        assert {"postgres", "code-location", "instance-init"} <= set(services[name]["depends_on"])
    # before any run: the DuckDB writer pool's own limit of one (its first claims race otherwise)
    assert services["instance-init"]["command"] == ["dagster", "instance", "concurrency", "set", c.DUCKDB_POOL, "1"]
    assert set(services["instance-init"]["depends_on"]) == {"postgres"}
    assert {"postgres", "mlflow"} <= set(services["code-location"]["depends_on"])
    assert set(services["mlflow"]["depends_on"]) == {"postgres"}


def test_compose_mounts_the_deploy_files_and_wires_the_workspace() -> None:
    services = compose()["services"]
    for name in DAGSTER_SERVICES:
        env = environment(services[name])
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        instance_file = mounts[f"{env['DAGSTER_HOME']}/dagster.yaml"]
        assert (DEPLOY / instance_file).resolve() == INSTANCE
        for source in mounts.values():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which deploy/ does not have"
        assert instance_env_names() <= set(env), f"{name} lacks variables deploy/dagster.yaml reads"
    for name in ("webserver", "daemon"):
        workspace_path = command_option(services[name]["command"], "-w")
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert (DEPLOY / mounts[workspace_path]).resolve() == WORKSPACE
    (server,) = [entry["grpc_server"] for entry in load_yaml(WORKSPACE)["load_from"]]
    assert server["host"] in services
    assert str(server["port"]) == command_option(services[server["host"]]["command"], "-p")


def test_compose_environment_names_are_read_by_the_code() -> None:
    services = compose()["services"]
    for name in DAGSTER_SERVICES:
        unknown = set(environment(services[name])) - platform_env_names()
        assert not unknown, f"{name}: nothing in the platform reads {sorted(unknown)}"
    unknown = set(environment(services["serving"])) - serving_env_names()
    assert not unknown, f"serving: the service reads none of {sorted(unknown)}"


def test_compose_ports_bind_loopback_unless_told_otherwise() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${RARE_TRIAGE_BIND_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port}"


def test_compose_has_no_secret_literals() -> None:
    assert secret_literals(compose()) == []


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (lambda d: d["services"]["postgres"]["environment"].update(POSTGRES_PASSWORD="correct-horse"), "not a bare"),
        (
            lambda d: d["services"]["serving"]["environment"].update(SERVING_API_KEY="${SERVING_API_KEY:-abcdefgh}"),
            "default written",
        ),
        (
            lambda d: d["services"]["mlflow"]["command"].append("postgresql+psycopg2://triage:hunter2@postgres/m"),
            "URL carries a password",
        ),
    ],
    ids=["literal", "default", "url"],
)
def test_secret_literal_check_catches_a_planted_one(plant: Any, expected: str) -> None:
    document = compose()
    plant(document)
    found = secret_literals(document)
    assert found and all(expected in item or "not a bare" in item for item in found), found
    assert any(expected in item for item in found), found


def test_env_example_lists_every_variable_with_placeholders_only() -> None:
    variables = interpolated_variables(compose())
    example = env_example()
    required = {name for name, has_default in variables.items() if not has_default}
    assert required <= set(example), f"compose.env.example misses {sorted(required - set(example))}"
    assert set(example) <= set(variables), f"compose never reads {sorted(set(example) - set(variables))}"
    for name, value in example.items():
        if SECRET_NAME.search(name):
            assert value == PLACEHOLDER, f"{name}: the example holds {value!r}, not the placeholder"
    # Placeholders never pass the service's checks: an API key of fewer than 16 characters, a key that is not hex.
    assert len(PLACEHOLDER) < 16 and not re.fullmatch(r"[0-9a-f]+", PLACEHOLDER)


def test_postgres_init_script_is_executable() -> None:
    assert os.access(INIT_SCRIPT, os.X_OK), "the image sources non-executable scripts into its entrypoint"
    assert INIT_SCRIPT.read_text().startswith("#!/bin/sh\n")


@pytest.mark.integration
def test_postgres_init_script_creates_the_databases_once(postgres_url: dict[str, str]) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": postgres_url["host"],
        "PGPORT": postgres_url["port"],
        "POSTGRES_USER": postgres_url["user"],
        "RARE_TRIAGE_PG_DATABASES": environment(compose()["services"]["postgres"])["RARE_TRIAGE_PG_DATABASES"],
    }
    for _ in range(2):  # the second run finds both and changes nothing
        result = subprocess.run(
            ["sh", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
    listing = subprocess.run(
        [
            _pg_tool("psql"),
            "-tAF",
            "|",
            "-d",
            "postgres",
            "-c",
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database",
        ],
        env={**env, "PGUSER": postgres_url["user"]},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    owners = dict(line.split("|") for line in listing.stdout.split())
    assert owners["mlflow"] == postgres_url["user"]
    assert "dagster" in owners


# --- Dagster's own configuration files ------------------------------------------------------------------------


def test_instance_config_loads_with_dagsters_validation() -> None:
    assert INSTANCE.exists(), "deploy/dagster.yaml is missing"
    config, custom_class = dagster_instance_config(str(DEPLOY), INSTANCE.name)
    assert custom_class is None
    assert "postgres" in json.dumps(config), "the shared deployment's instance storage is PostgreSQL"
    assert instance_env_names(), "deploy/dagster.yaml takes its connection settings from the environment"


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda d: d.update(telemetryy={"enabled": False}), id="unknown-key"),
        pytest.param(lambda d: d.update(telemetry={"enabled": "no thanks"}), id="wrong-type"),
    ],
)
def test_instance_validation_refuses_a_broken_copy(tmp_path: Path, breakage: Any) -> None:
    document = load_yaml(INSTANCE)
    breakage(document)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path), "dagster.yaml")


def test_workspace_loads_with_dagsters_validation() -> None:
    result = process_workspace_config(load_yaml(WORKSPACE))
    assert result.success, result.errors
    (server,) = [entry["grpc_server"] for entry in load_yaml(WORKSPACE)["load_from"]]
    assert server == {"host": "code-location", "port": 4000, "location_name": "rare_triage"}


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda s: s.update(colour="blue"), id="unknown-key"),
        pytest.param(lambda s: s.update(port="four thousand"), id="wrong-type"),
    ],
)
def test_workspace_validation_refuses_a_broken_copy(breakage: Any) -> None:
    document = load_yaml(WORKSPACE)
    breakage(document["load_from"][0]["grpc_server"])
    assert not process_workspace_config(document).success


# --- Helm values for the Dagster chart ------------------------------------------------------------------------

# Definitions used only in lists, which Helm replaces whole (no chart default fills them): their `required` holds.
REQUIRED_KEPT = {"UserDeployment", "TagConcurrencyLimit", "Server", "IngressPath", "CeleryWorkerQueue"}
K8S_DEFINITIONS_URI = "https://kubernetesjsonschema.dev/"

# The chart's `concurrency` block is newer than the vendored schema, which lets it through unchecked: this strict
# schema follows the chart's own model of it (helm/dagster/schema/schema/charts/dagster/subschema/concurrency.py).
CHART_CONCURRENCY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"},
        "pools": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "defaultLimit": {"type": ["integer", "null"]},
                "granularity": {"enum": ["run", "op", None]},
                "opGranularityRunBuffer": {"type": ["integer", "null"]},
            },
        },
        "runs": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "maxConcurrentRuns": {"type": ["integer", "null"]},
                "tagConcurrencyLimits": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["key", "limit"],
                        "properties": {
                            "key": {"type": "string"},
                            "value": {"type": ["string", "object", "null"]},
                            "limit": {"type": "integer"},
                        },
                    },
                },
            },
        },
    },
}


def helm_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Values files merged as Helm does: maps key by key, anything else (lists too) replaced, null removes."""
    merged = dict(copy.deepcopy(base))
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def helm_values(overlay: str | None) -> dict[str, Any]:
    base = load_yaml(HELM / "values.yaml")
    return base if overlay is None else helm_merge(base, load_yaml(HELM / f"values-{overlay}.yaml"))


@cache
def k8s_schema(name: str) -> dict[str, Any]:
    return json.loads((K8S_SCHEMAS / name).read_text(encoding="utf-8"))


def k8s_definitions() -> dict[str, Any]:
    """The Kubernetes definitions the chart's schema refers to (remotely, v1.18), taken from the vendored v1.31
    Deployment schema, strict: a misspelt key inside resources, probes or security contexts is refused too."""
    deployment = k8s_schema("deployment-apps-v1.json")
    pod = deployment["properties"]["spec"]["properties"]["template"]["properties"]["spec"]
    container = pod["properties"]["containers"]["items"]
    env_from = container["properties"]["envFrom"]["items"]["properties"]
    v1 = "io.k8s.api.core.v1."
    return {
        f"{v1}PodSpec": pod,
        f"{v1}Container": container,
        f"{v1}EnvVar": container["properties"]["env"]["items"],
        f"{v1}ConfigMapEnvSource": env_from["configMapRef"],
        f"{v1}SecretEnvSource": env_from["secretRef"],
        f"{v1}Affinity": pod["properties"]["affinity"],
        f"{v1}PodSecurityContext": pod["properties"]["securityContext"],
        f"{v1}SecurityContext": container["properties"]["securityContext"],
        f"{v1}ResourceRequirements": container["properties"]["resources"],
        f"{v1}Probe": container["properties"]["livenessProbe"],
        f"{v1}VolumeMount": container["properties"]["volumeMounts"]["items"],
        f"{v1}Volume": pod["properties"]["volumes"]["items"],
        f"{v1}LocalObjectReference": pod["properties"]["imagePullSecrets"]["items"],
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": deployment["properties"]["metadata"],
    }


def partial_values_schema(node: Any) -> Any:
    """The chart's schema for one values file: Helm validates the values merged over the chart's defaults, which
    supply every required map key, so `required` is kept only for definitions used in lists."""
    if isinstance(node, Mapping):
        drop = "title" in node and node.get("title") not in REQUIRED_KEPT
        return {k: partial_values_schema(v) for k, v in node.items() if not (drop and k == "required")}
    if isinstance(node, list):
        return [partial_values_schema(item) for item in node]
    return node


@cache
def helm_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(HELM_SCHEMA.read_text(encoding="utf-8"))
    definitions = Resource.from_contents({"definitions": k8s_definitions()}, default_specification=DRAFT7)

    def retrieve(uri: str) -> Resource:
        if uri.startswith(K8S_DEFINITIONS_URI):
            return definitions
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # never fetched from the network

    registry: Registry = Registry(retrieve=retrieve)  # type: ignore[call-arg]
    return jsonschema.Draft7Validator(partial_values_schema(schema), registry=registry)


def helm_errors(values: Mapping[str, Any]) -> list[str]:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in helm_validator().iter_errors(values)]
    concurrency = jsonschema.Draft7Validator(CHART_CONCURRENCY_SCHEMA)
    errors += [f"concurrency: {e.message}" for e in concurrency.iter_errors(values.get("concurrency", {}))]
    return errors


def code_location(values: Mapping[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def test_helm_schema_is_the_charts_and_covers_the_user_deployments_subchart() -> None:
    schema = json.loads(HELM_SCHEMA.read_text(encoding="utf-8"))
    assert schema["title"] == "DagsterHelmValues"
    assert schema["properties"]["dagster-user-deployments"] == {"$ref": "#/definitions/UserDeployments"}
    assert {"codeServerArgs", "port", "envSecrets"} <= set(schema["definitions"]["UserDeployment"]["properties"])
    source = (HELM / "SCHEMA-SOURCE.md").read_text(encoding="utf-8")
    assert "dagster-io/dagster" in source and "Apache-2.0" in source


@pytest.mark.parametrize("overlay", [None, "dev", "prod"])
def test_helm_values_are_valid_for_the_chart(overlay: str | None) -> None:
    assert helm_errors(helm_values(overlay)) == []


@pytest.mark.parametrize("overlay", [None, "dev", "prod"])
def test_helm_values_run_on_kubernetes_with_a_queue(overlay: str | None) -> None:
    values = helm_values(overlay)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["resources"]["requests"] and launcher["resources"]["limits"]
    assert {"name": "rare-triage-platform"} in launcher["envSecrets"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    assert values["telemetry"] == {"enabled": False}
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    if overlay:
        assert values["postgresql"]["postgresqlHost"].endswith(f".rare-triage-{overlay}.svc.cluster.local")
    assert "postgresqlPassword" not in values["postgresql"]

    deployment = code_location(values)
    assert deployment["image"]["repository"].endswith("/rare-triage-code-location")
    assert deployment["port"] == 4000
    assert deployment["codeServerArgs"] == ["--module-name", "rare_triage.definitions"]
    assert importlib.util.find_spec("rare_triage.definitions") is not None
    # runs read the ConfigMap the subchart makes of the code location's env (release name: dagster)
    user_env = f"dagster-dagster-user-deployments-{deployment['name']}-user-env"
    assert launcher["envConfigMaps"] == [{"name": user_env}]
    assert set(deployment["env"]) <= platform_env_names()
    assert not [name for name in deployment["env"] if SECRET_NAME.search(name)], "secrets come from envSecrets"
    assert {"name": "rare-triage-platform"} in deployment["envSecrets"]
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True

    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert concurrency["pools"]["defaultLimit"] == 1, f"the {c.DUCKDB_POOL} pool must hold one writer"
    assert concurrency["runs"]["maxConcurrentRuns"] >= 1
    tags = {limit["key"]: limit["limit"] for limit in concurrency["runs"]["tagConcurrencyLimits"]}
    assert tags[c.DRIFT_DECISION_TAG] == 1


def test_helm_overlays_restate_the_same_code_location() -> None:
    """Helm replaces the deployments list: an overlay may change the env and the image tag, nothing else."""

    def shape(values: Mapping[str, Any]) -> dict[str, Any]:
        deployment = copy.deepcopy(code_location(values))
        deployment.pop("env")
        deployment["image"].pop("tag")
        return deployment

    base = shape(helm_values(None))
    for overlay in ("dev", "prod"):
        assert shape(helm_values(overlay)) == base, overlay
        env = code_location(helm_values(overlay))["env"]
        assert f"rare-triage-{overlay}" in env["RARE_TRIAGE_BUCKET_URI"]


def instance_from_helm(values: Mapping[str, Any]) -> dict[str, Any]:
    """The part of dagster.yaml the chart renders from the values this project sets (queue, concurrency)."""

    def snake(name: str) -> str:
        return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()

    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    pools = values["concurrency"]["pools"]
    runs = values["concurrency"]["runs"]
    return {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {snake(key): value for key, value in queued.items()},
        },
        "concurrency": {
            "pools": {snake(key): value for key, value in pools.items()},
            "runs": {snake(key): value for key, value in runs.items()},
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


@pytest.mark.parametrize("overlay", [None, "dev", "prod"])
def test_helm_instance_config_is_accepted_by_dagster(tmp_path: Path, overlay: str | None) -> None:
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance_from_helm(helm_values(overlay))))
    config, _ = dagster_instance_config(str(tmp_path), "dagster.yaml")
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_dagster_refuses_run_limits_in_the_queue_beside_concurrency(tmp_path: Path) -> None:
    """Why the limits sit in `concurrency`: with pools configured, Dagster 1.13 refuses them in the coordinator."""
    values = helm_values("prod")
    values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] = 8
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance_from_helm(values)))
    with pytest.raises(DagsterInvalidConfigError, match="max_concurrent_runs"):
        dagster_instance_config(str(tmp_path), "dagster.yaml")


@pytest.mark.parametrize(
    ("breakage", "where"),
    [
        (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(jobNamespaces="x"), "k8sRunLauncher"),
        (lambda v: code_location(v).update(port="4000"), "deployments/0/port"),
        (lambda v: code_location(v)["resources"].update(limitz={"memory": "1Gi"}), "deployments/0/resources"),
        (lambda v: v["dagsterDaemon"]["runCoordinator"].update(type="FastRunCoordinator"), "runCoordinator/type"),
        (lambda v: v["concurrency"]["pools"].update(defaultLimitt=1), "concurrency"),
    ],
    ids=["unknown-key", "wrong-type", "k8s-unknown-key", "wrong-enum", "concurrency-unknown-key"],
)
def test_helm_schema_refuses_a_broken_copy(breakage: Any, where: str) -> None:
    values = helm_values("prod")
    breakage(values)
    errors = helm_errors(values)
    assert errors and any(where in error for error in errors), errors


# --- The service on Kubernetes: kustomize overlays -------------------------------------------------------------

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}
SCHEMA_BY_KIND = {
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "ConfigMap"): "configmap-v1.json",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1.json",
}


def strategic_merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """kustomize's strategic merge for what these files patch: maps merge, lists of named items merge by name."""
    for key, value in patch.items():
        if key.startswith("$"):
            raise ValueError(f"patch directive {key} is not supported here")
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            strategic_merge(current, value)
        elif (
            isinstance(value, list)
            and isinstance(current, list)
            and all(isinstance(item, Mapping) and "name" in item for item in [*value, *current])
        ):
            by_name = {item["name"]: item for item in current}
            for item in value:
                if item["name"] in by_name:
                    strategic_merge(by_name[item["name"]], item)
                else:
                    current.append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def pod_containers(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    if document.get("kind") != "Deployment":
        return []
    pod = document["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def set_image(objects: list[dict[str, Any]], image: Mapping[str, str]) -> None:
    """kustomize's `images:` entry: containers whose image is `name` (any tag or digest) get newName:newTag."""
    for document in objects:
        for container in pod_containers(document):
            name = re.split(r"@|:(?=[^/]*$)", container["image"])[0]
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """A kustomization rendered (resources, patches by file, replicas, images, namespace), refusing other fields."""
    kustomization = load_yaml(directory / "kustomization.yaml")
    unsupported = set(kustomization) - KUSTOMIZATION_FIELDS
    if unsupported:
        raise ValueError(f"{directory}: kustomization fields not supported here: {sorted(unsupported)}")
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            objects += render_kustomization(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]

    def target(kind: str, name: str) -> dict[str, Any]:
        found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
        if len(found) != 1:
            raise ValueError(f"{directory}: no single {kind}/{name} to change")
        return found[0]

    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"{directory}: only patches by path are supported here")
        document = load_yaml(directory / patch["path"])
        strategic_merge(target(document["kind"], document["metadata"]["name"]), document)
    for replicas in kustomization.get("replicas", []):
        target("Deployment", replicas["name"])["spec"]["replicas"] = replicas["count"]
    for image in kustomization.get("images", []):
        set_image(objects, image)
    if "namespace" in kustomization:
        for document in objects:
            document["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def k8s_errors(document: Mapping[str, Any]) -> list[str]:
    key = (document.get("apiVersion"), document.get("kind"))
    if key not in SCHEMA_BY_KIND:
        return [f"no vendored schema for {key}"]
    validator = jsonschema.Draft7Validator(k8s_schema(SCHEMA_BY_KIND[key]))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def rendered(overlay: str) -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in render_kustomization(SERVING_K8S / "overlays" / overlay)}


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kustomize_overlay_renders_valid_objects(overlay: str) -> None:
    objects = render_kustomization(SERVING_K8S / "overlays" / overlay)
    assert sorted(o["kind"] for o in objects) == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    for document in objects:
        assert k8s_errors(document) == [], document["kind"]
        assert document["metadata"]["namespace"] == OVERLAYS[overlay]
        assert document["metadata"]["name"] == "rare-triage-serving"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kustomize_overlay_serves_its_env(overlay: str) -> None:
    objects = rendered(overlay)
    data = objects["ConfigMap"]["data"]
    assert data["MODEL_ENV"] == overlay
    assert f"rare-triage-{overlay}" in data["RARE_TRIAGE_BUCKET_URI"]
    assert set(data) <= serving_env_names()
    assert not [name for name in data if SECRET_NAME.search(name)], "secrets belong in the Secret"
    deployment = objects["Deployment"]
    assert deployment["spec"]["replicas"] == {"dev": 1, "prod": 3}[overlay]
    (container,) = pod_containers(deployment)
    assert re.fullmatch(r"ghcr\.io/[a-z0-9-]+/rare-triage-serving:[\w.-]+", container["image"]), container["image"]
    assert {"configMapRef": {"name": objects["ConfigMap"]["metadata"]["name"]}} in container["envFrom"]
    for variable in container["env"]:
        assert variable["name"] in serving_env_names()
        assert "value" not in variable and "secretKeyRef" in variable["valueFrom"], variable["name"]
        assert variable["valueFrom"]["secretKeyRef"]["name"] == "rare-triage-serving"
    api_key = next(v for v in container["env"] if v["name"] == "SERVING_API_KEY")
    assert not api_key["valueFrom"]["secretKeyRef"].get("optional", False), "prod refuses to start without it"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kustomize_probes_point_at_serving_routes(overlay: str) -> None:
    objects = rendered(overlay)
    (container,) = pod_containers(objects["Deployment"])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == int(objects["ConfigMap"]["data"]["SERVING_PORT"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in serving_routes(), f"{probe}: serving has no route {get['path']}"
        assert get["port"] in ports
    service = objects["Service"]["spec"]
    assert [port["targetPort"] for port in service["ports"]] == ["http"]
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for selector in (service["selector"], objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kustomize_pods_run_locked_down(overlay: str) -> None:
    objects = rendered(overlay)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod_containers(objects["Deployment"])
    uid = image_uid()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == uid
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    state = mounts[objects["ConfigMap"]["data"]["RARE_TRIAGE_HOME"]]
    assert "emptyDir" in volumes[state], "the state folder is writable on a read-only root"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + serving_graceful_shutdown_s()


@pytest.mark.parametrize(
    ("file", "breakage", "where"),
    [
        (
            "deployment.yaml",
            lambda d: pod_containers(d)[0].update(readinesProbe={}),
            "spec/template/spec/containers/0",
        ),
        ("deployment.yaml", lambda d: d["spec"].update(replicas="two"), "spec/replicas"),
        ("service.yaml", lambda d: d["spec"]["ports"][0].update(port="http"), "spec/ports/0/port"),
        ("configmap.yaml", lambda d: d.update(dataa={}), ""),
        ("poddisruptionbudget.yaml", lambda d: d["spec"].update(minAvailable=[1]), "spec/minAvailable"),
    ],
    ids=["deployment-unknown-key", "deployment-wrong-type", "service-wrong-type", "configmap-unknown-key", "pdb"],
)
def test_k8s_schemas_refuse_a_broken_manifest(file: str, breakage: Any, where: str) -> None:
    document = load_yaml(SERVING_K8S / "base" / file)
    assert k8s_errors(document) == []
    breakage(document)
    errors = k8s_errors(document)
    assert errors and any(error.startswith(where) for error in errors), errors


def test_kustomize_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    shutil.copytree(SERVING_K8S, tmp_path / "serving")
    overlay = tmp_path / "serving" / "overlays" / "prod"
    kustomization = load_yaml(overlay / "kustomization.yaml")
    kustomization["commonLabels"] = {"team": "triage"}
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    with pytest.raises(ValueError, match="commonLabels"):
        render_kustomization(overlay)
    assert k8s_errors({"apiVersion": "batch/v1", "kind": "Job"}) == ["no vendored schema for ('batch/v1', 'Job')"]


# --- Across deploy/ -------------------------------------------------------------------------------------------


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@pytest.mark.parametrize("source", [HELM / "SCHEMA-SOURCE.md", K8S_SCHEMAS.parent / "SCHEMA-SOURCE.md"])
def test_vendored_schemas_are_the_recorded_bytes(source: Path) -> None:
    """Each vendored schema is the blob its SCHEMA-SOURCE.md names: edited by hand, it no longer is the source's."""
    text = source.read_text(encoding="utf-8")
    vendored = [HELM_SCHEMA] if source.parent == HELM else sorted(K8S_SCHEMAS.glob("*.json"))
    assert vendored
    for path in vendored:
        assert git_blob_id(path) in text, f"{path.name}: its git blob id is not the one {source.name} records"


def deploy_text_files() -> list[Path]:
    vendored = {HELM_SCHEMA, *K8S_SCHEMAS.glob("*.json")}
    return [p for p in sorted(DEPLOY.rglob("*")) if p.is_file() and p not in vendored and p.name != ".env"]


def test_deploy_files_name_no_outside_host_but_the_image_registry() -> None:
    """URLs point at placeholders (.example), the cluster or the compose network; images come from ghcr.io or are
    official images named without a registry. No package or chart index is named."""
    compose_services = set(compose()["services"])
    allowed_host = re.compile(r"(.+\.example|.+\.svc\.cluster\.local|localhost|127\.0\.0\.1|0\.0\.0\.0)")
    for path in deploy_text_files():
        text = path.read_text(encoding="utf-8")
        for host in re.findall(r"\bhttps?://([^/:\s\"'`]+)", text):
            if path.name == "SCHEMA-SOURCE.md" and host == "github.com":
                continue  # where the vendored schemas come from
            assert allowed_host.fullmatch(host) or host in compose_services, f"{path}: {host}"
    images = [s["image"] for s in compose()["services"].values()]
    for values in (helm_values(o) for o in (None, "dev", "prod")):
        image = code_location(values)["image"]["repository"]
        images.append(image)
    for overlay in OVERLAYS:
        images += [container["image"] for container in pod_containers(rendered(overlay)["Deployment"])]
    for image in images:
        reference = image.split(":-", 1)[-1] if image.startswith("${") else image
        first = reference.split("/")[0]
        assert "/" not in reference or first == "ghcr.io" or "." not in first, f"image from {first}: {image}"
