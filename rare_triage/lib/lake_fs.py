"""Filesystems of the data lake: a local folder by default, an S3-compatible bucket by configuration.

`S3Options` is the one place of the S3 connection settings (endpoint, credentials, timeouts, attempts) for every
S3 client of the platform: the lake's and the landing zone's pyarrow filesystems and the model bucket's boto3 client.
"""

import posixpath
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

DEFAULT_CONNECT_TIMEOUT_S = 3.0
DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_MAX_ATTEMPTS = 3
# environment variable -> S3Options field; read by `s3_limits_from_environ`
LIMIT_VARIABLES = {
    "RARE_TRIAGE_S3_CONNECT_TIMEOUT": "connect_timeout",
    "RARE_TRIAGE_S3_READ_TIMEOUT": "read_timeout",
    "RARE_TRIAGE_S3_MAX_ATTEMPTS": "max_attempts",
}


@dataclass(frozen=True)
class S3Options:
    """Connection to an S3-compatible server; endpoint_url None means AWS itself.

    Every request gives up after `connect_timeout` / `read_timeout` seconds, at most `max_attempts` times in all.
    """

    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout: float = DEFAULT_READ_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"s3 {name}: {getattr(self, name)} must be a positive number of seconds")
        if self.max_attempts < 1:
            raise ValueError(f"s3 max_attempts: {self.max_attempts} must be at least 1")

    def describe_limits(self) -> str:
        """The limits in words, for error messages."""
        return (
            f"connect timeout {self.connect_timeout:g} s, read timeout {self.read_timeout:g} s, "
            f"{self.max_attempts} attempts"
        )


def s3_limits_from_environ(environ: Mapping[str, str]) -> dict[str, float | int]:
    """Timeouts and attempts set in `environ` (RARE_TRIAGE_S3_*), as S3Options fields; defaults when unset."""
    limits: dict[str, float | int] = {
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT_S,
        "read_timeout": DEFAULT_READ_TIMEOUT_S,
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
    }
    for variable, field in LIMIT_VARIABLES.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        try:
            limits[field] = int(raw) if field == "max_attempts" else float(raw)
        except ValueError:
            raise ValueError(f"{variable}: {raw!r} is not a number") from None
    # validates the ranges, naming the field
    S3Options(
        connect_timeout=float(limits["connect_timeout"]),
        read_timeout=float(limits["read_timeout"]),
        max_attempts=int(limits["max_attempts"]),
    )
    return limits


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
