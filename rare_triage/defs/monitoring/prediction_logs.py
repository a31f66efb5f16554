"""prediction_logs: the closed prediction-log files of every environment, read from the bucket into the warehouse."""

import re
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.bucket import ModelBucketResource
from rare_triage.lib.deployment.bucket import Bucket
from rare_triage.lib.monitoring.prediction_logs import read_shipped_logs
from rare_triage.lib.monitoring.prediction_rows import CHUNK, DAY_COLUMN, prediction_rows
from rare_triage.lib.reference.frames import reference_from_frames

MONITORING_SCHEMA = "monitoring"
LOG_DAY = DAY_COLUMN
LOGS_TABLE = f"{MONITORING_SCHEMA}.{c.PREDICTION_LOGS.path[-1]}"
LOG_PARTITION_EXPR = f"CAST({LOG_DAY} AS TIMESTAMP)"
LOGS_PREFIX = "predictions/"
ENCODE_CHUNK = CHUNK  # logged requests encoded at a time (the feature SQL's working set grows with the chunk)
_SHIPPED_KEY = re.compile(r"^predictions/env=(?P<env>[a-z][a-z0-9_-]{0,31})/dt=(?P<day>\d{4}-\d{2}-\d{2})/[^/]+$")


def shipped_log_keys(bucket: Bucket, day: str) -> list[tuple[str, str]]:
    """(env, key) of every log file shipped for `day`, in key order; keys of another shape are not logs."""
    found = []
    for key in bucket.list(LOGS_PREFIX):
        match = _SHIPPED_KEY.match(key)
        if match and match.group("day") == day:
            found.append((match.group("env"), key))
    return sorted(found, key=lambda pair: pair[1])


def _specs() -> list[dg.AssetSpec]:
    metadata = {"schema": MONITORING_SCHEMA, "partition_expr": LOG_PARTITION_EXPR}
    return [
        dg.AssetSpec(
            c.PREDICTION_LOGS,
            deps=[c.HPO_REFERENCE_TABLES],
            metadata=metadata,
            description="One row per served prediction of the day (UTC day of the log file's first line), every "
            "environment: request id, model version, pseudonymous patient key, class, probabilities, flag, review, "
            "latency, the request's model inputs, and those inputs encoded by the platform's own feature encoding "
            "(the columns of encounter_features). Read from predictions/env=<env>/dt=<day>/ in the bucket.",
            group_name=c.GROUP_MONITORING,
            kinds={"python", "duckdb"},
        ).with_io_manager_key(c.DUCKDB_IO_MANAGER),
        dg.AssetSpec(
            c.PREDICTION_LOG_REJECTS,
            metadata=metadata,
            description="Log lines that are not a valid prediction record (a truncated last line, a field missing "
            "or of the wrong type), one row each with its file, line number, reason, length and sha256; never "
            "the line's text.",
            group_name=c.GROUP_MONITORING,
            kinds={"python", "duckdb"},
        ).with_io_manager_key(c.DUCKDB_IO_MANAGER),
    ]


@dg.multi_asset(
    specs=_specs(),
    partitions_def=c.MONITORING_PARTITIONS,
    ins={"reference": dg.AssetIn(c.HPO_REFERENCE_TABLES)},
    pool=c.DUCKDB_POOL,
    name="read_prediction_logs",
)
def read_prediction_logs(
    context: dg.AssetExecutionContext, bucket: ModelBucketResource, reference: dict[str, pd.DataFrame]
) -> Iterator[dg.Output[pa.Table] | dg.Output[pd.DataFrame]]:
    day = context.partition_key
    store = bucket.get_bucket()
    keys = shipped_log_keys(store, day)
    parsed = read_shipped_logs((key, store.get_bytes(key)) for _, key in keys)
    env_of = dict((key, env) for env, key in keys)
    records = parsed.records  # (not copied: at a million records it is most of the step's memory)
    records.insert(0, "env", records["source"].map(env_of).astype(object))
    rows = prediction_rows(records, reference_from_frames(reference), day=day, chunk=ENCODE_CHUNK)
    rejected = parsed.rejected.copy()
    rejected.insert(0, LOG_DAY, day)
    reasons = Counter(rejected["reason"]) if len(rejected) else Counter()
    context.log.info(
        "%s: %d file(s), %d prediction(s), %d line(s) rejected", day, len(keys), rows.num_rows, len(rejected)
    )
    yield dg.Output(
        rows,
        output_name=c.PREDICTION_LOGS.path[-1],
        metadata={
            "files": len(keys),
            "lines_read": parsed.lines_read,
            "parsed": parsed.parsed,
            "rejected": parsed.n_rejected,
            "truncated": parsed.truncated,
            "duplicates_dropped": parsed.duplicates_dropped,
            "predictions_by_env": dg.MetadataValue.json(_counts(rows, "env")),
            "predictions_by_model_version": dg.MetadataValue.json(_counts(rows, "model_version")),
            "dagster/row_count": rows.num_rows,
        },
    )
    yield dg.Output(
        rejected,
        output_name=c.PREDICTION_LOG_REJECTS.path[-1],
        metadata={
            "rejected": len(rejected),
            "reasons": dg.MetadataValue.json(dict(reasons.most_common())),
            "dagster/row_count": len(rejected),
        },
    )


def _counts(rows: pa.Table, column: str) -> dict[str, int]:
    counted = pc.value_counts(rows.column(column)).to_pylist() if rows.num_rows else []
    return {str(entry["values"]): int(entry["counts"]) for entry in counted}
