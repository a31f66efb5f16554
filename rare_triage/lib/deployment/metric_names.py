"""Names of the gated metrics in a model bundle and its manifest (what the promotion gate compares)."""

METRIC_ORPHAN_RECALL = "orphan_recall"  # recall of the orphan class on the test window, 0..1
METRIC_EXTERNAL_VALIDATION_SHARE = "external_validation_share"  # share of real cases flagged, 0..1
