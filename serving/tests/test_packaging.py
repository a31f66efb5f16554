"""The service stands alone: its package list, its locks, and an import that loads nothing of the platform."""

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

SERVING = Path(__file__).resolve().parents[1]
REQUIREMENTS = SERVING.parent / "requirements"
FORBIDDEN = ("rare_triage", "dagster", "sklearn", "xgboost", "imblearn", "mlflow", "pandas")
MODULES = ("serving.settings", "serving.bucket", "serving.model_store", "serving.prediction_log")


def test_the_package_list_names_every_subpackage_but_the_tests() -> None:
    setuptools = tomllib.loads((SERVING / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {
        "serving." + ".".join(path.parent.relative_to(SERVING).parts)
        for path in SERVING.rglob("__init__.py")
        if path.parent != SERVING and "tests" not in path.relative_to(SERVING).parts
    }

    assert setuptools["package-dir"] == {"serving": "."}
    assert set(setuptools["packages"]) == {"serving"} | folders


def test_importing_the_service_loads_nothing_of_the_platform() -> None:
    code = (
        f"import sys, {', '.join(MODULES)}\n"
        f"print(sorted(name for name in sys.modules if name.split('.')[0] in {FORBIDDEN!r}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)

    assert loaded.stdout.strip() == "[]"


@pytest.mark.parametrize("package", FORBIDDEN)
def test_the_environment_has_only_the_services_dependencies(package: str) -> None:
    """Run by `make test-serving` in .venv-serving, built from the serving locks alone."""
    assert importlib.util.find_spec(package) is None, f"{package} is installed: run the tests in .venv-serving"


def pins(lock: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)$", lock.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {name.lower(): version for name, version in found}


def test_the_test_lock_runs_the_runtime_versions() -> None:
    runtime, dev = pins(REQUIREMENTS / "serving.lock"), pins(REQUIREMENTS / "serving-dev.lock")

    assert {"litestar", "onnxruntime", "numpy", "msgspec", "boto3", "prometheus-client", "uvicorn"} <= set(runtime)
    assert {"pytest", "httpx", "moto"} <= set(dev)
    assert {name: dev.get(name) for name in runtime} == runtime


@pytest.mark.parametrize("lock", ["serving.lock", "serving-dev.lock"])
def test_locks_name_no_index(lock: str) -> None:
    text = (REQUIREMENTS / lock).read_text(encoding="utf-8")

    assert "://" not in text
    assert not re.search(r"^\s*-(-index-url|-extra-index-url|-find-links|i|f)\b", text, flags=re.MULTILINE)
