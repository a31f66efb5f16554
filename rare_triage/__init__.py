"""rare-triage: machine-learning triage of orphan (rare) diseases as a Dagster code location.

`definitions.py` autoloads `defs/<domain>/` (Dagster wiring: reference, ingest, governance, features, training,
deployment; `defs/shared/` for keys, resources and IO managers; `defs/jobs.py` for jobs spanning domains).
`lib/<domain>/` holds the pure logic of the same domain, without Dagster. `cli/` is the one command line
(`python -m rare_triage`).
"""
