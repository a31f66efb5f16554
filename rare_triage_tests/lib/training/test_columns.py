import numpy as np
import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.training.columns import (
    FEATURE_SETS,
    SHORTCUT_COLUMNS,
    feature_roles,
    feature_set_columns,
    hpo_id_of,
    label_codes,
    model_feature_columns,
    model_inputs,
    vocabulary_group_columns,
)


def test_model_inputs_never_include_keys_partition_or_label(features: pd.DataFrame) -> None:
    columns = model_feature_columns(list(features.columns))
    assert not set(columns) & {*schema.FEATURE_KEY_COLUMNS, schema.LABEL_COLUMN}
    assert columns[: len(schema.FEATURE_CATEGORICAL_COLUMNS)] == list(schema.FEATURE_CATEGORICAL_COLUMNS)


@pytest.mark.parametrize("name", FEATURE_SETS)
def test_every_feature_set_is_a_subset_without_keys(features: pd.DataFrame, name: str) -> None:
    columns = feature_set_columns(name, list(features.columns))
    assert columns
    assert set(columns) <= set(model_feature_columns(list(features.columns)))


def test_feature_sets_differ_as_the_ablation_needs(features: pd.DataFrame) -> None:
    table = list(features.columns)
    assert not set(SHORTCUT_COLUMNS) & set(feature_set_columns("without_duration_visits", table))
    assert feature_set_columns("duration_visits_only", table) == list(SHORTCUT_COLUMNS)
    vocab_only = feature_set_columns("vocabulary_age_sex", table)
    with_systems = feature_set_columns("vocabulary_systems_age_sex", table)
    assert not [c for c in vocab_only if c.startswith("sys_")]
    assert set(with_systems) - set(vocab_only) == {c for c in table if c.startswith("sys_")} | {"n_systems_involved"}


def test_unknown_feature_set_is_named() -> None:
    with pytest.raises(ValueError, match="feature_set: 'everything'"):
        feature_set_columns("everything", ["sex"])


def test_roles_split_categoricals_numerics_and_flags() -> None:
    roles = feature_roles(["sex", "age_years", "hpo_0001945", "sys_0000707", "centre_id"])
    assert roles.categorical == ("sex", "centre_id")
    assert roles.numeric == ("age_years",)
    assert roles.phenotype == ("hpo_0001945", "sys_0000707")


def test_roles_refuse_keys() -> None:
    with pytest.raises(ValueError, match="patient_key"):
        feature_roles(["sex", "patient_key"])


def test_label_codes_follow_labels_order_and_name_bad_values() -> None:
    assert label_codes(pd.Series(["none", "orphan", "common_chronic"])).tolist() == [0, 4, 3]
    with pytest.raises(ValueError, match="label: unknown value"):
        label_codes(pd.Series(["none", "rare"]))


def test_model_inputs_keep_missing_categoricals_as_nan_and_numerics_as_float() -> None:
    frame = pd.DataFrame(
        {"sex": ["F", None], "age_years": pd.array([3, pd.NA], dtype="Int64"), "hpo_0001945": [1.0, np.nan]}
    )
    out = model_inputs(frame, ["sex", "age_years", "hpo_0001945"])
    assert out["sex"].tolist()[0] == "F" and out["sex"].isna().tolist() == [False, True]
    assert out["age_years"].dtype == np.float64 and np.isnan(out["age_years"].iloc[1])


def test_model_inputs_name_a_non_numeric_column() -> None:
    with pytest.raises(ValueError, match="'age_years' is not numeric"):
        model_inputs(pd.DataFrame({"age_years": ["old"]}), ["age_years"])


def test_hpo_id_of_and_group_columns() -> None:
    assert hpo_id_of("sys_0000707") == "HP:0000707"
    vocabulary = pd.DataFrame({"hpo_id": ["HP:0001945", "HP:0001250"], "group": ["both", "orphan_red_flag"]})
    assert vocabulary_group_columns(vocabulary, "orphan_red_flag", ["hpo_0001250", "sex"]) == ["hpo_0001250"]
