"""In-process materialization of raw -> anonymized -> features in a temporary folder (local lake)."""

import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rare_triage.defs.governance.assets import anonymized_and_quarantined
from rare_triage.defs.governance.columns import (
    anonymized_column_schema,
    pending_column_schema,
    quarantine_column_schema,
)
from rare_triage.defs.ingest.assets import raw_ehr_extract
from rare_triage.defs.reference.assets import hpo_reference_tables
from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.ehr_source import EhrSource, SyntheticEhrSource
from rare_triage.defs.shared.resources import build_resources
from rare_triage.lib import schema
from rare_triage.lib.governance.anonymize import IdentifierLeakError
from rare_triage_tests.helpers.materialize import check_results, local_environ, materialize_day, materialize_reference

DAY = "2025-03-03"


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    home = tmp_path_factory.mktemp("home")
    resources = build_resources(local_environ(home))
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    return home, materialize_day(resources, instance, DAY)


def lake_table(home: Path, asset: str, table: str) -> pd.DataFrame:
    return pq.read_table(home / "lake" / asset / f"partition_day={DAY}" / f"{table}.parquet").to_pandas()


def test_every_check_passes(local_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    _, result = local_run
    checks = check_results(result)
    assert set(checks) == {
        "raw_schema",
        "raw_referential_integrity",
        "anonymized_schema",
        "no_identifiers",
        "k_anonymity",
        "quarantine_accounting",
        "quarantine_rate",
        "features_schema",
        "orphan_prevalence",
    }
    assert all(checks.values()), checks


def test_rows_in_equal_rows_out_plus_quarantined(local_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    home, result = local_run
    raw = {t: lake_table(home, "raw_ehr_extract", t) for t in schema.RAW_TABLES}
    anonymized = {t: lake_table(home, "anonymized_encounters", t) for t in schema.ANON_TABLES}
    quarantine = lake_table(home, "quarantined_records", "data")
    materialization = next(
        m for m in result.get_asset_materialization_events() if m.asset_key == c.ANONYMIZED_ENCOUNTERS
    )
    counts = materialization.materialization.metadata["counts"].value
    for table in schema.ANON_TABLES:
        raw_table = schema.RAW_ENCOUNTERS if table == schema.ANON_ENCOUNTERS else table
        assert counts[raw_table]["in"] == len(raw[raw_table])
        assert counts[raw_table]["valid"] == len(anonymized[table])
        assert counts[raw_table]["in"] == sum(counts[raw_table][f] for f in ("valid", "quarantined", "held"))
    quarantined_encounters = quarantine.loc[quarantine["table"] == "encounters", "row_ref"].nunique()
    assert quarantined_encounters == counts["encounters"]["quarantined"]
    assert (quarantine["reason"].str.len() > 0).all()


def test_no_raw_identifier_value_reaches_the_anonymized_lake_or_the_features(
    local_run: tuple[Path, dg.ExecuteInProcessResult],
) -> None:
    home, _ = local_run
    patients = lake_table(home, "raw_ehr_extract", "patients")
    encounters = lake_table(home, "raw_ehr_extract", "encounters")
    identifiers = set()
    for column in ("patient_id", "mrn", "national_id", "given_name", "family_name", "phone", "email", "street_address"):
        identifiers |= set(patients[column].dropna().astype(str))
    identifiers |= set(patients["zip_code"].dropna().astype(str))
    identifiers |= set(encounters["encounter_id"].dropna().astype(str))
    stored = [lake_table(home, "anonymized_encounters", t) for t in schema.ANON_TABLES]
    stored.append(lake_table(home, "quarantined_records", "data"))
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        stored.append(con.sql("select * from features.encounter_features").df())
    for frame in stored:
        for column in frame.columns:
            if frame[column].dtype == object:
                cells = set(frame[column].dropna().astype(str))
                assert not cells & identifiers, f"identifier value in {column}"
                if column == "row_json":  # quarantined rows: no identifier inside the JSON either
                    joined = " ".join(cells)
                    assert not any(f'"{value}"' in joined for value in identifiers)


def test_features_have_one_row_per_anonymized_encounter(local_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    home, _ = local_run
    anonymized = lake_table(home, "anonymized_encounters", schema.ANON_ENCOUNTERS)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        features = con.sql("select * from features.encounter_features").df()
    assert sorted(features["encounter_key"]) == sorted(anonymized["encounter_key"])
    assert set(features["label"]) <= set(schema.LABELS)
    assert (features["partition_day"] == DAY).all()


def test_rematerializing_a_partition_replaces_it(tmp_path: Path) -> None:
    resources = build_resources(local_environ(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    materialize_day(resources, instance, DAY)
    materialize_day(resources, instance, DAY)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows, keys = con.execute(
            "select count(*), count(distinct encounter_key) from features.encounter_features"
        ).fetchall()[0]
    assert rows == keys > 0


class UnreadSource(dg.ConfigurableResource):
    """A source that fails the test if anything reads it."""

    def read_day(self, day, reference):  # type: ignore[no-untyped-def]
        raise AssertionError("the source was read before the configuration was checked")

    @property
    def source_name(self) -> str:
        return "unread"


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "RARE_TRIAGE_HMAC_KEY is not set"), ("ab" * 16, "RARE_TRIAGE_HMAC_KEY is too short: 16 bytes")],
    ids=["missing", "too short"],
)
def test_a_shared_deployment_without_a_usable_hmac_key_fails_before_reading_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str | None, message: str
) -> None:
    """Configuration is checked before any identifier is fetched: the raw extract is never read nor stored."""
    if key is None:
        monkeypatch.delenv("RARE_TRIAGE_HMAC_KEY", raising=False)
    else:
        monkeypatch.setenv("RARE_TRIAGE_HMAC_KEY", key)
    resources = build_resources(local_environ(tmp_path, RARE_TRIAGE_DEPLOYMENT="shared"))
    resources[c.EHR_SOURCE] = UnreadSource()
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    with pytest.raises(ValueError, match=message):
        materialize_day(resources, instance, DAY)
    assert not (tmp_path / "lake" / "raw_ehr_extract").exists()
    assert not (tmp_path / "lake" / "anonymized_encounters").exists()


class LeakySource(EhrSource):
    """A source whose medical record numbers equal the centre codes, so an identifier value reaches the output."""

    def read_day(self, day, reference):  # type: ignore[no-untyped-def]
        tables = SyntheticEhrSource(encounters_per_day=200, population_size=5000, error_rate=0.0).read_day(
            day, reference
        )
        centre_of_patient = tables["encounters"].drop_duplicates("patient_id").set_index("patient_id")["centre_id"]
        tables["patients"]["mrn"] = tables["patients"]["patient_id"].map(centre_of_patient)
        return tables

    @property
    def source_name(self) -> str:
        return "leaky"


def test_an_identifier_leak_fails_the_governance_step_and_stores_nothing(tmp_path: Path) -> None:
    resources = build_resources(local_environ(tmp_path))
    resources[c.EHR_SOURCE] = LeakySource()
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    with pytest.raises(IdentifierLeakError, match=r"patients\.mrn.*encounters\.centre_id"):
        materialize_day(resources, instance, DAY)
    assert (tmp_path / "lake" / "raw_ehr_extract" / f"partition_day={DAY}").exists()
    assert not (tmp_path / "lake" / "anonymized_encounters").exists()
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_a_failed_quarantine_write_keeps_the_previous_anonymized_tables_and_records_nothing(tmp_path: Path) -> None:
    """Both governance outputs of a partition are committed together or not at all (a real filesystem fault: the
    quarantine's folder cannot be created because a file stands in its place)."""
    resources = build_resources(local_environ(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    materialize_day(resources, instance, DAY)
    anonymized_folder = tmp_path / "lake" / "anonymized_encounters" / f"partition_day={DAY}"
    before = {path.name: path.read_bytes() for path in anonymized_folder.iterdir()}
    quarantine_asset = tmp_path / "lake" / "quarantined_records"
    shutil.rmtree(quarantine_asset)
    quarantine_asset.write_text("a file where the quarantine folder should be")
    materializations_before = len(instance.fetch_materializations(c.ANONYMIZED_ENCOUNTERS, limit=100).records)

    result = dg.materialize(
        [anonymized_and_quarantined, raw_ehr_extract.to_source_asset(), hpo_reference_tables.to_source_asset()],
        resources=dict(resources),
        instance=instance,
        partition_key=DAY,
        raise_on_error=False,
    )

    assert not result.success
    assert {path.name: path.read_bytes() for path in anonymized_folder.iterdir()} == before
    assert result.get_asset_materialization_events() == []
    assert len(instance.fetch_materializations(c.ANONYMIZED_ENCOUNTERS, limit=100).records) == materializations_before
    assert not any((tmp_path / "lake" / "_staging").iterdir())


def _materialization(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dg.AssetMaterialization:
    return next(m.materialization for m in result.get_asset_materialization_events() if m.asset_key == key)


def test_the_feature_table_carries_a_column_schema_of_every_column(
    local_run: tuple[Path, dg.ExecuteInProcessResult],
) -> None:
    home, result = local_run
    column_schema = _materialization(result, c.ENCOUNTER_FEATURES).metadata["dagster/column_schema"].value
    assert isinstance(column_schema, dg.TableSchema)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        stored = con.sql("select * from features.encounter_features").columns
    described = {column.name: column for column in column_schema.columns}
    assert list(described) == stored
    assert len(stored) > 128
    assert all(column.description and column.type for column in column_schema.columns)
    assert described["hpo_0001945"].description.startswith("Fever (HP:0001945")
    assert "organ system Abnormality of the nervous system (HP:0000707)" in described["sys_0000707"].description
    assert described["label"].type == "string" and described["fever_score"].type == "double"


def test_raw_extract_shows_row_counts_and_its_tables_as_a_table(
    local_run: tuple[Path, dg.ExecuteInProcessResult],
) -> None:
    home, result = local_run
    metadata = _materialization(result, c.RAW_EHR_EXTRACT).metadata
    assert metadata["dagster/row_count"].value == len(lake_table(home, "raw_ehr_extract", schema.RAW_ENCOUNTERS))
    sizes = metadata["rows"]
    assert isinstance(sizes, dg.TableMetadataValue)
    by_table = {record.data["table"]: record.data for record in sizes.records}
    assert list(by_table) == list(schema.RAW_TABLES)
    for table in schema.RAW_TABLES:
        stored = lake_table(home, "raw_ehr_extract", table)
        assert (by_table[table]["rows"], by_table[table]["columns"]) == stored.shape


def test_the_raw_column_schema_lists_every_stored_column_with_its_type(
    local_run: tuple[Path, dg.ExecuteInProcessResult],
) -> None:
    home, _ = local_run
    column_schema = raw_ehr_extract.specs_by_key[c.RAW_EHR_EXTRACT].metadata["dagster/column_schema"]
    declared = {column.name: column.type for column in column_schema.columns}
    stored = {}
    for table in schema.RAW_TABLES:
        parquet = home / "lake" / "raw_ehr_extract" / f"partition_day={DAY}" / f"{table}.parquet"
        stored |= {f"{table}.{field.name}": str(field.type) for field in pq.read_schema(parquet)}
    assert declared == stored
    assert all(column.description for column in column_schema.columns)


def test_no_raw_identifier_value_reaches_the_metadata(local_run: tuple[Path, dg.ExecuteInProcessResult]) -> None:
    home, result = local_run
    patients = lake_table(home, "raw_ehr_extract", schema.RAW_PATIENTS)
    identifying = ("patient_id", "mrn", "national_id", "phone", "email")  # a name could be a substring of any text
    values = {str(v) for column in identifying for v in patients[column].dropna()}
    assert values
    shown = " ".join(
        f"{name}={value.value!r}"
        for event in result.get_asset_materialization_events()
        for name, value in event.materialization.metadata.items()
    )
    assert not [value for value in values if value in shown]


@pytest.mark.parametrize(
    ("asset", "tables", "declared"),
    [
        ("anonymized_encounters", schema.ANON_TABLES, anonymized_column_schema),
        ("pending_encounters", schema.ANON_TABLES, pending_column_schema),
        ("quarantined_records", ("data",), quarantine_column_schema),  # typed even on a day without a row
    ],
)
def test_the_governance_column_schemas_match_the_stored_tables(
    local_run: tuple[Path, dg.ExecuteInProcessResult],
    asset: str,
    tables: tuple[str, ...],
    declared: Callable[[], dg.TableSchema],
) -> None:
    home, _ = local_run
    stored = {}
    for table in tables:
        parquet = home / "lake" / asset / f"partition_day={DAY}" / f"{table}.parquet"
        prefix = "" if table == "data" else f"{table}."
        stored |= {prefix + field.name: str(field.type) for field in pq.read_schema(parquet)}
    assert {column.name: column.type for column in declared().columns} == stored
