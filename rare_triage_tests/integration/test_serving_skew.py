"""No training/serving skew: serving's encoder (`serving.encoding`, numpy and msgspec only, driven by the manifest)
gives, cell for cell, the float32 matrix the platform feeds its ONNX model (`to_serving_matrix` of its features).

- A materialized synthetic partition: every encounter as an HCE integrator would send it (demographics and
  `prior_visits_365d` from the raw extract, child rows as governance accepted them, the scores where the raw
  contract puts them) against `encounter_features`, all rows and columns, for two feature sets.
- The real published cases of the platform's external validation against `external_features`.
- Every HPO id of the release, observed alone and excluded alone, against the feature SQL.
- The vocabularies and limits serving copies from the platform.

The partition is governed with k = 1: k-anonymity generalises quasi-identifiers of small classes to "*" in the
training data only (a service encodes the values it is sent), so with the default k those cells would differ by
design, not by an encoding error.
"""

import gzip
import json
import math
import typing
from typing import Any

import dagster as dg
import msgspec
import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.pseudonymization import PseudonymizationResource
from rare_triage.defs.shared.resources import build_resources, warehouse_path
from rare_triage.lib import schema
from rare_triage.lib.deployment.onnx_export import (
    ColumnSpec,
    FeatureSpec,
    feature_spec_from_pipeline,
    to_serving_matrix,
)
from rare_triage.lib.features import build
from rare_triage.lib.features.phenotype_encoding import ENCODING_FORMAT, phenotype_encoding
from rare_triage.lib.governance import anonymize, validation
from rare_triage.lib.governance.vocabulary import published_centres, published_regions
from rare_triage.lib.reference.loaders import PHENOPACKETS_JSONL, icd10_acuity, load_phenopackets
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.training.candidates import ModelParams, build_preprocessor
from rare_triage.lib.training.columns import (
    FEATURE_SET_ALL,
    feature_roles,
    feature_set_columns,
    label_codes,
    model_inputs,
)
from rare_triage.lib.training.external import external_features
from rare_triage_tests.helpers.materialize import check_results, local_environ, materialize_day, materialize_reference
from rare_triage_tests.helpers.serving_payloads import (
    Partition,
    assert_same_matrix,
    client_payloads,
    load_partition,
    published_case_payloads,
)
from serving import contract
from serving.contract import Encounter, PublishedCase
from serving.encoding import Encoder, demographics
from serving.encoding import encoder as serving_encoder
from serving.encoding import phenotype as serving_phenotype

DAY = "2025-03-03"


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory) -> Partition:
    """One synthetic day materialized raw -> anonymized -> features (k-anonymity 1, see the module doc)."""
    home = tmp_path_factory.mktemp("serving_skew")
    environ = local_environ(home)
    resources = build_resources(environ)
    resources[c.PSEUDONYMIZATION] = PseudonymizationResource(allow_local_default=True, k_anonymity=1)
    instance = dg.DagsterInstance.ephemeral()
    materialize_reference(resources, instance)
    result = materialize_day(resources, instance, DAY)
    assert all(check_results(result).values()), check_results(result)
    return load_partition(resources[c.PARQUET_IO_MANAGER], warehouse_path(environ), DAY)


def json_round_trip(value: Any) -> Any:
    """What the service reads: the manifest and the encoding as published JSON."""
    return json.loads(json.dumps(value, allow_nan=False))


def fitted_spec(features: pd.DataFrame, feature_set: str) -> FeatureSpec:
    """The platform's input contract for `feature_set`: its preprocessing fitted on the partition (categories as the
    training window has them), exported by the function publication uses."""
    columns = feature_set_columns(feature_set, list(features.columns))
    roles = feature_roles(columns)
    preprocess = build_preprocessor(roles, "logistic_regression", ModelParams(), finite=False)
    pipeline = Pipeline([("preprocess", preprocess), ("classifier", DummyClassifier(strategy="prior"))])
    pipeline.fit(model_inputs(features, columns), label_codes(features[schema.LABEL_COLUMN]))
    return feature_spec_from_pipeline(pipeline, columns, roles.categorical, schema.LABELS)


def serving_encoder_for(spec: FeatureSpec, reference: ReferenceTables) -> Encoder:
    manifest = {"hpo_release": reference.hpo_release, "input_schema": spec.to_dict()}
    return Encoder(json_round_trip(manifest), json_round_trip(phenotype_encoding(reference)))


@pytest.mark.parametrize("feature_set", [FEATURE_SET_ALL, "phenotype_age_sex"])
def test_encounters_sent_by_a_client_encode_as_encounter_features(partition: Partition, feature_set: str) -> None:
    features = partition.features
    spec = fitted_spec(features, feature_set)
    requests = msgspec.json.decode(msgspec.json.encode(client_payloads(partition)), type=list[Encounter])
    batch = serving_encoder_for(spec, partition.reference).encode(requests)

    platform = to_serving_matrix(model_inputs(features, spec.names), spec)
    assert_same_matrix(batch.matrix, platform, spec.names)
    assert len(features) > 300
    # every id passed governance, and the scores sit where the platform reads them: nothing is dropped
    assert all(not r.hpo_unknown and not r.dropped_fields and not r.unseen_categories for r in batch.reports)
    # the partition exercises what matters: present and absent flags, missing vitals, scores, specific terms
    flags = platform[:, [spec.index(n) for n in spec.names if n.startswith(schema.PHENOTYPE_PREFIXES)]]
    assert (flags == 1).any() and (flags == 0).any() and np.isnan(flags).any()
    assert (platform[:, spec.index("n_specific_terms")] > 0).any()
    if feature_set == FEATURE_SET_ALL:
        assert np.isnan(platform[:, spec.index("temperature_c")]).any()
        assert (~np.isnan(platform[:, spec.index("fever_score")])).sum() > 10
        assert (~np.isnan(platform[:, spec.index("pain_score")])).sum() > 10


def test_published_cases_encode_as_external_features(partition: Partition) -> None:
    spec = fitted_spec(partition.features, FEATURE_SET_ALL)
    with gzip.open(PHENOPACKETS_JSONL, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    requests = msgspec.convert(published_case_payloads(records), list[PublishedCase])
    batch = serving_encoder_for(spec, partition.reference).encode_phenopacket(requests)

    cases = load_phenopackets()
    assert cases["id"].tolist() == [r["id"] for r in records]
    platform = to_serving_matrix(model_inputs(external_features(cases, partition.reference), spec.names), spec)
    assert_same_matrix(batch.matrix, platform, spec.names)
    # ids newer than the release: reported, and counted as present terms as the platform counts them
    known = set(partition.reference.term_information_content["hpo_id"])
    unknown = [h for r in records for h in dict.fromkeys([*r["observed"], *r["excluded"]]) if h not in known]
    assert unknown
    assert [h for r in batch.reports for h in r.hpo_unknown] == unknown


def test_every_hpo_id_of_the_release_encodes_as_the_feature_sql(partition: Partition) -> None:
    """Each id observed alone (fever score 5, duration 3 days on its row) and excluded alone, through the feature SQL
    and through the encoder: the roll-up, organ systems, information content and fever terms of the whole release."""
    reference = partition.reference
    ids = sorted(reference.term_information_content["hpo_id"])
    n = len(ids)
    cases = pd.DataFrame(
        {
            "case_id": [f"observed-{i}" for i in range(n)] + [f"excluded-{i}" for i in range(n)],
            "sex": "U",
            "age_years": math.nan,
            "observed": [[h] for h in ids] + [[] for _ in ids],
            "excluded": [[] for _ in ids] + [[h] for h in ids],
        }
    )
    anonymized = build.encode_phenotype_cases(cases)
    anonymized[schema.ANON_SYMPTOMS] = anonymized[schema.ANON_SYMPTOMS].assign(severity=5.0, duration_days=3.0)
    features = build.build_encounter_features(anonymized, icd10_acuity=icd10_acuity(), **reference.feature_encoding())
    compared = ["fever_score", "symptom_duration_days", *serving_encoder.PHENOTYPE_NUMERIC_COLUMNS]
    compared += [name for name in features.columns if name.startswith(schema.PHENOTYPE_PREFIXES)]
    spec = FeatureSpec(columns=tuple(ColumnSpec(name, "numeric") for name in compared), class_labels=schema.LABELS)

    requests = [Encounter(hpo_observed=[h], fever_score=5, symptom_duration_days=3) for h in ids]
    requests += [Encounter(hpo_excluded=[h]) for h in ids]
    batch = serving_encoder_for(spec, reference).encode(requests)
    assert_same_matrix(batch.matrix, to_serving_matrix(features, spec), compared)
    fever = batch.matrix[:n, spec.index("fever_score")]
    assert 10 < (fever == 5).sum() < n  # fever terms keep the score, the others drop it
    assert all(r.hpo_used or r.hpo_outside for r in batch.reports)


# ---- what serving copies ----


def float_bounds(field_type: msgspec.inspect.Type) -> tuple[float | None, float | None] | None:
    """(ge, le) of an optional float field of the contract, None for another kind of field."""
    for member in field_type.types if isinstance(field_type, msgspec.inspect.UnionType) else (field_type,):
        inner = member.type if isinstance(member, msgspec.inspect.Metadata) else member
        if isinstance(inner, msgspec.inspect.FloatType):
            return inner.ge, inner.le
    return None


def test_serving_copies_the_platform_vocabularies_and_limits() -> None:
    assert contract.SEXES == schema.SEXES
    assert contract.CENTRE_LEVELS == schema.CENTRE_LEVELS
    assert contract.CONSULTATION_TYPES == schema.CONSULTATION_TYPES
    assert contract.REGIONS == schema.REGIONS
    assert contract.CENTRE_ID_PATTERN == schema.CENTRE_ID_PATTERN
    assert contract.OTHER_CATEGORY == schema.OTHER_CATEGORY
    assert contract.AGE_BANDS == schema.AGE_BANDS
    assert contract.AGE_TOP_CODE == schema.AGE_TOP_CODE
    assert contract.MAX_AGE_YEARS == validation.MAX_AGE_YEARS
    assert contract.SEVERITY_RANGE == validation.SEVERITY_RANGE
    assert serving_encoder.CATEGORICAL_COLUMNS == schema.FEATURE_CATEGORICAL_COLUMNS
    assert (
        serving_encoder.REQUEST_NUMERIC_COLUMNS + serving_encoder.PHENOTYPE_NUMERIC_COLUMNS
        == schema.FEATURE_NUMERIC_COLUMNS
    )
    assert serving_encoder.VOCABULARY_PREFIX == schema.VOCABULARY_PREFIX
    assert serving_encoder.SYSTEM_PREFIX == schema.SYSTEM_PREFIX
    assert serving_encoder.EXTERNAL_CENTRE_ID == build.EXTERNAL_CENTRE_ID
    assert serving_phenotype.ENCODING_FORMAT == ENCODING_FORMAT
    # the contract's vital ranges are the plausible ranges governance enforces, its scores the severity range
    info = msgspec.inspect.type_info(Encounter)
    assert isinstance(info, msgspec.inspect.StructType)
    bounds = {field.name: float_bounds(field.type) for field in info.fields}
    for name, _unit, low, high in schema.VITAL_LOINC.values():
        assert bounds[name] == (low, high), name
    assert bounds["fever_score"] == bounds["pain_score"] == validation.SEVERITY_RANGE
    assert bounds["age_years"] == (0, validation.MAX_AGE_YEARS)
    assert typing.get_args(contract.Sex) == schema.SEXES


@pytest.mark.parametrize(
    "value",
    [
        "C01",
        "C123",
        " C07 ",
        "C1",
        "C1234",
        "c01",
        "C٠١",
        "*",
        "Madrid",
        " madrid ",
        "MADRID",
        "Ｍａｄｒｉｄ",
        "Île-de-France",
        "ile-de-france",
        "Provence-Alpes-Côte d'Azur",
        "La  Rioja",
        "Atlantis",
        "other",
    ],
)
def test_centres_and_regions_are_published_as_governance_does(value: str) -> None:
    """Serving strips, as the landing zone's ingest does, then maps as governance does."""
    text = pd.Series([value.strip()], dtype=object)
    assert demographics.published_centre(value) == published_centres(text).iloc[0]
    assert demographics.published_region(value) == published_regions(text).iloc[0]


def test_an_age_is_top_coded_and_banded_as_governance_does() -> None:
    ages = [0, 9, 10, 59, 89, 90, 91, 120]
    platform = anonymize.age_band(pd.Series(ages, dtype="Int64").clip(upper=schema.AGE_TOP_CODE)).tolist()
    assert [demographics.age_band(demographics.top_coded_age(age)) for age in ages] == platform
