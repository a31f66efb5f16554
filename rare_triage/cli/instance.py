"""The Dagster instance every command runs against: DAGSTER_HOME, else $RARE_TRIAGE_HOME/dagster_home."""

import shutil
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from rare_triage.lib.paths import PROJECT_ROOT, rare_triage_home

INSTANCE_CONFIG = "dagster.yaml"


def dagster_home(environ: Mapping[str, str]) -> Path:
    """The instance folder of `environ`, created with the project's dagster.yaml when it has none."""
    home = Path(environ.get("DAGSTER_HOME") or rare_triage_home(environ) / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    config = home / INSTANCE_CONFIG
    if not config.exists() and (PROJECT_ROOT / INSTANCE_CONFIG).exists():
        shutil.copyfile(PROJECT_ROOT / INSTANCE_CONFIG, config)
    return home


def open_instance(environ: Mapping[str, str]) -> dg.DagsterInstance:
    """The persistent instance of `environ` (sqlite by default, PostgreSQL where its dagster.yaml says so)."""
    return dg.DagsterInstance.from_config(str(dagster_home(environ)))
