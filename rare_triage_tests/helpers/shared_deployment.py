"""A shared deployment on this machine, as at a hospital but on 127.0.0.1: the instance of deploy/dagster.yaml on
PostgreSQL, the code location served by `dagster api grpc`, `dagster-daemon run` on a workspace pointing at it, and
job backfills submitted through the instance and executed by the daemon. For the integration tests and
bench/bench_backfill.py (run it with PYTHONPATH=.).

Only what a deployment has: processes, the instance and the files the runs wrote; the measurements (when runs and
pooled steps started and ended) are read back from the run storage and the event log.
"""

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import psycopg2
import pytest
import yaml
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.remote_representation.external import RemoteRepository
from dagster._core.storage.dagster_run import FINISHED_STATUSES, RunRecord
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._grpc.client import DagsterGrpcClient
from dagster._time import get_current_timestamp

from rare_triage.defs.shared import keys
from rare_triage.defs.shared.io_managers.parquet_lake import ParquetLakeIOManager
from rare_triage.lib import schema
from rare_triage.lib.paths import PROJECT_ROOT
from rare_triage_tests.helpers import processes
from rare_triage_tests.helpers.processes import LOOPBACK, Started

DEPLOY_DAGSTER_YAML = PROJECT_ROOT / "deploy" / "dagster.yaml"
MODULE = "rare_triage.definitions"
LOCATION = "rare_triage"
# a dummy key of the tests (64 hex characters), never a real one: a shared deployment refuses the public demo key
TEST_HMAC_KEY = "ab" * 32
STARTUP_SECONDS = 180.0
# a small synthetic day (about 360 encounters after validation), as in helpers.materialize
SMALL_DAYS = {"RARE_TRIAGE_ENCOUNTERS_PER_DAY": "400", "RARE_TRIAGE_POPULATION_SIZE": "20000"}
# One process per run: the daily job is a chain (raw -> governance -> features) with no two steps able to run at
# once, so per-step processes only add an interpreter start and a code-location load to every step.
IN_PROCESS: dict[str, Any] = {"execution": {"config": {"in_process": {}}}}


def create_database(postgres: Mapping[str, str], prefix: str) -> str:
    """A new, empty database in the test cluster (the cluster's tools: its superuser over 127.0.0.1)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(
        host=postgres["host"],
        port=int(postgres["port"]),
        user=postgres["user"],
        password=postgres["password"] or None,
        dbname=postgres["db"],
        connect_timeout=10,
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    return name


def postgres_environ(postgres: Mapping[str, str], db: str) -> dict[str, str]:
    """The variables deploy/dagster.yaml reads its PostgreSQL connection from."""
    return {
        "RARE_TRIAGE_PG_USER": postgres["user"],
        "RARE_TRIAGE_PG_PASSWORD": postgres["password"],
        "RARE_TRIAGE_PG_HOST": postgres["host"],
        "RARE_TRIAGE_PG_PORT": postgres["port"],
        "RARE_TRIAGE_PG_DB": db,
    }


def write_dagster_home(home: Path, *, max_concurrent_runs: int | None = None) -> Path:
    """$DAGSTER_HOME holding deploy/dagster.yaml (copied as is, or with another run limit for the benchmark)."""
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if max_concurrent_runs is None:
        shutil.copyfile(DEPLOY_DAGSTER_YAML, target)
    else:
        config = yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text())
        config["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
        target.write_text(yaml.safe_dump(config, sort_keys=False))
    return home


def write_workspace(path: Path, port: int) -> Path:
    """A workspace.yaml naming the code-location server on 127.0.0.1:port."""
    workspace = {"load_from": [{"grpc_server": {"host": LOOPBACK, "port": port, "location_name": LOCATION}}]}
    path.write_text(yaml.safe_dump(workspace, sort_keys=False))
    return path


def deployment_environ(
    root: Path, dagster_home: Path, pg: Mapping[str, str], extra: Mapping[str, str]
) -> dict[str, str]:
    """The environment of every process of the deployment: this one's minus any rare-triage or Dagster setting,
    then the state under `root`, the instance's PostgreSQL and `extra`."""
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("RARE_TRIAGE_", "DAGSTER_", "MLFLOW_", "PYTEST_"))
    }
    return {
        **inherited,
        "PYTHONUNBUFFERED": "1",
        "DAGSTER_HOME": str(dagster_home),
        "RARE_TRIAGE_HOME": str(root / "home"),
        "RARE_TRIAGE_DEPLOYMENT": "shared",
        "RARE_TRIAGE_HMAC_KEY": TEST_HMAC_KEY,
        "RARE_TRIAGE_EHR_SOURCE": "synthetic",
        **SMALL_DAYS,
        **pg,
        **extra,
    }


@dataclass
class Deployment:
    """A running deployment: its folders, the environment of its processes and the processes themselves."""

    root: Path
    dagster_home: Path
    workspace: Path
    port: int
    env: dict[str, str] = field(repr=False)
    processes: list[Started] = field(default_factory=list, repr=False)  # every process started, stopped on exit
    servers: list[Started] = field(default_factory=list, repr=False)  # the ones that must keep running

    @property
    def home(self) -> Path:
        return Path(self.env["RARE_TRIAGE_HOME"])

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def report(self) -> str:
        """State and output of every process, for failure messages."""
        return processes.report(self.processes)

    @contextlib.contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        """The deployment's instance opened in this process (deploy/dagster.yaml reads PostgreSQL's address from the
        environment: it is set while the instance is open)."""
        with pytest.MonkeyPatch.context() as environ:
            for name, value in self.env.items():
                if name.startswith("RARE_TRIAGE_PG_"):
                    environ.setenv(name, value)
            with dg.DagsterInstance.from_config(str(self.dagster_home)) as instance:
                yield instance

    def start(self, name: str, command: Sequence[str], *, server: bool = True) -> Started:
        started = processes.start(name, command, env=self.env, log_dir=self.logs, cwd=self.root)
        self.processes.append(started)
        if server:
            self.servers.append(started)
        return started

    def start_daemon(self) -> Started:
        """`dagster-daemon run` on the workspace: backfills, the run queue, run monitoring, sensors, schedules."""
        return self.start("daemon", [processes.venv_bin("dagster-daemon"), "run", "-w", str(self.workspace)])


def _grpc_ping(port: int) -> bool | None:
    return True if DagsterGrpcClient(port=port, host=LOOPBACK).ping("ready")["echo"] == "ready" else None


BIND_FAILURES = ("Failed to bind to address", "Address already in use", "CouldNotBindGrpcServerToAddress")


def _start_code_server(deployment: Deployment, attempts: int = 3) -> Started:
    """`dagster api grpc` on 127.0.0.1, answering pings. The server binds its port only after loading the code
    location (10-20 s): when another process took that free port meanwhile, it exits unable to bind, and it is
    started again on another port (as Dagster does for the servers it starts itself)."""
    for attempt in range(1, attempts + 1):
        command = [processes.venv_bin("dagster"), "api", "grpc", "-h", LOOPBACK, "-p", str(deployment.port)]
        server = deployment.start(f"code_server_{attempt}", [*command, "-m", MODULE, "--location-name", LOCATION])
        try:
            processes.wait_for(
                lambda: _grpc_ping(deployment.port),
                timeout=STARTUP_SECONDS,
                what="code-location server",
                watch=[server],
            )
            return server
        except processes.NotReadyError:
            if server.alive() or not any(m in server.tail() for m in BIND_FAILURES) or attempt == attempts:
                raise
            deployment.servers.remove(server)
            deployment.port = processes.free_port()
            write_workspace(deployment.workspace, deployment.port)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def shared_deployment(
    root: Path,
    postgres: Mapping[str, str],
    *,
    extra_env: Mapping[str, str] | None = None,
    max_concurrent_runs: int | None = None,
) -> Iterator[Deployment]:
    """A fresh instance database and state folder under `root`; the reference tables materialized (`dagster job
    execute`, recorded in the instance) while the code-location server starts, then the warehouse pool's limit set
    (`dagster instance concurrency set`, a deploy step); the daemon NOT started yet (start it with `start_daemon`
    once the backfill is submitted: its first backfill iteration is then immediate, not up to 30 s later). Every
    process is stopped by its pid on exit."""
    db = create_database(postgres, "dagster")
    dagster_home = write_dagster_home(root / "dagster_home", max_concurrent_runs=max_concurrent_runs)
    port = processes.free_port()
    workspace = write_workspace(root / "workspace.yaml", port)
    env = deployment_environ(root, dagster_home, postgres_environ(postgres, db), extra_env or {})
    Path(env["RARE_TRIAGE_HOME"]).mkdir(parents=True, exist_ok=True)
    deployment = Deployment(root, dagster_home, workspace, port, env)
    dagster = processes.venv_bin("dagster")
    try:
        run_config = root / "reference_run_config.yaml"
        run_config.write_text(yaml.safe_dump(IN_PROCESS))
        reference = deployment.start(
            "reference_job",
            [dagster, "job", "execute", "-m", MODULE, "-j", keys.REFERENCE_JOB, "-c", str(run_config)],
            server=False,
        )
        code_server = _start_code_server(deployment)
        processes.wait_for(reference.process.poll, timeout=STARTUP_SECONDS, what="reference_job", watch=[code_server])
        if reference.process.returncode != 0:
            raise processes.NotReadyError(f"reference_job failed\n{deployment.report()}")
        # the deploy step that gives the warehouse pool its row before any run claims it (see deploy/dagster.yaml)
        pool = deployment.start(
            "pool_limit", [dagster, "instance", "concurrency", "set", keys.DUCKDB_POOL, "1"], server=False
        )
        processes.wait_for(pool.process.poll, timeout=STARTUP_SECONDS, what="pool limit", watch=[code_server])
        if pool.process.returncode != 0:
            raise processes.NotReadyError(f"dagster instance concurrency set failed\n{deployment.report()}")
        yield deployment
    finally:
        for started in reversed(deployment.processes):
            processes.stop(started)


def _repository(context: WorkspaceProcessContext) -> RemoteRepository:
    location = context.create_request_context().get_code_location(LOCATION)
    (repository,) = location.get_repositories().values()
    return repository


def submit_job_backfill(
    deployment: Deployment,
    instance: dg.DagsterInstance,
    job_name: str,
    partitions: Sequence[str],
    *,
    run_config: Mapping[str, Any] | None = None,
) -> str:
    """A job backfill as the UI's "Launch backfill" of a partitioned job records it: REQUESTED, for the daemon's
    backfill loop to submit one run per partition to the run queue. Returns its id."""
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(deployment.workspace)])) as context:
        repository = _repository(context)
        partition_set = next(ps for ps in repository.get_partition_sets() if ps.job_name == job_name)
        backfill_id = make_new_backfill_id()
        instance.add_backfill(
            PartitionBackfill(
                backfill_id=backfill_id,
                partition_set_origin=partition_set.get_remote_origin(),
                status=BulkActionStatus.REQUESTED,
                partition_names=list(partitions),
                from_failure=False,
                reexecution_steps=None,
                tags={},
                backfill_timestamp=get_current_timestamp(),
                run_config=dict(run_config) if run_config else None,
            )
        )
    return backfill_id


def pooled_steps(deployment: Deployment, instance: dg.DagsterInstance, job_name: str, pool: str) -> set[str]:
    """The steps of `job_name` whose op runs in `pool` (from the job as the code-location server describes it)."""
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(deployment.workspace)])) as context:
        job = _repository(context).get_full_job(job_name)
        snapshot = job.job_snapshot
        pooled_defs = {op.name for op in snapshot.node_defs_snapshot.op_def_snaps if op.pool == pool}
        invocations = snapshot.dep_structure_snapshot.node_invocation_snaps
        return {node.node_name for node in invocations if node.node_def_name in pooled_defs}


def wait_for_backfill_runs(
    deployment: Deployment, instance: dg.DagsterInstance, backfill_id: str, n_runs: int, timeout: float
) -> list[RunRecord]:
    """The backfill's run records once `n_runs` exist and all have finished (bounded by `timeout`)."""

    def finished() -> list[RunRecord] | None:
        records = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        if len(records) == n_runs and all(r.dagster_run.status in FINISHED_STATUSES for r in records):
            return list(records)
        return None

    return processes.wait_for(finished, timeout=timeout, what=f"backfill {backfill_id}", watch=deployment.servers)


@dataclass(frozen=True)
class Interval:
    """Something that ran from `start` to `end` (epoch seconds): a run, or a step of a run."""

    label: str
    start: float
    end: float


def run_intervals(records: Sequence[RunRecord]) -> list[Interval]:
    """STARTED -> finished of each run, as the run storage recorded them."""
    return [
        Interval(r.dagster_run.tags.get("dagster/partition", r.dagster_run.run_id), r.start_time, r.end_time)
        for r in records
        if r.start_time is not None and r.end_time is not None
    ]


def step_intervals(instance: dg.DagsterInstance, run_ids: Sequence[str], step_keys: set[str]) -> list[Interval]:
    """STEP_START -> STEP_SUCCESS / STEP_FAILURE of the given steps in the given runs, from the event log."""
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    intervals = []
    for run_id in run_ids:
        starts: dict[str, float] = {}
        for entry in instance.all_logs(run_id, of_type=kinds):
            event = entry.dagster_event
            if event is None or event.step_key not in step_keys:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif event.step_key in starts:
                intervals.append(
                    Interval(f"{run_id[:8]}:{event.step_key}", starts.pop(event.step_key), entry.timestamp)
                )
    return intervals


def max_overlap(intervals: Sequence[Interval]) -> int:
    """The largest number of intervals open at one instant (an end before a start at the same instant)."""
    edges = sorted([(i.start, 1) for i in intervals] + [(i.end, -1) for i in intervals], key=lambda e: (e[0], e[1]))
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best


def overlapping_pairs(intervals: Sequence[Interval]) -> list[tuple[Interval, Interval]]:
    """Every pair of intervals that share an instant."""
    ordered = sorted(intervals, key=lambda i: i.start)
    return [(a, b) for n, a in enumerate(ordered) for b in ordered[n + 1 :] if b.start < a.end]


def warehouse_counts(deployment: Deployment) -> dict[str, tuple[int, int]]:
    """partition day -> (rows, distinct encounter keys) of the features table, read from the warehouse file."""
    with duckdb.connect(str(deployment.home / "warehouse.duckdb"), read_only=True) as connection:
        rows = connection.execute(
            f"select partition_day, count(*), count(distinct encounter_key) from {keys.FEATURES_TABLE} group by 1"
        ).fetchall()
    return {str(day)[:10]: (int(n), int(distinct)) for day, n, distinct in rows}


def warehouse_duplicates(deployment: Deployment) -> int:
    """Rows of the features table beyond one per encounter key, across all partitions."""
    with duckdb.connect(str(deployment.home / "warehouse.duckdb"), read_only=True) as connection:
        (extra,) = connection.execute(
            f"select count(*) - count(distinct encounter_key) from {keys.FEATURES_TABLE}"
        ).fetchone() or (0,)
    return int(extra)


def anonymized_encounters(deployment: Deployment, day: str) -> int:
    """Encounters in the lake's anonymized_encounters partition of `day` (0 when nothing was stored)."""
    lake = ParquetLakeIOManager(base_uri=str(deployment.home / "lake"))
    tables = lake.load_partition_if_materialized(keys.ANONYMIZED_ENCOUNTERS, day)
    if not isinstance(tables, dict):
        return 0
    return len(tables[schema.ANON_ENCOUNTERS])


def materialization_metadata(instance: dg.DagsterInstance, run_id: str, asset: dg.AssetKey) -> dict[str, Any]:
    """The metadata values of `asset`'s materialization in run `run_id`."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is not None and materialization.asset_key == asset:
            return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    return {}
