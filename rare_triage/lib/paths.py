"""Where the local deployment keeps its state (lake, warehouse, MLflow, bucket, Dagster home)."""

import os
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOME_ENV_VAR = "RARE_TRIAGE_HOME"


def rare_triage_home(environ: Mapping[str, str] | None = None) -> Path:
    """The state folder: $RARE_TRIAGE_HOME, else `.rare_triage/` in the project (git ignores it)."""
    env = os.environ if environ is None else environ
    return Path(env.get(HOME_ENV_VAR) or PROJECT_ROOT / ".rare_triage").resolve()
