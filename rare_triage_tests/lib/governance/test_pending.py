"""The pending area: encounters below k are held back and released when a rolling window brings their class to k."""

import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.governance.kanonymity import SUPPRESSED, k_anonymity
from rare_triage.lib.governance.pending import (
    PENDING_SINCE,
    POOL_FIELDS,
    empty_pending,
    release_pending,
)

K = 5


def _encounter(key: int, day: str, *, sex: str = "F", centre: str = "C07") -> dict[str, object]:
    return {
        "encounter_key": f"{key:032x}",
        "patient_key": f"{key + 10_000:032x}",
        "partition_day": day,
        "encounter_year": int(day[:4]),
        "age_years": 34,
        "age_band": "30-39",
        "sex": sex,
        "centre_id": centre,
        "centre_level": "primary",
        "region": "Galicia",
        "zip3": "150",
        "consultation_type": "primary_care",
        "prior_visits_365d": 1,
    }


def _held(keys: range, day: str, **qi: str) -> dict[str, pd.DataFrame]:
    """Held-back tables of one day: encounters with one symptom each."""
    columns = list(schema.ANON_COLUMNS[schema.ANON_ENCOUNTERS])
    encounters = pd.DataFrame([_encounter(k, day, **qi) for k in keys], columns=columns)
    tables = {t: pd.DataFrame(columns=list(schema.ANON_COLUMNS[t])) for t in schema.ANON_CHILD_TABLES}
    tables[schema.ANON_SYMPTOMS] = pd.DataFrame(
        {"encounter_key": encounters["encounter_key"], "hpo_id": "HP:0001945", "present": True}
    ).reindex(columns=list(schema.ANON_COLUMNS[schema.ANON_SYMPTOMS]))
    return {schema.ANON_ENCOUNTERS: encounters, **tables}


def _balanced(counts: dict[str, dict[str, int]]) -> bool:
    return all(n["carried_in"] + n["held"] == n["released"] + n["expired"] + n["carried_out"] for n in counts.values())


def test_rows_below_k_wait_and_are_released_redated_when_the_window_reaches_k() -> None:
    day1 = release_pending(empty_pending(), _held(range(3), "2025-03-01"), day="2025-03-01", k=K)
    assert day1.counts[schema.ANON_ENCOUNTERS] == dict(zip(POOL_FIELDS, (0, 3, 0, 0, 3), strict=True))
    assert set(day1.pending[schema.ANON_ENCOUNTERS][PENDING_SINCE]) == {"2025-03-01"}
    assert len(day1.pending[schema.ANON_SYMPTOMS]) == 3  # child rows wait with their encounter

    day2 = release_pending(day1.pending, _held(range(3, 5), "2025-03-02"), day="2025-03-02", k=K)
    released = day2.released[schema.ANON_ENCOUNTERS]
    assert len(released) == 5 and day2.pending[schema.ANON_ENCOUNTERS].empty
    assert set(released["partition_day"]) == {"2025-03-02"} and set(released["encounter_year"]) == {2025}
    assert PENDING_SINCE not in released.columns
    assert k_anonymity(released, ("age_band", "sex", "centre_id", "centre_level", "region")) >= K
    assert sorted(day2.released[schema.ANON_SYMPTOMS]["encounter_key"]) == sorted(released["encounter_key"])
    assert day2.expired_quarantine.empty
    assert _balanced(day2.counts)


def test_generalisation_over_the_pool_releases_rows_of_different_centres() -> None:
    held = {
        t: pd.concat([a, b], ignore_index=True)
        for (t, a), b in zip(
            _held(range(3), "2025-03-01", centre="C01").items(),
            _held(range(3, 6), "2025-03-01", centre="C02").values(),
            strict=True,
        )
    }
    settled = release_pending(empty_pending(), held, day="2025-03-01", k=K)
    released = settled.released[schema.ANON_ENCOUNTERS]
    assert len(released) == 6
    assert set(released["centre_id"]) == {SUPPRESSED}


def test_rows_that_never_reach_k_are_quarantined_after_the_window_with_their_children() -> None:
    pending = release_pending(empty_pending(), _held(range(2), "2025-03-01"), day="2025-03-01", k=K).pending
    for day in ("2025-03-02", "2025-03-03"):
        settled = release_pending(pending, _held(range(0), day), day=day, k=K, window_days=3)
        pending = settled.pending
    assert pending[schema.ANON_ENCOUNTERS].empty and pending[schema.ANON_SYMPTOMS].empty
    quarantine = settled.expired_quarantine
    assert list(quarantine.columns) == list(schema.QUARANTINE_COLUMNS)
    assert sorted(quarantine["table"]) == ["encounters", "encounters", "symptoms", "symptoms"]
    assert quarantine.loc[quarantine["table"] == "encounters", "reason"].str.endswith("over 3 days").all()
    assert settled.counts[schema.ANON_ENCOUNTERS]["expired"] == 2
    assert _balanced(settled.counts)


def test_a_row_still_inside_the_window_keeps_waiting() -> None:
    pending = release_pending(empty_pending(), _held(range(2), "2025-03-01"), day="2025-03-01", k=K).pending
    settled = release_pending(pending, _held(range(0), "2025-03-02"), day="2025-03-02", k=K, window_days=3)
    assert settled.counts[schema.ANON_ENCOUNTERS] == dict(zip(POOL_FIELDS, (2, 0, 0, 0, 2), strict=True))


def test_settling_is_deterministic() -> None:
    carried = release_pending(empty_pending(), _held(range(3), "2025-03-01"), day="2025-03-01", k=K).pending
    first = release_pending(carried, _held(range(3, 5), "2025-03-02"), day="2025-03-02", k=K)
    again = release_pending(carried, _held(range(3, 5), "2025-03-02"), day="2025-03-02", k=K)
    for table in schema.ANON_TABLES:
        pd.testing.assert_frame_equal(first.released[table], again.released[table])


def test_a_window_below_one_day_is_refused() -> None:
    with pytest.raises(ValueError, match="window_days: 0"):
        release_pending(empty_pending(), _held(range(1), "2025-03-01"), day="2025-03-01", k=K, window_days=0)
