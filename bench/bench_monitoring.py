"""Monitoring at volume: `prediction_logs` ingesting N logged predictions, then `drift_report` over them.

The issue's target: drift_report over 1,000,000 logged predictions in under 60 s and under 2 GB peak on this
machine, and prediction_logs ingesting them, both printed with rows/s.

    .venv/bin/python bench/bench_monitoring.py                 # 1,000,000 predictions, profile of 200,000
    .venv/bin/python bench/bench_monitoring.py --rows 100000

Log lines are the service's own (`serving.prediction_log.PredictionRecord` of a `serving.contract.Encounter`,
encoded as the service encodes them), in files of `--lines-per-file` under predictions/env=prod/dt=<day>/ of a
local bucket; the window carries a drift (+0.6 C temperature, 2% of requests from a centre the reference never
saw) so the drifted paths and the plots run. Each measured stage runs in a process of its own, so its peak RSS
(ru_maxrss) is its own:
  A. prediction_logs, as `read_prediction_logs` does it: shipped keys listed, files read and parsed
     (`read_shipped_logs`), encoded by the feature SQL in chunks of ENCODE_CHUNK, merged, written to a DuckDB file
     as the IO manager writes (`create table ... as select * from df`, its 1 GB memory limit);
  B. drift_report, as the asset does it: the profile read, the window read in record batches (`read_window`),
     `drift_by_group`,
     `render_drift_html` per group.
Each is printed as a ratio to a floor measured in the same run, also in a process of its own: for A, reading the
files and decoding every line with msgspec into plain objects (no validation, no frame); for B, fetching the same
window columns from DuckDB into pandas without filter or order. Wall-clock times move with the machine's load; the
ratios move less. Setup (line generation, reference tables, the reference profile) is timed but not measured.
"""

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rare_triage.lib import schema

ENV = "prod"
DAY = "2025-03-03"
TARGET_SECONDS = 60.0
TARGET_MB = 2048.0
CENTRES = tuple(f"C{i:02d}" for i in range(1, 13))
NEW_CENTRE = "C13"  # the window's drift: a centre the reference never saw
CONSULTATIONS = (("primary_care", 0.55), ("emergency", 0.2), ("outpatient_specialist", 0.15), ("telehealth", 0.1))
FEVER = "HP:0001945"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def model_version(seed: int) -> str:
    return f"v1-{random.Random(seed).getrandbits(48):012x}"


# ---- log lines ----


def encounter_fields(rng: random.Random, vocabulary: list[str], drifted: bool) -> dict[str, Any]:
    """One encounter's fields as an HCE integrator sends them (a vital left out now and then)."""
    centre = NEW_CENTRE if drifted and rng.random() < 0.02 else rng.choice(CENTRES)
    number = int(centre[1:])
    observed = rng.sample(vocabulary, rng.randint(1, 5))
    rest = [term for term in vocabulary if term not in observed]
    fields: dict[str, Any] = {
        "sex": rng.choices("FMU", (0.49, 0.49, 0.02))[0],
        "age_years": float(min(int(rng.expovariate(1 / 35)), 100)),
        "centre_id": centre,
        "centre_level": "primary" if number <= 6 else "secondary" if number <= 10 else "tertiary",
        "region": schema.REGIONS[number % len(schema.REGIONS)],
        "consultation_type": rng.choices([c for c, _ in CONSULTATIONS], [w for _, w in CONSULTATIONS])[0],
        "temperature_c": round(min(max(rng.gauss(37.1, 0.7) + (0.6 if drifted else 0.0), 34.5), 42.0), 1),
        "heart_rate": float(rng.randint(55, 140)),
        "respiratory_rate": float(rng.randint(10, 32)),
        "spo2": float(rng.randint(88, 100)),
        "symptom_duration_days": round(rng.lognormvariate(1.5, 1.0), 1),
        "prior_visits_365d": rng.randint(0, 12),
        "comorbidity_count": rng.choices(range(4), (0.55, 0.25, 0.12, 0.08))[0],
        "hpo_observed": observed,
        "hpo_excluded": rng.sample(rest, rng.randint(0, 3)),
    }
    systolic = rng.randint(95, 175)
    fields["systolic_bp"], fields["diastolic_bp"] = float(systolic), float(rng.randint(55, min(systolic - 10, 105)))
    if FEVER in observed:
        fields["fever_score"] = float(rng.randint(1, 10))
    if rng.random() < 0.4:
        fields["pain_score"] = float(rng.randint(0, 10))
    for vital in ("temperature_c", "heart_rate", "respiratory_rate", "spo2"):
        if rng.random() < 0.1:
            del fields[vital]
    return fields


def log_lines(n: int, first: int, rng: random.Random, vocabulary: list[str], *, version: str, drifted: bool) -> bytes:
    """Lines `first`..`first + n - 1` of the day, as the service writes them."""
    import msgspec  # noqa: PLC0415 - the generator's process only

    from serving.contract import Encounter  # noqa: PLC0415
    from serving.prediction_log import PredictionRecord  # noqa: PLC0415

    encoder = msgspec.json.Encoder()
    start = dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.UTC)
    out = []
    for i in range(first, first + n):
        weights = [rng.gammavariate(a, 1.0) + 1e-9 for a in (2.0, 2.0, 1.5, 1.5, 0.4)]
        total = sum(weights)
        probabilities = {label: w / total for label, w in zip(schema.LABELS, weights, strict=True)}
        orphan = probabilities[schema.ORPHAN_LABEL]
        record = PredictionRecord(
            timestamp=start + dt.timedelta(microseconds=i * 86_000 + rng.randint(0, 999)),
            request_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            model_version=version,
            inputs=msgspec.to_builtins(Encounter(**encounter_fields(rng, vocabulary, drifted))),  # as serving logs
            probabilities=probabilities,
            predicted_class=max(probabilities, key=probabilities.__getitem__),
            orphan_flag=orphan >= 0.5,
            needs_review=0.3 <= orphan < 0.5,
            latency_ms=round(rng.uniform(0.8, 9.0), 3),
            patient_key=f"{rng.getrandbits(128):032x}" if i % 2 else None,
        )
        out.append(encoder.encode(record) + b"\n")
    return b"".join(out)


def stage_generate(work: Path, rows: int, reference_rows: int, lines_per_file: int, seed: int) -> dict[str, Any]:
    from rare_triage.lib.reference.loaders import load_vocabulary  # noqa: PLC0415
    from rare_triage.lib.reference.ontology import build_reference_tables, save_reference_tables  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `serving` from the repository, beside rare_triage
    started = time.perf_counter()
    tables = build_reference_tables(load_vocabulary()["hpo_id"].tolist())
    save_reference_tables(tables, work / "reference_tables")
    reference_seconds = time.perf_counter() - started
    vocabulary = sorted(tables.vocabulary["hpo_id"])
    version = model_version(seed)
    started = time.perf_counter()
    sizes = {}
    for name, n, drifted, set_seed in (
        ("bucket", rows, True, seed),
        ("reference_logs", reference_rows, False, seed + 1),
    ):
        rng = random.Random(set_seed)
        folder = work / name / "predictions" / f"env={ENV}" / f"dt={DAY}"
        folder.mkdir(parents=True)
        size = 0
        for number, first in enumerate(range(0, n, lines_per_file)):
            body = log_lines(min(lines_per_file, n - first), first, rng, vocabulary, version=version, drifted=drifted)
            (folder / f"predicciones_{ENV}.{DAY.replace('-', '')}T{number:06d}.000000Z.1.txt").write_bytes(body)
            size += len(body)
        sizes[name] = size
    return {
        "reference_tables_s": reference_seconds,
        "generate_s": time.perf_counter() - started,
        "window_mb": sizes["bucket"] / 1e6,
        "files": len(range(0, rows, lines_per_file)),
        "vocabulary": len(vocabulary),
        "model_version": version,
    }


# ---- the measured stages ----


def reference_frames(work: Path) -> dict[str, Any]:
    """The hpo_reference_tables frames as the asset receives them from the lake."""
    from rare_triage.lib.reference.frames import reference_to_frames  # noqa: PLC0415
    from rare_triage.lib.reference.ontology import load_reference_tables  # noqa: PLC0415

    return reference_to_frames(load_reference_tables(work / "reference_tables"))


def stage_profile(work: Path, seed: int) -> dict[str, Any]:
    """The reference profile of the second generated set, encoded as the window is (not measured)."""
    import pandas as pd  # noqa: PLC0415

    from rare_triage.defs.monitoring.prediction_logs import ENCODE_CHUNK, shipped_log_keys  # noqa: PLC0415
    from rare_triage.lib.deployment.bucket import LocalBucket  # noqa: PLC0415
    from rare_triage.lib.monitoring.logged_encounters import logged_feature_rows  # noqa: PLC0415
    from rare_triage.lib.monitoring.prediction_logs import PROBABILITY_COLUMNS, read_shipped_logs  # noqa: PLC0415
    from rare_triage.lib.monitoring.profile import build_reference_profile  # noqa: PLC0415
    from rare_triage.lib.reference.frames import reference_from_frames  # noqa: PLC0415
    from rare_triage.lib.training.columns import feature_roles, model_feature_columns  # noqa: PLC0415

    started = time.perf_counter()
    store = LocalBucket(work / "reference_logs")
    records = read_shipped_logs((key, store.get_bytes(key)) for _, key in shipped_log_keys(store, DAY)).records
    ref = reference_from_frames(reference_frames(work))
    features = pd.concat(
        [logged_feature_rows(records.iloc[s : s + ENCODE_CHUNK], ref) for s in range(0, len(records), ENCODE_CHUNK)],
        ignore_index=True,
    )
    encode_seconds = time.perf_counter() - started
    roles = feature_roles(model_feature_columns(list(features.columns)))
    started = time.perf_counter()
    profile = build_reference_profile(
        features,
        numeric_columns=[*roles.numeric, *roles.phenotype],
        categorical_columns=list(roles.categorical),
        probabilities=records[list(PROBABILITY_COLUMNS)].to_numpy(),
        class_labels=schema.LABELS,
        orphan_flag=records["orphan_flag"].to_numpy(),
        needs_review=records["needs_review"].to_numpy(),
        model_version=model_version(seed),
    )
    document = profile.to_json_bytes()
    (work / "profile.json").write_bytes(document)
    return {
        "rows": len(features),
        "encode_s": encode_seconds,
        "profile_s": time.perf_counter() - started,
        "numeric": len(roles.numeric) + len(roles.phenotype),
        "categorical": len(roles.categorical),
        "json_mb": len(document) / 1e6,
    }


def stage_floor_a(work: Path) -> dict[str, Any]:
    """Reading the shipped files, counting lines; then reading them again and decoding each line to plain objects."""
    import msgspec  # noqa: PLC0415

    paths = sorted((work / "bucket").rglob("*.txt"))
    started = time.perf_counter()
    lines = sum(path.read_bytes().count(b"\n") for path in paths)
    read_seconds = time.perf_counter() - started
    decoder = msgspec.json.Decoder()
    started = time.perf_counter()
    decoded = 0
    for path in paths:
        for line in path.read_bytes().split(b"\n")[:-1]:
            decoder.decode(line)
            decoded += 1
    return {"lines": lines, "decoded": decoded, "read_s": read_seconds, "decode_s": time.perf_counter() - started}


def stage_ingest(work: Path) -> dict[str, Any]:
    """Stage A: `read_prediction_logs`'s body, step by step, and the IO manager's write of both outputs."""
    import duckdb  # noqa: PLC0415

    from rare_triage.defs.monitoring.prediction_logs import (  # noqa: PLC0415
        ENCODE_CHUNK,
        LOG_DAY,
        MONITORING_SCHEMA,
        shipped_log_keys,
    )
    from rare_triage.defs.shared.resources import WAREHOUSE_CONNECTION  # noqa: PLC0415
    from rare_triage.lib.deployment.bucket import LocalBucket  # noqa: PLC0415
    from rare_triage.lib.monitoring.prediction_logs import read_shipped_logs  # noqa: PLC0415
    from rare_triage.lib.monitoring.prediction_rows import prediction_rows  # noqa: PLC0415
    from rare_triage.lib.reference.frames import reference_from_frames  # noqa: PLC0415

    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {"imports": peak_mb()}
    started = time.perf_counter()
    reference = reference_frames(work)
    seconds["reference"], peaks["reference"] = time.perf_counter() - started, peak_mb()

    started = time.perf_counter()
    store = LocalBucket(work / "bucket")
    keys = shipped_log_keys(store, DAY)
    parsed = read_shipped_logs((key, store.get_bytes(key)) for _, key in keys)
    env_of = dict((key, env) for env, key in keys)
    records = parsed.records.copy()
    records.insert(0, "env", records["source"].map(env_of).astype("string"))
    seconds["parse"], peaks["parse"] = time.perf_counter() - started, peak_mb()

    started = time.perf_counter()
    rows = prediction_rows(records, reference_from_frames(reference), day=DAY, chunk=ENCODE_CHUNK)
    del records
    rejected = parsed.rejected.copy()
    rejected.insert(0, LOG_DAY, DAY)
    seconds["encode"], peaks["encode"] = time.perf_counter() - started, peak_mb()

    started = time.perf_counter()
    with duckdb.connect(str(work / "warehouse.duckdb"), config=WAREHOUSE_CONNECTION) as conn:
        conn.execute(f"create schema if not exists {MONITORING_SCHEMA}")
        conn.register("rows_arrow", rows)
        conn.execute(f"create table if not exists {MONITORING_SCHEMA}.prediction_logs as select * from rows_arrow")
        if len(rejected):
            conn.execute(
                f"create table if not exists {MONITORING_SCHEMA}.prediction_log_rejects as select * from rejected"
            )
        stored = conn.execute(f"select count(*) from {MONITORING_SCHEMA}.prediction_logs").fetchone()
    seconds["write"], peaks["write"] = time.perf_counter() - started, peak_mb()
    return {
        "rows": rows.num_rows,
        "chunks": len(range(0, rows.num_rows, ENCODE_CHUNK)),
        "columns": rows.num_columns,
        "stored": stored[0] if stored else 0,
        "rejected": len(rejected),
        "frame_mb": rows.nbytes / 1e6,
        "db_mb": (work / "warehouse.duckdb").stat().st_size / 1e6,
        "seconds": seconds,
        "peaks": peaks,
    }


def window_columns(conn: Any, table: str) -> list[str]:
    from rare_triage.lib.monitoring.window import UNREAD_COLUMNS  # noqa: PLC0415

    return [row[0] for row in conn.execute(f"describe {table}").fetchall() if row[0] not in UNREAD_COLUMNS]


def stage_floor_b(work: Path) -> dict[str, Any]:
    """The window's columns fetched into pandas, no filter, no order, from a fresh connection (as drift_report
    fetches); then again, warm, and every column (`select *`), warm."""
    import duckdb  # noqa: PLC0415

    table = "monitoring.prediction_logs"
    seconds = {}
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as conn:
        columns = window_columns(conn, table)
        for name, query in (
            ("window_s", f"select {', '.join(columns)} from {table}"),
            ("warm_s", f"select {', '.join(columns)} from {table}"),
            ("all_s", f"select * from {table}"),
        ):
            started = time.perf_counter()
            frame = conn.execute(query).df()
            seconds[name] = time.perf_counter() - started
            del frame
    return {"columns": len(columns), **seconds}


def stage_drift(work: Path) -> dict[str, Any]:
    """Stage B: `drift_report`'s body, step by step (the profile read from a file instead of the bucket)."""
    import duckdb  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from rare_triage.defs.monitoring.prediction_logs import LOG_DAY, LOGS_TABLE  # noqa: PLC0415
    from rare_triage.lib.monitoring.drift import DriftConfig  # noqa: PLC0415
    from rare_triage.lib.monitoring.drift_html import render_drift_html  # noqa: PLC0415
    from rare_triage.lib.monitoring.profile import ReferenceProfile  # noqa: PLC0415
    from rare_triage.lib.monitoring.window import drift_by_group, overall_decision, read_window  # noqa: PLC0415

    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {"imports": peak_mb()}
    window = [(dt.date.fromisoformat(DAY) - dt.timedelta(days=6)).isoformat(), DAY]

    started = time.perf_counter()
    profile = ReferenceProfile.from_json_bytes((work / "profile.json").read_bytes())
    with duckdb.connect(str(work / "warehouse.duckdb")) as conn:
        rows = read_window(conn, LOGS_TABLE, LOG_DAY, (window[0], window[1]))
    seconds["fetch"], peaks["fetch"] = time.perf_counter() - started, peak_mb()

    started = time.perf_counter()
    reports = drift_by_group(rows, lambda version: profile if version == profile.model_version else None, DriftConfig())
    seconds["drift"], peaks["drift"] = time.perf_counter() - started, peak_mb()

    started = time.perf_counter()
    pages, tables = 0, []
    for report in reports:
        if report.result is None or report.profile is None:
            continue
        in_group = (rows["env"] == report.env) & (rows["model_version"] == report.model_version)
        group_rows = rows if in_group.all() else rows[in_group]
        page = render_drift_html(report.result, report.profile, group_rows)
        (work / f"{report.env}_{report.model_version}.html").write_text(page, encoding="utf-8")
        pages += len(page)
        table = report.result.features.copy()
        table.insert(0, "model_version", report.model_version)
        table.insert(0, "env", report.env)
        tables.append(table)
    features = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    seconds["render"], peaks["render"] = time.perf_counter() - started, peak_mb()
    drifted = [r.result.features_with_status("drifted") for r in reports if r.result is not None]
    return {
        "rows": len(rows),
        "columns": rows.shape[1],
        "frame_mb": rows.memory_usage(deep=True).sum() / 1e6,
        "groups": len(reports),
        "decision": overall_decision(reports),
        "drifted": sorted({name for names in drifted for name in names}),
        "feature_rows": len(features),
        "html_mb": pages / 1e6,
        "seconds": seconds,
        "peaks": peaks,
    }


# ---- the parent ----

STAGES = {
    "generate": stage_generate,
    "profile": stage_profile,
    "floor-a": stage_floor_a,
    "ingest": stage_ingest,
    "floor-b": stage_floor_b,
    "drift": stage_drift,
}


def run_stage(name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """`name` in a process of its own; its result (the last line of its output) with the process's peak RSS."""
    command = [sys.executable, __file__, "--stage", name, "--work", str(work), "--rows", str(args.rows)]
    command += ["--reference-rows", str(args.reference_rows), "--lines-per-file", str(args.lines_per_file)]
    command += ["--seed", str(args.seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"stage {name} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    if args.stage == "generate":
        result = stage_generate(work, args.rows, args.reference_rows, args.lines_per_file, args.seed)
    elif args.stage == "profile":
        result = stage_profile(work, args.seed)
    else:
        result = STAGES[args.stage](work)
    result["peak_rss_mb"] = peak_mb()
    print(json.dumps(result))


def step(label: str, rows: int, seconds: float, peak: float) -> str:
    return f"   {label:<40}{seconds:7.2f} s {rows / seconds:>11,.0f} rows/s   peak {peak:,.0f} MB"


def report(args: argparse.Namespace, work: Path) -> None:
    gen = run_stage("generate", work, args)
    prof = run_stage("profile", work, args)
    floor_a = run_stage("floor-a", work, args)
    ingest = run_stage("ingest", work, args)
    floor_b = run_stage("floor-b", work, args)
    drift = run_stage("drift", work, args)

    print(
        f"{args.rows:,} logged predictions in {gen['files']} file(s), {gen['window_mb']:,.0f} MB, env {ENV}, "
        f"model {gen['model_version']}; {os.cpu_count()} CPU(s)"
    )
    print(
        f"setup (not measured): reference tables {gen['reference_tables_s']:.1f} s, lines {gen['generate_s']:.1f} s; "
        f"profile of {prof['rows']:,} rows ({prof['numeric']} numeric, {prof['categorical']} categorical): "
        f"encode {prof['encode_s']:.1f} s, build {prof['profile_s']:.1f} s, JSON {prof['json_mb']:.2f} MB"
    )
    n, s, p = ingest["rows"], ingest["seconds"], ingest["peaks"]
    total_a = s["parse"] + s["encode"] + s["write"]
    print(
        f"A. prediction_logs ingest ({n:,} rows, {ingest['columns']} columns, {ingest['frame_mb']:,.0f} MB frame, "
        f"{ingest['rejected']} rejected):"
    )
    print(step("read + parse (read_shipped_logs)", n, s["parse"], p["parse"]))
    print(step(f"encode ({ingest['chunks']} chunk(s)) + merge", n, s["encode"], p["encode"]))
    print(step(f"write (DuckDB, {ingest['db_mb']:,.0f} MB file)", n, s["write"], p["write"]))
    print(step("total", n, total_a, ingest["peak_rss_mb"]))
    print(f"   (after imports {p['imports']:,.0f} MB; reading the reference tables {s['reference']:.1f} s, beside)")
    decode_rate = floor_a["decoded"] / floor_a["decode_s"]
    print(
        f"   floor: read + msgspec decode to plain objects {floor_a['decode_s']:.2f} s ({decode_rate:,.0f} rows/s; "
        f"read + count lines alone {floor_a['read_s']:.2f} s) -> ingest {total_a / floor_a['decode_s']:.1f}x, "
        f"parse {s['parse'] / floor_a['decode_s']:.1f}x the floor"
    )
    m, s, p = drift["rows"], drift["seconds"], drift["peaks"]
    total_b = s["fetch"] + s["drift"] + s["render"]
    print(
        f"B. drift_report ({m:,} rows, {drift['columns']} columns, {drift['frame_mb']:,.0f} MB frame, "
        f"{drift['groups']} group(s)):"
    )
    print(step("fetch (read_window)", m, s["fetch"], p["fetch"]))
    print(step("drift_by_group", m, s["drift"], p["drift"]))
    print(step(f"render_drift_html ({drift['html_mb']:.2f} MB)", m, s["render"], p["render"]))
    print(step("total", m, total_b, drift["peak_rss_mb"]))
    print(
        f"   (after imports {p['imports']:,.0f} MB) target < {TARGET_SECONDS:.0f} s and < {TARGET_MB:,.0f} MB: "
        f"{total_b / TARGET_SECONDS:.2f} of the time, {drift['peak_rss_mb'] / TARGET_MB:.2f} of the memory"
    )
    print(
        f"   floor: the {floor_b['columns']} window columns into pandas {floor_b['window_s']:.2f} s (again, warm: "
        f"{floor_b['warm_s']:.2f} s; select *, warm: {floor_b['all_s']:.2f} s) -> drift_report "
        f"{total_b / floor_b['window_s']:.1f}x, its fetch {s['fetch'] / floor_b['window_s']:.1f}x the floor"
    )
    print(f"   decision {drift['decision']}; drifted: {', '.join(drift['drifted']) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged predictions of the window")
    parser.add_argument("--reference-rows", type=int, default=200_000, help="rows of the reference profile")
    parser.add_argument("--lines-per-file", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20250303)
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)  # child process: one stage
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        child(args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench_monitoring_"))
    try:
        report(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
