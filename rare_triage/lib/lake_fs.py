"""Filesystems of the data lake: a local folder by default, an S3-compatible bucket by configuration.

The S3 connection settings (endpoint, credentials, timeouts, attempts) are `rare_triage.lib.s3_options.S3Options`.
"""

import posixpath
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rare_triage.lib.s3_options import S3Options


def resolve_filesystem(uri: str, s3: S3Options | None = None) -> tuple[pafs.FileSystem, str]:
    """Return the filesystem and the root path inside it for `uri` (a local path or s3://bucket/prefix)."""
    if uri.startswith("s3://"):
        opts = s3 or S3Options()
        kwargs: dict[str, object] = {
            "region": opts.region,
            "connect_timeout": opts.connect_timeout,
            "request_timeout": opts.read_timeout,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=opts.max_attempts),
        }
        if opts.endpoint_url:
            scheme, _, host = opts.endpoint_url.partition("://")
            kwargs["endpoint_override"] = host.rstrip("/")
            kwargs["scheme"] = scheme
        if opts.access_key and opts.secret_key:
            kwargs["access_key"] = opts.access_key
            kwargs["secret_key"] = opts.secret_key
        return pafs.S3FileSystem(**kwargs), uri.removeprefix("s3://").rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"lake uri: unsupported scheme in {uri!r} (use a local path or s3://bucket/prefix)")
    root = Path(uri.removeprefix("file://")).resolve()
    return pafs.LocalFileSystem(), root.as_posix()


def write_parquet(fs: pafs.FileSystem, path: str, frame: pd.DataFrame) -> int:
    """Write `frame` to `path` so that readers never see a half-written file; return bytes written."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    parent = posixpath.dirname(path)
    fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
        pq.write_table(table, tmp, filesystem=fs, compression="zstd")
        fs.move(tmp, path)
    else:  # one PUT: S3 objects appear whole or not at all
        pq.write_table(table, path, filesystem=fs, compression="zstd")
    return int(fs.get_file_info(path).size)


def read_parquet(fs: pafs.FileSystem, path: str) -> pd.DataFrame:
    """Read one Parquet file written by `write_parquet`."""
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no Parquet file at {path}")
    return pq.read_table(path, filesystem=fs).to_pandas()


def list_parquet_files(fs: pafs.FileSystem, directory: str) -> list[str]:
    """Parquet files directly inside `directory`, sorted; empty when it does not exist."""
    info = fs.get_file_info(directory)
    if info.type != pafs.FileType.Directory:
        return []
    selector = pafs.FileSelector(directory, recursive=False)
    return sorted(f.path for f in fs.get_file_info(selector) if f.path.endswith(".parquet"))


def delete_dir(fs: pafs.FileSystem, directory: str) -> None:
    """Remove `directory` and its content if it exists (a re-materialized partition replaces the old one)."""
    if fs.get_file_info(directory).type == pafs.FileType.Directory:
        fs.delete_dir(directory)
