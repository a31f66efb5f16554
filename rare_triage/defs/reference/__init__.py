"""Wiring of the HPO / Orphanet reference tables."""
