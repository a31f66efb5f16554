"""Published models in the bucket: immutable version folders and the env pointers that say which one is served.

Layout (under the bucket root):
    models/rare-triage/<version>/model.onnx                 immutable
    models/rare-triage/<version>/phenotype_encoding.json    immutable, one per table of the manifest's `files`
    models/rare-triage/<version>/manifest.json              immutable, written last
    models/rare-triage/env/<env>.json                       pointer, the only object ever overwritten

A pointer moves only after the version's files were read back and hash-verified, so a reader that
follows a pointer always finds a complete, consistent model. The pointer records the hashes it was verified
against: a later move (promotion, rollback) checks the files against those records, so a file edited in place
after publication is refused even when it is still valid JSON. Table files are covered through the manifest,
which holds their sha256.
"""

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from rare_triage.lib.deployment.bucket import Bucket, ObjectExistsError, ObjectNotFoundError
from rare_triage.lib.deployment.manifest import (
    MODEL_NAME,
    ManifestError,
    ManifestFormatError,
    manifest_from_bytes,
    manifest_to_bytes,
    sha256_hex,
    validate_file_name,
    validate_manifest,
)
from rare_triage.lib.deployment.sidecar import load_sidecar

if TYPE_CHECKING:  # a type only: reading versions (the `status` command) needs no pandas
    from rare_triage.lib.deployment.release import Release

MODELS_PREFIX = f"models/{MODEL_NAME}"
ENV_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
VERSION_PATTERN = re.compile(r"^v\d+-[0-9a-f]{12}$")


class IntegrityError(RuntimeError):
    """Stored files are missing, incomplete or do not match their hashes: nothing may point at them."""


@dataclass(frozen=True)
class PublishedVersion:
    """A verified version in the bucket."""

    version: str
    model_key: str
    manifest_key: str
    onnx_sha256: str
    manifest_sha256: str
    size_bytes: int
    already_published: bool = False
    sidecar_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordedHashes:
    """The sha256 of a version's files as one record holds them (a pointer, the model registry)."""

    source: str
    manifest_sha256: str | None
    onnx_sha256: str | None = None


@dataclass(frozen=True)
class Pointer:
    """Content of `env/<env>.json`: the served version and the hashes it was verified against.

    `previous_manifest_sha256` (absent in pointers written before it existed) lets a rollback verify the
    version the pointer replaced.
    """

    env: str
    version: str
    manifest_sha256: str
    onnx_sha256: str
    updated_at: str
    previous_version: str | None
    previous_manifest_sha256: str | None = None

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes of the pointer."""
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode("utf-8")

    def record(self) -> RecordedHashes:
        """The hashes this pointer recorded for its version."""
        return RecordedHashes(f"pointer {pointer_key(self.env)}", self.manifest_sha256, self.onnx_sha256)


@dataclass(frozen=True)
class VersionCheck:
    """What reading a version back found: every problem (empty when it is intact) and, if readable, its manifest
    and its verified tables (by table name)."""

    version: str
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    published: PublishedVersion | None = None
    onnx_bytes: bytes | None = field(default=None, repr=False)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ListedVersion:
    """A version that has a manifest: `problem` when it cannot be read, `old_format` when its manifest is of an
    earlier format (readable by nothing that serves today, and never pointed at again)."""

    version: str
    problem: str | None = None
    old_format: bool = False


def _check_env(env: str) -> str:
    if not ENV_PATTERN.match(env):
        raise ValueError(f"env: {env!r} must be lowercase letters, digits, '-' or '_' (e.g. dev, prod)")
    return env


def _check_version(version: str) -> str:
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"version: {version!r} is not of the form v<N>-<12 hex digits>")
    return version


def model_key(version: str) -> str:
    """Key of a version's ONNX file."""
    return f"{MODELS_PREFIX}/{_check_version(version)}/model.onnx"


def manifest_key(version: str) -> str:
    """Key of a version's manifest."""
    return f"{MODELS_PREFIX}/{_check_version(version)}/manifest.json"


def sidecar_key(version: str, file: str) -> str:
    """Key of one of a version's table files (a plain file name listed in its manifest's `files`)."""
    return f"{MODELS_PREFIX}/{_check_version(version)}/{validate_file_name(file)}"


def pointer_key(env: str) -> str:
    """Key of an env pointer."""
    return f"{MODELS_PREFIX}/env/{_check_env(env)}.json"


def _compare(name: str, actual: str, recorded: str | None, source: str) -> list[str]:
    if recorded is None or recorded == actual:
        return []
    return [f"{name} (sha256 {actual[:12]}...) does not match the hash recorded by {source} ({recorded[:12]}...)"]


def _read_tables(bucket: Bucket, version: str, manifest: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The manifest's tables read back and verified against their entries, and every problem met."""
    tables: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, entry in sorted(manifest["files"].items()):
        try:
            tables[name] = load_sidecar(version, entry, bucket.get_bytes(sidecar_key(version, entry["file"])))
        except ObjectNotFoundError:
            problems.append(
                f"incomplete in {bucket.uri}: {version}/{entry['file']}, listed in its manifest, is missing"
            )
        except ManifestError as exc:
            problems.append(str(exc))
    return tables, problems


def inspect_version(bucket: Bucket, version: str, records: Iterable[RecordedHashes] = ()) -> VersionCheck:
    """Read a version's files back (ONNX, manifest, then every table the manifest lists); list every way they
    disagree with each other and with `records`."""
    try:
        onnx_bytes = bucket.get_bytes(model_key(version))
        manifest_bytes = bucket.get_bytes(manifest_key(version))
    except ObjectNotFoundError as exc:
        return VersionCheck(version, [f"incomplete in {bucket.uri} ({exc})"])
    onnx_sha, manifest_sha = sha256_hex(onnx_bytes), sha256_hex(manifest_bytes)
    problems = [
        problem
        for record in records
        for problem in (
            *_compare("manifest.json", manifest_sha, record.manifest_sha256, record.source),
            *_compare("model.onnx", onnx_sha, record.onnx_sha256, record.source),
        )
    ]
    try:
        manifest = manifest_from_bytes(manifest_bytes)
        validate_manifest(manifest, onnx_bytes)
    except ManifestError as exc:
        return VersionCheck(version, [*problems, str(exc)])
    if manifest["version"] != version:
        problems.append(f"its manifest names version {manifest['version']!r}")
    tables, table_problems = _read_tables(bucket, version, manifest)
    published = PublishedVersion(
        version=version,
        model_key=model_key(version),
        manifest_key=manifest_key(version),
        onnx_sha256=onnx_sha,
        manifest_sha256=manifest_sha,
        size_bytes=len(onnx_bytes),
        sidecar_keys=tuple(sidecar_key(version, entry["file"]) for _, entry in sorted(manifest["files"].items())),
    )
    return VersionCheck(version, [*problems, *table_problems], manifest, published, onnx_bytes, tables)


def verify_version(
    bucket: Bucket, version: str, records: Iterable[RecordedHashes] = ()
) -> tuple[PublishedVersion, dict[str, Any]]:
    """Read a version's files back, check them against each other and `records`; IntegrityError if anything is off."""
    check = inspect_version(bucket, version, records)
    if check.problems or check.published is None or check.manifest is None:
        raise IntegrityError(f"version {version}: " + "; ".join(check.problems))
    return check.published, check.manifest


def publish_model(bucket: Bucket, release: "Release") -> PublishedVersion:
    """Write the version's ONNX file, its table files, then its manifest; read everything back and verify it.

    Idempotent: a version already complete with the same ONNX bytes is verified and returned as is
    (its first manifest stays). A half-written version (files without manifest, e.g. after a failed
    upload) is completed. An existing ONNX or table file with other content raises IntegrityError.
    """
    manifest, version = release.manifest, release.version
    validate_manifest(manifest, release.onnx_bytes)
    entries = sorted(manifest["files"].values(), key=lambda entry: entry["file"])
    if {entry["file"] for entry in entries} != set(release.sidecars):
        raise IntegrityError(
            f"version {version}: the table files to publish {sorted(release.sidecars)} are not the manifest's "
            f"{[entry['file'] for entry in entries]}"
        )
    for entry in entries:
        load_sidecar(version, entry, release.sidecars[entry["file"]])
    keys = [
        (model_key(version), release.onnx_bytes),
        *((sidecar_key(version, entry["file"]), release.sidecars[entry["file"]]) for entry in entries),
        (manifest_key(version), manifest_to_bytes(manifest)),
    ]
    already = True
    for key, data in keys:
        try:
            bucket.put_bytes(key, data, if_absent=True)
            already = False
        except ObjectExistsError:
            if key != manifest_key(version) and sha256_hex(bucket.get_bytes(key)) != sha256_hex(data):
                raise IntegrityError(
                    f"version {version}: stored {key.rsplit('/', 1)[-1]} differs from the bytes to publish"
                ) from None
    published, _ = verify_version(bucket, version)
    return dataclasses.replace(published, already_published=already)


def read_pointer(bucket: Bucket, env: str) -> Pointer | None:
    """The env's pointer, or None when the env never served a model."""
    try:
        data = json.loads(bucket.get_bytes(pointer_key(env)).decode("utf-8"))
    except ObjectNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"pointer {pointer_key(env)}: not valid UTF-8 JSON ({exc})") from exc
    try:
        return Pointer(**data)
    except TypeError as exc:
        raise IntegrityError(f"pointer {pointer_key(env)}: unexpected fields ({exc})") from exc


def env_pointers(bucket: Bucket) -> list[Pointer]:
    """Every env's pointer, by env name."""
    prefix = f"{MODELS_PREFIX}/env/"
    envs = [k.removeprefix(prefix).removesuffix(".json") for k in bucket.list(prefix) if k.endswith(".json")]
    pointers = (read_pointer(bucket, env) for env in sorted(envs) if ENV_PATTERN.match(env))
    return [p for p in pointers if p is not None]


def move_pointer(
    bucket: Bucket,
    env: str,
    version: str,
    now: dt.datetime | None = None,
    records: Iterable[RecordedHashes] = (),
) -> Pointer:
    """Point `env` at `version` after verifying the version's files (and against `records`); one overwrite.

    Pointing an env at the version it already serves changes nothing (the history link is kept).
    """
    published, _ = verify_version(bucket, version, records)
    previous = read_pointer(bucket, env)
    if previous is not None and (previous.version, previous.manifest_sha256) == (version, published.manifest_sha256):
        return previous
    pointer = Pointer(
        env=_check_env(env),
        version=version,
        manifest_sha256=published.manifest_sha256,
        onnx_sha256=published.onnx_sha256,
        updated_at=(now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat(timespec="seconds"),
        previous_version=previous.version if previous else None,
        previous_manifest_sha256=previous.manifest_sha256 if previous else None,
    )
    bucket.put_bytes(pointer_key(env), pointer.to_bytes(), if_absent=False)
    return pointer


def served_model(bucket: Bucket, env: str) -> tuple[Pointer, dict[str, Any], bytes]:
    """What `env` serves: its pointer, the verified manifest and the ONNX bytes (as the serving side loads it)."""
    pointer = read_pointer(bucket, env)
    if pointer is None:
        raise IntegrityError(f"env {env}: no pointer at {pointer_key(env)} in {bucket.uri}")
    check = inspect_version(bucket, pointer.version, [pointer.record()])
    if check.problems or check.manifest is None or check.onnx_bytes is None:
        raise IntegrityError(f"env {env}: version {pointer.version}: " + "; ".join(check.problems))
    return pointer, check.manifest, check.onnx_bytes


def _listed(bucket: Bucket, version: str) -> tuple[str, ListedVersion]:
    """(created_at, listing) of a version that has a manifest; created_at is empty when the manifest is unreadable."""
    try:
        return str(manifest_from_bytes(bucket.get_bytes(manifest_key(version)))["created_at"]), ListedVersion(version)
    except ManifestFormatError as exc:
        return "", ListedVersion(version, f"version {version}: {exc}", old_format=True)
    except ManifestError as exc:
        return "", ListedVersion(version, f"version {version}: {exc}")


def published_versions(bucket: Bucket) -> list[ListedVersion]:
    """Every version that has a manifest, oldest first by created_at; unreadable ones and older formats first."""
    versions = {
        key.split("/")[2]
        for key in bucket.list(MODELS_PREFIX + "/")
        if key.endswith("/manifest.json") and VERSION_PATTERN.match(key.split("/")[2])
    }
    read = {v: _listed(bucket, v) for v in versions}
    return [read[v][1] for v in sorted(versions, key=lambda v: (read[v][0], v))]


def list_versions(bucket: Bucket) -> list[str]:
    """Versions that have a manifest, oldest first by the manifest's created_at."""
    return [listed.version for listed in published_versions(bucket)]


def read_version_table(bucket: Bucket, version: str, table: str) -> dict[str, Any] | None:
    """Table `table` of a published version, verified against its manifest entry; None when the version's manifest
    lists no such table (versions published before it existed). ObjectNotFoundError when the version is missing,
    ManifestError when the file does not match its entry."""
    manifest = json.loads(bucket.get_bytes(manifest_key(_check_version(version))).decode("utf-8"))
    entry = manifest.get("files", {}).get(table)
    if entry is None:
        return None
    return load_sidecar(version, entry, bucket.get_bytes(sidecar_key(version, entry["file"])))
