"""model_evaluation (the held-back test window) and external_validation (real published cases), each logged as
an MLflow child run of the training run and tagged on the registered model version."""

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.mlflow import MlflowTracking
from rare_triage.defs.training.assets import REFERENCE_IN, mlflow_links
from rare_triage.defs.training.config import ExternalValidationConfig, ModelEvaluationConfig
from rare_triage.lib.reference.frames import reference_from_frames
from rare_triage.lib.reference.loaders import load_incidental_findings, load_phenopackets
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.training import tracking
from rare_triage.lib.training.ablation import run_ablation, shortcut_warning
from rare_triage.lib.training.candidates import CandidateSpec, ModelParams
from rare_triage.lib.training.columns import model_inputs
from rare_triage.lib.training.datasets import log_window_dataset, window_dataset
from rare_triage.lib.training.evaluate import ModelEvaluation, evaluate_model, headline_table
from rare_triage.lib.training.external import (
    ExternalValidation,
    external_features,
    external_report,
    non_orphan_flag_rates,
    operating_points,
    shares_by_extent,
)
from rare_triage.lib.training.model import TriageModel
from rare_triage.lib.training.plots import calibration_png, confusion_png, markdown_image, pr_curves_png
from rare_triage.lib.training.report import json_safe, markdown_table, metric_value
from rare_triage.lib.training.robustness import PhenotypeItem, phenotype_items, vocabulary_phenotype_items
from rare_triage.lib.training.thresholds import ThresholdPolicy
from rare_triage.lib.training.windows import TrainingSet

ROBUSTNESS_TERMS_SHOWN = 15  # rows of the per-term table in the asset's markdown (all of them in its JSON)


def _phenotype_items(
    ref: ReferenceTables, columns: list[str]
) -> tuple[list[PhenotypeItem], list[PhenotypeItem], list[PhenotypeItem]]:
    """Red-flag terms of the vocabulary, the incidental findings the synthetic source gives non-orphan patients
    (with their weights), and every vocabulary term among the model's inputs, as the feature SQL would encode them."""
    red_ids = ref.vocabulary.loc[ref.vocabulary["group"] == "orphan_red_flag", "hpo_id"].tolist()
    ic = ref.term_information_content
    red_flags = phenotype_items(red_ids, ref.term_rollup, ref.term_system, columns, term_ic=ic)
    incidental = load_incidental_findings()
    items = phenotype_items(
        incidental["hpo_id"].tolist(),
        ref.term_rollup,
        ref.term_system,
        columns,
        weights=incidental["weight"].tolist(),
        term_ic=ic,
    )
    vocabulary = vocabulary_phenotype_items(ref.vocabulary, ref.term_rollup, ref.term_system, columns, term_ic=ic)
    return red_flags, items, vocabulary


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
    "centre), robustness to incidental phenotypes, to random extra vocabulary terms and to each vocabulary term "
    "added alone (the per-term table), multimorbid elderly patients, behavioural tests.",
)
def model_evaluation(  # noqa: PLR0917 (Dagster passes inputs and resources by parameter name)
    context: dg.AssetExecutionContext,
    config: ModelEvaluationConfig,
    mlflow: MlflowTracking,
    training_set: TrainingSet,
    triage_model: TriageModel,
    reference: dict[str, pd.DataFrame],
) -> dg.MaterializeResult:
    ref = reference_from_frames(reference)
    columns = list(triage_model.feature_columns)
    red_flags, incidental, vocabulary = _phenotype_items(ref, columns)
    policy = ThresholdPolicy.from_bundle(triage_model.thresholds, triage_model.needs_review)
    tags = {
        **tracking.asset_run_tags(context.run.run_id, "model_evaluation"),
        "test_data_fingerprint": tracking.data_fingerprint([training_set.test]),
    }
    with mlflow.start_run("model_evaluation", tags=tags, parent_run_id=triage_model.mlflow_run_id) as run:
        tracking.log_params({"test_partitions": ",".join(training_set.partitions()["test"]), **config.model_dump()})
        test_dataset = window_dataset(
            training_set.test,
            columns,
            window="test",
            day_window=training_set.windows.window("test"),
            table=training_set.table,
            database=training_set.database,
        )
        log_window_dataset(test_dataset, "test")
        evaluation = evaluate_model(
            triage_model.pipeline,
            columns,
            policy,
            training_set.test,
            incidental_items=incidental,
            vocabulary_items=vocabulary,
            red_flags=red_flags,
            min_subgroup_orphans=config.min_subgroup_orphans,
            behaviour_sample=config.behaviour_sample,
            elderly_age=config.elderly_age,
            min_chronic_conditions=config.min_chronic_conditions,
            robustness_seeds=config.robustness_seeds,
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
        tracking.log_result_table(evaluation.robustness_per_term, "tables/robustness_per_term.json")
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
            "robustness_per_term": dg.MetadataValue.md(
                markdown_table(evaluation.robustness_per_term.head(ROBUSTNESS_TERMS_SHOWN))
            ),
            "robustness_per_term_all": dg.MetadataValue.json(json_safe(evaluation.robustness_per_term)),
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
            **mlflow_links(mlflow, run.info.experiment_id, run.info.run_id, triage_model.mlflow_model_version),
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
    description="Real published rare-disease cases (phenopacket-store) through the same feature SQL, phenotype, "
    "age and sex only (everything else missing): share flagged orphan-compatible overall, per cohort and by number "
    "of organ systems / observed terms, next to synthetic non-orphans encoded the same way; operating points at 5% "
    "and 2% non-orphan flag rates for both encodings; plus the feature-set ablation (shortcut probe).",
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
    ref = reference_from_frames(reference)
    cases = load_phenopackets()
    if config.max_cases:
        cases = cases.head(config.max_cases)
    policy = ThresholdPolicy.from_bundle(triage_model.thresholds, triage_model.needs_review)
    tags = tracking.asset_run_tags(context.run.run_id, "external_validation")
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
        columns = list(triage_model.feature_columns)
        points = operating_points(
            triage_model.pipeline,
            columns,
            validation=training_set.validation,
            test=training_set.test,
            external=features,
            flag_rates=tuple(config.operating_flag_rates),
        )
        like_rate, like_by_label = non_orphan_flag_rates(triage_model.pipeline, columns, training_set.test, policy)
        by_extent = shares_by_extent(triage_model.pipeline, columns, features, policy, points)
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
            operating_points=points,
            mlflow_run_id=run.info.run_id,
            mlflow_model_version=triage_model.mlflow_model_version,
            phenotype_only_non_orphan_flag_rate=like_rate,
            phenotype_only_flag_rate_by_label=like_by_label,
            by_extent=by_extent,
        )
        tracking.log_params({"n_cases": result.n_cases, "ablation": config.ablation})
        tracking.log_metrics(result.metrics())
        tracking.log_table(per_cohort, "external_per_cohort.csv")
        tracking.log_table(points, "operating_points.csv")
        tracking.log_table(by_extent, "external_by_extent.csv")
        for row in points.to_dict(orient="records"):
            rate, encoding = row.pop("target_non_orphan_flag_rate"), row.pop("encoding")
            tracking.log_metrics(row, f"{encoding}.at_flag_rate_{rate:g}.")
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
            "test_non_orphan_flag_rate_phenotype_only": metric_value(result.phenotype_only_non_orphan_flag_rate),
            "n_cases": result.n_cases,
            "n_cohorts": len(per_cohort),
            "summary": dg.MetadataValue.json(json_safe(result.metrics())),
            "operating_points": dg.MetadataValue.md(markdown_table(points)),
            "per_cohort": dg.MetadataValue.md(markdown_table(per_cohort)),
            "by_extent": dg.MetadataValue.md(markdown_table(by_extent)),
            "feature_ablation": dg.MetadataValue.md(markdown_table(ablation) if not ablation.empty else "not run"),
            "shortcut_warning": warning or "none",
            "mlflow_run_id": run.info.run_id,
            **mlflow_links(mlflow, run.info.experiment_id, run.info.run_id, triage_model.mlflow_model_version),
        },
    )
