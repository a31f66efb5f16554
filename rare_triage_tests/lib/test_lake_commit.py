"""Several lake folders replaced together or not at all, on a real local filesystem."""

from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from rare_triage.lib.lake_commit import STAGING_FOLDER, CommitError, StagedFolder, commit_folders

FS = pafs.LocalFileSystem()


def _folders(root: Path, version: int, *, second: pd.DataFrame | None = None) -> list[StagedFolder]:
    first = {"encounters": pd.DataFrame({"key": [f"a{version}"]}), "vitals": pd.DataFrame({"v": [version]})}
    return [
        StagedFolder((root / "anonymized" / "partition_day=D").as_posix(), first),
        StagedFolder(
            (root / "quarantine" / "partition_day=D").as_posix(),
            {"data": second if second is not None else pd.DataFrame({"reason": [f"r{version}"]})},
        ),
    ]


def _content(root: Path) -> dict[str, list[object]]:
    return {
        path.relative_to(root).as_posix(): pq.read_table(path).to_pandas().iloc[:, 0].tolist()
        for path in sorted(root.rglob("*.parquet"))
    }


def test_both_folders_are_written_and_staging_is_removed(tmp_path: Path) -> None:
    committed = commit_folders(FS, tmp_path.as_posix(), "run-1", _folders(tmp_path, 1))
    assert _content(tmp_path) == {
        "anonymized/partition_day=D/encounters.parquet": ["a1"],
        "anonymized/partition_day=D/vitals.parquet": [1],
        "quarantine/partition_day=D/data.parquet": ["r1"],
    }
    assert [c.rows for c in committed] == [{"encounters": 1, "vitals": 1}, {"data": 1}]
    assert all(c.bytes > 0 for c in committed)
    assert list((tmp_path / STAGING_FOLDER).iterdir()) == []


def test_a_replacement_drops_tables_the_new_version_does_not_have(tmp_path: Path) -> None:
    commit_folders(FS, tmp_path.as_posix(), "run-1", _folders(tmp_path, 1))
    folders = _folders(tmp_path, 2)
    folders[0] = StagedFolder(folders[0].final, {"encounters": pd.DataFrame({"key": ["a2"]})})
    commit_folders(FS, tmp_path.as_posix(), "run-2", folders)
    assert _content(tmp_path) == {
        "anonymized/partition_day=D/encounters.parquet": ["a2"],
        "quarantine/partition_day=D/data.parquet": ["r2"],
    }


def test_a_failed_write_of_the_second_folder_replaces_neither(tmp_path: Path) -> None:
    commit_folders(FS, tmp_path.as_posix(), "run-1", _folders(tmp_path, 1))
    before = _content(tmp_path)
    unwritable = pd.DataFrame({"reason": [{"a": 1}, 3]})  # Arrow cannot convert a column of a dict and an int
    with pytest.raises(Exception, match="reason"):
        commit_folders(FS, tmp_path.as_posix(), "run-2", _folders(tmp_path, 2, second=unwritable))
    assert _content(tmp_path) == before
    assert list((tmp_path / STAGING_FOLDER).iterdir()) == []


def test_a_failed_swap_puts_back_the_folders_already_swapped(tmp_path: Path) -> None:
    """The first folder is swapped in, the second cannot be (its parent is a file): the first gets its old content."""
    commit_folders(FS, tmp_path.as_posix(), "run-1", _folders(tmp_path, 1)[:1])
    before = _content(tmp_path)
    (tmp_path / "quarantine").write_text("a file where the quarantine folder should be")
    with pytest.raises(CommitError, match="each holds what it held before"):
        commit_folders(FS, tmp_path.as_posix(), "run-2", _folders(tmp_path, 2))
    assert _content(tmp_path) == before
    assert list((tmp_path / STAGING_FOLDER).iterdir()) == []


def test_a_folder_outside_the_root_is_refused(tmp_path: Path) -> None:
    outside = StagedFolder((tmp_path.parent / "elsewhere").as_posix(), {"data": pd.DataFrame({"x": [1]})})
    with pytest.raises(ValueError, match="not inside the lake root"):
        commit_folders(FS, (tmp_path / "lake").as_posix(), "run-1", [outside])
