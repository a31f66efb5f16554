"""Shared pytest fixtures."""

import hashlib
import os
from pathlib import Path

import pytest

from rare_triage.lib.reference import loaders, ontology
from rare_triage.lib.reference.ontology import ReferenceTables, load_or_build_reference_tables

pytest_plugins = ["rare_triage_tests.fixtures_s3", "rare_triage_tests.fixtures_pg"]

REFERENCE_CACHE_ENV = "RARE_TRIAGE_TEST_CACHE"


def _reference_fingerprint() -> str:
    """Hash of the code and vocabulary the tables derive from, so a cache never outlives a change to them."""
    digest = hashlib.sha256()
    for path in (Path(ontology.__file__), Path(loaders.__file__), *sorted(loaders.VOCABULARY_DIR.glob("*.csv"))):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def reference_tables(tmp_path_factory: pytest.TempPathFactory) -> ReferenceTables:
    """HPO reference tables, built once (about 3 s) and cached under $RARE_TRIAGE_TEST_CACHE or the session tmp dir."""
    configured = os.environ.get(REFERENCE_CACHE_ENV)
    if configured:
        root = Path(configured)
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        root = tmp_path_factory.getbasetemp().parent  # shared by the xdist workers of this session
    else:
        root = tmp_path_factory.getbasetemp()
    return load_or_build_reference_tables(root / f"reference_tables_{loaders.HPO_RELEASE}_{_reference_fingerprint()}")
