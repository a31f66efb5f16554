"""Tests of the monitoring logic: prediction logs, drift, realized performance."""
