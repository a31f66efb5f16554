"""The candidate search of `triage_model` as progress, read from its log, without Dagster.

The training step logs one line `cv <candidate>: {...}` when the cross-validation of a candidate ends
(rare_triage.lib.training.cross_validation). From those lines: the candidates done, the time each took, and the time
left, each candidate still to run estimated by the candidates of its model family done so far (the family is the
name up to the first `+`: logistic_regression, random_forest, xgboost), else by every candidate done so far.
"""

import re
from collections.abc import Sequence

from rare_triage.cli.progress import format_seconds

CV_LINE = re.compile(r"^cv (?P<name>[\w.+-]+): ")


def family(candidate: str) -> str:
    """`xgboost` for `xgboost+smote`."""
    return candidate.split("+", 1)[0]


class CandidateSearch:
    """The candidates `names`, cross-validated in this order from `started` (a time.monotonic() value)."""

    def __init__(self, names: Sequence[str], started: float) -> None:
        self.names = list(names)
        self.seconds: dict[str, float] = {}
        self._last = started

    def record(self, message: str, now: float) -> str | None:
        """A progress line when `message` ends a candidate's cross-validation; None for any other message."""
        match = CV_LINE.match(message)
        if match is None:
            return None
        name = match["name"]
        took = now - self._last
        self._last = now
        self.seconds[name] = took
        return self.describe(name, took)

    def remaining(self) -> list[str]:
        return [name for name in self.names if name not in self.seconds]

    def estimate(self, candidate: str) -> float | None:
        """Seconds `candidate` should take: the mean of its family done so far, else of every candidate done."""
        same = [s for name, s in self.seconds.items() if family(name) == family(candidate)]
        pool = same or list(self.seconds.values())
        return sum(pool) / len(pool) if pool else None

    def seconds_left(self) -> float | None:
        estimates = [self.estimate(name) for name in self.remaining()]
        return None if any(e is None for e in estimates) else sum(e for e in estimates if e is not None)

    def describe(self, name: str, took: float) -> str:
        """`candidate 4/10 random_forest+class_weight: 41 s; next random_forest+smote (about 41 s), about 5 min
        02 s left for 6`."""
        total = max(len(self.names), len(self.seconds))
        text = f"candidate {len(self.seconds)}/{total} {name}: {format_seconds(took)}"
        remaining = self.remaining()
        if not remaining:
            return text + "; the chosen candidate is refitted and calibrated next"
        following, left = self.estimate(remaining[0]), self.seconds_left()
        about = f" (about {format_seconds(following)})" if following is not None else ""
        ending = f", about {format_seconds(left)} left for {len(remaining)}" if left is not None else ""
        return f"{text}; next {remaining[0]}{about}{ending}"
