"""model_performance: served predictions joined with the diagnoses recorded later for the same pseudonymous patient."""

import datetime as dt

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from rare_triage.defs.monitoring.prediction_logs import LOG_DAY, LOGS_TABLE, MONITORING_SCHEMA
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.table_metadata import table_metadata
from rare_triage.lib import schema
from rare_triage.lib.monitoring.performance import realized_performance

DAILY_AT_FOUR = "0 4 * * *"


class ModelPerformanceConfig(dg.Config):
    weeks: int = Field(default=26, description="weeks of served predictions scored (ending today)")
    horizon_days: int = Field(default=90, description="a later diagnosis counts when recorded within this many days")
    confidence: float = Field(default=0.95, description="level of the confidence intervals")


def _table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema_name, name = table.split(".")
    query = "select count(*) from information_schema.tables where table_schema = ? and table_name = ?"
    return bool(conn.execute(query, [schema_name, name]).fetchall()[0][0])


@dg.asset(
    key=c.MODEL_PERFORMANCE,
    group_name=c.GROUP_MONITORING,
    deps=[c.PREDICTION_LOGS, c.ENCOUNTER_FEATURES],
    io_manager_key=c.DUCKDB_IO_MANAGER,
    metadata={"schema": MONITORING_SCHEMA},
    pool=c.DUCKDB_POOL,
    kinds={"python", "duckdb"},
    automation_condition=dg.AutomationCondition.cron_tick_passed(DAILY_AT_FOUR) & ~dg.AutomationCondition.in_progress(),
    description="Realized performance of the served models, per ISO week and model version: a logged prediction "
    "with a pseudonymous patient key is labelled by the diagnoses of that patient's later encounters (within the "
    "horizon) in encounter_features; orphan recall, precision and flag rate with confidence intervals, Brier score "
    "and calibration error. Predictions without a later encounter are counted, not scored.",
)
def model_performance(
    context: dg.AssetExecutionContext, config: ModelPerformanceConfig, duckdb: DuckDBResource
) -> dg.Output[pd.DataFrame]:
    since = (dt.datetime.now(dt.UTC).date() - dt.timedelta(weeks=config.weeks)).isoformat()
    with duckdb.get_connection() as conn:
        columns = "request_id, timestamp, model_version, patient_key, p_orphan, orphan_flag"
        if _table_exists(conn, LOGS_TABLE):
            predictions = conn.execute(f"select {columns} from {LOGS_TABLE} where {LOG_DAY} >= ?", [since]).df()
        else:  # nothing served yet: an empty report, not a failed run
            context.log.info("%s does not exist yet: no prediction was read", LOGS_TABLE)
            predictions = pd.DataFrame(columns=[name.strip() for name in columns.split(",")])
        keys = predictions["patient_key"].dropna().unique().tolist()
        outcomes = pd.DataFrame(columns=["patient_key", "partition_day", schema.LABEL_COLUMN])
        if keys and _table_exists(conn, c.FEATURES_TABLE):
            conn.register("rt_patient_keys", pd.DataFrame({"patient_key": keys}))
            outcomes = conn.execute(
                f"select f.patient_key, f.partition_day, f.{schema.LABEL_COLUMN} from {c.FEATURES_TABLE} f "
                "join rt_patient_keys k using (patient_key) where f.partition_day >= ?",
                [since],
            ).df()
    table = realized_performance(predictions, outcomes, horizon_days=config.horizon_days, confidence=config.confidence)
    labelled = int(table["n_labelled"].sum()) if len(table) else 0
    context.log.info("%d predictions since %s, %d labelled by a later diagnosis", len(predictions), since, labelled)
    return dg.Output(
        table,
        metadata={
            "predictions": len(predictions),
            "with_patient_key": int(predictions["patient_key"].notna().sum()),
            "labelled": labelled,
            "since": since,
            "horizon_days": config.horizon_days,
            "by_week": table_metadata(table, max_rows=200),
            "dagster/row_count": len(table),
        },
    )
