"""Synthetic feature frames and trained models for tests and benchmarks only (never imported by the platform)."""
