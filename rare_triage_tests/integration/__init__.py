"""Tests against real local servers: S3 API (moto) on 127.0.0.1, PostgreSQL, an MLflow server."""
