"""The Parquet lake and the DuckDB warehouse IO managers."""
