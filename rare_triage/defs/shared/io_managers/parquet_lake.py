"""Parquet IO manager for the lake: one folder per asset and partition, one file per table."""

import posixpath
from collections.abc import Mapping

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rare_triage.defs.shared.s3 import S3Connection
from rare_triage.lib.lake_fs import (
    delete_dir,
    list_parquet_files,
    read_parquet,
    resolve_filesystem,
    write_parquet,
)

SINGLE_TABLE = "data"


class ParquetLakeIOManager(dg.ConfigurableIOManager, S3Connection):
    """Stores a DataFrame, or a mapping of table name to DataFrame, as Parquet.

    Layout: ``<base_uri>/<asset key>/partition_day=<key>/<table>.parquet`` (``data.parquet`` for a single
    DataFrame); non-partitioned assets use ``<asset key>/all/``. With ``load_as_arrow`` inputs come as pyarrow
    Tables (compact strings), for steps that convert to pandas piece by piece. ``base_uri`` is a local folder or
    ``s3://bucket/prefix`` on any S3-compatible server (``s3_endpoint_url``).
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

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | Mapping[str, pd.DataFrame]) -> None:
        fs, root = self._filesystem()
        partition = context.partition_key if context.has_asset_partitions else None
        directory = self._partition_dir(root, context.asset_key, partition)
        tables = {SINGLE_TABLE: obj} if isinstance(obj, pd.DataFrame) else dict(obj)
        for name, frame in tables.items():
            if not isinstance(frame, pd.DataFrame):
                raise TypeError(
                    f"{context.asset_key.to_user_string()}: table {name!r} is {type(frame).__name__}, not a DataFrame"
                )
        delete_dir(fs, directory)
        written = {
            name: write_parquet(fs, posixpath.join(directory, f"{name}.parquet"), frame)
            for name, frame in tables.items()
        }
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(f"s3://{directory}" if self.base_uri.startswith("s3://") else directory),
                "bytes": sum(written.values()),
                "tables": dg.MetadataValue.json({name: len(frame) for name, frame in tables.items()}),
            }
        )

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
