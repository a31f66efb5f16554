"""Load for the serving benchmark: the request bodies, wrk (closed loop) and a paced HTTP/1.1 client (open loop).

    python bench/serving_load.py open --port P --path /v1/predict --bodies B.json --rate R --duration S
    python bench/serving_load.py closed --port P --path /v1/predict --bodies B.json --connections C --duration S

Run by bench_serving.py as a process of its own on the core the server does not use; prints one JSON object.

`open`: requests at a fixed rate whatever the answers (as wrk2 paces them): request i is due at start + i/R, sent
on the first free keep-alive connection, and its latency runs from when it was due, so a server that falls behind
shows it in the tail (no coordinated omission). `closed`: C connections, each sending its next request when the
previous answer is in (the fallback for wrk, and the lone-request latency with C = 1). Every run is bounded: at
most R * S requests (open) or S seconds (closed), each answer awaited at most `ANSWER_TIMEOUT_S`.
"""

import argparse
import asyncio
import itertools
import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
ANSWER_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
SEXES = ("F", "M", "U")
CENTRE_LEVELS = ("primary", "secondary", "tertiary")
CONSULTATIONS = ("primary_care", "emergency", "outpatient_specialist", "inpatient", "telehealth")
REGIONS = ("Madrid", "Cataluña", "Galicia", "Andalucía", "Bretagne", "Occitanie")


def encounter_bodies(manifest: Mapping[str, Any], count: int, seed: int = 11) -> list[bytes]:
    """`count` valid encounters (JSON bytes) of varied shape: demographics, vitals, and HPO ids of the model's
    vocabulary and organ systems, observed and excluded; some fields missing, as clients send them."""
    rng = random.Random(seed)
    terms = [entry["hpo_id"] for entry in (*manifest["vocabulary"], *manifest["systems"])]
    bodies = []
    for _ in range(count):
        body: dict[str, Any] = {
            "sex": rng.choice(SEXES),
            "age_years": rng.randint(0, 95),
            "centre_id": f"C{rng.randint(1, 14):02d}",
            "centre_level": rng.choice(CENTRE_LEVELS),
            "region": rng.choice(REGIONS),
            "consultation_type": rng.choice(CONSULTATIONS),
            "temperature_c": round(rng.uniform(35.5, 40.5), 1),
            "heart_rate": rng.randint(50, 170),
            "spo2": rng.randint(88, 100),
            "pain_score": rng.randint(0, 10),
            "prior_visits_365d": rng.randint(0, 12),
            "comorbidity_count": rng.randint(0, 4),
            "hpo_observed": rng.sample(terms, rng.randint(0, 6)),
            "hpo_excluded": rng.sample(terms, rng.randint(0, 3)),
        }
        for name in rng.sample(sorted(body), rng.randint(0, 5)):  # clients leave fields out
            del body[name]
        bodies.append(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    return bodies


def _lua_string(data: bytes) -> str:
    return (
        '"'
        + "".join(f"\\{byte:03d}" if byte < 32 or byte in (34, 92) or byte > 126 else chr(byte) for byte in data)
        + '"'
    )


def wrk_script(bodies: Sequence[bytes], headers: Mapping[str, str]) -> str:
    """A wrk Lua script POSTing `bodies` in turn (each connection starting at its own place)."""
    lines = ["local bodies = {"]
    lines += [f"  {_lua_string(body)}," for body in bodies]
    lines += ["}", "local headers = {"]
    lines += [f"  [{_lua_string(name.encode())}] = {_lua_string(value.encode())}," for name, value in headers.items()]
    lines += [
        "}",
        "local i = 0",
        "init = function(args) i = math.random(#bodies) end",
        "request = function()",
        "  i = i % #bodies + 1",
        '  return wrk.format("POST", nil, headers, bodies[i])',
        "end",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class LoadResult:
    """What one load run measured (latencies in ms)."""

    mode: str
    requests: int = 0
    ok: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    rate: float = 0.0
    target_rate: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LoadResult":
        return cls(**data)


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100.0 * len(ordered)) - 1))]


_WRK_LATENCY = re.compile(r"^\s*(\d+)%\s+([\d.]+)(us|ms|s)\s*$")
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str, script: Path, *, connections: int, duration_s: float, cpus: Sequence[int] | None, timeout_s: float
) -> LoadResult:
    """wrk, one thread, closed loop; its --latency distribution gives p50 / p99."""
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={timeout_s:g}s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    if cpus:
        command = ["taskset", "-c", ",".join(map(str, cpus)), *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    out = done.stdout
    result = LoadResult(mode="closed (wrk)")
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", out)
    if total is None:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    result.requests = int(total.group(1))
    result.seconds = float(total.group(2)) * _WRK_UNITS[total.group(3)] / 1000.0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result.errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    )
    result.ok = result.requests - (int(non_2xx.group(1)) if non_2xx else 0)
    result.rate = result.ok / result.seconds if result.seconds else 0.0
    for line in out.splitlines():
        match = _WRK_LATENCY.match(line)
        if match:
            value = float(match.group(2)) * _WRK_UNITS[match.group(3)]
            if match.group(1) == "50":
                result.p50_ms = value
            elif match.group(1) == "99":
                result.p99_ms = value
    return result


# ---- the Python client: one request at a time per keep-alive connection ----


def request_bytes(port: int, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request, read its whole answer (Content-Length framing); the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise RuntimeError("chunked answers are not supported by this client")
    await reader.readexactly(length)
    return status


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(HOST, port), CONNECT_TIMEOUT_S)


async def _run(
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    duration_s: float,
    rate: float | None,
) -> LoadResult:
    loop = asyncio.get_running_loop()
    links = [await _connect(port) for _ in range(connections)]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    tickets = itertools.count()
    total = int(rate * duration_s) if rate else None
    start = loop.time() + 0.05
    deadline = start + duration_s

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        while True:
            i = next(tickets)
            if total is not None and rate is not None:
                if i >= total:
                    return
                due = start + i / rate
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            else:
                due = loop.time()
                if due >= deadline:
                    return
            try:
                status = await asyncio.wait_for(
                    _exchange(reader, writer, requests[i % len(requests)]), ANSWER_TIMEOUT_S
                )
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                errors += 1
                return  # this connection is done for; the others go on
            latencies.append((loop.time() - due) * 1000.0)
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(worker(reader, writer) for reader, writer in links))
    seconds = time.perf_counter() - began - 0.05
    for _, writer in links:
        writer.close()
    ok = sum(n for status, n in statuses.items() if status.startswith("2"))
    return LoadResult(
        mode="open" if rate else "closed",
        requests=sum(statuses.values()) + errors,
        ok=ok,
        errors=errors + sum(statuses.values()) - ok,
        statuses=statuses,
        seconds=seconds,
        rate=ok / seconds if seconds > 0 else 0.0,
        target_rate=rate,
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        max_ms=max(latencies) if latencies else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["open", "closed"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--bodies", type=Path, required=True, help="JSON list of request bodies (strings)")
    parser.add_argument("--header", action="append", default=[], help="Name: value, sent with every request")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, help="requests per second (open loop)")
    args = parser.parse_args(argv)
    if args.mode == "open" and not (args.rate and args.rate > 0):
        parser.error("open needs --rate > 0")
    headers = dict(item.split(": ", 1) for item in args.header)
    bodies = [body.encode("utf-8") for body in json.loads(args.bodies.read_text(encoding="utf-8"))]
    requests = [request_bytes(args.port, args.path, body, headers) for body in bodies]
    result = asyncio.run(
        asyncio.wait_for(
            _run(
                args.port,
                requests,
                connections=args.connections,
                duration_s=args.duration,
                rate=args.rate if args.mode == "open" else None,
            ),
            args.duration + ANSWER_TIMEOUT_S + 30,
        )
    )
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
