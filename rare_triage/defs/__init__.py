"""Dagster wiring, one folder per domain, autoloaded by rare_triage.definitions (dg.load_from_defs_folder)."""
