"""A small clinic's days under k = 5: held back in the pending area, released when the window reaches k, never lost."""

from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.resources import build_resources
from rare_triage.lib import schema
from rare_triage_tests.helpers.materialize import check_results, local_environ, materialize_day, materialize_reference

DAYS = ("2025-03-03", "2025-03-04", "2025-03-05", "2025-03-06")
SMALL_CLINIC = {"RARE_TRIAGE_ENCOUNTERS_PER_DAY": "3", "RARE_TRIAGE_POPULATION_SIZE": "400"}  # fewer than k a day


def _metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, object]:
    event = next(m for m in result.get_asset_materialization_events() if m.asset_key == key)
    return {name: value.value for name, value in event.materialization.metadata.items()}


def _encounter_keys(home: Path, asset: str, day: str) -> list[str]:
    path = home / "lake" / asset / f"partition_day={day}" / "encounters.parquet"
    return sorted(pq.read_table(path, columns=["encounter_key"]).column(0).to_pylist())


@pytest.fixture(scope="module")
def small_clinic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dg.ExecuteInProcessResult]]:
    home = tmp_path_factory.mktemp("home")
    resources = build_resources(local_environ(home, **SMALL_CLINIC))
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    results = {day: materialize_day(resources, instance, day) for day in DAYS}
    # the second day again: the pending chain makes it a function of its raw day and the first day's pending area
    results["again"] = materialize_day(resources, instance, DAYS[1])
    return home, results


def test_every_check_passes_on_every_small_day(
    small_clinic: tuple[Path, dict[str, dg.ExecuteInProcessResult]],
) -> None:
    _, results = small_clinic
    for day, result in results.items():
        checks = check_results(result)
        assert checks["k_anonymity"] and checks["quarantine_accounting"], (day, checks)


def test_held_back_rows_are_released_later_and_every_encounter_is_accounted_for(
    small_clinic: tuple[Path, dict[str, dg.ExecuteInProcessResult]],
) -> None:
    home, results = small_clinic
    held = released = quarantined = valid = received = 0
    for day in DAYS:
        anonymized = _metadata(results[day], c.ANONYMIZED_ENCOUNTERS)
        pending = _metadata(results[day], c.PENDING_ENCOUNTERS)
        own = anonymized["counts"][schema.RAW_ENCOUNTERS]
        pool = anonymized["pending_pool"][schema.ANON_ENCOUNTERS]
        assert own["in"] == own["valid"] + own["quarantined"] + own["held"]
        assert pool["carried_in"] + pool["held"] == pool["released"] + pool["expired"] + pool["carried_out"]
        assert (
            pending["encounters_pending"]
            == pool["carried_out"]
            == len(_encounter_keys(home, "pending_encounters", day))
        )
        assert (
            anonymized["encounters_out"]
            == own["valid"] + pool["released"]
            == len(_encounter_keys(home, "anonymized_encounters", day))
        )
        received += own["in"]
        valid += own["valid"]
        quarantined += own["quarantined"] + pool["expired"]
        held += own["held"]
        released += pool["released"]
    still_pending = len(_encounter_keys(home, "pending_encounters", DAYS[-1]))
    assert held > 0 and released > 0  # a small clinic's days are held back, then published
    assert received == valid + released + quarantined + still_pending  # nothing lost across the days


def test_a_released_encounter_is_published_once_on_the_day_that_released_it(
    small_clinic: tuple[Path, dict[str, dg.ExecuteInProcessResult]],
) -> None:
    home, _ = small_clinic
    published = [key for day in DAYS for key in _encounter_keys(home, "anonymized_encounters", day)]
    assert len(published) == len(set(published))
    for day in DAYS:
        days = pq.read_table(home / "lake" / "anonymized_encounters" / f"partition_day={day}" / "encounters.parquet")
        assert set(days.column("partition_day").to_pylist()) <= {day}


def test_rematerializing_a_day_gives_the_same_tables(
    small_clinic: tuple[Path, dict[str, dg.ExecuteInProcessResult]],
) -> None:
    _, results = small_clinic
    first, again = results[DAYS[1]], results["again"]
    for key in (c.ANONYMIZED_ENCOUNTERS, c.PENDING_ENCOUNTERS, c.QUARANTINED_RECORDS):
        assert _metadata(first, key)["tables"] == _metadata(again, key)["tables"]
    assert (
        _metadata(first, c.ANONYMIZED_ENCOUNTERS)["pending_pool"]
        == _metadata(again, c.ANONYMIZED_ENCOUNTERS)["pending_pool"]
    )
