"""Wiring of training: windows, the triage model, evaluation, external validation and the gates."""
