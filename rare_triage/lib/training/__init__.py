"""Training, selection, thresholds, evaluation and tracking of the triage model (pure functions, no Dagster).

Modules: columns (feature roles and ablation sets), windows (temporal splits), candidates and imbalance
(one Pipeline per candidate), cross_validation (search and choice), calibration, thresholds (recall
target and needs-review band), metrics, robustness, behaviour, plots, external (real published cases),
ablation, tracking (MLflow helpers), gates, model (the triage_model value), train and evaluate (the steps the
assets run). Synthetic feature frames for tests and benchmarks are in lib/testing.
"""
