"""`status`: which version each env serves, verified against its records, and every published version.

Without Dagster (the command answers without loading it): the bucket and the MLflow registry are reached through the
library and MLflow's client, with the settings the code location's resources take from the same environment
(rare_triage.defs.shared.bucket and .resources; rare_triage_tests/test_cli_status.py keeps the two in step). The
default local registry is read from its sqlite store directly (rare_triage.cli.registry_store); MLflow is imported
only for another registry. A failure ends the command with exit code 1 and one line naming what
failed.
"""

from collections.abc import Mapping
from pathlib import Path

from rare_triage.cli.registry_store import TagsReader, tags_reader
from rare_triage.lib.deployment.bucket import Bucket, BucketError, bucket_from_uri, s3_client
from rare_triage.lib.deployment.promotion import DEV, PROD, RegistryHashes, recorded_hashes
from rare_triage.lib.deployment.publication import (
    IntegrityError,
    ListedVersion,
    RecordedHashes,
    inspect_version,
    published_versions,
    read_pointer,
)
from rare_triage.lib.deployment.registry_hashes import recorded_in_tags
from rare_triage.lib.paths import rare_triage_home
from rare_triage.lib.s3_options import S3Options, s3_limits_from_environ

# The defaults of rare_triage.defs.shared.mlflow (MlflowTracking)
REGISTERED_MODEL = "rare-triage"
MLFLOW_DB = "mlflow.db"


class CommandError(Exception):
    """Ends the command: `main` prints the message on stderr, no traceback, and exits 1."""


def bucket_uri(environ: Mapping[str, str]) -> str:
    """RARE_TRIAGE_BUCKET_URI, else the folder `bucket` of the state folder."""
    return environ.get("RARE_TRIAGE_BUCKET_URI", str(rare_triage_home(environ) / "bucket"))


def s3_options(environ: Mapping[str, str]) -> S3Options:
    """Endpoint, credentials, region and limits of the bucket's S3 client, from `environ`."""
    return S3Options(
        environ.get("RARE_TRIAGE_S3_ENDPOINT_URL"),
        environ.get("AWS_ACCESS_KEY_ID"),
        environ.get("AWS_SECRET_ACCESS_KEY"),
        environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        **s3_limits_from_environ(environ),  # type: ignore[arg-type]  # floats and an int, by field
    )


def open_bucket(environ: Mapping[str, str]) -> Bucket:
    """The environment's bucket, which must exist (a mistyped folder is not an empty bucket)."""
    try:
        uri = bucket_uri(environ)
        bucket = bucket_from_uri(uri, s3_client(s3_options(environ)) if uri.startswith("s3://") else None)
        bucket.check_exists()
    except (BucketError, ValueError) as exc:
        raise CommandError(f"status: {exc}") from exc
    return bucket


def mlflow_store(environ: Mapping[str, str]) -> Path:
    """The local sqlite store used when no tracking URI is set."""
    return rare_triage_home(environ) / "mlflow" / MLFLOW_DB


def tracking_uris(environ: Mapping[str, str]) -> tuple[str, str]:
    """(tracking, registry) URIs: RARE_TRIAGE_MLFLOW_TRACKING_URI (else the local store) and
    RARE_TRIAGE_MLFLOW_REGISTRY_URI (else the tracking URI)."""
    tracking = environ.get("RARE_TRIAGE_MLFLOW_TRACKING_URI") or f"sqlite:///{mlflow_store(environ)}"
    return tracking, environ.get("RARE_TRIAGE_MLFLOW_REGISTRY_URI") or tracking


def registry_lookup(environ: Mapping[str, str]) -> RegistryHashes:
    """Reads the hashes a registry version recorded at publication (None: no such version, or no hash tags): from
    the local sqlite store directly when that is the registry (rare_triage.cli.registry_store), else through
    MLflow's client."""
    read_tags = registry_tags(environ)

    def lookup(number: str) -> RecordedHashes | None:
        tags = read_tags(REGISTERED_MODEL, number)
        if tags is None:
            return None
        return recorded_in_tags(tags, f"model registry {REGISTERED_MODEL} version {number}")

    return lookup


def registry_tags(environ: Mapping[str, str]) -> TagsReader:
    """`read(model, version)`: a registry version's tags, None when there is no such version."""
    tracking, registry = tracking_uris(environ)
    if registry == f"sqlite:///{mlflow_store(environ)}":
        direct = tags_reader(mlflow_store(environ))
        if direct is not None:
            return direct
    from mlflow import MlflowClient  # noqa: PLC0415 - lazy: only for a registry the store reader cannot read
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    client = MlflowClient(tracking_uri=tracking, registry_uri=registry)

    def read(model: str, version: str) -> dict[str, str] | None:
        try:
            return dict(client.get_model_version(model, version).tags or {})
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    return read


def _registry(environ: Mapping[str, str], notes: list[str]) -> RegistryHashes | None:
    """The registry's recorded hashes; None when the local store was never created (nothing recorded there)."""
    store = mlflow_store(environ)
    if not environ.get("RARE_TRIAGE_MLFLOW_TRACKING_URI") and not store.is_file():
        notes.append(f"registry: not checked (no MLflow store at {store})")
        return None
    lookup = registry_lookup(environ)

    def guarded(number: str) -> RecordedHashes | None:
        try:
            return lookup(number)
        except Exception as exc:
            notes.append(f"registry: version {number} not checked ({type(exc).__name__}: {str(exc)[:200]})")
            return None

    return guarded


def _env_line(bucket: Bucket, env: str, registry: RegistryHashes | None) -> tuple[str, bool]:
    try:
        pointer = read_pointer(bucket, env)
    except IntegrityError as exc:
        return f"{env}: MISMATCH: {exc}", False
    if pointer is None:
        return f"{env}: -", True
    records = recorded_hashes(pointer.version, registry, [pointer])
    check = inspect_version(bucket, pointer.version, records)
    if check.problems:
        return f"{env}: {pointer.version} MISMATCH: " + "; ".join(check.problems), False
    sources = ", ".join(r.source for r in records)
    return f"{env}: {pointer.version} ok (since {pointer.updated_at}; files match {sources})", True


def _listed(listed: ListedVersion) -> str:
    if listed.old_format:
        return f"{listed.version} (older manifest format, not servable)"
    return listed.version + (" (unreadable)" if listed.problem else "")


def status_report(environ: Mapping[str, str]) -> tuple[str, bool]:
    """Which version each env serves, verified (ok / MISMATCH), and every published version; and whether all is ok.

    A version of an older manifest format is listed with its format but fails the report only where an env serves it.
    """
    bucket = open_bucket(environ)
    notes: list[str] = []
    registry = _registry(environ, notes)
    lines, all_ok = [f"bucket: {bucket.uri}"], True
    try:
        for env in (DEV, PROD):
            line, ok = _env_line(bucket, env, registry)
            lines.append(line)
            all_ok = all_ok and ok
        published = published_versions(bucket)
    except BucketError as exc:
        raise CommandError(f"status: {exc}") from exc
    lines.append("published: " + (", ".join(_listed(listed) for listed in published) or "-"))
    lines += [f"  {listed.problem}" for listed in published if listed.problem]
    all_ok = all_ok and not any(listed.problem and not listed.old_format for listed in published)
    return "\n".join([*lines, *notes]), all_ok


def status(environ: Mapping[str, str]) -> str:
    """The status report; when a file does not match its records it is printed and the command exits 1."""
    text, ok = status_report(environ)
    if not ok:
        print(text)
        raise CommandError("status: MISMATCH: a served or published version does not match its records (see above)")
    return text
