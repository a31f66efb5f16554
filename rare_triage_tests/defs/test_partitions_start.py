"""Where the daily partitions start: RARE_TRIAGE_PARTITIONS_START at definition load, 2024-01-01 by default."""

import os
import subprocess
import sys

import pytest

from rare_triage.defs.shared.keys import DEFAULT_PARTITIONS_START, PARTITIONS_START_ENV, partitions_start


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, DEFAULT_PARTITIONS_START),
        ({PARTITIONS_START_ENV: " "}, DEFAULT_PARTITIONS_START),
        ({PARTITIONS_START_ENV: "2026-11-02"}, "2026-11-02"),
    ],
)
def test_the_start_is_the_variable_or_the_default(environ: dict[str, str], expected: str) -> None:
    assert partitions_start(environ) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "02/11/2026"])
def test_a_start_that_is_not_a_date_fails_naming_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match=f"{PARTITIONS_START_ENV}: '{text}' is not a date"):
        partitions_start({PARTITIONS_START_ENV: text})


def test_the_partitions_of_the_code_location_start_on_the_configured_day() -> None:
    code = (
        "from rare_triage.defs.shared import keys; "
        "print(keys.DAILY_PARTITIONS.get_first_partition_key(), keys.MONITORING_PARTITIONS.get_first_partition_key())"
    )
    environ = {**os.environ, PARTITIONS_START_ENV: "2026-11-02"}
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["2026-11-02", "2026-11-02"]
