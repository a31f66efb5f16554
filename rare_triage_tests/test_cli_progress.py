"""The console progress of the CLI: durations in words, the bar, the countdown's estimate, a terminal's status line
redrawn in place against plain lines for logs, and the candidate search's estimates per model family."""

import io
import warnings

import pytest

from rare_triage.cli.candidate_progress import CandidateSearch, family
from rare_triage.cli.progress import CLEAR_LINE, Console, Countdown, bar, format_seconds, warnings_above_status


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0 s"), (7.6, "8 s"), (59.4, "59 s"), (125, "2 min 05 s"), (3780, "1 h 03 min")]
)
def test_durations_read_in_seconds_minutes_or_hours(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_the_bar_fills_with_the_share_done() -> None:
    assert bar(0, 4, width=8) == "[--------]"
    assert bar(1, 4, width=8) == "[##------]"
    assert bar(4, 4, width=8) == "[########]"


def test_the_countdown_estimates_the_items_left_at_the_recent_pace() -> None:
    countdown = Countdown(total=5, started=100.0)
    assert countdown.describe("partitions") == "0/5 partitions"  # no estimate before the first item
    assert countdown.advance(104.0) == 4.0
    assert countdown.advance(110.0) == 6.0
    assert countdown.seconds_left() == 15.0  # 3 left at 5 s each
    assert countdown.describe("partitions") == "2/5 partitions, 5.0 s each, about 15 s left"
    for now in (115.0, 120.0, 125.0):
        countdown.advance(now)
    assert countdown.describe("partitions") == "5/5 partitions, 5.0 s each"


def test_the_countdown_follows_the_recent_pace_only() -> None:
    countdown = Countdown(total=30, started=0.0)
    now = 0.0
    for seconds in [100.0] + [2.0] * 10:  # a slow first item, then ten fast ones
        now += seconds
        countdown.advance(now)
    assert countdown.pace() == 2.0


def test_a_terminal_redraws_the_status_in_place_and_prints_lines_above_it() -> None:
    stream = io.StringIO()
    console = Console(stream, interactive=True)
    console.status("[#---] 1/4")
    console.status("[##--] 2/4")
    console.line("checks: warn")
    console.end_status()
    assert stream.getvalue() == (f"{CLEAR_LINE}[#---] 1/4{CLEAR_LINE}[##--] 2/4{CLEAR_LINE}checks: warn\n[##--] 2/4\n")


def test_without_a_terminal_every_status_is_a_line() -> None:
    stream = io.StringIO()
    console = Console(stream, interactive=False)
    console.status("1/4 partitions")
    console.line("checks: warn")
    console.status("2/4 partitions")
    console.end_status()
    assert stream.getvalue() == "1/4 partitions\nchecks: warn\n2/4 partitions\n"
    assert "\r" not in stream.getvalue()


def test_a_stream_that_is_not_a_terminal_gets_plain_lines_by_default() -> None:
    assert Console(io.StringIO()).interactive is False


NAMES = [
    "logistic_regression+class_weight",
    "logistic_regression+smote",
    "random_forest+class_weight",
    "random_forest+smote",
]


def test_a_candidate_line_says_how_long_it_took_and_estimates_the_rest_by_family() -> None:
    search = CandidateSearch(NAMES, started=0.0)
    assert search.record("windows {...}", 3.0) is None
    first = search.record("cv logistic_regression+class_weight: {'orphan_pr_auc': 0.86}", 10.0)
    assert first == (
        "candidate 1/4 logistic_regression+class_weight: 10 s; next logistic_regression+smote (about 10 s), "
        "about 30 s left for 3"
    )
    search.record("cv logistic_regression+smote: {}", 30.0)  # 20 s
    # random forests: no forest done yet, so the mean of every candidate done (15 s) each
    assert search.estimate("random_forest+class_weight") == 15.0
    third = search.record("cv random_forest+class_weight: {}", 90.0)  # 60 s
    assert third == (
        "candidate 3/4 random_forest+class_weight: 1 min 00 s; next random_forest+smote (about 1 min 00 s), "
        "about 1 min 00 s left for 1"
    )
    last = search.record("cv random_forest+smote: {}", 140.0)
    assert last == "candidate 4/4 random_forest+smote: 50 s; the chosen candidate is refitted and calibrated next"


def test_the_family_of_a_candidate_is_its_model() -> None:
    assert family("xgboost+class_weight+two_stage") == "xgboost"


def test_on_a_terminal_python_warnings_are_printed_above_the_status() -> None:
    stream = io.StringIO()
    console = Console(stream, interactive=True)
    console.status("[#---] 1/4")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        before = warnings.showwarning
        with warnings_above_status(console):
            warnings.warn("concatenation with empty entries", FutureWarning, stacklevel=1)
        assert warnings.showwarning is before  # restored
    assert stream.getvalue().startswith(f"{CLEAR_LINE}[#---] 1/4{CLEAR_LINE}")
    assert "test_cli_progress.py:" in stream.getvalue()  # where it was raised, as Python shows it
    assert "FutureWarning: concatenation with empty entries\n" in stream.getvalue()
    assert stream.getvalue().endswith("\n[#---] 1/4")  # the status redrawn below it


def test_without_a_terminal_python_warnings_go_where_they_always_go() -> None:
    console = Console(io.StringIO(), interactive=False)
    before = warnings.showwarning
    with warnings_above_status(console):
        assert warnings.showwarning is before
