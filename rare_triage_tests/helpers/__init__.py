"""Helpers shared by several test modules (materialization in a temporary folder, extracts, published models)."""
