"""What an in-process run shows while it runs: its Dagster events, received as the instance stores them
(`DagsterInstance.add_event_listener`), as progress on a Console.

The run's own console logger is kept quiet (QUIET_CONSOLE), so each event is shown once, here: warnings as lines,
the steps of a run followed `step by step`, the candidate search of `triage_model` with its estimates, and every
step failure collected once (its error with its stack trace; none for a step that failed because one of its blocking
checks did, the check summary names those).
"""

import logging
import time
from collections.abc import Callable, Collection, Sequence

import dagster as dg

from rare_triage.cli.candidate_progress import CandidateSearch
from rare_triage.cli.progress import Console, format_seconds

# Dagster's console logger prints every event of level >= its threshold, stack traces of failures included, and
# nothing is logged at CRITICAL: the reporter prints instead.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"  # a step that failed because a blocking check did
CANDIDATE_STEP = "triage_model"
MAX_INFO = 160  # an INFO message of a step is cut here (some log whole tables); warnings are shown whole


def _cut(text: str, limit: int = MAX_INFO) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _level(entry: dg.EventLogEntry) -> int:
    level = entry.level
    return level if isinstance(level, int) else logging.getLevelName(str(level).upper())


class RunReporter:
    """Receives the events of one run. `steps`: show each step starting and ending (but `quiet_steps`, e.g. the
    checks, which the check summary shows), and the messages the steps log at INFO (else warnings only);
    `candidates`: the candidate names of `triage_model`, in the order they run."""

    def __init__(
        self,
        console: Console,
        label: str,
        *,
        steps: bool = False,
        quiet_steps: Collection[str] = (),
        candidates: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.label = label
        self.steps = steps
        self.quiet_steps = set(quiet_steps)
        self.candidates = list(candidates)
        self.clock = clock
        self.failures: list[str] = []
        self._started: dict[str, float] = {}
        self._step_failures = 0
        self._search: CandidateSearch | None = None

    def __call__(self, entry: dg.EventLogEntry) -> None:
        event = entry.dagster_event
        step = entry.step_key or ""
        if event is None:
            self._message(step, entry)
        elif event.is_step_start:
            self._step_started(step)
        elif event.is_step_success and self._shown(step):
            took = self.clock() - self._started.get(step, self.clock())
            self.console.line(f"  {step}: ok in {format_seconds(took)}")
        elif event.is_step_failure:
            self._step_failed(step, event)
        elif event.is_run_failure:
            self._run_failed(event)
        elif _level(entry) >= logging.WARNING:
            self.console.line(f"  {step or self.label}: {entry.message}")

    def _message(self, step: str, entry: dg.EventLogEntry) -> None:
        message = entry.user_message
        if self._search is not None and step == CANDIDATE_STEP:
            line = self._search.record(message, self.clock())
            if line is not None:
                self.console.line(f"  {step}: {line}")
                return
        if _level(entry) >= logging.WARNING:
            self.console.line(f"  {step or self.label}: {logging.getLevelName(_level(entry)).lower()}: {message}")
        elif self.steps and _level(entry) >= logging.INFO:
            self.console.line(_cut(f"  {step}: {message}"))

    def _step_started(self, step: str) -> None:
        """A line (not a status redrawn in place: other libraries print while steps run, MLflow among them)."""
        now = self.clock()
        self._started[step] = now
        if self._shown(step):
            self.console.line(f"  {step}: started")
        if step == CANDIDATE_STEP and self.candidates:
            self._search = CandidateSearch(self.candidates, now)
            self.console.line(f"  {step}: cross-validating {len(self.candidates)} candidates")

    def _shown(self, step: str) -> bool:
        return self.steps and step not in self.quiet_steps

    def _step_failed(self, step: str, event: dg.DagsterEvent) -> None:
        self._step_failures += 1
        error = event.step_failure_data.error
        if error is not None and error.cls_name == CHECK_FAILED_ERROR:
            return
        if error is None:
            self.failures.append(f"step {step} failed: {event.message}")
        else:
            self.failures.append(f"step {step} failed:\n{error.to_string().rstrip()}")

    def _run_failed(self, event: dg.DagsterEvent) -> None:
        """The run's error, when no step failed: an in-process run's failure repeats the error of its first failed
        step (printed already, or a failed check's)."""
        error = getattr(event.event_specific_data, "error", None)
        if error is not None and not self._step_failures:
            self.failures.append(f"{self.label} failed:\n{error.to_string().rstrip()}")
