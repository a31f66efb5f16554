"""Wiring of the raw EHR extracts: the daily asset, its checks and the landing-zone sensor."""
