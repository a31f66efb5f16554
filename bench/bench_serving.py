"""The triage service's speed over HTTP, measured side by side in one run (issue "The Litestar triage service").

    python bench/bench_serving.py [--home .rare_triage] [--env dev] [--duration 8] [--rounds 3] [--connections 64]
    python bench/bench_serving.py --linear       (a logistic regression of the same inputs instead of the model)
    make bench-serving                           (RARE_TRIAGE_HOME=... for another platform state folder)

What runs, all on 127.0.0.1: the published model of `<home>/bucket` (env `--env`) is published again into a
bucket of the run's own with the platform's publication code (`serving_model.publish_copy`: a format-1 version
gets its phenotype encoding moved to its table file, as serving needs). Then
  - the service, one uvicorn worker (`serving_server.py`: `python -m serving` itself, run in .venv-serving, with
    the benchmark's POST /bench/floor registered on its app), pinned to one core, its settings as deployed
    (`--service-env NAME=value` to try others); the same service with micro-batching off beside it;
  - the seed design (`serving_baseline.py`: FastAPI + uvicorn, one worker, the native scikit-learn pipeline of
    the same version from MLflow, the same encoder), pinned to the same core; each server idles while another
    is measured;
  - the load on the other core: wrk (Debian's `wrk`; the Python client of serving_load.py when absent) with a
    Lua script cycling over 256 varied encounters, and serving_load.py's paced client for the open loop.
Measured, in alternating rounds (best of each kept, so load from other processes hits every side alike):
  1. closed-loop throughput of POST /v1/predict, of the floor (the same payload validated by the same server,
     nothing scored), of predict unbatched (SERVING_MICROBATCH_WAIT_MS=0) and of the baseline; their ratios
     (targets: predict >= 0.7x floor, >= 10x baseline);
  2. the server's CPU time per request (from /proc: less sensitive to a shared machine than req/s);
  3. p50 / p99 latency of predict at half its maximum throughput (target p99 < 20 ms; open loop, due-time
     latency, in rounds with the best kept; the floor at the same rate beside it, for what the machine adds) and
     of a lone client (one connection, one request at a time: what micro-batching adds when nothing else is in
     flight);
  4. the service's RSS at start (model loaded, no request yet) and its peak; the mean micro-batch size (rows per
     model call of the closed-loop predict rounds, from the prediction log's shared timestamps);
  5. the load average at each measurement (the machine may be shared: the figures are only as quiet as it was).
Exit status 1 when a target is missed (like bench_onnx.py); nothing here is a test.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx
import psutil
from serving_load import LoadResult, encounter_bodies, run_wrk, wrk_script
from serving_model import BenchModel, publish_copy

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SERVICE_PYTHON = ROOT / ".venv-serving" / "bin" / "python"
PLATFORM_PYTHON = Path(sys.executable)
HOST = "127.0.0.1"
TARGET_FLOOR_RATIO = 0.7
TARGET_BASELINE_RATIO = 10.0
TARGET_P99_MS = 20.0
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
BODIES = 256
WARMUP_S = 2.0
LONE_S = 3.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def loadavg() -> float:
    return os.getloadavg()[0]


@dataclass
class Server:
    """A server process of the benchmark, stopped by its pid."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    output: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 1024 / 1024

    def peak_rss_mb(self) -> float | None:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None


def pinned(command: list[str], cpus: Sequence[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, cpus)), *command] if cpus else command


def start_server(name: str, command: list[str], env: dict[str, str], workdir: Path, port: int) -> Server:
    """Start a server and wait (bounded) until GET /ready answers 200."""
    output = workdir / f"{name}.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(name, process, port, output)
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{output.read_text()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/ready").status_code == 200:
                    return server
            time.sleep(0.1)
    stop_server(server)
    raise TimeoutError(f"{name} not ready within {START_TIMEOUT_S:g} s:\n{output.read_text()[-4000:]}")


def stop_server(server: Server) -> None:
    """SIGTERM the server's pid, SIGKILL when it does not end in time."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(STOP_TIMEOUT_S)


@contextlib.contextmanager
def running(name: str, command: list[str], env: dict[str, str], workdir: Path, port: int) -> Iterator[Server]:
    server = start_server(name, command, env, workdir, port)
    try:
        yield server
    finally:
        stop_server(server)


@dataclass
class Side:
    """One measured endpoint: its best closed-loop round and the server CPU per request of that round."""

    label: str
    server: Server
    path: str
    rounds: list[tuple[LoadResult, float, float]] = field(default_factory=list)  # result, cpu us/request, load

    @property
    def best(self) -> tuple[LoadResult, float, float]:
        return max(self.rounds, key=lambda item: item[0].rate)

    @property
    def rate(self) -> float:
        return self.best[0].rate

    @property
    def cpu_us(self) -> float:
        return min(cpu for _, cpu, _ in self.rounds)


class Load:
    """The load generator, on the cores the servers do not use."""

    def __init__(self, workdir: Path, bodies: list[bytes], cpus: Sequence[int] | None, use_wrk: bool) -> None:
        self.cpus = cpus
        self.use_wrk = use_wrk
        self.bodies_file = workdir / "bodies.json"
        self.bodies_file.write_text(json.dumps([body.decode("utf-8") for body in bodies]), encoding="utf-8")
        self.script = workdir / "post.lua"
        self.script.write_text(wrk_script(bodies, {"Content-Type": "application/json"}), encoding="utf-8")

    def python_client(self, server: Server, path: str, mode: str, duration_s: float, **options: float) -> LoadResult:
        command = [
            str(PLATFORM_PYTHON), str(BENCH / "serving_load.py"), mode, "--port", str(server.port), "--path", path,
            "--bodies", str(self.bodies_file), "--duration", f"{duration_s:g}",
        ]  # fmt: skip
        for name, value in options.items():
            command += [f"--{name}", f"{value:g}"]
        done = subprocess.run(
            pinned(command, self.cpus), capture_output=True, text=True, timeout=duration_s + 120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"load client failed: {done.stderr.strip()[-2000:]}")
        return LoadResult.from_json(json.loads(done.stdout))

    def closed(self, server: Server, path: str, connections: int, duration_s: float) -> LoadResult:
        if self.use_wrk:
            return run_wrk(
                server.url + path,
                self.script,
                connections=connections,
                duration_s=duration_s,
                cpus=self.cpus,
                timeout_s=30.0,
            )
        return self.python_client(server, path, "closed", duration_s, connections=connections)


def measure(load: Load, side: Side, connections: int, duration_s: float) -> None:
    before_load = loadavg()
    cpu_before = side.server.cpu_seconds()
    result = load.closed(side.server, side.path, connections, duration_s)
    cpu_used = side.server.cpu_seconds() - cpu_before
    if result.errors:
        print(f"  warning: {side.label}: {result.errors} errors of {result.requests} requests")
    cpu_us = cpu_used / max(result.ok, 1) * 1e6
    side.rounds.append((result, cpu_us, max(before_load, loadavg())))
    print(
        f"  {side.label:<9} {result.rate:8.0f} req/s  p50 {result.p50_ms or 0:6.2f} ms  "
        f"p99 {result.p99_ms or 0:7.2f} ms  server CPU {cpu_us:6.0f} us/req  load {side.rounds[-1][2]:.2f}"
    )


class LogSpan:
    """The lines the service appends to its prediction log from now until `read()`, followed across a rotation
    (the open handle keeps reading the rotated file, whatever it was renamed to; the new file's lines are added)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        try:
            self.handle: BinaryIO | None = log.open("rb")
            self.start = os.fstat(self.handle.fileno()).st_size
        except OSError:
            self.handle, self.start = None, 0

    def read(self) -> bytes:
        data, inode = b"", None
        if self.handle is not None:
            with self.handle:
                self.handle.seek(self.start)
                data = self.handle.read()
                inode = os.fstat(self.handle.fileno()).st_ino
        with contextlib.suppress(OSError):
            if os.stat(self.log).st_ino != inode:  # rotated meanwhile (or created): the new file's lines too
                data += self.log.read_bytes()
        return data


def batch_sizes(spans: list[bytes]) -> tuple[int, int] | None:
    """(rows, model calls) of the prediction-log lines of `spans`: a call's lines share its timestamp."""
    calls: Counter[str] = Counter()
    for data in spans:
        for line in data.splitlines():
            with contextlib.suppress(ValueError, KeyError):
                calls[json.loads(line)["timestamp"]] += 1
    rows = sum(calls.values())
    return (rows, len(calls)) if rows else None


def parity(service: Server, baseline: Server | None, bodies: list[bytes]) -> str:
    """The largest difference of probabilities between the service and the baseline on the bodies."""
    if baseline is None:
        return "n/a"
    worst = 0.0
    with httpx.Client(timeout=30.0) as client:
        for body in bodies:
            headers = {"Content-Type": "application/json"}
            ours = client.post(service.url + "/v1/predict", content=body, headers=headers)
            theirs = client.post(baseline.url + "/v1/predict", content=body, headers=headers)
            ours.raise_for_status()
            theirs.raise_for_status()
            a, b = ours.json()["probabilities"], theirs.json()["probabilities"]
            worst = max(worst, *(abs(a[label] - b[label]) for label in a))
    return f"{worst:.2e}"


def service_env(work: Path, name: str, bench_model: BenchModel, port: int, extra: dict[str, str]) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "MODEL_ENV": bench_model.env,
        "RARE_TRIAGE_HOME": str(work / name),
        "RARE_TRIAGE_BUCKET_URI": str(bench_model.bucket),
        "SERVING_HOST": HOST,
        "SERVING_PORT": str(port),
        **extra,
    }


@dataclass
class Setup:
    """What one run measures against: the model, the servers' and the load's cores, the load generator."""

    args: argparse.Namespace
    work: Path
    bench_model: BenchModel
    bodies: list[bytes]
    load: Load
    server_cpus: list[int] | None
    tracking_uri: str


@dataclass
class Figures:
    """Everything one run measured."""

    sides: list[Side]
    parity: str
    rss_start_mb: float
    rss_peak_mb: float | None
    paced: LoadResult
    paced_floor: LoadResult
    paced_load: float
    lone: dict[str, LoadResult]
    calls: tuple[int, int] | None


def start_servers(stack: contextlib.ExitStack, setup: Setup) -> dict[str, Server]:
    """The service (with the floor), the service with micro-batching off, and the baseline unless skipped."""
    args, work, model = setup.args, setup.work, setup.bench_model
    extra = dict(item.split("=", 1) for item in args.service_env)
    command = pinned([str(SERVICE_PYTHON), str(BENCH / "serving_server.py")], setup.server_cpus)
    servers = {}
    port = free_port()
    servers["service"] = stack.enter_context(
        running("service", command, service_env(work, "service", model, port, extra), work, port)
    )
    if not args.no_unbatched:
        port = free_port()
        alone = {**extra, "SERVING_MICROBATCH_WAIT_MS": "0"}
        servers["unbatched"] = stack.enter_context(
            running("unbatched", command, service_env(work, "unbatched", model, port, alone), work, port)
        )
    if not args.no_baseline:
        port = free_port()
        baseline_command = [
            str(PLATFORM_PYTHON), str(BENCH / "serving_baseline.py"), "--bucket", str(model.bucket),
            "--env", model.env, "--tracking-uri", setup.tracking_uri, "--port", str(port),
        ]  # fmt: skip
        baseline_env = {"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        servers["baseline"] = stack.enter_context(
            running("baseline", pinned(baseline_command, setup.server_cpus), baseline_env, work, port)
        )
    return servers


def measure_all(setup: Setup) -> Figures:
    args, load = setup.args, setup.load
    log = setup.work / "service" / "serving" / "logs" / f"predicciones_{setup.bench_model.env}.txt"
    with contextlib.ExitStack() as stack:
        servers = start_servers(stack, setup)
        service = servers["service"]
        rss_start = service.rss_mb()
        agreement = parity(service, servers.get("baseline"), setup.bodies[:32])
        print(f"parity service vs baseline: max |probability difference| {agreement}")
        sides = [Side("floor", service, "/bench/floor"), Side("predict", service, "/v1/predict")]
        if "unbatched" in servers:
            sides.append(Side("unbatched", servers["unbatched"], "/v1/predict"))
        if "baseline" in servers:
            sides.append(Side("baseline", servers["baseline"], "/v1/predict"))
        for side in sides:  # warm-up: first calls, allocator, caches
            load.closed(side.server, side.path, args.connections, WARMUP_S)
        spans: list[bytes] = []
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number}/{args.rounds}")
            for side in sides:
                span = LogSpan(log) if side.label == "predict" else None
                measure(load, side, args.connections, args.duration)
                if span is not None:
                    spans.append(span.read())
        paced, paced_floor, paced_load = measure_paced(setup, service, rate=sides[1].rate / 2)
        lone = {
            side.label: load.python_client(side.server, side.path, "closed", LONE_S, connections=1)
            for side in sides[:2]
        }
        return Figures(
            sides,
            agreement,
            rss_start,
            service.peak_rss_mb(),
            paced,
            paced_floor,
            paced_load,
            lone,
            batch_sizes(spans),
        )


def measure_paced(setup: Setup, service: Server, rate: float) -> tuple[LoadResult, LoadResult, float]:
    """Predict and the floor at `rate` (open loop), alternating for `--rounds` rounds: the round of predict with
    the lowest p99 is kept with the floor's of the same round, as the closed loop keeps its best round."""
    args, load = setup.args, setup.load
    best: tuple[LoadResult, LoadResult, float] | None = None
    for _ in range(args.rounds):
        at_load = loadavg()
        paced = load.python_client(
            service, "/v1/predict", "open", args.open_duration, rate=rate, connections=args.connections
        )
        floor = load.python_client(
            service, "/bench/floor", "open", args.open_duration, rate=rate, connections=args.connections
        )
        print(
            f"  open loop at {rate:.0f} req/s: predict p99 {paced.p99_ms or 0:.2f} ms, "
            f"floor p99 {floor.p99_ms or 0:.2f} ms, load {at_load:.2f}"
        )
        if best is None or (paced.p99_ms or float("inf")) < (best[0].p99_ms or float("inf")):
            best = (paced, floor, at_load)
    assert best is not None  # rounds >= 1 (checked on the command line)
    return best


def report(figures: Figures, args: argparse.Namespace) -> list[str]:
    """Print the figures; the targets missed."""
    sides = {side.label: side for side in figures.sides}
    print("results (best round of each; ratios within this run):")
    for side in figures.sides:
        result, _, at_load = side.best
        print(
            f"  {side.label:<9} {side.rate:8.0f} req/s  p50 {result.p50_ms or 0:6.2f} ms  "
            f"p99 {result.p99_ms or 0:7.2f} ms  server CPU {side.cpu_us:6.0f} us/req  (load {at_load:.2f})"
        )
    floor, predict = sides["floor"], sides["predict"]
    failures = []
    ratio = predict.rate / floor.rate
    print(
        f"  predict / floor:     {ratio:.2f}x throughput, {floor.cpu_us / predict.cpu_us:.2f}x by server CPU per "
        f"request (target >= {TARGET_FLOOR_RATIO:g}x)"
    )
    if ratio < TARGET_FLOOR_RATIO:
        failures.append(f"predict / floor {ratio:.2f}x < {TARGET_FLOOR_RATIO:g}x")
    if "unbatched" in sides:
        alone = sides["unbatched"]
        print(
            f"  unbatched / floor:   {alone.rate / floor.rate:.2f}x throughput, {floor.cpu_us / alone.cpu_us:.2f}x by "
            "server CPU (the same service with SERVING_MICROBATCH_WAIT_MS=0)"
        )
    if "baseline" in sides:
        base = sides["baseline"]
        ratio = predict.rate / base.rate
        print(
            f"  service / baseline:  {ratio:.1f}x throughput, {base.cpu_us / predict.cpu_us:.1f}x by server CPU per "
            f"request (target >= {TARGET_BASELINE_RATIO:g}x)"
        )
        if ratio < TARGET_BASELINE_RATIO:
            failures.append(f"service / baseline {ratio:.1f}x < {TARGET_BASELINE_RATIO:g}x")
    paced, reference = figures.paced, figures.paced_floor
    print(
        f"  predict at half its maximum (open loop, {paced.target_rate or 0:.0f} req/s for {args.open_duration:g} s, "
        f"load {figures.paced_load:.2f}): achieved {paced.rate:.0f} req/s, p50 {paced.p50_ms or 0:.2f} ms, "
        f"p99 {paced.p99_ms or 0:.2f} ms, max {paced.max_ms or 0:.2f} ms, {paced.errors} errors "
        f"(target p99 < {TARGET_P99_MS:g} ms; best of {args.rounds} rounds)"
    )
    if paced.p99_ms is None or paced.p99_ms >= TARGET_P99_MS or paced.errors:
        failures.append(f"p99 at half the maximum {paced.p99_ms or 0:.2f} ms (target < {TARGET_P99_MS:g} ms)")
    print(
        f"    the floor at the same rate (what the machine and the framework add alone): p50 "
        f"{reference.p50_ms or 0:.2f} ms, p99 {reference.p99_ms or 0:.2f} ms, max {reference.max_ms or 0:.2f} ms"
    )
    for label, result in figures.lone.items():
        print(
            f"  lone client, {label}: {result.rate:.0f} req/s, p50 {result.p50_ms or 0:.2f} ms, "
            f"p99 {result.p99_ms or 0:.2f} ms"
        )
    print(
        f"  service RSS: {figures.rss_start_mb:.0f} MB at start (model loaded), peak {figures.rss_peak_mb or 0:.0f} MB"
    )
    if figures.calls is not None:
        rows, calls = figures.calls
        print(f"  micro-batches (closed-loop predict rounds): {rows / calls:.1f} rows per model call on average")
    one, five, _ = os.getloadavg()
    print(f"  load average at the end: {one:.2f} (1 min), {five:.2f} (5 min)")
    print("targets: " + ("all met" if not failures else "MISSED: " + "; ".join(failures)))
    return failures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("RARE_TRIAGE_HOME", ".rare_triage")))
    parser.add_argument("--env", default="dev", help="env pointer of the published model (default dev)")
    parser.add_argument("--mlflow-tracking-uri", help="default: the platform's sqlite store in --home")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per closed-loop round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64, help="closed-loop connections")
    parser.add_argument("--open-duration", type=float, default=10.0, help="seconds of the open-loop run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the FastAPI + native pipeline baseline")
    parser.add_argument(
        "--linear",
        action="store_true",
        help="serve a logistic regression of the same inputs instead (serving_model.linear_release); no baseline",
    )
    parser.add_argument("--no-unbatched", action="store_true", help="skip the service with micro-batching off")
    parser.add_argument("--python-client", action="store_true", help="closed loop with the Python client, not wrk")
    parser.add_argument("--service-env", action="append", default=[], help="NAME=value for the service")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (servers' logs, bucket)")
    args = parser.parse_args(argv)
    if not (1 <= args.rounds <= 20 and 1 <= args.duration <= 120 and 1 <= args.connections <= 1024):
        parser.error("--rounds 1..20, --duration 1..120 s, --connections 1..1024")
    if not 1 <= args.open_duration <= 120:
        parser.error("--open-duration 1..120 s")
    if any("=" not in item for item in args.service_env):
        parser.error("--service-env takes NAME=value")
    if not SERVICE_PYTHON.exists():
        parser.error(f"{SERVICE_PYTHON} missing: run `make setup-serving` first")
    if args.linear:
        args.no_baseline = True  # the linear variant has no MLflow run to load natively
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    home = args.home.resolve()
    tracking_uri = (
        args.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home}/mlflow/mlflow.db"
    )
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, load_cpus = (cpus[:1], cpus[1:]) if len(cpus) >= 2 else (None, None)
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        bench_model = publish_copy(home / "bucket", args.env, work / "bucket", linear=args.linear)
        bodies = encounter_bodies(bench_model.manifest, BODIES)
        setup = Setup(
            args, work, bench_model, bodies, Load(work, bodies, load_cpus, use_wrk), server_cpus, tracking_uri
        )
        print(f"model: {bench_model.describe()}")
        print(
            f"machine: {os.cpu_count()} cores; servers on CPU {server_cpus or 'any'}, "
            f"load on CPU {load_cpus or 'any'}; "
            f"closed loop: {'wrk' if use_wrk else 'Python client'}, {args.connections} connections, "
            f"{args.rounds} x {args.duration:g} s; load average at start {loadavg():.2f}"
        )
        figures = measure_all(setup)
        return 1 if report(figures, args) else 0
    finally:
        if args.keep:
            print(f"run folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
