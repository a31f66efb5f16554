"""The served model: loaded from the bucket only once every byte is verified, cached locally, swapped while serving.

Trust runs down from the env pointer (`models/rare-triage/env/<env>.json`, written by the platform after it read
the version back): the pointer holds the manifest's sha256 and the ONNX file's; the manifest (format 2) holds the
sha256 and size of the ONNX file and of every table file it lists in `files`. A version is served only when all
of them match, its manifest has what serving needs, ONNX Runtime loads it and one all-missing row predicts finite
probabilities summing to 1. Anything else is refused with the reason, and whatever served before keeps serving.

Verified files are copied to `<cache_dir>/<version>/` (each written to a temporary file, then renamed) and the
pointer they were verified against to `<cache_dir>/env/<env>.json`, written last. When the bucket cannot be read
at start-up the service loads that copy, verified again against the same hashes, and says it serves from cache.

Swapping is one attribute assignment of an immutable `HolderStatus`: a request takes `holder.model` once and
uses that object throughout, whatever a reload does meanwhile.
"""

import dataclasses
import datetime as dt
import hashlib
import logging
import math
import os
import re
import tempfile
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import onnxruntime as ort

from serving.bucket import BucketReader, BucketUnavailableError, ObjectMissingError
from serving.onnx_graph import ModelFamily, model_family

logger = logging.getLogger(__name__)

MODEL_NAME = "rare-triage"
MODELS_PREFIX = f"models/{MODEL_NAME}"
MANIFEST_FORMAT = 2
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
PHENOTYPE_ENCODING = "phenotype_encoding"
REQUIRED_TABLES = (PHENOTYPE_ENCODING,)
PROBABILITY_TOLERANCE = 1e-4
MAX_REFUSALS_KEPT = 20
# What serving reads of a manifest, by field and JSON type (bool is not an int here).
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": int,
    "model_name": str,
    "version": str,
    "onnx": dict,
    "input_schema": dict,
    "class_labels": list,
    "thresholds": dict,
    "needs_review": dict,
    "metrics": dict,
    "checks_passed": bool,
    "checks": dict,
    "vocabulary": list,
    "systems": list,
    "hpo_release": str,
    "files": dict,
    "mlflow_run_id": (str, type(None)),
    "mlflow_model_version": (str, type(None)),
    "dagster_run_id": (str, type(None)),
    "training_partitions": list,
    "data_fingerprint": str,
    "code_revision": str,
    "created_at": str,
}
_ENV = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_VERSION = re.compile(r"^v\d+-[0-9a-f]{12}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")  # one plain name: no '/', no leading dot
_RESERVED_FILES = frozenset({ONNX_FILE, MANIFEST_FILE})
_FILE_ENTRY_FIELDS = {"file": str, "sha256": str, "size_bytes": int}

Source = Literal["bucket", "cache"]
# Built by the service from each model as it loads (its encoder); an error refuses the model like a failed check.
Prepare = Callable[["LoadedModel"], Any]


class ModelStoreError(RuntimeError):
    """Loading a model failed."""


class NoModelError(ModelStoreError):
    """Nothing can be served: no pointer for the env, or the bucket is unavailable and nothing verified is cached."""


class PointerInvalidError(ModelStoreError):
    """The env pointer is not a pointer (not JSON, fields missing, another env)."""


class ModelRefusedError(ModelStoreError):
    """A version failed verification (hashes, sizes, manifest, ONNX Runtime, smoke prediction): never served."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"version {version} refused: {reason}")
        self.version = version
        self.reason = reason


class Pointer(msgspec.Struct, frozen=True, kw_only=True):
    """The part of `env/<env>.json` serving trusts: which version, and the hashes it was verified against."""

    env: str
    version: str
    manifest_sha256: str
    onnx_sha256: str
    updated_at: str | None = None

    def same_files(self, other: "Pointer") -> bool:
        """Whether both name the same version with the same hashes."""
        return (self.version, self.manifest_sha256, self.onnx_sha256) == (
            other.version,
            other.manifest_sha256,
            other.onnx_sha256,
        )


class CacheMarker(msgspec.Struct, frozen=True, kw_only=True):
    """`<cache_dir>/env/<env>.json`: the pointer the cached copy of a version was verified against, and when."""

    pointer: Pointer
    verified_at: dt.datetime


def pointer_key(env: str) -> str:
    """Key of an env pointer in the bucket."""
    return f"{MODELS_PREFIX}/env/{_check_env(env)}.json"


def version_key(version: str, file: str) -> str:
    """Key of one file of a version folder in the bucket."""
    return f"{MODELS_PREFIX}/{version}/{file}"


def _check_env(env: str) -> str:
    if not _ENV.match(env):
        raise ValueError(f"env: {env!r} must be lowercase letters, digits, '-' or '_' (e.g. dev, prod)")
    return env


def parse_pointer(data: bytes, env: str) -> Pointer:
    """The pointer in `data`, checked to be `env`'s and to name a version with two sha256; else PointerInvalidError."""
    where = f"pointer {pointer_key(env)}"
    try:
        pointer = msgspec.json.decode(data, type=Pointer)
    except msgspec.DecodeError as exc:
        raise PointerInvalidError(f"{where}: {exc}") from exc
    if pointer.env != env:
        raise PointerInvalidError(f"{where}: names env {pointer.env!r}")
    if not _VERSION.match(pointer.version):
        raise PointerInvalidError(f"{where}: version {pointer.version!r} is not of the form v<N>-<12 hex digits>")
    for name in ("manifest_sha256", "onnx_sha256"):
        if not _SHA256.match(getattr(pointer, name)):
            raise PointerInvalidError(f"{where}: {name} is not 64 lowercase hex digits")
    return pointer


def read_pointer(bucket: BucketReader, env: str) -> Pointer:
    """`env`'s pointer; NoModelError when the env has none, PointerInvalidError, BucketUnavailableError."""
    try:
        data = bucket.get_bytes(pointer_key(env))
    except ObjectMissingError:
        raise NoModelError(f"env {env}: no pointer at {pointer_key(env)} in {bucket.uri}") from None
    return parse_pointer(data, env)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def _freeze(value: Any) -> Any:
    """A read-only deep copy of decoded JSON: objects as mapping proxies, arrays as tuples."""
    if isinstance(value, dict):
        return types.MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists again (for encoders that want them) from a `_freeze`d value."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


@dataclass(frozen=True)
class LoadedModel:
    """A verified version, ready to predict. Immutable: replaced whole by a reload, never changed."""

    version: str
    env: str
    pointer: Pointer
    manifest: Mapping[str, Any]
    phenotype_encoding: Mapping[str, Any]
    tables: Mapping[str, Mapping[str, Any]]
    session: ort.InferenceSession = field(repr=False, compare=False)
    input_name: str
    probabilities_output: str
    class_labels: tuple[str, ...]
    n_features: int
    loaded_at: dt.datetime
    source: Source
    cache_error: str | None = None
    family: ModelFamily = "other"  # from the ONNX graph's operators (`serving.onnx_graph`)
    prepared: Any = field(default=None, repr=False, compare=False)  # what `prepare` built from this model

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities [N, len(class_labels)] of a float32 feature matrix [N, n_features]."""
        result = self.session.run([self.probabilities_output], {self.input_name: features})[0]
        return np.asarray(result)

    def describe(self) -> dict[str, Any]:
        """What `/v1/model` shows: the version, where it came from and the manifest's contract and provenance."""
        keys = (
            "model_name",
            "class_labels",
            "thresholds",
            "needs_review",
            "metrics",
            "hpo_release",
            "mlflow_run_id",
            "mlflow_model_version",
            "dagster_run_id",
            "training_partitions",
            "code_revision",
            "created_at",
        )
        return {
            "version": self.version,
            "env": self.env,
            "source": self.source,
            "loaded_at": self.loaded_at.isoformat(),
            "manifest_sha256": self.pointer.manifest_sha256,
            "onnx_sha256": self.pointer.onnx_sha256,
            "n_features": self.n_features,
            "model_family": self.family,
            **{key: thaw(self.manifest[key]) for key in keys},
        }


@dataclass(frozen=True)
class _VerifiedFiles:
    """A version's bytes, each matched against its recorded sha256 and size."""

    pointer: Pointer
    manifest: dict[str, Any]
    files: dict[str, bytes] = field(repr=False)  # file name in the version folder -> bytes
    tables: dict[str, dict[str, Any]] = field(repr=False)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    """isinstance, except that JSON's true and false are not numbers."""
    if isinstance(value, bool):
        return kind is bool or (isinstance(kind, tuple) and bool in kind)
    return isinstance(value, kind)


def _check_fields(where: str, mapping: Mapping[str, Any], fields: Mapping[str, type | tuple[type, ...]]) -> None:
    for name, kind in fields.items():
        if name not in mapping:
            raise ValueError(f"{where}missing field {name!r}")
        if not _is(mapping[name], kind):
            raise ValueError(f"{where}field {name!r} has type {_type_name(mapping[name])}")


def _check_sha(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ValueError(f"{where} is not 64 lowercase hex digits")
    return value


def _check_onnx_entry(onnx: Mapping[str, Any], pointer: Pointer) -> None:
    _check_fields(
        "onnx: ",
        onnx,
        {"file": str, "sha256": str, "size_bytes": int, "input": str, "outputs": list, "probabilities_output": str},
    )
    if onnx["file"] != ONNX_FILE:
        raise ValueError(f"onnx.file is {onnx['file']!r}, not {ONNX_FILE!r}")
    if _check_sha("onnx.sha256", onnx["sha256"]) != pointer.onnx_sha256:
        raise ValueError(
            f"onnx.sha256 ({onnx['sha256'][:12]}...) differs from the pointer's onnx_sha256 "
            f"({pointer.onnx_sha256[:12]}...)"
        )
    if onnx["size_bytes"] < 0:
        raise ValueError("onnx.size_bytes is negative")
    if (
        not all(isinstance(name, str) for name in onnx["outputs"])
        or onnx["probabilities_output"] not in onnx["outputs"]
    ):
        raise ValueError(f"onnx.probabilities_output {onnx['probabilities_output']!r} is not one of onnx.outputs")


def _check_version_name(manifest: Mapping[str, Any], pointer: Pointer) -> None:
    if manifest["version"] != pointer.version:
        raise ValueError(f"the manifest names version {manifest['version']!r}")
    registry = manifest["mlflow_model_version"] or "0"
    if manifest["version"] != f"v{registry}-{manifest['onnx']['sha256'][:12]}":
        raise ValueError(f"version {manifest['version']!r} does not match onnx.sha256 and mlflow_model_version")


def _check_input_schema(manifest: Mapping[str, Any]) -> None:
    schema = manifest["input_schema"]
    _check_fields("input_schema: ", schema, {"input_name": str, "dtype": str, "columns": list})
    if schema["input_name"] != manifest["onnx"]["input"]:
        raise ValueError(f"input_schema.input_name {schema['input_name']!r} differs from onnx.input")
    if schema["dtype"] != "float32":
        raise ValueError(f"input_schema.dtype {schema['dtype']!r} is not float32")
    columns = schema["columns"]
    if not columns:
        raise ValueError("input_schema.columns is empty")
    names: set[str] = set()
    for position, column in enumerate(columns):
        where = f"input_schema.columns[{position}]"
        if not isinstance(column, dict):
            raise ValueError(f"{where} is not an object")
        _check_fields(f"{where}: ", column, {"name": str, "type": str, "index": int})
        if column["index"] != position or column["name"] in names:
            raise ValueError(f"{where}: index {column['index']} or name {column['name']!r} out of order or repeated")
        names.add(column["name"])
        if column["type"] == "categorical":
            _check_fields(f"{where}: ", column, {"categories": list, "missing_code": int})
        elif column["type"] != "numeric":
            raise ValueError(f"{where}: type {column['type']!r} is neither numeric nor categorical")
    labels = manifest["class_labels"]
    if not labels or not all(isinstance(label, str) for label in labels) or len(set(labels)) != len(labels):
        raise ValueError("class_labels is not a list of distinct names")
    if schema.get("class_labels", labels) != labels:
        raise ValueError("class_labels differ from input_schema.class_labels")
    if "orphan" not in labels:
        raise ValueError("class_labels has no 'orphan' class")


def _check_thresholds(manifest: Mapping[str, Any]) -> None:
    thresholds = manifest["thresholds"]
    for name in ("orphan", "needs_review"):
        value = thresholds.get(name)
        if not _is(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"thresholds.{name} is {value!r}, not a probability")
    if thresholds["needs_review"] > thresholds["orphan"]:
        raise ValueError("thresholds.needs_review is above thresholds.orphan")


def _check_files(files: Mapping[str, Any]) -> None:
    missing = [name for name in REQUIRED_TABLES if name not in files]
    if missing:
        raise ValueError(f"files lacks the tables {missing}")
    seen: set[str] = set()
    for table, entry in files.items():
        where = f"files.{table}"
        if not _TABLE_NAME.match(table):
            raise ValueError(f"{where}: a table name is lowercase letters, digits and '_'")
        if not isinstance(entry, dict) or set(entry) != set(_FILE_ENTRY_FIELDS):
            raise ValueError(f"{where}: an entry is exactly {sorted(_FILE_ENTRY_FIELDS)}")
        _check_fields(f"{where}: ", entry, _FILE_ENTRY_FIELDS)
        name = entry["file"]
        if not _FILE_NAME.match(name) or ".." in name or name in _RESERVED_FILES or name in seen:
            raise ValueError(f"{where}: file {name!r} is not a plain file name of its own in the version folder")
        seen.add(name)
        _check_sha(f"{where}.sha256", entry["sha256"])
        if entry["size_bytes"] < 0:
            raise ValueError(f"{where}.size_bytes is negative")


def validate_manifest(manifest: Any, pointer: Pointer) -> dict[str, Any]:
    """`manifest` if it is a format-2 manifest of `pointer`'s version with everything serving reads; else
    ValueError naming the field."""
    if not isinstance(manifest, dict):
        raise ValueError("the manifest is not a JSON object")
    if not _is(manifest.get("format"), int) or manifest["format"] != MANIFEST_FORMAT:
        raise ValueError(f"manifest format {manifest.get('format')!r} is not {MANIFEST_FORMAT}")
    _check_fields("", manifest, REQUIRED_FIELDS)
    if manifest["model_name"] != MODEL_NAME:
        raise ValueError(f"model_name {manifest['model_name']!r} is not {MODEL_NAME!r}")
    if not manifest["checks_passed"]:
        raise ValueError("checks_passed is false: the version did not pass its blocking checks")
    _check_onnx_entry(manifest["onnx"], pointer)
    _check_version_name(manifest, pointer)
    _check_input_schema(manifest)
    _check_thresholds(manifest)
    _check_files(manifest["files"])
    return manifest


def _matching(name: str, data: bytes, sha256: str, size_bytes: int | None) -> bytes:
    digest = sha256_hex(data)
    if digest != sha256 or (size_bytes is not None and len(data) != size_bytes):
        expected = f"{size_bytes} bytes, " if size_bytes is not None else ""
        raise ValueError(
            f"{name} ({len(data)} bytes, sha256 {digest[:12]}...) does not match its record "
            f"({expected}sha256 {sha256[:12]}...)"
        )
    return data


def _verify_files(pointer: Pointer, read: Callable[[str], bytes]) -> _VerifiedFiles:
    """Read and verify a version's files through `read(file name)`: the manifest against the pointer, the ONNX
    file and every table against the manifest. ValueError naming the file on any mismatch."""
    manifest_bytes = _matching(MANIFEST_FILE, read(MANIFEST_FILE), pointer.manifest_sha256, None)
    try:
        decoded = msgspec.json.decode(manifest_bytes)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{MANIFEST_FILE} is not valid JSON ({exc})") from exc
    manifest = validate_manifest(decoded, pointer)
    onnx = manifest["onnx"]
    files = {
        MANIFEST_FILE: manifest_bytes,
        ONNX_FILE: _matching(ONNX_FILE, read(ONNX_FILE), onnx["sha256"], onnx["size_bytes"]),
    }
    tables: dict[str, dict[str, Any]] = {}
    for table, entry in sorted(manifest["files"].items()):
        data = _matching(entry["file"], read(entry["file"]), entry["sha256"], entry["size_bytes"])
        try:
            content = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{entry['file']} is not valid JSON ({exc})") from exc
        if not isinstance(content, dict):
            raise ValueError(f"{entry['file']}: top level is not an object")
        files[entry["file"]], tables[table] = data, content
    return _VerifiedFiles(pointer, manifest, files, tables)


def _session(onnx_bytes: bytes, onnx_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = onnx_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def missing_row(input_schema: Mapping[str, Any]) -> np.ndarray:
    """One float32 row [1, F] with every input missing: NaN for numeric columns, the missing code for categoricals."""
    values = [
        float(column["missing_code"]) if column["type"] == "categorical" else math.nan
        for column in input_schema["columns"]
    ]
    return np.asarray([values], dtype=np.float32)


def _check_session(session: ort.InferenceSession, manifest: Mapping[str, Any]) -> None:
    """The graph takes the manifest's one float32 input of its width and gives its outputs; the all-missing row
    predicts finite probabilities over the classes summing to 1."""
    n_features, labels = len(manifest["input_schema"]["columns"]), manifest["class_labels"]
    inputs = session.get_inputs()
    if [node.name for node in inputs] != [manifest["onnx"]["input"]]:
        raise ValueError(
            f"the ONNX graph's inputs {[node.name for node in inputs]} are not [{manifest['onnx']['input']!r}]"
        )
    shape = inputs[0].shape
    width = shape[1] if len(shape) == 2 else None
    if inputs[0].type != "tensor(float)" or len(shape) != 2 or (isinstance(width, int) and width != n_features):
        raise ValueError(f"the ONNX input is {inputs[0].type} {shape}, not a float32 matrix [N, {n_features}]")
    outputs = {node.name for node in session.get_outputs()}
    if not set(manifest["onnx"]["outputs"]) <= outputs:
        raise ValueError(f"the ONNX graph's outputs {sorted(outputs)} lack some of onnx.outputs")
    result = session.run(
        [manifest["onnx"]["probabilities_output"]], {inputs[0].name: missing_row(manifest["input_schema"])}
    )
    probabilities = np.asarray(result[0])
    if probabilities.shape != (1, len(labels)):
        raise ValueError(f"smoke prediction: probabilities of shape {probabilities.shape}, not (1, {len(labels)})")
    if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
        raise ValueError(f"smoke prediction: probabilities {probabilities.tolist()} are not finite and non-negative")
    if abs(float(probabilities.sum()) - 1.0) > PROBABILITY_TOLERANCE:
        raise ValueError(f"smoke prediction: probabilities sum to {float(probabilities.sum())!r}, not 1")


def _build(
    verified: _VerifiedFiles, *, env: str, source: Source, onnx_threads: int, now: dt.datetime, prepare: Prepare | None
) -> LoadedModel:
    manifest = verified.manifest
    try:
        session = _session(verified.files[ONNX_FILE], onnx_threads)
        _check_session(session, manifest)
    except ValueError:
        raise
    except Exception as exc:  # ONNX Runtime raises its own exception types for graphs it cannot load or run
        raise ValueError(f"ONNX Runtime: {type(exc).__name__}: {exc}") from exc
    frozen_tables = {name: _freeze(table) for name, table in verified.tables.items()}
    model = LoadedModel(
        version=verified.pointer.version,
        env=env,
        pointer=verified.pointer,
        manifest=_freeze(manifest),
        phenotype_encoding=frozen_tables[PHENOTYPE_ENCODING],
        tables=types.MappingProxyType(frozen_tables),
        session=session,
        input_name=manifest["onnx"]["input"],
        probabilities_output=manifest["onnx"]["probabilities_output"],
        class_labels=tuple(manifest["class_labels"]),
        n_features=len(manifest["input_schema"]["columns"]),
        loaded_at=now,
        source=source,
        family=model_family(verified.files[ONNX_FILE]),
    )
    if prepare is None:
        return model
    try:
        prepared = prepare(model)
    except Exception as exc:  # whatever the service's own check raises, the model is not served
        raise ValueError(f"prepare: {type(exc).__name__}: {exc}") from exc
    return dataclasses.replace(model, prepared=prepared)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, rename over `path`: readers see old or new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cache_marker_path(cache_dir: Path, env: str) -> Path:
    """Where the cache records the pointer its copy of `env`'s model was verified against."""
    return Path(cache_dir) / "env" / f"{_check_env(env)}.json"


def _write_cache(cache_dir: Path, env: str, verified: _VerifiedFiles, now: dt.datetime) -> None:
    """Copy the verified files to `<cache_dir>/<version>/`, then record the pointer (last, so a marker always
    names a complete folder). A file already there with the same bytes is left alone."""
    folder = Path(cache_dir) / verified.pointer.version
    for name, data in verified.files.items():
        path = folder / name
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            continue
        _write_atomic(path, data)
    marker = CacheMarker(pointer=verified.pointer, verified_at=now)
    _write_atomic(cache_marker_path(cache_dir, env), msgspec.json.format(msgspec.json.encode(marker)) + b"\n")


def load_version(
    bucket: BucketReader,
    env: str,
    cache_dir: Path,
    *,
    onnx_threads: int = 1,
    pointer: Pointer | None = None,
    now: dt.datetime | None = None,
    prepare: Prepare | None = None,
) -> LoadedModel:
    """The version `env`'s pointer names (or `pointer`, already read), verified from the bucket and cached.

    NoModelError when the env has no pointer; PointerInvalidError; BucketUnavailableError when the bucket cannot
    be read (nothing is refused then); ModelRefusedError with the reason for a version that fails any check,
    `prepare(model)` included. A failed cache write does not refuse a verified model: it is logged and kept in
    `cache_error`.
    """
    pointer = pointer or read_pointer(bucket, env)
    version = pointer.version

    def read(name: str) -> bytes:
        try:
            return bucket.get_bytes(version_key(version, name))
        except ObjectMissingError:
            raise ValueError(f"{name} is missing from {bucket.uri}/{version_key(version, '')}") from None

    now = now or _utcnow()
    try:
        verified = _verify_files(pointer, read)
        model = _build(verified, env=env, source="bucket", onnx_threads=onnx_threads, now=now, prepare=prepare)
    except ValueError as exc:
        raise ModelRefusedError(version, str(exc)) from exc
    try:
        _write_cache(cache_dir, env, verified, now)
    except OSError as exc:
        logger.warning("model %s verified but not cached in %s: %s", version, cache_dir, exc)
        return dataclasses.replace(model, cache_error=f"{type(exc).__name__}: {exc}")
    return model


def load_cached(
    env: str,
    cache_dir: Path,
    *,
    onnx_threads: int = 1,
    now: dt.datetime | None = None,
    prepare: Prepare | None = None,
) -> LoadedModel:
    """The last version verified for `env` from the cache, verified again against its recorded hashes;
    NoModelError when there is none or it no longer verifies."""
    marker_path = cache_marker_path(cache_dir, env)
    try:
        marker = msgspec.json.decode(marker_path.read_bytes(), type=CacheMarker)
    except FileNotFoundError:
        raise NoModelError(f"env {env}: no verified model cached in {cache_dir}") from None
    except (OSError, msgspec.DecodeError) as exc:
        raise NoModelError(f"env {env}: cache marker {marker_path} unreadable ({exc})") from exc
    pointer = marker.pointer
    folder = Path(cache_dir) / pointer.version

    def read(name: str) -> bytes:
        try:
            return (folder / name).read_bytes()
        except OSError as exc:
            raise ValueError(f"cached {name} unreadable ({exc})") from exc

    try:
        if pointer.env != env or not _VERSION.match(pointer.version):
            raise ValueError(f"the marker names env {pointer.env!r}, version {pointer.version!r}")
        return _build(
            _verify_files(pointer, read),
            env=env,
            source="cache",
            onnx_threads=onnx_threads,
            now=now or _utcnow(),
            prepare=prepare,
        )
    except ValueError as exc:
        message = f"env {env}: cached version {pointer.version} in {folder} fails verification: {exc}"
        raise NoModelError(message) from exc


def load_initial(
    bucket: BucketReader, env: str, cache_dir: Path, *, onnx_threads: int = 1, prepare: Prepare | None = None
) -> LoadedModel:
    """What the service starts with: the version the bucket's pointer names; the verified cached copy when the
    bucket cannot be read; NoModelError when neither (or when the env has no pointer). A refused version raises
    ModelRefusedError: the cache is a fallback for an unreachable bucket, not for a version the bucket disowns."""
    try:
        return load_version(bucket, env, cache_dir, onnx_threads=onnx_threads, prepare=prepare)
    except BucketUnavailableError as exc:
        logger.warning("bucket %s unavailable at start-up (%s): loading the cached model", bucket.uri, exc)
        try:
            return load_cached(env, cache_dir, onnx_threads=onnx_threads, prepare=prepare)
        except NoModelError as cache_exc:
            raise NoModelError(f"bucket unavailable ({exc}) and {cache_exc}") from exc


@dataclass(frozen=True)
class Refusal:
    """A version the service would not serve, and why."""

    version: str
    manifest_sha256: str
    reason: str
    at: dt.datetime


@dataclass(frozen=True)
class HolderStatus:
    """Everything `/ready` and `/v1/model` report, as one immutable snapshot."""

    model: LoadedModel | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    last_check_at: dt.datetime | None = None
    refusals_total: int = 0
    refused: tuple[Refusal, ...] = ()  # the most recent MAX_REFUSALS_KEPT, oldest first
    swaps_total: int = 0

    @property
    def ready(self) -> bool:
        """Whether a model is loaded."""
        return self.model is not None

    @property
    def source(self) -> Source | None:
        """Where the served model was loaded from: the bucket, or the cache while the bucket was unavailable."""
        return self.model.source if self.model is not None else None

    def refusal_of(self, pointer: Pointer) -> Refusal | None:
        """The latest refusal of the version and manifest `pointer` names, if any."""
        for refusal in reversed(self.refused):
            if (refusal.version, refusal.manifest_sha256) == (pointer.version, pointer.manifest_sha256):
                return refusal
        return None


class ModelHolder:
    """The served model and the reload history, swapped as one immutable `HolderStatus` per change.

    Readers take `holder.model` (or `holder.status`) once per request; writers (the reloader) are serialised by a
    lock so that no update is lost, and publish each change with a single assignment.
    """

    def __init__(self, model: LoadedModel | None = None) -> None:
        self._status = HolderStatus(model=model)
        self._write_lock = threading.Lock()

    @property
    def status(self) -> HolderStatus:
        """The current snapshot."""
        return self._status

    @property
    def model(self) -> LoadedModel | None:
        """The model to serve, or None before one was loaded."""
        return self._status.model

    def swap(self, model: LoadedModel, now: dt.datetime | None = None) -> LoadedModel | None:
        """Serve `model` from now on; return the one it replaces."""
        with self._write_lock:
            previous = self._status
            self._status = dataclasses.replace(
                previous,
                model=model,
                swaps_total=previous.swaps_total + 1,
                last_error=None,
                last_error_at=None,
                last_check_at=now or _utcnow(),
            )
        logger.info(
            "serving model %s (from %s), replacing %s",
            model.version,
            model.source,
            previous.model.version if previous.model else "nothing",
        )
        return previous.model

    def record_refusal(self, refusal: Refusal) -> None:
        """Count a refused version and keep its reason; the served model does not change."""
        with self._write_lock:
            status = self._status
            self._status = dataclasses.replace(
                status,
                refusals_total=status.refusals_total + 1,
                refused=(*status.refused, refusal)[-MAX_REFUSALS_KEPT:],
                last_check_at=refusal.at,
            )
        logger.error("refused model %s: %s", refusal.version, refusal.reason)

    def record_error(self, message: str, now: dt.datetime | None = None) -> None:
        """A check that could not tell (bucket unavailable, invalid pointer); the served model does not change."""
        when = now or _utcnow()
        with self._write_lock:
            self._status = dataclasses.replace(self._status, last_error=message, last_error_at=when, last_check_at=when)
        logger.error("model check failed: %s", message)

    def record_check(self, now: dt.datetime | None = None) -> None:
        """A check found the served model current."""
        with self._write_lock:
            self._status = dataclasses.replace(
                self._status, last_error=None, last_error_at=None, last_check_at=now or _utcnow()
            )


ReloadOutcome = Literal["unchanged", "swapped", "refused", "refused-before", "error"]


class Reloader:
    """Reads `env`'s pointer every `interval_s` seconds in a daemon thread and swaps in a new version once it is
    verified; a refused version is retried only after `retry_refused_after_s` (versions are immutable)."""

    def __init__(
        self,
        holder: ModelHolder,
        bucket: BucketReader,
        env: str,
        cache_dir: Path,
        *,
        interval_s: float,
        onnx_threads: int = 1,
        retry_refused_after_s: float = 600.0,
        prepare: Prepare | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"reload interval: {interval_s} must be a positive number of seconds")
        self.holder, self.bucket, self.env, self.cache_dir = holder, bucket, _check_env(env), Path(cache_dir)
        self.interval_s, self.onnx_threads = interval_s, onnx_threads
        self.retry_refused_after = dt.timedelta(seconds=retry_refused_after_s)
        self._prepare, self._clock = prepare, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> ReloadOutcome:
        """One poll: read the pointer; load, verify and swap a version other than the served one."""
        now = self._clock()
        try:
            pointer = read_pointer(self.bucket, self.env)
        except (BucketUnavailableError, NoModelError, PointerInvalidError) as exc:
            self.holder.record_error(str(exc), now)
            return "error"
        current = self.holder.model
        if current is not None and current.source == "bucket" and current.pointer.same_files(pointer):
            self.holder.record_check(now)
            return "unchanged"
        refusal = self.holder.status.refusal_of(pointer)
        if refusal is not None and now - refusal.at < self.retry_refused_after:
            self.holder.record_check(now)
            return "refused-before"
        try:
            model = load_version(
                self.bucket,
                self.env,
                self.cache_dir,
                onnx_threads=self.onnx_threads,
                pointer=pointer,
                now=now,
                prepare=self._prepare,
            )
        except ModelRefusedError as exc:
            self.holder.record_refusal(Refusal(pointer.version, pointer.manifest_sha256, exc.reason, now))
            return "refused"
        except BucketUnavailableError as exc:
            self.holder.record_error(str(exc), now)
            return "error"
        self.holder.swap(model, now)
        return "swapped"

    def start(self) -> None:
        """Poll in a daemon thread until `stop()`."""
        if self._thread is not None:
            raise RuntimeError("reloader already started (a reloader runs once: make a new one after stop)")
        self._thread = threading.Thread(target=self._run, name=f"model-reloader-{self.env}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop polling and wait for a check in progress to end (at most `timeout_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"reloader did not stop within {timeout_s:g} s")

    def _run(self) -> None:
        for _ in self._ticks():
            try:
                self.check_once()
            except Exception as exc:  # a bug must not end the polling: record it where /ready shows it
                logger.exception("model reloader: unexpected error")
                self.holder.record_error(f"reloader: {type(exc).__name__}: {exc}")

    def _ticks(self) -> Iterator[None]:
        while not self._stop.wait(self.interval_s):
            yield None
