"""Command line for promotion and rollback: runs the Dagster jobs, so each move is a run in the UI.

    python -m rare_triage.deployment.cli status
    python -m rare_triage.deployment.cli promote [--tolerance 0.01]
    python -m rare_triage.deployment.cli rollback --env prod --version v3-0123456789ab

Resources come from the environment (RARE_TRIAGE_BUCKET_URI, RARE_TRIAGE_MLFLOW_TRACKING_URI, ...);
runs are recorded in the instance of DAGSTER_HOME (default $RARE_TRIAGE_HOME/dagster_home).
"""

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from rare_triage.deployment.jobs import DEFAULT_TOLERANCE, PROMOTE_JOB, ROLLBACK_JOB, promote_to_prod_job, rollback_job
from rare_triage.deployment.resources import build_bucket_resource, build_deployment_resources
from rare_triage.lib.paths import rare_triage_home
from rare_triage.lib.promotion import DEV, PROD
from rare_triage.lib.publication import list_versions, read_pointer
from rare_triage.training import training_resources


def _instance(environ: Mapping[str, str]) -> dg.DagsterInstance:
    home = environ.get("DAGSTER_HOME") or str(rare_triage_home(environ) / "dagster_home")
    os.makedirs(home, exist_ok=True)
    return dg.DagsterInstance.from_config(home)


def run_job(job_name: str, run_config: dict[str, Any], environ: Mapping[str, str]) -> dg.ExecuteInProcessResult:
    """Execute a deployment job against the environment's instance and resources."""
    jobs = {PROMOTE_JOB: promote_to_prod_job, ROLLBACK_JOB: rollback_job}
    resources = {**build_deployment_resources(environ), **training_resources(environ)}
    defs = dg.Definitions(jobs=list(jobs.values()), resources=resources)
    job = defs.resolve_job_def(job_name)
    with _instance(environ) as instance:
        return job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)


def status(environ: Mapping[str, str]) -> str:
    """Which version each env serves, and every published version (oldest first)."""
    bucket = build_bucket_resource(environ).get_bucket()
    lines = [f"bucket: {bucket.uri}"]
    for env in (DEV, PROD):
        pointer = read_pointer(bucket, env)
        lines.append(
            f"{env}: {pointer.version if pointer else '-'}" + (f" (since {pointer.updated_at})" if pointer else "")
        )
    lines.append("published: " + (", ".join(list_versions(bucket)) or "-"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(prog="python -m rare_triage.deployment.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="what dev and prod serve, and the published versions")
    promote = commands.add_parser("promote", help=f"run {PROMOTE_JOB}: dev -> prod if the gate passes")
    promote.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    back = commands.add_parser("rollback", help=f"run {ROLLBACK_JOB}: point an env at an earlier version")
    back.add_argument("--env", default=PROD)
    back.add_argument("--version", required=True)
    args = parser.parse_args(argv)

    if args.command == "status":
        print(status(env))
        return 0
    if args.command == "promote":
        job, op, config = PROMOTE_JOB, "promote_dev_to_prod", {"tolerance": args.tolerance}
    else:
        job, op, config = ROLLBACK_JOB, "rollback_env", {"env": args.env, "version": args.version}
    result = run_job(job, {"ops": {op: {"config": config}}}, env)
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        data = failure.step_failure_data if failure is not None else None
        if data is not None and data.user_failure_data is not None and data.user_failure_data.description:
            reason = data.user_failure_data.description
        else:
            reason = data.error.message.strip() if data is not None and data.error is not None else ""
        print(f"{job} failed (run {result.run_id}): {reason}", file=sys.stderr)
        return 1
    print(f"{job}: ok (run {result.run_id}) {result.output_for_node(op)}")
    print(status(env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
