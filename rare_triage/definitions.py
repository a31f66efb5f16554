"""The rare-triage code location: every definition under `rare_triage/defs/`, autoloaded; nothing else."""

from pathlib import Path

import dagster as dg

from rare_triage.defs.shared.ownership import owned_and_referenced


def build_definitions() -> dg.Definitions:
    """Assets, checks, jobs, schedules, sensors of each folder of `defs/`, and the resources of the environment;
    every asset with its owner and a reference to its code."""
    return owned_and_referenced(dg.load_from_defs_folder(path_within_project=Path(__file__).parent))


defs = dg.definitions(build_definitions)
