"""Object storage for published models: a local directory by default, any S3-compatible server by configuration.

Objects are written whole (never seen half-written) and, unless the caller asks to overwrite (pointers
only), never replaced: `put_bytes(..., if_absent=True)` refuses an existing key. Readers that must not take a
missing bucket for an empty one call `check_exists()` first; writers create a local bucket's folder.
"""

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import boto3
import botocore.config
import botocore.exceptions

from rare_triage.lib.s3_options import S3Options

_SEGMENT = r"[A-Za-z0-9_=\-][A-Za-z0-9._=\-]*"  # no leading dot: hidden names are the local bucket's temp files
_KEY_PATTERN = re.compile(rf"^{_SEGMENT}(/{_SEGMENT})*$")
_T = TypeVar("_T")


class BucketError(RuntimeError):
    """A storage operation failed."""


class ObjectExistsError(BucketError):
    """The key already holds an object and objects are immutable."""


class BucketNotFoundError(BucketError):
    """The bucket itself (local folder or S3 bucket) does not exist."""


class BucketUnreachableError(BucketError):
    """The S3 endpoint did not answer within its timeouts and attempts, or refused the connection."""


class ObjectNotFoundError(BucketError, KeyError):
    """No object at the key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "object not found"


def validate_key(key: str) -> str:
    """Return `key` if it is a relative POSIX key of non-empty segments not starting with '.', else raise ValueError."""
    if not isinstance(key, str) or not _KEY_PATTERN.match(key):
        raise ValueError(f"bucket key: {key!r} is not a relative key of [A-Za-z0-9._=-] segments (no leading dot)")
    return key


@runtime_checkable
class Bucket(Protocol):
    """Where models and pointers live; keys are relative POSIX paths."""

    def put_bytes(self, key: str, data: bytes, if_absent: bool = True) -> None:
        """Store `data` whole; with `if_absent` raise ObjectExistsError instead of replacing an object."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFoundError when absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored at `key`."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with `prefix`."""
        ...

    @property
    def uri(self) -> str:
        """Where the bucket is, for logs and metadata (file:///... or s3://bucket/prefix)."""
        ...

    def check_exists(self) -> None:
        """Raise BucketNotFoundError naming the folder or bucket when it does not exist."""
        ...


class LocalBucket:
    """A directory as a bucket: write to a temporary file, fsync, then link (if absent) or rename into place."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    @property
    def uri(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def check_exists(self) -> None:
        if not self.root.is_dir():
            raise BucketNotFoundError(f"bucket folder {self.root} does not exist (check RARE_TRIAGE_BUCKET_URI)")

    def put_bytes(self, key: str, data: bytes, if_absent: bool = True) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if if_absent:
                try:
                    os.link(tmp, path)  # atomic, and fails if the key exists
                except FileExistsError:
                    raise ObjectExistsError(f"{self.uri}/{key}: exists and objects are immutable") from None
            else:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"{self.uri}/{key}: no such object") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and _KEY_PATTERN.match(k))


class S3Bucket:
    """A bucket (and key prefix) on an S3-compatible server, through a boto3 S3 client.

    Immutable writes send `If-None-Match: *` (S3, MinIO and moto refuse to replace an object) after a
    HEAD check for servers that ignore the header. A single PUT is atomic: readers see all or nothing.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        if not bucket:
            raise ValueError("s3 bucket: bucket name is empty")
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    @property
    def endpoint(self) -> str:
        """The endpoint URL the client talks to."""
        return str(getattr(getattr(self.client, "meta", None), "endpoint_url", "(unknown endpoint)"))

    def _call(self, action: str, what: str, request: Callable[[], _T]) -> _T:
        """Run one client request; transport failures (timeouts, refused connections) become BucketUnreachableError."""
        try:
            return request()
        except botocore.exceptions.BotoCoreError as exc:
            raise BucketUnreachableError(
                f"s3 endpoint {self.endpoint}: {action} {what} failed ({_limits(self.client)}): {exc}"
            ) from exc

    def check_exists(self) -> None:
        try:
            self._call("head bucket", f"s3://{self.bucket}", lambda: self.client.head_bucket(Bucket=self.bucket))
        except BucketUnreachableError:
            raise
        except Exception as exc:
            if self._code(exc) in {"NoSuchBucket", "404", "NotFound"}:
                raise BucketNotFoundError(f"bucket s3://{self.bucket} does not exist at {self.endpoint}") from exc
            raise BucketError(f"bucket s3://{self.bucket} at {self.endpoint}: {self._code(exc) or exc}") from exc

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _code(exc: Exception) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def put_bytes(self, key: str, data: bytes, if_absent: bool = True) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": data}
        if if_absent:
            if self.exists(key):
                raise ObjectExistsError(f"{self.uri}/{key}: exists and objects are immutable")
            kwargs["IfNoneMatch"] = "*"
        try:
            self._call("put", f"{self.uri}/{key}", lambda: self.client.put_object(**kwargs))
        except BucketUnreachableError:
            raise
        except Exception as exc:
            if self._code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise ObjectExistsError(f"{self.uri}/{key}: exists and objects are immutable") from exc
            raise

    def get_bytes(self, key: str) -> bytes:
        full_key = self._key(key)
        try:
            response = self._call(
                "get", f"{self.uri}/{key}", lambda: self.client.get_object(Bucket=self.bucket, Key=full_key)
            )
            return bytes(self._call("read", f"{self.uri}/{key}", response["Body"].read))
        except BucketUnreachableError:
            raise
        except Exception as exc:
            if self._code(exc) in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFoundError(f"{self.uri}/{key}: no such object") from exc
            raise

    def exists(self, key: str) -> bool:
        full_key = self._key(key)
        try:
            self._call("head", f"{self.uri}/{key}", lambda: self.client.head_object(Bucket=self.bucket, Key=full_key))
        except BucketUnreachableError:
            raise
        except Exception as exc:
            if self._code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
        keys = self._call(
            "list",
            f"{self.uri}/{prefix}",
            lambda: [item["Key"][strip:] for page in pages for item in page.get("Contents", [])],
        )
        return sorted(keys)


def _limits(client: Any) -> str:
    config = getattr(getattr(client, "meta", None), "config", None)
    if config is None:
        return "client limits unknown"
    attempts = (getattr(config, "retries", None) or {}).get("total_max_attempts", "default")
    return (
        f"connect timeout {float(config.connect_timeout):g} s, read timeout {float(config.read_timeout):g} s, "
        f"{attempts} attempts"
    )


def s3_client(options: S3Options) -> Any:
    """A boto3 S3 client with the options' endpoint, credentials, bounded timeouts and standard retries."""
    config = botocore.config.Config(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        # total_max_attempts counts the first request too (botocore's max_attempts counts retries only)
        retries={"total_max_attempts": options.max_attempts, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=options.endpoint_url or None,
        aws_access_key_id=options.access_key or None,
        aws_secret_access_key=options.secret_key or None,
        region_name=options.region,
        config=config,
    )


def bucket_from_uri(uri: str, s3_client: Any | None = None) -> "LocalBucket | S3Bucket":
    """`s3://name/prefix` (needs a boto3 client) or a local directory path / file:// URI."""
    if uri.startswith("s3://"):
        if s3_client is None:
            raise ValueError(f"bucket uri {uri!r}: an S3 client is required")
        name, _, prefix = uri.removeprefix("s3://").partition("/")
        return S3Bucket(s3_client, name, prefix)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"bucket uri: unsupported scheme in {uri!r} (use a local path or s3://bucket/prefix)")
    return LocalBucket(uri.removeprefix("file://"))
