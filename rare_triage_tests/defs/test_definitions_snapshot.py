"""The definitions snapshot: `dg list defs --json` of the code location equals the reviewed fixture.

The fixture was taken before the defs/ and lib/ restructure and still holds after it. A rename of an asset, check,
job, schedule, sensor or resource shows up here, in review. After an intended change:
`dg list defs --json | python -m rare_triage_tests.defs.snapshot`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rare_triage.lib.paths import PROJECT_ROOT
from rare_triage_tests.defs.snapshot import normalized_snapshot

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "definitions" / "dg_list_defs.json"


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("snapshot_home")
    environ = {
        **{k: v for k, v in os.environ.items() if k != "RARE_TRIAGE_PARTITIONS_START"},  # the fixture's default
        "DAGSTER_HOME": str(home / "dagster_home"),
        "RARE_TRIAGE_HOME": str(home),
        "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
    }
    (home / "dagster_home").mkdir()
    (home / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dg_cli = Path(sys.executable).parent / "dg"
    result = subprocess.run(
        [str(dg_cli), "list", "defs", "--json"],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_dg_lists_the_reviewed_definitions(listing: dict) -> None:
    expected = json.loads(FIXTURE.read_text())
    actual = normalized_snapshot(listing)
    assert set(actual) == set(expected)
    for section in expected:
        assert actual[section] == expected[section], f"{section} differ from {FIXTURE.name}"


def test_every_domain_is_its_own_group(listing: dict) -> None:
    groups = {asset["group_name"] for asset in listing["assets"]}
    assert groups == {"reference", "ingest", "governance", "features", "training", "deployment", "monitoring"}
    domains = {p.name for p in (PROJECT_ROOT / "rare_triage" / "defs").iterdir() if (p / "__init__.py").exists()}
    assert domains - {"shared"} == groups
