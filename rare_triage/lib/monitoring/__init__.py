"""Monitoring of the deployed model: reference profiles, drift statistics and reports (pure functions, no Dagster)."""
