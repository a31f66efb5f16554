"""The phenotype encoding published with a model reproduces the feature SQL's phenotype inputs from HPO ids alone."""

import json

import numpy as np
import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.features.build import build_encounter_features, encode_phenotype_cases
from rare_triage.lib.features.phenotype_encoding import ENCODING_FORMAT, phenotype_encoding
from rare_triage.lib.reference.loaders import icd10_acuity
from rare_triage.lib.reference.ontology import ReferenceTables

CASES = {  # observed HPO ids of three made-up encounters: common, specific, alt id + unknown id
    "c1": ["HP:0001945", "HP:0012735"],  # fever, cough
    "c2": ["HP:0001166", "HP:0007359", "HP:0001250"],  # arachnodactyly, focal seizure, seizure
    "c3": ["HP:0001388", "HP:0000001", "HP:9999999"],
}


@pytest.fixture(scope="module")
def encoding(reference_tables: ReferenceTables) -> dict:
    return phenotype_encoding(reference_tables)


def _encode(encoding: dict, observed: list[str]) -> dict[str, float]:
    """What a service would compute for present terms from the encoding alone."""
    entries = [encoding["terms"][t] for t in dict.fromkeys(observed) if t in encoding["terms"]]
    ics = [entry[0] for entry in entries] + [0.0] * (len(set(observed)) - len(entries))
    vocab = {i for entry in entries for i in entry[1]}
    systems = {i for entry in entries for i in entry[2]}
    features = {schema.hpo_feature_name(v): 1.0 for i, v in enumerate(encoding["vocabulary_ids"]) if i in vocab}
    features |= {schema.system_feature_name(s): 1.0 for i, s in enumerate(encoding["system_ids"]) if i in systems}
    features |= {
        "n_systems_involved": float(len(systems)),
        "n_present_terms": float(len(set(observed))),
        "n_specific_terms": float(sum(ic >= encoding["specific_term_ic"] for ic in ics)),
        "phenotype_ic_max": max(ics, default=0.0),
        "phenotype_ic_sum": sum(ics),
    }
    return features


def test_the_encoding_gives_the_feature_sql_phenotype_inputs(encoding: dict, reference_tables: ReferenceTables) -> None:
    cases = pd.DataFrame(
        {"case_id": list(CASES), "sex": "F", "age_years": 30.0, "observed": list(CASES.values()), "excluded": [[]] * 3}
    )
    sql = build_encounter_features(
        encode_phenotype_cases(cases), icd10_acuity=icd10_acuity(), **reference_tables.feature_encoding()
    ).set_index("encounter_key")
    for case, observed in CASES.items():
        expected = _encode(encoding, observed)
        row = sql.loc[case]
        for column, value in expected.items():
            assert row[column] == pytest.approx(value, abs=1e-6), (case, column)
        flagged = [c for c in sql.columns if c.startswith(schema.PHENOTYPE_PREFIXES) and row[c] == 1.0]
        assert sorted(flagged) == sorted(c for c in expected if c.startswith(schema.PHENOTYPE_PREFIXES)), case


def test_the_encoding_is_plain_json_with_every_accepted_id(encoding: dict, reference_tables: ReferenceTables) -> None:
    assert encoding["format"] == ENCODING_FORMAT and encoding["hpo_release"] == reference_tables.hpo_release
    assert json.loads(json.dumps(encoding)) == encoding
    assert set(encoding["terms"]) == set(reference_tables.term_information_content["hpo_id"])
    fever = encoding["terms"]["HP:0001945"]
    assert fever[1] == [encoding["vocabulary_ids"].index("HP:0001945")]
    assert encoding["vocabulary_ancestors"]["HP:0001945"][0].startswith("HP:")
    assert "HP:0001945" in encoding["vocabulary_ancestors"]["HP:0001945"]
    assert np.isclose(fever[0], 2.55, atol=0.01)  # annotated to many ORPHA diseases: low information content
