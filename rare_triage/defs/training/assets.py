"""Training assets: training_set (temporal windows) -> triage_model (search, calibration, thresholds, a new MLflow
registry version tagged `gates=pending`; `challenger` only once every gate passed, at publication). Evaluation and
external validation are in evaluation_assets."""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from duckdb import CatalogException

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.defs.training.config import TrainingSetConfig, TriageModelConfig
from rare_triage.lib.features.phenotype_encoding import phenotype_encoding
from rare_triage.lib.reference.frames import reference_from_frames
from rare_triage.lib.training import tracking
from rare_triage.lib.training.columns import ORPHAN_INDEX, feature_set_columns, label_codes, model_inputs
from rare_triage.lib.training.datasets import local_database, log_window_dataset, window_dataset
from rare_triage.lib.training.model import build_triage_model
from rare_triage.lib.training.plots import calibration_png, markdown_image, pr_curves_png
from rare_triage.lib.training.report import json_safe, markdown_table, metric_value
from rare_triage.lib.training.robustness import vocabulary_phenotype_items
from rare_triage.lib.training.train import train_triage_model
from rare_triage.lib.training.windows import (
    TrainingSet,
    compact_features,
    explicit_windows,
    label_distribution,
    last_days_windows,
    orphan_sized_windows,
    orphans_per_day_query,
    partitions_query,
    window_query,
)

REFERENCE_IN = dg.AssetIn(key=c.HPO_REFERENCE_TABLES)
MIN_VALIDATION_ORPHANS = 100  # below this a threshold for recall 0.95 rests on a handful of cases


def mlflow_links(
    mlflow: MlflowTracking, experiment_id: str, run_id: str, version: str | None
) -> dict[str, dg.MetadataValue]:
    """`mlflow_run_url` and `mlflow_model_version_url` metadata where an MLflow UI address can be formed."""
    links = {
        "mlflow_run_url": mlflow.run_url(experiment_id, run_id),
        "mlflow_model_version_url": mlflow.model_version_url(version),
    }
    return {name: dg.MetadataValue.url(url) for name, url in links.items() if url}


@dg.asset(
    key=c.TRAINING_SET,
    group_name=c.GROUP_TRAINING,
    deps=[c.ENCOUNTER_FEATURES],
    pool=c.DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    description="Train / validation / test windows of encounter features read from the DuckDB warehouse by "
    "partition_day; the test window is strictly later than validation, itself later than training; validation and "
    "test grow by whole days until each holds min_window_orphans (300) orphan encounters.",
)
def training_set(
    context: dg.AssetExecutionContext, config: TrainingSetConfig, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as conn:
        try:
            days = [row[0] for row in conn.execute(partitions_query(config.table)).fetchall()]
        except CatalogException as exc:
            raise ValueError(
                f"table: {config.table!r} is not in the warehouse {duckdb.database}; "
                "materialize encounter_features first"
            ) from exc
        bounds = config.explicit_bounds()
        if bounds:
            windows = explicit_windows(bounds)
        elif config.min_window_orphans > 0:
            orphans = dict(conn.execute(orphans_per_day_query(config.table)).fetchall())
            windows = orphan_sized_windows(
                orphans,
                min_orphans=config.min_window_orphans,
                train_days=config.train_days,
                validation_days=config.validation_days,
                test_days=config.test_days,
                min_train_days=config.min_train_days,
            )
        else:
            windows = last_days_windows(days, config.train_days, config.validation_days, config.test_days)
        frames = {}
        for name, window in windows.items():
            frame = conn.execute(window_query(config.table), [window.start.isoformat(), window.end.isoformat()]).df()
            if frame.empty:
                raise ValueError(
                    f"{name} window {window.start}..{window.end}: no row in {config.table} "
                    f"(partitions present: {days[0] if days else None}..{days[-1] if days else None})"
                )
            frames[name] = compact_features(frame)
    # the warehouse file is recorded as the datasets' source (a connection string that may hold a token is not)
    dataset = TrainingSet(windows=windows, **frames, table=config.table, database=local_database(duckdb.database))
    partitions = dataset.partitions()
    distribution = {name: label_distribution(frame) for name, frame in dataset.frames()}
    table = pd.DataFrame(distribution).T.rename_axis("window").reset_index()
    table["rows"] = [len(frame) for _, frame in dataset.frames()]
    table["orphan_share"] = table["orphan"] / table["rows"]
    overlap = len(set(dataset.train["patient_key"]) & set(dataset.test["patient_key"]))
    context.log.info("windows %s, rows %s", windows.as_dict(), table["rows"].tolist())
    return dg.MaterializeResult(
        value=dataset,
        metadata={
            "windows": dg.MetadataValue.json(windows.as_dict()),
            "label_distribution": dg.MetadataValue.md(markdown_table(table)),
            "label_counts": dg.MetadataValue.json(distribution),
            "partitions": dg.MetadataValue.json(partitions),
            "rows_train": len(dataset.train),
            "rows_validation": len(dataset.validation),
            "rows_test": len(dataset.test),
            "patients_in_train_and_test": overlap,
            "dagster/row_count": int(table["rows"].sum()),
        },
    )


@dg.asset(
    key=c.TRIAGE_MODEL,
    group_name=c.GROUP_TRAINING,
    ins={"training_set": dg.AssetIn(key=c.TRAINING_SET), "reference": REFERENCE_IN},
    kinds={"scikitlearn", "xgboost", "mlflow"},
    description="Candidate pipelines (LR, depth-bounded RF, XGBoost x class weights / oversampling, a two-stage "
    "comparison) cross-validated on the training window; the chosen one refitted, calibrated if it helps, its "
    "orphan threshold tuned on validation for the target recall; each fit's non-orphan rows augmented with copies "
    "carrying random incidental vocabulary terms, then refitted with single-term copies for the terms the "
    "validation window shows it over-reads; logged and registered in MLflow as a new version "
    "(tag gates=pending; alias `challenger` only after every blocking gate passed, set by published_model).",
)
def triage_model(
    context: dg.AssetExecutionContext,
    config: TriageModelConfig,
    mlflow: MlflowTracking,
    training_set: TrainingSet,
    reference: dict[str, pd.DataFrame],
) -> dg.MaterializeResult:
    ref = reference_from_frames(reference)
    training_config = config.training_config()
    fingerprint = tracking.data_fingerprint([training_set.train, training_set.validation])
    partitions = training_set.partitions()
    tags = tracking.asset_run_tags(context.run.run_id, "triage_model")
    revision = tags["code_revision"]
    with mlflow.start_run("triage_model", tags={**tags, "data_fingerprint": fingerprint}) as run:
        tracking.log_params(
            {
                **{k: v for k, v in config.model_dump().items() if k != "candidates"},
                "candidates": ",".join(config.candidates),
                **{f"window_{n}_{e}": d for n, w in training_set.windows.as_dict().items() for e, d in w.items()},
                "rows_train": len(training_set.train),
                "rows_validation": len(training_set.validation),
                "data_fingerprint": fingerprint,
                "dagster_run_id": context.run.run_id,
                "code_revision": revision,
            }
        )
        tracking.log_json(partitions, "partitions.json")
        columns = feature_set_columns(config.feature_set, list(training_set.train.columns))
        datasets = {
            name: window_dataset(
                frame,
                columns,
                window=name,
                day_window=training_set.windows.window(name),
                table=training_set.table,
                database=training_set.database,
            )
            for name, frame in (("train", training_set.train), ("validation", training_set.validation))
        }
        for name, dataset in datasets.items():
            log_window_dataset(dataset, name)
        outcome = train_triage_model(
            training_set.train,
            training_set.validation,
            training_config,
            log=context.log.info,
            vocabulary_items=lambda inputs: vocabulary_phenotype_items(
                ref.vocabulary, ref.term_rollup, ref.term_system, inputs, term_ic=ref.term_information_content
            ),
        )
        tracking.log_params(
            {
                "chosen_candidate": outcome.spec.name,
                "calibration_chosen": outcome.calibration,
                "orphan_threshold_limited_by": outcome.policy.limited_by,
            }
        )
        candidate_runs = tracking.log_candidate_runs(
            outcome.cv_results,
            chosen=outcome.spec.name,
            params=training_config.params,
            search={
                "cv_folds": config.cv_folds,
                "cv_rows": outcome.cv_rows,
                "selection_metric": config.selection_metric,
                "target_recall": config.target_recall,
                "feature_set": config.feature_set,
            },
            tags=tags,
        )
        cv_table = outcome.cv_table()
        chosen_cv = next((r for r in outcome.cv_results if r.spec == outcome.spec), None)
        tracking.log_metric_details(
            {
                "validation": outcome.validation_metrics,
                "policy": outcome.policy.as_dict(),
                "timings_seconds": outcome.timings,
                "calibration": outcome.calibration_report,
                "cv": {"folds": config.cv_folds, "rows": outcome.cv_rows, "candidates": cv_table},
            }
        )
        if not cv_table.empty:
            tracking.log_result_table(cv_table, "tables/cv_results.json")
        targeted_table = outcome.targeted_table()
        if not targeted_table.empty:
            tracking.log_result_table(targeted_table, "tables/targeted_rounds.json")
            tracking.log_json(outcome.targeted_shares, "targeted_shares.json")
        y_val = label_codes(training_set.validation["label"])
        pr_png = pr_curves_png(y_val, outcome.validation_proba, "Precision-recall (validation window)")
        cal_png = calibration_png(y_val, outcome.validation_proba, title="Calibration (validation window)")
        tracking.log_png(pr_png, "validation_pr_curves.png")
        tracking.log_png(cal_png, "validation_calibration.png")
        train_inputs = model_inputs(training_set.train, outcome.feature_columns)
        model_info = tracking.log_pipeline(
            outcome.pipeline,
            signature=tracking.model_signature(outcome.pipeline, train_inputs),
            example=tracking.input_example(train_inputs, seed=training_config.params.seed),
        )
        tracking.log_headline_metrics(
            tracking.headline_metrics(outcome.validation_metrics, outcome.policy.as_dict(), chosen_cv),
            model_id=model_info.model_id,
            validation=datasets["validation"],
        )
        version = tracking.register_version(
            mlflow.client(),
            model_info,
            mlflow.registered_model_name,
            run.info.run_id,
            {**tags, "data_fingerprint": fingerprint, "candidate": outcome.spec.name},
        )
        model = build_triage_model(
            outcome,
            feature_set=config.feature_set,
            test=training_set.test,
            training_partitions=sorted(partitions["train"] + partitions["validation"]),
            data_fingerprint=fingerprint,
            code_revision=revision,
            hpo_release=ref.hpo_release,
            vocabulary=ref.vocabulary,
            systems=ref.systems,
            phenotype_encoding=phenotype_encoding(ref),
            model_params=training_config.params.as_dict(),
            mlflow_run_id=run.info.run_id,
            mlflow_model_version=version,
        )
    calibration = pd.DataFrame(outcome.calibration_report).T.rename_axis("method").reset_index()
    validation_orphans = int((y_val == ORPHAN_INDEX).sum())
    if outcome.policy.limited_by_budget:
        context.log.warning(
            f"orphan threshold raised to the flag-rate budget ({outcome.policy.max_flag_rate:.0%} of non-orphan "
            f"validation encounters): validation orphan recall {outcome.validation_metrics['orphan_recall']:.3f}, "
            f"short of the target {outcome.policy.target_recall} at {outcome.policy.recall_confidence:.0%} "
            "confidence; the needs-review band keeps the rest in sight"
        )
    if validation_orphans < MIN_VALIDATION_ORPHANS:
        context.log.warning(
            f"the orphan threshold was tuned on {validation_orphans} validation orphan cases (recall moves in steps "
            f"of {1 / max(validation_orphans, 1):.3f}); widen the validation window for a stable threshold"
        )
    return dg.MaterializeResult(
        value=model,
        metadata={
            "candidate": outcome.spec.name,
            "why": outcome.selection_reason,
            "cv_results": dg.MetadataValue.md(
                f"StratifiedKFold({config.cv_folds}) on {outcome.cv_rows} training rows\n\n{markdown_table(cv_table)}"
            ),
            "targeted_rounds": dg.MetadataValue.md(
                "validation window, each vocabulary term added alone to the non-orphan rows; terms above "
                f"{config.targeted_goal:g}x their base flag rate get single-term copies in the next fit\n\n"
                + markdown_table(targeted_table)
                if not targeted_table.empty
                else "none (targeted_rounds = 0 or no vocabulary)"
            ),
            "calibration": outcome.calibration,
            "calibration_report": dg.MetadataValue.md(markdown_table(calibration)),
            "thresholds": dg.MetadataValue.json(model.thresholds),
            "orphan_threshold_limited_by": outcome.policy.limited_by,
            "needs_review": dg.MetadataValue.json(json_safe(model.needs_review)),
            "validation_metrics": dg.MetadataValue.json(json_safe(outcome.validation_metrics)),
            "validation_orphan_recall": metric_value(outcome.validation_metrics["orphan_recall"]),
            "validation_non_orphan_flag_rate": metric_value(outcome.validation_metrics["non_orphan_flag_rate"]),
            "validation_orphans": validation_orphans,
            "feature_set": config.feature_set,
            "feature_columns": len(model.feature_columns),
            "timings_s": dg.MetadataValue.json({k: round(v, 2) for k, v in outcome.timings.items()}),
            "mlflow_run_id": run.info.run_id,
            "mlflow_model_version": str(version),
            "registered_model": f"{mlflow.registered_model_name} version {version}",
            "mlflow_candidate_runs": len(candidate_runs),
            **mlflow_links(mlflow, run.info.experiment_id, run.info.run_id, version),
            "data_fingerprint": fingerprint,
            "code_revision": revision,
            "validation_pr_curves": dg.MetadataValue.md(markdown_image(pr_png, "validation PR curves")),
            "validation_calibration": dg.MetadataValue.md(markdown_image(cal_png, "validation calibration")),
        },
    )
