"""Access to the model bucket: a local folder or an S3-compatible bucket, read-only but for the prediction logs.

The service reads models (`BucketReader`); only shipping closed prediction logs writes (`BucketWriter`), and
never over an existing object. Every failure is one of two errors: `ObjectMissingError` (the bucket answered, the key
holds nothing) or `BucketUnavailableError` (the folder does not exist, the endpoint did not answer within its bounded
timeouts and attempts, refused the credentials or has no such bucket): a caller decides between "not published"
and "cannot tell now" without knowing the storage.
"""

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import boto3
import botocore.config
import botocore.exceptions

from serving.settings import S3Options

_SEGMENT = r"[A-Za-z0-9_=\-][A-Za-z0-9._=\-]*"  # no leading dot: hidden names are temporary files
_KEY_PATTERN = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})*$")
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_EXISTS_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_T = TypeVar("_T")
COPY_CHUNK_BYTES = 1 << 20  # a file is copied into the local bucket 1 MiB at a time


class BucketError(RuntimeError):
    """A bucket operation failed."""


class BucketUnavailableError(BucketError):
    """The bucket cannot be read now: missing folder or bucket, endpoint down or too slow, credentials refused."""


class ObjectMissingError(BucketError, KeyError):
    """The bucket answered: no object at the key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "object missing"


class ObjectExistsError(BucketError):
    """A write found the key taken: objects are never replaced."""


def validate_key(key: str) -> str:
    """`key` if it is a relative POSIX key of non-empty segments not starting with '.', else ValueError."""
    if not isinstance(key, str) or not _KEY_PATTERN.match(key):
        raise ValueError(f"bucket key: {key!r} is not a relative key of [A-Za-z0-9._=-] segments (no leading dot)")
    return key


class BucketReader(Protocol):
    """What the service reads: objects by key (relative POSIX paths)."""

    @property
    def uri(self) -> str:
        """Where the bucket is, for logs and errors (a folder path or s3://bucket/prefix)."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ObjectMissingError when absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored at `key`."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with `prefix`."""
        ...


class BucketWriter(BucketReader, Protocol):
    """What shipping prediction logs needs on top: store a new object, never replacing one."""

    def put_new(self, key: str, data: bytes) -> None:
        """Store `data` whole at `key`; ObjectExistsError when the key holds an object already."""
        ...

    def put_new_file(self, key: str, path: Path) -> None:
        """Store the file at `path` whole at `key`, streamed (never held in memory whole); ObjectExistsError when the
        key holds an object already."""
        ...


class LocalBucket:
    """A folder as a bucket. Reading never creates it: a missing folder is unavailable, not an empty bucket."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    @property
    def uri(self) -> str:
        return str(self.root)

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise BucketUnavailableError(f"bucket folder {self.root} does not exist (check RARE_TRIAGE_BUCKET_URI)")

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        self._check_root()
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectMissingError(f"{self.uri}/{key}: no such object") from None
        except OSError as exc:
            raise BucketUnavailableError(f"{self.uri}/{key}: cannot read ({exc})") from exc

    def exists(self, key: str) -> bool:
        path = self._path(key)
        self._check_root()
        return path.is_file()

    def list(self, prefix: str = "") -> list[str]:
        self._check_root()
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and _KEY_PATTERN.match(k))

    def put_new(self, key: str, data: bytes) -> None:
        self._put_new(key, lambda handle: handle.write(data))

    def put_new_file(self, key: str, path: Path) -> None:
        def copy(handle: BinaryIO) -> None:
            with path.open("rb") as source:
                shutil.copyfileobj(source, handle, COPY_CHUNK_BYTES)

        self._put_new(key, copy)

    def _put_new(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        path = self._path(key)
        self._check_root()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)  # atomic, and fails when the key exists
            except FileExistsError:
                raise ObjectExistsError(f"{self.uri}/{key}: exists and objects are never replaced") from None
        finally:
            os.unlink(tmp)


class S3Bucket:
    """A bucket (and key prefix) on an S3-compatible server, through a boto3 client with bounded limits."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", limits: str = "") -> None:
        if not bucket:
            raise ValueError("s3 bucket: bucket name is empty")
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self._limits = limits

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def endpoint(self) -> str:
        """The endpoint URL the client talks to."""
        return str(getattr(getattr(self.client, "meta", None), "endpoint_url", "(unknown endpoint)"))

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _code(exc: botocore.exceptions.ClientError) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    def _call(self, action: str, key: str, request: Callable[[], _T], *, missing_ok: bool = False) -> _T:
        """Run one request: transport failures and refusals become BucketUnavailableError, a missing key (when
        `missing_ok`) ObjectMissingError."""
        where = f"{self.uri}/{key}" if key else self.uri
        try:
            return request()
        except botocore.exceptions.ClientError as exc:
            code = self._code(exc)
            if code in _MISSING_CODES and missing_ok:
                raise ObjectMissingError(f"{where}: no such object") from exc
            if code in _EXISTS_CODES:
                raise ObjectExistsError(f"{where}: exists and objects are never replaced") from exc
            message = f"s3 endpoint {self.endpoint}: {action} {where} refused ({code or exc})"
            raise BucketUnavailableError(message) from exc
        except botocore.exceptions.BotoCoreError as exc:
            limits = f" ({self._limits})" if self._limits else ""
            message = f"s3 endpoint {self.endpoint}: {action} {where} failed{limits}: {exc}"
            raise BucketUnavailableError(message) from exc

    def get_bytes(self, key: str) -> bytes:
        full_key = self._key(key)
        response = self._call(
            "get", key, lambda: self.client.get_object(Bucket=self.bucket, Key=full_key), missing_ok=True
        )
        return bytes(self._call("read", key, response["Body"].read))

    def exists(self, key: str) -> bool:
        full_key = self._key(key)
        try:
            self._call("head", key, lambda: self.client.head_object(Bucket=self.bucket, Key=full_key), missing_ok=True)
        except ObjectMissingError:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0

        def keys() -> list[str]:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
            return [item["Key"][strip:] for page in pages for item in page.get("Contents", [])]

        return sorted(self._call("list", prefix, keys))

    def put_new(self, key: str, data: bytes) -> None:
        """One PUT with `If-None-Match: *` after a HEAD, for servers that ignore the header."""
        self._put_new(key, lambda full_key: self._put(full_key, data))

    def put_new_file(self, key: str, path: Path) -> None:
        """As put_new, the body read from the open file as it is sent (one PUT: a closed log is at most 64 MB)."""

        def put(full_key: str) -> object:
            with path.open("rb") as body:
                return self._put(full_key, body)

        self._put_new(key, put)

    def _put(self, full_key: str, body: bytes | BinaryIO) -> object:
        return self.client.put_object(Bucket=self.bucket, Key=full_key, Body=body, IfNoneMatch="*")

    def _put_new(self, key: str, put: Callable[[str], object]) -> None:
        if self.exists(key):
            raise ObjectExistsError(f"{self.uri}/{key}: exists and objects are never replaced")
        full_key = self._key(key)
        self._call("put", key, lambda: put(full_key))


def s3_client(options: S3Options) -> Any:
    """A boto3 S3 client with the options' endpoint, credentials, bounded timeouts and standard retries."""
    config = botocore.config.Config(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        # total_max_attempts counts the first request too (botocore's max_attempts counts retries only)
        retries={"total_max_attempts": options.max_attempts, "mode": "standard"},
    )
    secret = options.secret_access_key.value if options.secret_access_key else None
    return boto3.session.Session().client(
        "s3",
        endpoint_url=options.endpoint_url,
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=secret,
        region_name=options.region,
        config=config,
    )


def open_bucket(uri: str, s3: S3Options | None = None) -> LocalBucket | S3Bucket:
    """The bucket at `uri`: `s3://name/prefix` (a client from `s3`, default options if None), else a folder path
    or file:// URI."""
    if uri.startswith("s3://"):
        options = s3 or S3Options()
        name, _, prefix = uri.removeprefix("s3://").partition("/")
        return S3Bucket(s3_client(options), name, prefix, limits=options.describe_limits())
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"bucket uri: unsupported scheme in {uri!r} (a folder, file:// or s3://bucket/prefix)")
    return LocalBucket(uri.removeprefix("file://"))
