"""Assets and check functions of the data half called directly, without a run."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from rare_triage.defs.ingest.assets import raw_ehr_extract
from rare_triage.defs.shared.ehr_source import SyntheticEhrSource
from rare_triage.defs.shared.pseudonymization import PseudonymizationResource
from rare_triage.lib import schema
from rare_triage.lib.features.build import features_table_columns
from rare_triage.lib.features.quality import features_problems
from rare_triage.lib.reference.frames import reference_from_frames, reference_to_frames
from rare_triage.lib.reference.ontology import ReferenceTables


def test_reference_tables_survive_their_storage_form(reference_tables: ReferenceTables) -> None:
    back = reference_from_frames(reference_to_frames(reference_tables))
    assert back.hpo_release == reference_tables.hpo_release
    assert back.term_rollup.equals(reference_tables.term_rollup)


def test_raw_extract_called_directly_yields_tables_then_passing_checks(reference_tables: ReferenceTables) -> None:
    context = dg.build_asset_context(partition_key="2025-03-03")
    source = SyntheticEhrSource(encounters_per_day=200, population_size=2000)
    events = list(
        raw_ehr_extract(
            context,
            ehr_source=source,
            pseudonymization=PseudonymizationResource(allow_local_default=True),
            reference=reference_to_frames(reference_tables),
        )
    )
    output, checks = events[0], events[1:]
    assert set(output.value) == {*schema.RAW_TABLES, schema.RAW_REJECTS}
    assert output.value[schema.RAW_REJECTS].empty  # the synthetic source parses no file
    assert output.metadata["encounters"].value == len(output.value[schema.RAW_ENCOUNTERS]) > 0
    assert {c.check_name: c.passed for c in checks} == {"raw_schema": True, "raw_referential_integrity": True}


def test_features_problems_name_what_is_wrong(reference_tables: ReferenceTables) -> None:
    vocabulary = reference_tables.vocabulary["hpo_id"].tolist()[:3]
    systems = reference_tables.systems["system_id"].tolist()[:2]
    columns = features_table_columns(vocabulary, systems)
    row = {c: [None] for c in columns} | {
        "encounter_key": ["k1"],
        "label": ["orphan"],
        "n_systems_involved": [0.0],
    }
    good = pa.table(row)
    assert features_problems(good, vocabulary, systems) == []
    bad = good.set_column(
        columns.index(schema.system_feature_name(systems[0])),
        schema.system_feature_name(systems[0]),
        pc.cast(pa.array([2.0]), pa.float64()),
    )
    problems = features_problems(
        bad.set_column(columns.index("label"), "label", pa.array(["rare"])), vocabulary, systems
    )
    assert any("label" in p for p in problems)
    assert any("outside {0, 1, null}" in p for p in problems)
    assert features_problems(good.drop_columns(["label"]), vocabulary, systems)[0].startswith(
        "columns: missing ['label']"
    )
