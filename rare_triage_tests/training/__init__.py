"""Tests of the training assets, checks and resources."""
