"""Wiring of the encounter features and their checks."""
