"""The ingest domain: landing zone reader (CSV, Parquet, FHIR R4), raw frames, the synthetic EHR generator."""
