"""The partitions `demo` materializes and its argument checks, without Dagster: they run before Dagster loads."""

import datetime as dt

MIN_TRAINING_DAYS = 21  # train 7+, validation 7, test 7 days (TrainingSetConfig defaults)


class DemoArgumentError(ValueError):
    """An argument `demo` refuses: `main` prints it and exits 2."""


def check_days(days: int, train: bool) -> None:
    """`--days` is at least 1, and at least MIN_TRAINING_DAYS when the demo trains."""
    if days < 1:
        raise DemoArgumentError(f"--days: must be at least 1, got {days}")
    if train and days < MIN_TRAINING_DAYS:
        raise DemoArgumentError(
            f"--days: training needs at least {MIN_TRAINING_DAYS} days, got {days} (or pass --no-train)"
        )


def demo_partitions(days: int, end: dt.date, first: dt.date) -> list[str]:
    """The `days` daily partition keys ending on `end` (inclusive), in order; none before `first`, the start of
    the partitions."""
    check_days(days, train=False)
    keys = [(end - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
    if dt.date.fromisoformat(keys[0]) < first:
        raise DemoArgumentError(f"--end/--days: partitions start on {first.isoformat()}, asked from {keys[0]}")
    return keys
