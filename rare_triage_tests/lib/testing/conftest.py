"""The synthetic features frame of the training tests, shared rather than synthesized with other settings."""

from rare_triage_tests.lib.training.conftest import features, layout

__all__ = ["features", "layout"]
