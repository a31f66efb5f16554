"""drift_report: a window of served predictions against the training reference of the model that served them."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import create_model

from rare_triage.defs.monitoring.prediction_logs import LOG_DAY, LOGS_TABLE, MONITORING_SCHEMA
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.automation import FOLLOWS_ANY_UPSTREAM_DAY
from rare_triage.defs.shared.bucket import ModelBucketResource
from rare_triage.defs.shared.dataclass_config import config_fields, from_config
from rare_triage.defs.shared.table_metadata import table_metadata
from rare_triage.lib.deployment.bucket import Bucket, ObjectNotFoundError
from rare_triage.lib.deployment.publication import read_version_table
from rare_triage.lib.deployment.release import MONITORING_REFERENCE
from rare_triage.lib.monitoring.drift import FEATURE_TABLE_COLUMNS, OK, DriftConfig
from rare_triage.lib.monitoring.drift_html import render_drift_html
from rare_triage.lib.monitoring.profile import ReferenceProfile
from rare_triage.lib.monitoring.window import drift_by_group, overall_decision, read_window
from rare_triage.lib.paths import rare_triage_home

WINDOW_DAYS = 7  # the report of day D reads the predictions logged on D-6..D
WINDOW = dg.TimeWindowPartitionMapping(start_offset=-(WINDOW_DAYS - 1), allow_nonexistent_upstream_partitions=True)
DRIFT_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=50), warn_window=dt.timedelta(hours=26))
TABLE_ROWS = 40  # drifted features shown in the metadata table (all of them are in the stored table)


_DriftReportFields = create_model("_DriftReportFields", __base__=dg.Config, **config_fields(DriftConfig))


class DriftReportConfig(_DriftReportFields):  # type: ignore[misc,valid-type]  # fields built above
    """The thresholds of the drift decision (lib/monitoring/drift.py: DriftConfig)."""

    def drift_config(self) -> DriftConfig:
        return from_config(DriftConfig, self)


def report_folder(day: str) -> Path:
    return rare_triage_home() / "reports" / "drift" / day


def load_profile(bucket: Bucket, version: str) -> ReferenceProfile | None:
    """The reference profile published with `version`; None when the version has none (published before profiles)
    or is not in the bucket."""
    try:
        document = read_version_table(bucket, version, MONITORING_REFERENCE)
    except ObjectNotFoundError:
        return None
    return None if document is None else ReferenceProfile.from_dict(document)


SHOWN_COLUMNS = (
    "env", "model_version", "feature", "status", "test", "psi", "p_adjusted", "js_distance", "missing_ref",
    "missing_window", "unseen_share", "reason",
)  # fmt: skip


@dg.asset(
    key=c.DRIFT_REPORT,
    group_name=c.GROUP_MONITORING,
    partitions_def=c.MONITORING_PARTITIONS,
    deps=[dg.AssetDep(c.PREDICTION_LOGS, partition_mapping=WINDOW)],
    io_manager_key=c.DUCKDB_IO_MANAGER,
    metadata={"schema": MONITORING_SCHEMA, "partition_expr": "CAST(report_day AS TIMESTAMP)"},
    pool=c.DUCKDB_POOL,
    kinds={"scipy", "duckdb", "html"},
    freshness_policy=DRIFT_FRESHNESS,
    automation_condition=FOLLOWS_ANY_UPSTREAM_DAY,
    description=f"The encounters served over the {WINDOW_DAYS} days ending on the partition's day, per environment "
    "and model version, against the reference profile published with that version: PSI on the reference bins, KS "
    "(continuous) or chi-square (categorical, binary, counts) with Benjamini-Hochberg control of the false "
    "discovery rate over all features, Jensen-Shannon distance, missing rates, categories never seen in training; "
    "class shares, orphan probabilities, flag and review rates. Decision no_drift / watch / retrain with its "
    "reasons (metadata `decision`, read by the drift sensor), one row per feature and group in the table, an HTML "
    "report with a plot per drifted feature.",
)
def drift_report(
    context: dg.AssetExecutionContext, config: DriftReportConfig, bucket: ModelBucketResource, duckdb: DuckDBResource
) -> dg.Output[pd.DataFrame]:
    day = context.partition_key
    window = [(dt.date.fromisoformat(day) - dt.timedelta(days=WINDOW_DAYS - 1)).isoformat(), day]
    drift_config = config.drift_config()
    store = bucket.get_bucket()
    with duckdb.get_connection() as conn:
        rows = read_window(conn, LOGS_TABLE, LOG_DAY, (window[0], window[1]))
    reports = drift_by_group(rows, lambda version: load_profile(store, version), drift_config)
    folder = report_folder(day)
    folder.mkdir(parents=True, exist_ok=True)
    tables, groups, reasons, links = [], [], [], {}
    for report in reports:
        group = {"env": report.env, "model_version": report.model_version, "predictions": report.predictions}
        if report.result is None:
            groups.append({**group, "decision": report.decision})
            context.log.warning(
                "%s %s: no reference profile published with this version", report.env, report.model_version
            )
            continue
        result, profile = report.result, report.profile
        assert profile is not None  # a result is computed against a profile
        in_group = (rows["env"] == report.env) & (rows["model_version"] == report.model_version)
        group_rows = rows if in_group.all() else rows[in_group]
        path = folder / f"{report.env}_{report.model_version}.html"
        path.write_text(render_drift_html(result, profile, group_rows), encoding="utf-8")
        links[f"report_{report.env}_{report.model_version}"] = dg.MetadataValue.path(str(path))
        table = result.features.copy()
        table.insert(0, "model_version", report.model_version)
        table.insert(0, "env", report.env)
        tables.append(table)
        groups.append({**group, "report": str(path), **result.summary()})
        reasons += [f"{report.env} {report.model_version}: {reason}" for reason in result.reasons]
    decision = overall_decision(reports)
    features = pd.concat(tables, ignore_index=True) if tables else _empty_features()
    features.insert(0, "report_day", day)
    context.log.info("drift %s over %s..%s: %s", decision, window[0], window[1], "; ".join(reasons))
    return dg.Output(
        features,
        metadata={
            "decision": decision,
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in reasons) or "- no group reached a decision"),
            "window": dg.MetadataValue.json(window),
            "predictions": len(rows),
            "groups": dg.MetadataValue.json(groups),
            "drifted_features": table_metadata(features[features["status"] != OK], SHOWN_COLUMNS, TABLE_ROWS),
            "multiple_testing": "Benjamini-Hochberg (false discovery rate) over every feature test of a group, "
            f"alpha {drift_config.alpha}",
            **links,
            "dagster/row_count": len(features),
        },
    )


def _empty_features() -> pd.DataFrame:
    text = {"feature", "kind", "test", "status", "reason"}
    columns = ["env", "model_version", *FEATURE_TABLE_COLUMNS]
    return pd.DataFrame(
        {name: pd.Series(dtype="string" if name in text | {"env", "model_version"} else "float64") for name in columns}
    )
