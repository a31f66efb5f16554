"""Which columns of the features table the model reads, by role, and the named feature sets of the ablation."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.features.build import feature_columns
from rare_triage.lib.governance.kanonymity import SUPPRESSED

SHORTCUT_COLUMNS = ("symptom_duration_days", "prior_visits_365d")
VITAL_COLUMNS = tuple(name for name, _unit, _low, _high in schema.VITAL_LOINC.values())
NON_FEATURE_COLUMNS = (*schema.FEATURE_KEY_COLUMNS, schema.LABEL_COLUMN)
ORPHAN_INDEX = schema.LABELS.index(schema.ORPHAN_LABEL)

FEATURE_SET_ALL = "all"
FEATURE_SETS = (
    FEATURE_SET_ALL,
    "without_duration_visits",  # every feature but the two shortcut candidates
    "vocabulary_systems_age_sex",  # what the prototype of the issue used
    "phenotype_age_sex",  # the same plus phenotype specificity: everything a published case report holds
    "vocabulary_age_sex",  # the vocabulary alone (no organ-system groups)
    "duration_visits_only",  # the shortcut probe: how far duration and visit history go alone
)


def vocabulary_columns(columns: Sequence[str]) -> list[str]:
    """The vocabulary-term columns (hpo_*) in table order."""
    return [c for c in columns if c.startswith(schema.VOCABULARY_PREFIX)]


def system_columns(columns: Sequence[str]) -> list[str]:
    """The organ-system columns (sys_*) in table order."""
    return [c for c in columns if c.startswith(schema.SYSTEM_PREFIX)]


def hpo_id_of(column: str) -> str:
    """hpo_0001945 / sys_0000707 -> HP:0001945 / HP:0000707."""
    for prefix in schema.PHENOTYPE_PREFIXES:
        if column.startswith(prefix):
            return "HP:" + column[len(prefix) :]
    raise ValueError(
        f"column {column!r} is neither a vocabulary ({schema.VOCABULARY_PREFIX}) nor an organ-system "
        f"({schema.SYSTEM_PREFIX}) column"
    )


def model_feature_columns(table_columns: Sequence[str]) -> list[str]:
    """Every model input of a features table, in the feature contract's order; keys and label never."""
    vocab_ids = [hpo_id_of(c) for c in vocabulary_columns(table_columns)]
    system_ids = [hpo_id_of(c) for c in system_columns(table_columns)]
    columns = feature_columns(vocab_ids, system_ids)
    missing = [c for c in columns if c not in table_columns]
    if missing:
        raise ValueError(f"features table: missing feature column(s) {missing}")
    return [c for c in columns if c not in NON_FEATURE_COLUMNS]


def feature_set_columns(name: str, table_columns: Sequence[str]) -> list[str]:
    """The inputs of a named feature set (see FEATURE_SETS), in table order."""
    if name not in FEATURE_SETS:
        raise ValueError(f"feature_set: {name!r} is not one of {list(FEATURE_SETS)}")
    everything = model_feature_columns(table_columns)
    vocab, systems = vocabulary_columns(everything), system_columns(everything)
    chosen: list[str]
    match name:
        case "all":
            chosen = everything
        case "without_duration_visits":
            chosen = [c for c in everything if c not in SHORTCUT_COLUMNS]
        case "vocabulary_systems_age_sex":
            chosen = ["sex", "age_years", *vocab, *systems, "n_systems_involved"]
        case "phenotype_age_sex":
            chosen = ["sex", "age_years", *vocab, *systems, "n_systems_involved", *schema.SPECIFICITY_COLUMNS]
        case "vocabulary_age_sex":
            chosen = ["sex", "age_years", *vocab]
        case _:  # "duration_visits_only"
            chosen = list(SHORTCUT_COLUMNS)
    return [c for c in everything if c in set(chosen)]


@dataclass(frozen=True)
class FeatureRoles:
    """Model inputs split by how the pipeline treats them."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...]  # measured or counted values: imputed (and scaled for linear models)
    phenotype: tuple[str, ...]  # hpo_* / sys_* flags: 1 present, 0 absent, NaN unknown

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric, *self.phenotype]


def feature_roles(columns: Sequence[str]) -> FeatureRoles:
    """Split model inputs into categorical, numeric and phenotype-flag columns, keeping their order."""
    forbidden = [c for c in columns if c in NON_FEATURE_COLUMNS]
    if forbidden:
        raise ValueError(f"feature columns: {forbidden} are keys or the label, never model inputs")
    categorical = tuple(c for c in columns if c in schema.FEATURE_CATEGORICAL_COLUMNS)
    phenotype = tuple(c for c in columns if c.startswith(schema.PHENOTYPE_PREFIXES))
    numeric = tuple(c for c in columns if c not in categorical and c not in phenotype)
    return FeatureRoles(categorical, numeric, phenotype)


def label_codes(labels: pd.Series | Sequence[str]) -> np.ndarray:
    """Labels as indices into schema.LABELS (so predict_proba columns follow LABELS); unknown labels raise."""
    values = pd.Series(labels, dtype=object)
    codes = pd.Categorical(values, categories=list(schema.LABELS)).codes.astype(np.int64)
    if (codes < 0).any():
        bad = sorted({str(v) for v in values[codes < 0].unique()})[:5]
        raise ValueError(f"label: unknown value(s) {bad}, expected one of {list(schema.LABELS)}")
    return codes


def model_inputs(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The model input frame: categoricals as object (str, NaN when missing or generalised to the k-anonymity marker
    "*": the anonymizer's choice is never a model input), everything else float64."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"features frame: missing column(s) {missing}")
    out = {}
    for column in columns:
        values = frame[column]
        if column in schema.FEATURE_CATEGORICAL_COLUMNS:
            text = values.astype("string")
            out[column] = text.astype(object).where(text.notna() & (text != SUPPRESSED), np.nan)
        else:
            try:
                out[column] = pd.to_numeric(values, errors="raise").astype("float64")
            except (TypeError, ValueError) as exc:
                raise ValueError(f"features frame: column {column!r} is not numeric ({exc})") from exc
    return pd.DataFrame(out, index=frame.index)


def vocabulary_group_columns(vocabulary: pd.DataFrame, group: str, columns: Sequence[str]) -> list[str]:
    """hpo_* columns (among `columns`) of the vocabulary terms of one group ("orphan_red_flag", "common", ...)."""
    missing = [c for c in ("hpo_id", "group") if c not in vocabulary.columns]
    if missing:
        raise ValueError(f"vocabulary: missing column(s) {missing}")
    present = set(columns)
    names = [schema.hpo_feature_name(str(h)) for h in vocabulary.loc[vocabulary["group"] == group, "hpo_id"]]
    return [name for name in names if name in present]
