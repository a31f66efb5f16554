import datetime as dt

import duckdb
import pandas as pd
import pytest

from rare_triage.lib.training.windows import (
    DayWindow,
    TemporalWindows,
    compact_features,
    explicit_windows,
    label_distribution,
    last_days_windows,
    orphan_sized_windows,
    partition_rows_query,
    partitions_query,
    require_all_labels,
    window_query,
)

DAYS = [f"2025-01-{d:02d}" for d in range(1, 21)]


def test_last_days_windows_count_back_from_the_latest_partition() -> None:
    windows = last_days_windows(DAYS, train_days=0, validation_days=3, test_days=2)
    assert windows.test == DayWindow(dt.date(2025, 1, 19), dt.date(2025, 1, 20))
    assert windows.validation == DayWindow(dt.date(2025, 1, 16), dt.date(2025, 1, 18))
    assert windows.train == DayWindow(dt.date(2025, 1, 1), dt.date(2025, 1, 15))


def test_last_days_windows_with_a_bounded_training_window() -> None:
    windows = last_days_windows(DAYS, train_days=5, validation_days=3, test_days=2)
    assert windows.train == DayWindow(dt.date(2025, 1, 11), dt.date(2025, 1, 15))


def test_last_days_windows_refuse_when_nothing_is_left_for_training() -> None:
    with pytest.raises(ValueError, match="no day left for training"):
        last_days_windows(DAYS[:4], train_days=0, validation_days=2, test_days=2)


def test_last_days_windows_need_partitions() -> None:
    with pytest.raises(ValueError, match="no partition"):
        last_days_windows([], 0, 1, 1)


def test_explicit_windows_must_be_strictly_ordered() -> None:
    bounds = {
        "train_start": "2025-01-01",
        "train_end": "2025-01-10",
        "validation_start": "2025-01-10",
        "validation_end": "2025-01-12",
        "test_start": "2025-01-13",
        "test_end": "2025-01-14",
    }
    with pytest.raises(ValueError, match="validation must start after training ends"):
        explicit_windows(bounds)
    with pytest.raises(ValueError, match="test must start after validation ends"):
        explicit_windows({**bounds, "validation_start": "2025-01-11", "test_start": "2025-01-12"})
    assert explicit_windows({**bounds, "validation_start": "2025-01-11"}).test.end == dt.date(2025, 1, 14)


def test_explicit_windows_name_missing_and_malformed_days() -> None:
    with pytest.raises(ValueError, match="missing \\['test_end'\\]"):
        explicit_windows(
            {
                "train_start": "2025-01-01",
                "train_end": "2025-01-02",
                "validation_start": "2025-01-03",
                "validation_end": "2025-01-04",
                "test_start": "2025-01-05",
            }
        )
    with pytest.raises(ValueError, match="train_start: '2025-13-01'"):
        explicit_windows(
            {
                k: "2025-13-01"
                for k in ("train_start", "train_end", "validation_start", "validation_end", "test_start", "test_end")
            }
        )


@pytest.mark.parametrize("day_type", ["VARCHAR", "DATE", "TIMESTAMP"])
def test_window_query_reads_one_window_whatever_the_partition_column_type(day_type: str) -> None:
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA features")
    conn.execute(f"CREATE TABLE features.t (encounter_key VARCHAR, partition_day {day_type}, label VARCHAR)")
    conn.executemany("INSERT INTO features.t VALUES (?, ?, ?)", [(f"e{i}", DAYS[i], "none") for i in range(10)])
    rows = conn.execute(window_query("features.t"), ["2025-01-03", "2025-01-05"]).df()
    assert rows["partition_day"].tolist() == ["2025-01-03", "2025-01-04", "2025-01-05"]
    assert [r[0] for r in conn.execute(partitions_query("features.t")).fetchall()] == DAYS[:10]
    picked = conn.execute(partition_rows_query("features.t", 2), ["2025-01-07", "2025-01-02"]).df()
    assert picked["partition_day"].tolist() == ["2025-01-02", "2025-01-07"]
    assert picked["encounter_key"].tolist() == ["e1", "e6"]


def test_table_names_are_checked_before_reaching_sql() -> None:
    with pytest.raises(ValueError, match="table: 'x; DROP TABLE y'"):
        window_query("x; DROP TABLE y")
    with pytest.raises(ValueError, match="table: 'x; DROP TABLE y'"):
        partition_rows_query("x; DROP TABLE y", 1)
    with pytest.raises(ValueError, match="at least one day"):
        partition_rows_query("features.t", 0)


def test_a_window_is_found_by_name() -> None:
    windows = last_days_windows(DAYS, train_days=0, validation_days=3, test_days=2)
    assert windows.window("validation") == windows.validation
    with pytest.raises(ValueError, match="'holdout' is not one of"):
        windows.window("holdout")


def test_label_distribution_lists_every_label_and_missing_labels_are_named() -> None:
    frame = pd.DataFrame({"label": ["none", "none", "orphan"]})
    assert label_distribution(frame) == {
        "none": 2,
        "common_mild": 0,
        "common_acute": 0,
        "common_chronic": 0,
        "orphan": 1,
    }
    with pytest.raises(ValueError, match="validation window: label\\(s\\) \\['common_mild'"):
        require_all_labels(frame, "validation")


def test_compact_features_keeps_flags_exact_in_float32() -> None:
    frame = pd.DataFrame({"hpo_0001945": [1.0, 0.0, float("nan")], "age_years": [1.5, 2.0, 3.0]})
    out = compact_features(frame)
    assert out["hpo_0001945"].dtype == "float32" and out["age_years"].dtype == "float64"
    assert out["hpo_0001945"].tolist()[:2] == [1.0, 0.0]


def test_windows_as_dict_round_trip() -> None:
    windows = TemporalWindows(
        DayWindow(dt.date(2025, 1, 1), dt.date(2025, 1, 2)),
        DayWindow(dt.date(2025, 1, 3), dt.date(2025, 1, 3)),
        DayWindow(dt.date(2025, 1, 4), dt.date(2025, 1, 5)),
    )
    assert explicit_windows({f"{n}_{e}": d for n, w in windows.as_dict().items() for e, d in w.items()}) == windows


def _orphans(days: int, per_day: int, start: str = "2025-03-01") -> dict[str, int]:
    first = dt.date.fromisoformat(start)
    return {(first + dt.timedelta(days=i)).isoformat(): per_day for i in range(days)}


def test_windows_grow_until_each_holds_the_orphans_asked_for() -> None:
    windows = orphan_sized_windows(_orphans(60, 20), min_orphans=300, train_days=0, validation_days=7, test_days=7)
    # 300 orphans at 20 a day: 15 days each, the test window ending on the latest day
    assert windows.test.as_dict() == {"start": "2025-04-15", "end": "2025-04-29"}
    assert windows.validation.as_dict() == {"start": "2025-03-31", "end": "2025-04-14"}
    assert windows.train.as_dict() == {"start": "2025-03-01", "end": "2025-03-30"}


def test_windows_keep_their_minimum_days_when_orphans_abound() -> None:
    windows = orphan_sized_windows(_orphans(30, 100), min_orphans=300, train_days=0, validation_days=7, test_days=7)
    assert (windows.test.end - windows.test.start).days + 1 == 7
    assert (windows.validation.end - windows.validation.start).days + 1 == 7


def test_missing_days_count_as_none_and_too_few_orphans_are_named() -> None:
    counts = _orphans(40, 20)
    del counts["2025-04-05"]
    windows = orphan_sized_windows(counts, min_orphans=100, train_days=0, validation_days=1, test_days=1)
    # 04-05 holds no partition: the test window takes one more day to reach 100
    assert windows.test.as_dict() == {"start": "2025-04-04", "end": "2025-04-09"}
    assert windows.validation.as_dict() == {"start": "2025-03-30", "end": "2025-04-03"}
    with pytest.raises(ValueError, match="min_window_orphans: the validation window needs 300 orphan encounters"):
        orphan_sized_windows(_orphans(20, 20), min_orphans=300, train_days=0, validation_days=7, test_days=7)
    with pytest.raises(ValueError, match=r"4 day\(s\) left for training before 2025-03-05 \(at least 7 needed"):
        orphan_sized_windows(_orphans(34, 20), min_orphans=300, train_days=0, validation_days=7, test_days=7)
