"""Temporal train / validation / test windows over daily feature partitions, and the SQL that reads one.

The test window is strictly later than validation, which is strictly later than training: the model is
judged on days it has never seen, as it will be in production.
"""

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from rare_triage.lib import schema

WINDOW_NAMES = ("train", "validation", "test")
DEFAULT_FEATURES_TABLE = "features.encounter_features"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def parse_day(text: str, field: str) -> dt.date:
    """A 'YYYY-MM-DD' day; a clear error naming the field otherwise."""
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError as exc:
        raise ValueError(f"{field}: {text!r} is not a day like '2025-01-31'") from exc


@dataclass(frozen=True)
class DayWindow:
    """Consecutive days, both ends included."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window: end {self.end} is before start {self.start}")

    def contains(self, day: dt.date) -> bool:
        return self.start <= day <= self.end

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class TemporalWindows:
    """Train, validation and test windows, strictly ordered in time."""

    train: DayWindow
    validation: DayWindow
    test: DayWindow

    def __post_init__(self) -> None:
        if not self.train.end < self.validation.start:
            raise ValueError(
                f"windows: validation must start after training ends (train ends {self.train.end}, "
                f"validation starts {self.validation.start})"
            )
        if not self.validation.end < self.test.start:
            raise ValueError(
                f"windows: test must start after validation ends (validation ends {self.validation.end}, "
                f"test starts {self.test.start})"
            )

    def items(self) -> list[tuple[str, DayWindow]]:
        return [("train", self.train), ("validation", self.validation), ("test", self.test)]

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {name: window.as_dict() for name, window in self.items()}

    def window(self, name: str) -> DayWindow:
        """The window called `name` (one of WINDOW_NAMES)."""
        windows = dict(self.items())
        if name not in windows:
            raise ValueError(f"window: {name!r} is not one of {list(WINDOW_NAMES)}")
        return windows[name]


def explicit_windows(bounds: Mapping[str, str | None]) -> TemporalWindows:
    """Windows from `<window>_start` / `<window>_end` days (all six required)."""
    keys = [f"{name}_{end}" for name in WINDOW_NAMES for end in ("start", "end")]
    missing = [k for k in keys if not bounds.get(k)]
    if missing:
        raise ValueError(f"windows: explicit dates need all of {keys}; missing {missing}")
    days = {k: parse_day(str(bounds[k]), k) for k in keys}
    return TemporalWindows(
        *(DayWindow(days[f"{name}_start"], days[f"{name}_end"]) for name in WINDOW_NAMES),
    )


def last_days_windows(
    available_days: Sequence[str], train_days: int, validation_days: int, test_days: int
) -> TemporalWindows:
    """Test = the last `test_days` days up to the latest partition present, validation the days before, then
    training (`train_days` = 0 takes every earlier day present)."""
    for field, value, minimum in (("train_days", train_days, 0), ("validation_days", validation_days, 1)):
        if value < minimum:
            raise ValueError(f"{field}: must be >= {minimum}, got {value}")
    if test_days < 1:
        raise ValueError(f"test_days: must be >= 1, got {test_days}")
    if not available_days:
        raise ValueError("windows: the features table has no partition yet (no partition_day present)")
    days = sorted(parse_day(d, "partition_day") for d in available_days)
    latest = days[-1]
    test = DayWindow(latest - dt.timedelta(days=test_days - 1), latest)
    validation_end = test.start - dt.timedelta(days=1)
    validation = DayWindow(validation_end - dt.timedelta(days=validation_days - 1), validation_end)
    train_end = validation.start - dt.timedelta(days=1)
    train_start = days[0] if train_days == 0 else train_end - dt.timedelta(days=train_days - 1)
    if train_start > train_end:
        raise ValueError(
            f"windows: no day left for training before {validation.start} (partitions {days[0]}..{latest}, "
            f"validation_days={validation_days}, test_days={test_days})"
        )
    return TemporalWindows(DayWindow(train_start, train_end), validation, test)


def orphan_sized_windows(
    orphans_per_day: Mapping[str, int],
    *,
    min_orphans: int,
    train_days: int,
    validation_days: int,
    test_days: int,
    min_train_days: int = 7,
) -> TemporalWindows:
    """Test = the last days up to the latest partition present, at least `test_days` of them and as many more as
    it takes to hold `min_orphans` orphan encounters; validation the days before, sized the same way; then training
    (`train_days` = 0 takes every earlier day present), at least `min_train_days` days. A gate judged on a window
    of a few dozen orphan cases is a coin toss: the window grows until its interval is narrow enough.

    `orphans_per_day` maps each partition day present ('YYYY-MM-DD') to its number of orphan encounters."""
    if min_orphans < 0:
        raise ValueError(f"min_window_orphans: must be >= 0, got {min_orphans}")
    for field, value in (("validation_days", validation_days), ("test_days", test_days)):
        if value < 1:
            raise ValueError(f"{field}: must be >= 1, got {value}")
    if train_days < 0:
        raise ValueError(f"train_days: must be >= 0, got {train_days}")
    if not orphans_per_day:
        raise ValueError("windows: the features table has no partition yet (no partition_day present)")
    counts = {parse_day(d, "partition_day"): int(n) for d, n in orphans_per_day.items()}
    first, latest = min(counts), max(counts)

    def grow(end: dt.date, days: int, name: str) -> DayWindow:
        start = end - dt.timedelta(days=days - 1)
        held = sum(n for day, n in counts.items() if start <= day <= end)
        while held < min_orphans and start > first:
            start -= dt.timedelta(days=1)
            held += counts.get(start, 0)
        if held < min_orphans:
            raise ValueError(
                f"min_window_orphans: the {name} window needs {min_orphans} orphan encounters and every day from "
                f"{first} to {end} holds {held}; materialize more days or lower min_window_orphans"
            )
        return DayWindow(start, end)

    test = grow(latest, test_days, "test")
    validation = grow(test.start - dt.timedelta(days=1), validation_days, "validation")
    train_end = validation.start - dt.timedelta(days=1)
    train_start = first if train_days == 0 else train_end - dt.timedelta(days=train_days - 1)
    available = (train_end - max(train_start, first)).days + 1
    if available < min_train_days:
        raise ValueError(
            f"windows: {max(available, 0)} day(s) left for training before {validation.start} (at least "
            f"{min_train_days} needed; partitions {first}..{latest}, validation {validation.start}..{validation.end} "
            f"and test {test.start}..{test.end} sized for {min_orphans} orphan encounters each)"
        )
    return TemporalWindows(DayWindow(max(train_start, first), train_end), validation, test)


def orphans_per_day_query(table: str) -> str:
    """Orphan encounters per partition day present, the day as 'YYYY-MM-DD'."""
    if not _TABLE_NAME.match(table):
        raise ValueError(f"table: {table!r} is not a table name like 'features.encounter_features'")
    return (
        f"SELECT strftime(CAST(partition_day AS DATE), '%Y-%m-%d') AS day, "
        f"count(*) FILTER (WHERE {schema.LABEL_COLUMN} = '{schema.ORPHAN_LABEL}') AS orphans "
        f"FROM {table} GROUP BY day ORDER BY day"
    )


def window_query(table: str) -> str:
    """SELECT of one window's rows (parameters: start day, end day), partition_day returned as 'YYYY-MM-DD'."""
    if not _TABLE_NAME.match(table):
        raise ValueError(f"table: {table!r} is not a table name like 'features.encounter_features'")
    return (
        f"SELECT * REPLACE (strftime(CAST(partition_day AS DATE), '%Y-%m-%d') AS partition_day) FROM {table} "
        "WHERE CAST(partition_day AS DATE) BETWEEN CAST(? AS DATE) AND CAST(? AS DATE) "
        "ORDER BY partition_day, encounter_key"
    )


def partitions_query(table: str) -> str:
    """The distinct partition days present in the features table, as 'YYYY-MM-DD'."""
    if not _TABLE_NAME.match(table):
        raise ValueError(f"table: {table!r} is not a table name like 'features.encounter_features'")
    return f"SELECT DISTINCT strftime(CAST(partition_day AS DATE), '%Y-%m-%d') AS day FROM {table} ORDER BY day"


def partition_rows_query(table: str, n_days: int) -> str:
    """SELECT of the rows of `n_days` given partition days (parameters: the days as 'YYYY-MM-DD')."""
    if not _TABLE_NAME.match(table):
        raise ValueError(f"table: {table!r} is not a table name like 'features.encounter_features'")
    if n_days < 1:
        raise ValueError(f"partitions: at least one day is needed, got {n_days}")
    days = ", ".join("CAST(? AS DATE)" for _ in range(n_days))
    return (
        f"SELECT * REPLACE (strftime(CAST(partition_day AS DATE), '%Y-%m-%d') AS partition_day) FROM {table} "
        f"WHERE CAST(partition_day AS DATE) IN ({days}) ORDER BY partition_day, encounter_key"
    )


@dataclass(frozen=True)
class TrainingSet:
    """The rows of the three windows, read from the features table, with the days each window holds; `table` and
    `database` say where they were read from (the source of the MLflow datasets)."""

    windows: TemporalWindows
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    table: str = DEFAULT_FEATURES_TABLE
    database: str | None = None

    def frames(self) -> list[tuple[str, pd.DataFrame]]:
        return [("train", self.train), ("validation", self.validation), ("test", self.test)]

    def partitions(self) -> dict[str, list[str]]:
        """Partition days present per window."""
        return {name: sorted(frame["partition_day"].astype(str).unique()) for name, frame in self.frames()}

    def all_partitions(self) -> list[str]:
        return sorted({day for days in self.partitions().values() for day in days})


def label_distribution(frame: pd.DataFrame) -> dict[str, int]:
    """Row count per label, every label listed."""
    counts = frame[schema.LABEL_COLUMN].value_counts()
    return {label: int(counts.get(label, 0)) for label in schema.LABELS}


def require_all_labels(frame: pd.DataFrame, window: str) -> None:
    """Raise naming the window and the missing labels: every class must be present to fit or calibrate."""
    counts = label_distribution(frame)
    missing = [label for label, n in counts.items() if n == 0]
    if missing:
        raise ValueError(f"{window} window: label(s) {missing} have no row ({len(frame)} rows); widen the window")


def compact_features(frame: pd.DataFrame) -> pd.DataFrame:
    """hpo_*/sys_* flags as float32 (0/1/NaN are exact): halves the memory of a large window."""
    flags = [c for c in frame.columns if c.startswith(schema.PHENOTYPE_PREFIXES)]
    return frame.astype(dict.fromkeys(flags, "float32"))
