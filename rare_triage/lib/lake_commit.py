"""Several partition folders of the lake replaced together, or none of them.

A step with several outputs (the governance step: anonymized tables and quarantine) first writes every folder in
full to a staging area of its run, where no reader looks. Only when all are written does it swap them in, one by one:
each previous folder is kept aside until every swap succeeded, and a failed swap puts the ones already made back.
Writing, the slow and fallible part, thus never leaves one output replaced and the other not; what remains is a
window of folder moves (renames on a local disk; copies of a few objects on S3), rolled back on failure.

Layout: ``<root>/_staging/<run id>-<random>/new/<relative folder>`` and ``.../previous/<relative folder>`` (one
staging folder per commit: steps of one run may commit at the same time), removed when the commit ends, whether it
succeeded or not.
"""

import posixpath
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow.fs as pafs

from rare_triage.lib.lake_fs import delete_dir, write_parquet

STAGING_FOLDER = "_staging"


class CommitError(RuntimeError):
    """The folders could not be swapped in; every folder holds what it held before."""


@dataclass(frozen=True)
class StagedFolder:
    """One folder to replace: its final path and the tables to write into it."""

    final: str
    tables: Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class CommittedFolder:
    """A folder now in place: its path, bytes written and rows per table."""

    final: str
    bytes: int
    rows: dict[str, int]


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return bool(fs.get_file_info(path).type == pafs.FileType.Directory)


def _move_folder(fs: pafs.FileSystem, source: str, target: str) -> None:
    """Move a folder: one rename on a local disk; on S3 (no folder rename) a copy of each object, then a delete."""
    fs.create_dir(posixpath.dirname(target), recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        fs.move(source, target)
        return
    for info in fs.get_file_info(pafs.FileSelector(source, recursive=True)):
        if info.type == pafs.FileType.File:
            fs.copy_file(info.path, posixpath.join(target, posixpath.relpath(info.path, source)))
    fs.delete_dir(source)


def commit_folders(
    fs: pafs.FileSystem, root: str, run_id: str, folders: Sequence[StagedFolder]
) -> list[CommittedFolder]:
    """Write every folder to staging, then swap them all in; on any failure none is replaced.

    ``root`` is the lake root; each ``final`` must lie under it. Raises CommitError (the cause chained) when a
    swap fails after staging; an error while staging propagates as it is, with nothing replaced.
    """
    if not run_id or "/" in run_id:
        raise ValueError(f"run_id: {run_id!r} must be a non-empty name without '/'")
    staging = posixpath.join(root, STAGING_FOLDER, f"{run_id}-{uuid.uuid4().hex[:12]}")
    relative = []
    for folder in folders:
        rel = posixpath.relpath(folder.final, root)
        if rel.startswith("..") or rel.split("/")[0] == STAGING_FOLDER:
            raise ValueError(f"folder {folder.final!r} is not inside the lake root {root!r}")
        relative.append(rel)
    try:
        written = []
        for folder, rel in zip(folders, relative, strict=True):
            new = posixpath.join(staging, "new", rel)
            delete_dir(fs, new)
            size = sum(
                write_parquet(fs, posixpath.join(new, f"{name}.parquet"), frame)
                for name, frame in folder.tables.items()
            )
            written.append(CommittedFolder(folder.final, size, {name: len(f) for name, f in folder.tables.items()}))
        _swap_in(fs, staging, folders, relative)
        return written
    finally:
        delete_dir(fs, staging)


def _swap_in(fs: pafs.FileSystem, staging: str, folders: Sequence[StagedFolder], relative: Sequence[str]) -> None:
    swapped: list[tuple[str, str, bool]] = []  # final, previous, whether a previous folder was set aside
    try:
        for folder, rel in zip(folders, relative, strict=True):
            previous = posixpath.join(staging, "previous", rel)
            had_previous = _exists(fs, folder.final)
            if had_previous:
                _move_folder(fs, folder.final, previous)
            swapped.append((folder.final, previous, had_previous))
            _move_folder(fs, posixpath.join(staging, "new", rel), folder.final)
    except Exception as exc:
        for final, previous, had_previous in reversed(swapped):
            delete_dir(fs, final)
            if had_previous:
                _move_folder(fs, previous, final)
        raise CommitError(
            f"could not put {len(folders)} folders in place together ({type(exc).__name__}); "
            f"each holds what it held before"
        ) from exc
