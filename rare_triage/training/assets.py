"""Training assets: training_set (temporal windows) -> triage_model (search, calibration, thresholds, MLflow
registry alias `challenger`) -> model_evaluation (test window) -> external_validation (real published cases)."""

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from duckdb import CatalogException

from rare_triage import constants as c
from rare_triage.lib.ontology import ReferenceTables
from rare_triage.lib.reference import load_incidental_findings, load_phenopackets
from rare_triage.lib.training import tracking
from rare_triage.lib.training.ablation import run_ablation, shortcut_warning
from rare_triage.lib.training.candidates import CandidateSpec, ModelParams
from rare_triage.lib.training.columns import label_codes, model_inputs
from rare_triage.lib.training.evaluate import ModelEvaluation, evaluate_model, headline_table
from rare_triage.lib.training.external import ExternalValidation, external_features, external_report
from rare_triage.lib.training.model import TriageModel, build_triage_model
from rare_triage.lib.training.plots import calibration_png, confusion_png, markdown_image, pr_curves_png
from rare_triage.lib.training.report import json_safe, markdown_table, metric_value
from rare_triage.lib.training.robustness import PhenotypeItem, phenotype_items
from rare_triage.lib.training.thresholds import ThresholdPolicy
from rare_triage.lib.training.train import train_triage_model
from rare_triage.lib.training.windows import (
    TrainingSet,
    compact_features,
    explicit_windows,
    label_distribution,
    last_days_windows,
    partitions_query,
    window_query,
)
from rare_triage.reference.assets import reference_from_frames
from rare_triage.training.config import (
    ExternalValidationConfig,
    ModelEvaluationConfig,
    TrainingSetConfig,
    TriageModelConfig,
)
from rare_triage.training.resources import MlflowTracking

REFERENCE_IN = dg.AssetIn(key=c.HPO_REFERENCE_TABLES)


def _reference(frames: dict[str, pd.DataFrame]) -> ReferenceTables:
    return reference_from_frames(frames)


@dg.asset(
    key=c.TRAINING_SET,
    group_name=c.GROUP_TRAINING,
    deps=[c.ENCOUNTER_FEATURES],
    pool=c.DUCKDB_POOL,
    kinds={"duckdb", "pandas"},
    description="Train / validation / test windows of encounter features read from the DuckDB warehouse by "
    "partition_day; the test window is strictly later than validation, itself later than training.",
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
        windows = (
            explicit_windows(bounds)
            if bounds
            else last_days_windows(days, config.train_days, config.validation_days, config.test_days)
        )
        frames = {}
        for name, window in windows.items():
            frame = conn.execute(window_query(config.table), [window.start.isoformat(), window.end.isoformat()]).df()
            if frame.empty:
                raise ValueError(
                    f"{name} window {window.start}..{window.end}: no row in {config.table} "
                    f"(partitions present: {days[0] if days else None}..{days[-1] if days else None})"
                )
            frames[name] = compact_features(frame)
    dataset = TrainingSet(windows=windows, **frames)
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
    "orphan threshold tuned on validation for the target recall; logged and registered in MLflow as `challenger`.",
)
def triage_model(
    context: dg.AssetExecutionContext,
    config: TriageModelConfig,
    mlflow: MlflowTracking,
    training_set: TrainingSet,
    reference: dict[str, pd.DataFrame],
) -> dg.MaterializeResult:
    ref = _reference(reference)
    training_config = config.training_config()
    fingerprint = tracking.data_fingerprint([training_set.train, training_set.validation])
    revision = tracking.code_revision()
    partitions = training_set.partitions()
    tags = {"dagster_run_id": context.run.run_id, "dagster_asset": "triage_model", "code_revision": revision}
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
        outcome = train_triage_model(training_set.train, training_set.validation, training_config, log=context.log.info)
        tracking.log_params({"chosen_candidate": outcome.spec.name, "calibration_chosen": outcome.calibration})
        cv_table = outcome.cv_table()
        for row in cv_table.to_dict(orient="records"):
            tracking.log_metrics(
                {k: v for k, v in row.items() if k not in ("candidate", "servable")}, f"cv.{row['candidate']}."
            )
        tracking.log_metrics(outcome.validation_metrics, "validation.")
        tracking.log_metrics(outcome.policy.as_dict(), "policy.")
        tracking.log_metrics(outcome.timings, "time.")
        tracking.log_metrics(outcome.calibration_report, "calibration.")
        tracking.log_table(cv_table, "cv_results.csv")
        y_val = label_codes(training_set.validation["label"])
        pr_png = pr_curves_png(y_val, outcome.validation_proba, "Precision-recall (validation window)")
        cal_png = calibration_png(y_val, outcome.validation_proba, title="Calibration (validation window)")
        tracking.log_png(pr_png, "validation_pr_curves.png")
        tracking.log_png(cal_png, "validation_calibration.png")
        model_info = tracking.log_pipeline(outcome.pipeline)
        version = tracking.register_challenger(
            mlflow.client(),
            model_info.model_uri,
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
            model_params=training_config.params.as_dict(),
            mlflow_run_id=run.info.run_id,
            mlflow_model_version=version,
        )
    calibration = pd.DataFrame(outcome.calibration_report).T.rename_axis("method").reset_index()
    return dg.MaterializeResult(
        value=model,
        metadata={
            "candidate": outcome.spec.name,
            "why": outcome.selection_reason,
            "cv_results": dg.MetadataValue.md(
                f"StratifiedKFold({config.cv_folds}) on {outcome.cv_rows} training rows\n\n{markdown_table(cv_table)}"
            ),
            "calibration": outcome.calibration,
            "calibration_report": dg.MetadataValue.md(markdown_table(calibration)),
            "thresholds": dg.MetadataValue.json(model.thresholds),
            "needs_review": dg.MetadataValue.json(json_safe(model.needs_review)),
            "validation_metrics": dg.MetadataValue.json(json_safe(outcome.validation_metrics)),
            "validation_orphan_recall": metric_value(outcome.validation_metrics["orphan_recall"]),
            "validation_non_orphan_flag_rate": metric_value(outcome.validation_metrics["non_orphan_flag_rate"]),
            "feature_set": config.feature_set,
            "feature_columns": len(model.feature_columns),
            "timings_s": dg.MetadataValue.json({k: round(v, 2) for k, v in outcome.timings.items()}),
            "mlflow_run_id": run.info.run_id,
            "mlflow_model_version": str(version),
            "registered_model": f"{mlflow.registered_model_name}@challenger",
            "data_fingerprint": fingerprint,
            "code_revision": revision,
            "validation_pr_curves": dg.MetadataValue.md(markdown_image(pr_png, "validation PR curves")),
            "validation_calibration": dg.MetadataValue.md(markdown_image(cal_png, "validation calibration")),
        },
    )


def _phenotype_items(ref: ReferenceTables, columns: list[str]) -> tuple[list[PhenotypeItem], list[PhenotypeItem]]:
    """Red-flag terms of the vocabulary, and the incidental findings the synthetic source gives non-orphan
    patients (with their weights), as the feature SQL would encode them."""
    red_ids = ref.vocabulary.loc[ref.vocabulary["group"] == "orphan_red_flag", "hpo_id"].tolist()
    red_flags = phenotype_items(red_ids, ref.term_rollup, ref.term_system, columns)
    incidental = load_incidental_findings()
    items = phenotype_items(
        incidental["hpo_id"].tolist(), ref.term_rollup, ref.term_system, columns, incidental["weight"].tolist()
    )
    return red_flags, items


@dg.asset(
    key=c.MODEL_EVALUATION,
    group_name=c.GROUP_TRAINING,
    ins={
        "training_set": dg.AssetIn(key=c.TRAINING_SET),
        "triage_model": dg.AssetIn(key=c.TRIAGE_MODEL),
        "reference": REFERENCE_IN,
    },
    kinds={"scikitlearn", "mlflow"},
    description="The chosen model on the held-back test window: ROC/PR-AUC per class, macro F1, orphan recall, "
    "precision, NPV and flag rate at the threshold, Brier and ECE, confusion matrix, subgroups (age band, sex, "
    "centre), robustness to incidental phenotypes and multimorbid elderly patients, behavioural tests.",
)
def model_evaluation(  # noqa: PLR0917 (Dagster passes inputs and resources by parameter name)
    context: dg.AssetExecutionContext,
    config: ModelEvaluationConfig,
    mlflow: MlflowTracking,
    training_set: TrainingSet,
    triage_model: TriageModel,
    reference: dict[str, pd.DataFrame],
) -> dg.MaterializeResult:
    ref = _reference(reference)
    columns = list(triage_model.feature_columns)
    red_flags, incidental = _phenotype_items(ref, columns)
    policy = ThresholdPolicy.from_bundle(triage_model.thresholds, triage_model.needs_review)
    tags = {
        "dagster_run_id": context.run.run_id,
        "dagster_asset": "model_evaluation",
        "code_revision": tracking.code_revision(),
        "test_data_fingerprint": tracking.data_fingerprint([training_set.test]),
    }
    with mlflow.start_run("model_evaluation", tags=tags, parent_run_id=triage_model.mlflow_run_id) as run:
        tracking.log_params({"test_partitions": ",".join(training_set.partitions()["test"]), **config.model_dump()})
        evaluation = evaluate_model(
            triage_model.pipeline,
            columns,
            policy,
            training_set.test,
            incidental_items=incidental,
            red_flags=red_flags,
            min_subgroup_orphans=config.min_subgroup_orphans,
            behaviour_sample=config.behaviour_sample,
            elderly_age=config.elderly_age,
            min_chronic_conditions=config.min_chronic_conditions,
            seed=config.seed,
        )
        plots = {
            "test_pr_curves": pr_curves_png(evaluation.y_test, evaluation.proba_test),
            "test_calibration": calibration_png(
                evaluation.y_test, evaluation.proba_test, title="Calibration (test window)"
            ),
            "test_confusion_matrix": confusion_png(evaluation.confusion),
        }
        for name, png in plots.items():
            tracking.log_png(png, f"{name}.png")
        tracking.log_metrics(evaluation.metrics, "test.")
        tracking.log_table(evaluation.subgroups, "test_subgroups.csv")
        tracking.log_json(json_safe(evaluation.behaviour), "behaviour.json")
        tracking.log_json(evaluation.confusion, "confusion_matrix.json")
        tracking.set_version_tags(
            mlflow.client(),
            mlflow.registered_model_name,
            triage_model.mlflow_model_version,
            {
                f"test_{k}": round(evaluation.metrics[k], 6)
                for k in ("orphan_recall", "orphan_pr_auc", "non_orphan_flag_rate")
            },
        )
    evaluation = dataclasses.replace(
        evaluation, mlflow_run_id=run.info.run_id, mlflow_model_version=triage_model.mlflow_model_version
    )
    m = evaluation.metrics
    per_class = pd.DataFrame(evaluation.per_class).T.rename_axis("label").reset_index()
    monotonic = evaluation.behaviour["red_flag_monotonicity"]
    return dg.MaterializeResult(
        value=evaluation,
        metadata={
            "summary": dg.MetadataValue.md(markdown_table(headline_table(m))),
            "per_class": dg.MetadataValue.md(markdown_table(per_class)),
            "subgroups": dg.MetadataValue.md(markdown_table(evaluation.subgroups)),
            "robustness": dg.MetadataValue.json(json_safe(evaluation.robustness)),
            "behaviour": dg.MetadataValue.json(
                json_safe(
                    {k: v for k, v in evaluation.behaviour.items() if k != "red_flag_monotonicity"}
                    | {"red_flag_monotonicity": {k: v for k, v in monotonic.items() if k != "per_term"}}
                )
            ),
            "confusion_matrix": dg.MetadataValue.json(evaluation.confusion),
            "orphan_recall": metric_value(m["orphan_recall"]),
            "orphan_pr_auc": metric_value(m["orphan_pr_auc"]),
            "non_orphan_flag_rate": metric_value(m["non_orphan_flag_rate"]),
            "mlflow_run_id": run.info.run_id,
            **{name: dg.MetadataValue.md(markdown_image(png, name)) for name, png in plots.items()},
        },
    )


@dg.asset(
    key=c.EXTERNAL_VALIDATION,
    group_name=c.GROUP_TRAINING,
    ins={
        "training_set": dg.AssetIn(key=c.TRAINING_SET),
        "triage_model": dg.AssetIn(key=c.TRIAGE_MODEL),
        "model_evaluation": dg.AssetIn(key=c.MODEL_EVALUATION),
        "reference": REFERENCE_IN,
    },
    kinds={"scikitlearn", "mlflow"},
    description="Real published rare-disease cases (phenopacket-store) through the same feature SQL, no vitals, "
    "duration or visits: share flagged orphan-compatible overall and per cohort, next to the non-orphan test flag "
    "rate; plus the feature-set ablation (shortcut probe, vocabulary alone vs vocabulary + organ systems).",
)
def external_validation(  # noqa: PLR0917 (Dagster passes inputs and resources by parameter name)
    context: dg.AssetExecutionContext,
    config: ExternalValidationConfig,
    mlflow: MlflowTracking,
    training_set: TrainingSet,
    triage_model: TriageModel,
    model_evaluation: ModelEvaluation,
    reference: dict[str, pd.DataFrame],
) -> dg.MaterializeResult:
    ref = _reference(reference)
    cases = load_phenopackets()
    if config.max_cases:
        cases = cases.head(config.max_cases)
    policy = ThresholdPolicy.from_bundle(triage_model.thresholds, triage_model.needs_review)
    tags = {
        "dagster_run_id": context.run.run_id,
        "dagster_asset": "external_validation",
        "code_revision": tracking.code_revision(),
    }
    with mlflow.start_run("external_validation", tags=tags, parent_run_id=triage_model.mlflow_run_id) as run:
        features = external_features(cases, ref)
        proba = np.asarray(triage_model.pipeline.predict_proba(model_inputs(features, triage_model.feature_columns)))
        overall, per_cohort = external_report(features, proba, policy)
        ablation = pd.DataFrame()
        if config.ablation:
            ablation = run_ablation(
                CandidateSpec.parse(triage_model.candidate),
                ModelParams(**triage_model.model_params),
                train=training_set.train,
                validation=training_set.validation,
                test=training_set.test,
                external=features,
                feature_sets=config.ablation_feature_sets,
                target_recall=policy.target_recall,
                max_rows=config.ablation_max_rows,
                log=context.log.info,
            )
        result = ExternalValidation(
            n_cases=int(overall["n_cases"]),
            share_flagged=overall["share_flagged"],
            share_flagged_or_review=overall["share_flagged_or_review"],
            share_without_vocabulary_term=overall["share_without_vocabulary_term"],
            share_flagged_without_vocabulary_term=overall["share_flagged_without_vocabulary_term"],
            mean_orphan_probability=overall["mean_orphan_probability"],
            test_non_orphan_flag_rate=float(model_evaluation.metrics["non_orphan_flag_rate"]),
            per_cohort=per_cohort,
            ablation=ablation,
            mlflow_run_id=run.info.run_id,
            mlflow_model_version=triage_model.mlflow_model_version,
        )
        tracking.log_params({"n_cases": result.n_cases, "ablation": config.ablation})
        tracking.log_metrics(result.metrics())
        tracking.log_table(per_cohort, "external_per_cohort.csv")
        if not ablation.empty:
            tracking.log_table(ablation, "feature_ablation.csv")
            for row in ablation.to_dict(orient="records"):
                tracking.log_metrics(
                    {k: v for k, v in row.items() if k != "feature_set"}, f"ablation.{row['feature_set']}."
                )
        tracking.set_version_tags(
            mlflow.client(),
            mlflow.registered_model_name,
            triage_model.mlflow_model_version,
            {"external_validation_share": round(result.share_flagged, 6)},
        )
    warning = shortcut_warning(ablation) if not ablation.empty else None
    if warning:
        context.log.warning(warning)
    return dg.MaterializeResult(
        value=result,
        metadata={
            "external_validation_share": metric_value(result.share_flagged),
            "share_flagged_or_review": metric_value(result.share_flagged_or_review),
            "test_non_orphan_flag_rate": metric_value(result.test_non_orphan_flag_rate),
            "n_cases": result.n_cases,
            "n_cohorts": len(per_cohort),
            "summary": dg.MetadataValue.json(json_safe(result.metrics())),
            "per_cohort": dg.MetadataValue.md(markdown_table(per_cohort)),
            "feature_ablation": dg.MetadataValue.md(markdown_table(ablation) if not ablation.empty else "not run"),
            "shortcut_warning": warning or "none",
            "mlflow_run_id": run.info.run_id,
        },
    )
