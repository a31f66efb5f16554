"""The features domain: DuckDB SQL from anonymized tables to one row per encounter, chunking, phenotype encoding."""
