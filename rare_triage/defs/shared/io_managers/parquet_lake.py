"""Parquet IO manager for the lake: one folder per asset and partition, one file per table."""

import posixpath
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rare_triage.defs.shared.s3 import S3Connection
from rare_triage.lib.lake_commit import CommittedFolder, StagedFolder, commit_folders
from rare_triage.lib.lake_fs import list_parquet_files, read_parquet, resolve_filesystem

SINGLE_TABLE = "data"


class ParquetLakeIOManager(dg.ConfigurableIOManager, S3Connection):
    """Stores a DataFrame, or a mapping of table name to DataFrame, as Parquet.

    Layout: ``<base_uri>/<asset key>/partition_day=<key>/<table>.parquet`` (``data.parquet`` for a single
    DataFrame); non-partitioned assets use ``<asset key>/all/``. With ``load_as_arrow`` inputs come as pyarrow
    Tables (compact strings), for steps that convert to pandas piece by piece. ``base_uri`` is a local folder or
    ``s3://bucket/prefix`` on any S3-compatible server (``s3_endpoint_url``).

    A partition folder is written in full to the run's staging area, then swapped in (lib.lake_commit): a failed
    write leaves the previous content. A step with several outputs that must land together writes them with
    `commit_partition_outputs` before yielding any, and yields the `CommittedFolder` each one returned.
    """

    base_uri: str
    load_as_arrow: bool = False

    def _filesystem(self) -> tuple[pafs.FileSystem, str]:
        return resolve_filesystem(self.base_uri, self.s3_options())

    def _asset_dir(self, root: str, key: dg.AssetKey) -> str:
        return posixpath.join(root, *key.path)

    def _partition_dir(self, root: str, key: dg.AssetKey, partition: str | None) -> str:
        leaf = f"partition_day={partition}" if partition is not None else "all"
        return posixpath.join(self._asset_dir(root, key), leaf)

    def _location(self, folder: str) -> str:
        return f"s3://{folder}" if self.base_uri.startswith("s3://") else folder

    def _metadata(self, committed: CommittedFolder) -> dict[str, Any]:
        return {
            "path": dg.MetadataValue.path(self._location(committed.final)),
            "bytes": committed.bytes,
            "tables": dg.MetadataValue.json(committed.rows),
        }

    def commit_partition_outputs(
        self, run_id: str, partition: str | None, outputs: Mapping[dg.AssetKey, Mapping[str, pd.DataFrame]]
    ) -> dict[dg.AssetKey, CommittedFolder]:
        """Write the tables of several assets' partition and put them in place together, or none of them."""
        fs, root = self._filesystem()
        folders = []
        for key, tables in outputs.items():
            for name, frame in tables.items():
                if not isinstance(frame, pd.DataFrame):
                    kind = type(frame).__name__
                    raise TypeError(f"{key.to_user_string()}: table {name!r} is {kind}, not a DataFrame")
            folders.append(StagedFolder(self._partition_dir(root, key, partition), dict(tables)))
        committed = commit_folders(fs, root, run_id, folders)
        return dict(zip(outputs, committed, strict=True))

    def handle_output(
        self, context: dg.OutputContext, obj: pd.DataFrame | Mapping[str, pd.DataFrame] | CommittedFolder
    ) -> None:
        if isinstance(obj, CommittedFolder):  # written by commit_partition_outputs in the step itself
            fs, root = self._filesystem()
            partition = context.partition_key if context.has_asset_partitions else None
            expected = self._partition_dir(root, context.asset_key, partition)
            if obj.final != expected or not list_parquet_files(fs, expected):
                raise ValueError(f"{context.asset_key.to_user_string()}: no committed partition at {expected}")
            context.add_output_metadata(self._metadata(obj))
            return
        partition = context.partition_key if context.has_asset_partitions else None
        tables = {SINGLE_TABLE: obj} if isinstance(obj, pd.DataFrame) else dict(obj)
        committed = self.commit_partition_outputs(context.run_id, partition, {context.asset_key: tables})
        context.add_output_metadata(self._metadata(committed[context.asset_key]))

    def _load_partition(
        self, fs: pafs.FileSystem, directory: str, *, arrow: bool = False
    ) -> pd.DataFrame | pa.Table | dict[str, pd.DataFrame] | dict[str, pa.Table]:
        files = list_parquet_files(fs, directory)
        if not files:
            raise FileNotFoundError(f"nothing materialized at {directory}")
        names = [posixpath.splitext(posixpath.basename(f))[0] for f in files]
        read = (lambda path: pq.read_table(path, filesystem=fs)) if arrow else (lambda path: read_parquet(fs, path))
        if names == [SINGLE_TABLE]:
            return read(files[0])
        return {name: read(path) for name, path in zip(names, files, strict=True)}

    def has_partition(self, key: dg.AssetKey, partition: str | None) -> bool:
        """Whether tables of this partition are stored (without reading them)."""
        fs, root = self._filesystem()
        return bool(list_parquet_files(fs, self._partition_dir(root, key, partition)))

    def load_partition_if_materialized(
        self, key: dg.AssetKey, partition: str | None
    ) -> pd.DataFrame | dict[str, pd.DataFrame] | None:
        """The stored tables of one partition as DataFrames, None when nothing was stored there."""
        fs, root = self._filesystem()
        directory = self._partition_dir(root, key, partition)
        if not list_parquet_files(fs, directory):
            return None
        return self._load_partition(fs, directory)

    def load_input(self, context: dg.InputContext) -> object:
        fs, root = self._filesystem()
        key = context.asset_key
        arrow = self.load_as_arrow
        if not context.has_asset_partitions:
            return self._load_partition(fs, self._partition_dir(root, key, None), arrow=arrow)
        partitions = context.asset_partition_keys
        if len(partitions) == 1 and context.has_partition_key:
            return self._load_partition(fs, self._partition_dir(root, key, partitions[0]), arrow=arrow)
        return {p: self._load_partition(fs, self._partition_dir(root, key, p), arrow=arrow) for p in partitions}
