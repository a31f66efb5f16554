"""The package boundaries of pyproject's [tool.importlinter] hold on the tree, and each contract fails when broken.

Every contract gets one violating import planted in a copy of the source trees (rare_triage, serving and
pyproject.toml under tmp_path); lint-imports then runs in that copy with PYTHONPATH pointing at it, so grimp builds
the graph of the copy and not of the editable install, and must report exactly that contract as BROKEN.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
IMPORTLINTER = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract for contract in IMPORTLINTER["contracts"]}
SOURCE_TREES = ("rare_triage", "serving")


@dataclass(frozen=True)
class Violation:
    contract_id: str
    file: str  # relative to the repository root
    line: str  # appended to the file
    chain: str  # how lint-imports names the offending import: "importer -> imported"


VIOLATIONS = [
    Violation(
        "lib-without-dagster",
        "rare_triage/lib/schema.py",
        "import dagster",
        "rare_triage.lib.schema -> dagster",
    ),
    Violation(
        "deployment-without-training",
        "rare_triage/lib/deployment/bucket.py",
        "from rare_triage.lib.training import columns",
        "rare_triage.lib.deployment.bucket -> rare_triage.lib.training.columns",
    ),
    Violation(
        "monitoring-without-training",
        "rare_triage/lib/monitoring/__init__.py",
        "from rare_triage.lib.training import columns",
        "rare_triage.lib.monitoring -> rare_triage.lib.training.columns",
    ),
    Violation(
        "defs-domains-independent",
        "rare_triage/defs/deployment/gating.py",
        "from rare_triage.defs.training import checks",
        "rare_triage.defs.deployment.gating -> rare_triage.defs.training.checks",
    ),
    Violation(
        "testing-helpers-for-tests-only",
        "rare_triage/lib/features/build.py",
        "from rare_triage.lib.testing import synthetic_features",
        "rare_triage.lib.features.build -> rare_triage.lib.testing.synthetic_features",
    ),
    Violation(
        "serving-standalone",
        "serving/__init__.py",
        "import pandas",
        "serving -> pandas",
    ),
]


def run_lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the tree at root, its modules imported from root only (no cache, so nothing is reused).

    COLUMNS keeps rich from wrapping the report at 80 characters, inside the lines the tests look for.
    """
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: install requirements/dev.lock"
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "500"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def contract_lines(output: str) -> dict[str, str]:
    """Contract name -> KEPT or BROKEN, from the summary lines of lint-imports."""
    verdicts = {}
    for contract in CONTRACTS.values():
        for verdict in ("KEPT", "BROKEN"):
            if f"\n{contract['name']} {verdict}\n" in output:
                verdicts[contract["name"]] = verdict
    return verdicts


def copy_tree(destination: Path) -> Path:
    destination.mkdir()
    for tree in SOURCE_TREES:
        shutil.copytree(REPO / tree, destination / tree, ignore=shutil.ignore_patterns("__pycache__", ".rare_triage"))
    shutil.copy2(REPO / "pyproject.toml", destination / "pyproject.toml")
    return destination


@pytest.fixture(scope="module")
def pristine_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the source trees, checked to be the one Python imports from there and to keep every contract."""
    root = copy_tree(tmp_path_factory.mktemp("contracts") / "tree")
    located = subprocess.run(
        [sys.executable, "-c", "import rare_triage, serving; print(rare_triage.__file__); print(serving.__file__)"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [Path(path).resolve() for path in located] == [
        (root / tree / "__init__.py").resolve() for tree in SOURCE_TREES
    ]
    result = run_lint_imports(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_every_contract_is_kept_on_the_tree() -> None:
    result = run_lint_imports(REPO)

    assert result.returncode == 0, result.stdout + result.stderr
    assert contract_lines(result.stdout) == {contract["name"]: "KEPT" for contract in CONTRACTS.values()}
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_every_contract_has_a_planted_violation() -> None:
    assert sorted(violation.contract_id for violation in VIOLATIONS) == sorted(CONTRACTS)


@pytest.mark.parametrize("violation", VIOLATIONS, ids=[violation.contract_id for violation in VIOLATIONS])
def test_a_planted_violation_breaks_its_contract_only(
    violation: Violation, pristine_copy: Path, tmp_path: Path
) -> None:
    root = tmp_path / "tree"
    shutil.copytree(pristine_copy, root)
    planted = root / violation.file
    source = planted.read_text(encoding="utf-8")
    planted.write_text(f"{source.rstrip()}\n{violation.line}\n", encoding="utf-8")

    result = run_lint_imports(root)

    broken = CONTRACTS[violation.contract_id]["name"]
    assert result.returncode == 1, result.stdout + result.stderr
    assert contract_lines(result.stdout) == {
        contract["name"]: "BROKEN" if contract["name"] == broken else "KEPT" for contract in CONTRACTS.values()
    }, result.stdout
    assert f"Contracts: {len(CONTRACTS) - 1} kept, 1 broken." in result.stdout
    # The report points at the planted line, the last of the file.
    planted_line = len(planted.read_text(encoding="utf-8").splitlines())
    assert f"{violation.chain} (l.{planted_line})" in result.stdout, result.stdout


def package_children(package: Path, dotted: str) -> set[str]:
    """The modules and subpackages directly inside a package folder, as dotted names."""
    children = {f"{dotted}.{path.stem}" for path in package.glob("*.py") if path.name != "__init__.py"}
    children |= {f"{dotted}.{path.name}" for path in package.iterdir() if (path / "__init__.py").is_file()}
    return children


def test_testing_helpers_contract_lists_every_other_module_of_rare_triage() -> None:
    """Its sources are listed one by one: a new lib domain or core module must be added to them."""
    lib = REPO / "rare_triage" / "lib"
    expected = (package_children(REPO / "rare_triage", "rare_triage") - {"rare_triage.lib"}) | (
        package_children(lib, "rare_triage.lib") - {"rare_triage.lib.testing"}
    )

    assert set(CONTRACTS["testing-helpers-for-tests-only"]["source_modules"]) == expected


def test_defs_independence_contract_lists_every_domain() -> None:
    defs = REPO / "rare_triage" / "defs"
    expected = {f"rare_triage.defs.{path.name}" for path in defs.iterdir() if (path / "__init__.py").is_file()}

    assert set(CONTRACTS["defs-domains-independent"]["modules"]) == expected - {"rare_triage.defs.shared"}


@pytest.mark.parametrize("contract_id", ["lib-without-dagster", "serving-standalone"])
def test_dagster_contracts_forbid_every_installed_dagster_package(contract_id: str) -> None:
    """External packages are forbidden by top-level name, without wildcards: each installed dagster* must be listed."""
    installed = {name for name in importlib.metadata.packages_distributions() if name.startswith("dagster")}

    assert installed - set(CONTRACTS[contract_id]["forbidden_modules"]) == set()
