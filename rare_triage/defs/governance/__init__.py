"""Wiring of governance: anonymized tables, the quarantine and their checks."""
