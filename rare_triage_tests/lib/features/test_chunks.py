"""Features built in chunks equal the one-pass build, row for row, with compact phenotype flags."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from rare_triage.lib import schema
from rare_triage.lib.features.build import build_encounter_features
from rare_triage.lib.features.chunks import build_features_in_chunks
from rare_triage.lib.governance.anonymize import LOCAL_DEVELOPMENT_HMAC_KEY, Pseudonymizer
from rare_triage.lib.governance.govern import GovernanceCodes, govern_extract
from rare_triage.lib.ingest.synthetic import SyntheticConfig, generate_extract
from rare_triage.lib.reference.loaders import icd10_acuity_lookup, known_icd10_codes, load_orphanet_epidemiology
from rare_triage.lib.reference.ontology import ReferenceTables


@pytest.fixture(scope="module")
def anonymized(reference_tables: ReferenceTables) -> dict[str, pa.Table]:
    raw = generate_extract(
        dt.date(2025, 3, 4), SyntheticConfig(seed=11, encounters_per_day=1500, population_size=6000), reference_tables
    )
    codes = GovernanceCodes(
        icd10=known_icd10_codes(),
        orpha=frozenset(int(x) for x in load_orphanet_epidemiology()["orpha_code"]),
        hpo=frozenset(reference_tables.hpo_terms["hpo_id"]),
    )
    result = govern_extract(
        raw, partition_day="2025-03-04", pseudonymizer=Pseudonymizer(LOCAL_DEVELOPMENT_HMAC_KEY), codes=codes
    )
    return {name: pa.Table.from_pandas(frame, preserve_index=False) for name, frame in result.anonymized.items()}


def build_kwargs(ref: ReferenceTables) -> dict[str, object]:
    return {"icd10_acuity": icd10_acuity_lookup(), **ref.feature_encoding()}


def test_chunks_give_the_one_pass_rows(anonymized: dict[str, pa.Table], reference_tables: ReferenceTables) -> None:
    kwargs = build_kwargs(reference_tables)
    whole = build_encounter_features(anonymized, **kwargs)
    chunked = build_features_in_chunks(anonymized, encounters_per_chunk=97, **kwargs).to_pandas()
    assert len(chunked) == len(whole) == anonymized[schema.ANON_ENCOUNTERS].num_rows
    assert list(chunked.columns) == list(whole.columns)
    assert chunked["encounter_key"].tolist() == whole["encounter_key"].tolist()
    for column in whole.columns:
        if whole[column].dtype == object:
            assert chunked[column].tolist() == whole[column].tolist(), column
        else:
            np.testing.assert_array_equal(chunked[column].to_numpy(float), whole[column].to_numpy(float), column)


def test_phenotype_flags_are_float32(anonymized: dict[str, pa.Table], reference_tables: ReferenceTables) -> None:
    table = build_features_in_chunks(anonymized, encounters_per_chunk=500, **build_kwargs(reference_tables))
    flags = [f for f in table.schema if f.name.startswith(schema.PHENOTYPE_PREFIXES)]
    assert flags and all(f.type == pa.float32() for f in flags)
    assert table.schema.field("temperature_c").type == pa.float64()


def test_a_chunk_size_below_one_is_refused(anonymized: dict[str, pa.Table]) -> None:
    with pytest.raises(ValueError, match="encounters_per_chunk"):
        build_features_in_chunks(anonymized, encounters_per_chunk=0)
