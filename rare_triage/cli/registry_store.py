"""A registry version's tags read straight from MLflow's local sqlite store, read-only and without importing MLflow.

`status` on the default local setup would otherwise spend some 5 s importing MLflow and opening its store to read a
few tags. Only two tables are read, as MLflow's sqlalchemy store reads them for `get_model_version`: the version
(not deleted, in the default workspace) and its tags. The store is used only when both tables have the columns
MLflow 3 creates; otherwise `tags_reader` answers None and the caller goes through MLflow's client.
rare_triage_tests/test_cli_registry_store.py compares both readings on stores MLflow itself wrote.
"""

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

DELETED_STAGE = "Deleted_Internal"  # mlflow.entities.model_registry.model_version_stages.STAGE_DELETED_INTERNAL
DEFAULT_WORKSPACE = "default"  # mlflow.utils.workspace_utils.DEFAULT_WORKSPACE_NAME
VERSION_COLUMNS = frozenset({"name", "version", "current_stage"})
TAG_COLUMNS = frozenset({"key", "value", "name", "version"})

TagsReader = Callable[[str, str], dict[str, str] | None]


def _columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in connection.execute(f"PRAGMA table_info({table})")}


def tags_reader(store: Path) -> TagsReader | None:
    """`read(model, version)`: the tags of that registry version, None when it does not exist (or was deleted); or
    None itself when `store` is not a sqlite file with the tables as MLflow 3 writes them."""
    if not store.is_file():
        return None
    uri = f"{store.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            versions, tags = _columns(connection, "model_versions"), _columns(connection, "model_version_tags")
    except sqlite3.DatabaseError:
        return None
    if not (versions >= VERSION_COLUMNS and tags >= TAG_COLUMNS):
        return None
    in_workspace = " AND workspace = :workspace" if "workspace" in versions and "workspace" in tags else ""

    def read(model: str, version: str) -> dict[str, str] | None:
        where = {"name": model, "version": int(version), "workspace": DEFAULT_WORKSPACE, "deleted": DELETED_STAGE}
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            found = connection.execute(
                "SELECT 1 FROM model_versions WHERE name = :name AND version = :version "
                f"AND current_stage != :deleted{in_workspace}",
                where,
            ).fetchone()
            if found is None:
                return None
            rows = connection.execute(
                f"SELECT key, value FROM model_version_tags WHERE name = :name AND version = :version{in_workspace}",
                where,
            ).fetchall()
        return {str(key): "" if value is None else str(value) for key, value in rows}

    return read
