"""Tests of rare_triage.lib.training."""
