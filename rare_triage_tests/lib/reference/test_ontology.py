"""HPO graph parsed from hp.obo and the reference tables derived from it."""

from pathlib import Path

import pandas as pd
import pytest

from rare_triage.lib.reference import loaders as reference
from rare_triage.lib.reference.ontology import (
    TABLE_NAMES,
    HpoGraph,
    ReferenceTables,
    build_reference_tables,
    load_or_build_reference_tables,
    load_reference_tables,
    parse_obo_terms,
    save_reference_tables,
)
from rare_triage.lib.schema import PAIN_HPO

SEIZURE = "HP:0001250"
FOCAL_IMPAIRED_AWARENESS_SEIZURE = "HP:0002384"

MINI_OBO = """format-version: 1.2
data-version: hp/releases/2000-01-01

[Term]
id: HP:0000001
name: All

[Term]
id: HP:0000118
name: Phenotypic abnormality
is_a: HP:0000001 ! All

[Term]
id: HP:0000002
name: Child
alt_id: HP:0000003
is_a: HP:0000118 ! Phenotypic abnormality

[Term]
id: HP:0000004
name: obsolete Old
is_obsolete: true
replaced_by: HP:0000002

[Typedef]
id: part_of
name: part of
"""


@pytest.fixture(scope="module")
def graph() -> HpoGraph:
    return HpoGraph.from_obo()


def test_parse_obo_terms_reads_ids_alts_and_obsolete(tmp_path: Path) -> None:
    obo = tmp_path / "mini.obo"
    obo.write_text(MINI_OBO)
    records = {record.id: record for record in parse_obo_terms(obo)}
    assert set(records) == {"HP:0000001", "HP:0000118", "HP:0000002", "HP:0000004"}
    assert records["HP:0000002"].is_a == ("HP:0000118",)
    assert records["HP:0000002"].alt_ids == ("HP:0000003",)
    assert records["HP:0000004"].is_obsolete
    assert records["HP:0000004"].replaced_by == "HP:0000002"
    small = HpoGraph.from_obo(obo)
    assert small.release == "2000-01-01"
    assert small.resolve("HP:0000003") == small.resolve("HP:0000004") == "HP:0000002"
    assert small.ancestors("HP:0000003") == {"HP:0000002", "HP:0000118", "HP:0000001"}
    assert small.resolve("HP:9999999") is None
    assert small.ancestors("HP:9999999") == frozenset()


def test_graph_sizes_match_the_release(graph: HpoGraph) -> None:
    assert graph.release == "2025-01-16"
    assert len(graph.parents) + len(graph.obsolete_replaced_by) == 19484  # [Term] stanzas
    assert len(graph.alt_to_primary) == 3832
    assert graph.names["HP:0000118"] == "Phenotypic abnormality"


def test_focal_impaired_awareness_seizure_rolls_up_to_seizure(graph: HpoGraph) -> None:
    assert graph.names[FOCAL_IMPAIRED_AWARENESS_SEIZURE] == "Focal impaired awareness seizure"
    assert SEIZURE in graph.ancestors(FOCAL_IMPAIRED_AWARENESS_SEIZURE)
    assert FOCAL_IMPAIRED_AWARENESS_SEIZURE in graph.ancestors(FOCAL_IMPAIRED_AWARENESS_SEIZURE)
    assert "HP:0000001" in graph.ancestors(FOCAL_IMPAIRED_AWARENESS_SEIZURE)


def test_resolve_alt_and_obsolete_ids(graph: HpoGraph) -> None:
    alt, primary = next(iter(graph.alt_to_primary.items()))
    assert graph.resolve(alt) == primary
    assert graph.ancestors(alt) == graph.ancestors(primary)
    old, replacement = next((key, value) for key, value in graph.obsolete_replaced_by.items() if value)
    assert graph.resolve(old) == graph.resolve(replacement)


def test_there_are_23_organ_system_groups(reference_tables: ReferenceTables) -> None:
    systems = reference_tables.systems
    assert len(systems) == 23
    assert list(systems.columns) == ["system_id", "label", "feature_name"]
    row = systems.set_index("system_id").loc["HP:0000707"]
    assert row["label"] == "Abnormality of the nervous system"
    assert row["feature_name"] == "sys_0000707"


def test_term_rollup_links_specific_terms_to_vocabulary(reference_tables: ReferenceTables, graph: HpoGraph) -> None:
    rollup = reference_tables.term_rollup
    assert list(rollup.columns) == ["hpo_id", "vocab_id"]
    seizure_terms = set(rollup.loc[rollup["vocab_id"] == SEIZURE, "hpo_id"])
    assert {SEIZURE, FOCAL_IMPAIRED_AWARENESS_SEIZURE} <= seizure_terms
    alt = next(alt for alt, primary in graph.alt_to_primary.items() if primary in seizure_terms)
    assert alt in seizure_terms
    vocab_ids = set(reference_tables.vocabulary["hpo_id"])
    assert set(rollup["vocab_id"]) == vocab_ids
    assert vocab_ids <= set(rollup["hpo_id"])


def test_term_system_covers_every_phenotypic_abnormality(reference_tables: ReferenceTables) -> None:
    term_system = reference_tables.term_system
    assert set(term_system["system_id"]) == set(reference_tables.systems["system_id"])
    fever_systems = set(term_system.loc[term_system["hpo_id"] == "HP:0001945", "system_id"])
    assert fever_systems == {"HP:0001939"}  # Fever sits under metabolism/homeostasis, not "Constitutional symptom"
    assert set(term_system.loc[term_system["hpo_id"] == FOCAL_IMPAIRED_AWARENESS_SEIZURE, "system_id"]) == {
        "HP:0000707"
    }


def test_vocab_ancestors_include_self(reference_tables: ReferenceTables) -> None:
    ancestors = reference_tables.vocab_ancestors
    assert set(ancestors["vocab_id"]) == set(reference_tables.vocabulary["hpo_id"])
    assert ((ancestors["vocab_id"] == ancestors["ancestor_id"]).groupby(ancestors["vocab_id"]).sum() == 1).all()
    seizure = set(ancestors.loc[ancestors["vocab_id"] == SEIZURE, "ancestor_id"])
    assert {"HP:0000707", "HP:0000118", "HP:0000001"} <= seizure


def test_vocabulary_table_has_feature_names(reference_tables: ReferenceTables) -> None:
    vocabulary = reference_tables.vocabulary
    assert list(vocabulary.columns) == ["hpo_id", "label", "group", "system", "feature_name"]
    assert vocabulary.set_index("hpo_id").loc["HP:0001945", "feature_name"] == "hpo_0001945"


def test_hpo_terms_and_pain_terms(reference_tables: ReferenceTables, graph: HpoGraph) -> None:
    terms = reference_tables.hpo_terms
    assert len(terms) == len(list(graph.all_ids()))
    assert terms["hpo_id"].is_unique
    pain = set(reference_tables.pain_terms["hpo_id"])
    assert {PAIN_HPO, "HP:0100749", "HP:0002027", "HP:0003419", "HP:0003326"} <= pain
    assert "HP:0001945" not in pain
    assert "HP:0002315" not in pain  # Headache is not an is-a descendant of Pain in HPO 2025-01-16


def test_orpha_phenotypes_frequencies(reference_tables: ReferenceTables) -> None:
    phenotypes = reference_tables.orpha_phenotypes
    assert list(phenotypes.columns) == ["orpha_code", "hpo_id", "frequency"]
    assert phenotypes["orpha_code"].dtype == "int64"
    assert phenotypes["orpha_code"].nunique() == 4281
    assert not phenotypes.duplicated(["orpha_code", "hpo_id"]).any()
    assert set(phenotypes["frequency"].round(3)) <= {1.0, 0.9, 0.55, 0.17, 0.025}
    missing = reference.load_orpha_annotations()["frequency"].isna().sum()
    assert missing == 0  # so no ORPHA annotation fell back to MISSING_FREQUENCY (0.5)


def test_most_orpha_diseases_hit_a_vocabulary_term(reference_tables: ReferenceTables) -> None:
    hits = reference_tables.orpha_phenotypes.merge(reference_tables.term_rollup, on="hpo_id")["orpha_code"].nunique()
    assert hits == pytest.approx(3880, abs=40)


def test_orpha_diseases_weights_and_exclusions(reference_tables: ReferenceTables) -> None:
    diseases = reference_tables.orpha_diseases
    assert list(diseases.columns) == [
        "orpha_code",
        "name",
        "disorder_type",
        "prevalence_class",
        "weight",
        "onset",
        "n_phenotypes",
    ]
    assert diseases["orpha_code"].is_unique
    assert "Particular clinical situation in a disease or syndrome" not in set(diseases["disorder_type"])
    assert 4200 <= len(diseases) <= 4281
    assert diseases["name"].notna().all()
    assert (diseases["weight"] > 0).all()
    assert (diseases["n_phenotypes"] >= 1).all()
    by_class = diseases.groupby("prevalence_class")["weight"].sum()
    assert by_class.idxmax() == "1-5 / 10 000"  # most of the burden (FIELD_NOTES)
    assert diseases.loc[diseases["prevalence_class"] == "1-9 / 100 000", "weight"].eq(5e-5).all()


def test_every_published_case_involves_an_organ_system(reference_tables: ReferenceTables) -> None:
    cases = reference.load_phenopackets()
    observed = cases[["id", "observed"]].explode("observed").dropna().rename(columns={"observed": "hpo_id"})
    n_systems = (
        observed.merge(reference_tables.term_system, on="hpo_id")
        .groupby("id")["system_id"]
        .nunique()
        .reindex(cases["id"])
    )
    with_terms = cases["observed"].str.len().gt(0).to_numpy()
    assert (~with_terms).sum() == 1  # one published case lists only excluded terms
    assert (n_systems[with_terms] >= 1).all()
    assert n_systems[with_terms].median() == pytest.approx(4, abs=0.5)
    n_vocab = observed.merge(reference_tables.term_rollup, on="hpo_id").groupby("id")["vocab_id"].nunique()
    no_vocab_share = 1 - n_vocab.reindex(cases["id"]).notna().mean()
    assert no_vocab_share == pytest.approx(0.155, abs=0.03)


def test_save_and_load_round_trip(reference_tables: ReferenceTables, tmp_path: Path) -> None:
    save_reference_tables(reference_tables, tmp_path / "tables")
    loaded = load_reference_tables(tmp_path / "tables")
    assert loaded.hpo_release == reference_tables.hpo_release == "2025-01-16"
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(reference_tables, name))


def test_load_reference_tables_names_what_is_missing(reference_tables: ReferenceTables, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"release\.json missing"):
        load_reference_tables(tmp_path)
    save_reference_tables(reference_tables, tmp_path / "tables")
    (tmp_path / "tables" / "term_system.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="table 'term_system'"):
        load_reference_tables(tmp_path / "tables")


def test_load_or_build_reuses_a_published_cache(reference_tables: ReferenceTables, tmp_path: Path) -> None:
    save_reference_tables(reference_tables, tmp_path / "cache")
    loaded = load_or_build_reference_tables(tmp_path / "cache")
    pd.testing.assert_frame_equal(loaded.orpha_diseases, reference_tables.orpha_diseases)


def test_build_with_a_vocabulary_subset(graph: HpoGraph) -> None:
    tables = build_reference_tables([SEIZURE, "HP:0001945"], graph=graph)
    assert set(tables.vocabulary["hpo_id"]) == {SEIZURE, "HP:0001945"}
    assert set(tables.term_rollup["vocab_id"]) == {SEIZURE, "HP:0001945"}
    with pytest.raises(ValueError, match=r"vocabulary_ids: \['HP:0000002'\] are not in the vocabulary csv"):
        build_reference_tables(["HP:0000002"], graph=graph)
