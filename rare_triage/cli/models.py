"""`status`, `promote`, `rollback`: the published models. Moves run the deployment jobs, so each is a run in the UI.

Outside a run nothing can read a `dg.EnvVar`, so the commands build their resources with the credentials of the
environment they are given. A failure ends the command with exit code 1 and one line naming what failed.
"""

import sys
from collections.abc import Mapping
from typing import Any

import dagster as dg

from rare_triage.cli.instance import open_instance
from rare_triage.defs.deployment.promotion import promote_to_prod_job, rollback_job
from rare_triage.defs.deployment.registry import registry_hashes
from rare_triage.defs.shared import keys
from rare_triage.defs.shared.bucket import build_bucket_resource
from rare_triage.defs.shared.mlflow import MLFLOW_DB, MlflowTracking, default_mlflow_dir
from rare_triage.defs.shared.resources import build_mlflow_resource
from rare_triage.lib.deployment.bucket import Bucket, BucketError
from rare_triage.lib.deployment.promotion import DEV, PROD, RegistryHashes, recorded_hashes
from rare_triage.lib.deployment.publication import (
    IntegrityError,
    ListedVersion,
    RecordedHashes,
    inspect_version,
    published_versions,
    read_pointer,
)

PROMOTE_OP = "promote_dev_to_prod"
ROLLBACK_OP = "rollback_env"


class CommandError(Exception):
    """Ends the command: `main` prints the message on stderr, no traceback, and exits 1."""


def open_bucket(environ: Mapping[str, str]) -> Bucket:
    """The environment's bucket, which must exist (a mistyped folder is not an empty bucket)."""
    try:
        bucket = build_bucket_resource(environ, resolve_credentials=True).get_bucket()
        bucket.check_exists()
    except (BucketError, ValueError) as exc:
        raise CommandError(f"status: {exc}") from exc
    return bucket


def mlflow_of(environ: Mapping[str, str]) -> MlflowTracking:
    """The MLflow resource of `environ`, its default sqlite store under `environ`'s home (not the process's)."""
    return build_mlflow_resource(environ)


def _registry(environ: Mapping[str, str], notes: list[str]) -> RegistryHashes | None:
    """The registry's recorded hashes; None when the local store was never created (nothing recorded there)."""
    resource = build_mlflow_resource(environ)
    store = default_mlflow_dir(environ) / MLFLOW_DB
    if resource.tracking_uri is None and not store.is_file():
        notes.append(f"registry: not checked (no MLflow store at {store})")
        return None
    lookup = registry_hashes(mlflow_of(environ))

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


def run_job(job_name: str, run_config: dict[str, Any], environ: Mapping[str, str]) -> dg.ExecuteInProcessResult:
    """Execute a deployment job against the environment's instance, bucket and MLflow registry."""
    resources = {
        keys.BUCKET: build_bucket_resource(environ, resolve_credentials=True),
        keys.MLFLOW: mlflow_of(environ),
    }
    defs = dg.Definitions(jobs=[promote_to_prod_job, rollback_job], resources=resources)
    with open_instance(environ) as instance:
        return defs.resolve_job_def(job_name).execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
        )


def _failure_reason(result: dg.ExecuteInProcessResult) -> str:
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    data = failure.step_failure_data if failure is not None else None
    if data is not None and data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    return data.error.message.strip() if data is not None and data.error is not None else ""


def _report(job_name: str, op: str, result: dg.ExecuteInProcessResult, environ: Mapping[str, str]) -> int:
    """Exit code of a move: 1 only when the run failed; the state after a successful move is printed after it."""
    if not result.success:
        print(f"{job_name} failed (run {result.run_id}): {_failure_reason(result)}", file=sys.stderr)
        return 1
    print(f"{job_name}: ok (run {result.run_id}) {result.output_for_node(op)}")
    try:
        print(status_report(environ)[0])
    except Exception as exc:  # the move happened: report, do not turn it into a failure
        print(f"{job_name} succeeded; the state afterwards could not be read: {exc}", file=sys.stderr)
    return 0


def promote(tolerance: float | None, environ: Mapping[str, str]) -> int:
    """Run promote_to_prod (`tolerance` None: the job's default); 0 when it succeeded (promoted, or nothing to do)."""
    config = {} if tolerance is None else {"tolerance": tolerance}
    result = run_job(keys.PROMOTE_JOB, {"ops": {PROMOTE_OP: {"config": config}}}, environ)
    return _report(keys.PROMOTE_JOB, PROMOTE_OP, result, environ)


def rollback(env: str, version: str, environ: Mapping[str, str]) -> int:
    """Run rollback of `env` (dev or prod) to the published `version`."""
    config = {"env": env, "version": version}
    result = run_job(keys.ROLLBACK_JOB, {"ops": {ROLLBACK_OP: {"config": config}}}, environ)
    return _report(keys.ROLLBACK_JOB, ROLLBACK_OP, result, environ)
