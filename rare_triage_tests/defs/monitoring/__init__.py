"""Tests of the monitoring domain's Dagster wiring."""
