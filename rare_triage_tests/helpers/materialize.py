"""Materialize the data half of the asset graph in a temporary folder."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from rare_triage.defs.features.assets import encounter_features
from rare_triage.defs.governance.assets import anonymized_and_quarantined
from rare_triage.defs.ingest.assets import raw_ehr_extract
from rare_triage.defs.reference.assets import hpo_reference_tables

DATA_ASSETS = [raw_ehr_extract, anonymized_and_quarantined, encounter_features]
SMALL_SYNTHETIC = {"RARE_TRIAGE_ENCOUNTERS_PER_DAY": "400", "RARE_TRIAGE_POPULATION_SIZE": "20000"}


def local_environ(home: Path, **extra: str) -> dict[str, str]:
    """An environment for `build_resources` that keeps all state under `home`."""
    return {"RARE_TRIAGE_HOME": str(home), **SMALL_SYNTHETIC, **extra}


def materialize_reference(resources: Mapping[str, Any], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The reference tables (unpartitioned), which every partition reads."""
    return dg.materialize([hpo_reference_tables], resources=dict(resources), instance=instance)


def materialize_day(
    resources: Mapping[str, Any], instance: dg.DagsterInstance, day: str, *, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    """raw -> anonymized + quarantine -> features for one daily partition, with their checks."""
    return dg.materialize(
        [*DATA_ASSETS, hpo_reference_tables.to_source_asset()],
        resources=dict(resources),
        instance=instance,
        partition_key=day,
        raise_on_error=raise_on_error,
    )


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """check name -> passed, for every check evaluated in the run."""
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
