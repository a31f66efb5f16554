"""`promote`, `rollback`: moves of the published models. Each runs a deployment job, so each is a run in the UI.

Outside a run nothing can read a `dg.EnvVar`, so the commands build their resources with the credentials of the
environment they are given. A failure ends the command with exit code 1 and one line naming what failed. (`status`
is rare_triage.cli.status, which needs no Dagster.)
"""

import sys
from collections.abc import Mapping
from typing import Any

import dagster as dg

from rare_triage.cli.instance import open_instance
from rare_triage.cli.status import status_report
from rare_triage.defs.deployment.promotion import promote_to_prod_job, rollback_job
from rare_triage.defs.shared import keys
from rare_triage.defs.shared.bucket import build_bucket_resource
from rare_triage.defs.shared.resources import build_mlflow_resource

PROMOTE_OP = "promote_dev_to_prod"
ROLLBACK_OP = "rollback_env"


def run_job(job_name: str, run_config: dict[str, Any], environ: Mapping[str, str]) -> dg.ExecuteInProcessResult:
    """Execute a deployment job against the environment's instance, bucket and MLflow registry."""
    resources = {
        keys.BUCKET: build_bucket_resource(environ, resolve_credentials=True),
        keys.MLFLOW: build_mlflow_resource(environ),
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
