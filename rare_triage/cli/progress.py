"""Progress of a long command on the console, without Dagster: counts, the pace so far and the time left.

`Countdown` counts items done one after another and estimates the time left from the recent pace; `Console` shows a
status redrawn in place (a bar) when its stream is a terminal, and one plain line per update otherwise (CI logs).
"""

import contextlib
import shutil
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

RECENT = 10  # the time left follows the pace of the last RECENT items (the machine's load changes)
BAR_WIDTH = 24
CLEAR_LINE = "\r\x1b[K"


def format_seconds(seconds: float) -> str:
    """`7 s`, `2 min 05 s`, `1 h 03 min`."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """`[#########---------------]`: the share of `total` done."""
    filled = width if total <= 0 else min(width, width * done // total)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


@dataclass
class Countdown:
    """`total` items done one after another, from `started` (a time.monotonic() value)."""

    total: int
    started: float
    done: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))

    def __post_init__(self) -> None:
        self._last = self.started

    def advance(self, now: float) -> float:
        """One more item done at `now`; its duration in seconds."""
        seconds = now - self._last
        self._last = now
        self.done += 1
        self.recent.append(seconds)
        return seconds

    def pace(self) -> float | None:
        """Mean seconds per item over the recent ones; None before the first."""
        return sum(self.recent) / len(self.recent) if self.recent else None

    def seconds_left(self) -> float | None:
        """The items left at the recent pace; None before the first item is done."""
        pace = self.pace()
        return None if pace is None else pace * max(0, self.total - self.done)

    def describe(self, unit: str) -> str:
        """`12/35 partitions, 5.1 s each, about 2 min 00 s left` (no estimate before the first item)."""
        text = f"{self.done}/{self.total} {unit}"
        pace, left = self.pace(), self.seconds_left()
        if pace is None or left is None:
            return text
        if self.done >= self.total:
            return f"{text}, {pace:.1f} s each"
        return f"{text}, {pace:.1f} s each, about {format_seconds(left)} left"


class Console:
    """Lines and a status for the user: on a terminal the status is one line redrawn in place (cut to the terminal's
    width) and lines are printed above it; otherwise every status is a line of its own."""

    def __init__(self, stream: TextIO, interactive: bool | None = None) -> None:
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self._status = ""

    def line(self, text: str) -> None:
        """A line that stays (above the status on a terminal)."""
        if self.interactive and self._status:
            self.stream.write(CLEAR_LINE + text + "\n" + self._cut(self._status))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        """The current state: redrawn in place on a terminal, a line otherwise."""
        if not self.interactive:
            self.line(text)
            return
        self._status = text
        self.stream.write(CLEAR_LINE + self._cut(text))
        self.stream.flush()

    def end_status(self) -> None:
        """Keep the last status as a line (a terminal's next output starts below it)."""
        if self.interactive and self._status:
            self.stream.write("\n")
            self.stream.flush()
        self._status = ""

    def _cut(self, text: str) -> str:
        width = shutil.get_terminal_size().columns - 1
        return text if len(text) <= width else text[: max(0, width - 1)] + "…"


@contextlib.contextmanager
def warnings_above_status(console: Console) -> Iterator[None]:
    """On a terminal, Python warnings are printed as lines above the status (not across the bar); unchanged
    otherwise."""
    if not console.interactive:
        yield
        return
    previous = warnings.showwarning

    def show(  # noqa: PLR0917 - the signature of warnings.showwarning
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        console.line(warnings.formatwarning(message, category, filename, lineno, line).rstrip())

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous
