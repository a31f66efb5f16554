"""The serving input contract: one float32 matrix, numeric columns as floats, categoricals as integer codes.

The serving side rebuilds this matrix from JSON without pandas, so the encoding is deliberately plain:
numeric value -> float32 (missing -> NaN); categorical value -> its index in the column's category list,
missing -> `missing_code`, any other value (unseen category) -> `UNKNOWN_CODE`.
"""

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # frames are taken, never built: reading a manifest needs no pandas
    import pandas as pd

SPEC_METADATA_KEY = "rare_triage.input_schema"  # ONNX metadata entry holding FeatureSpec.to_dict() as JSON
UNKNOWN_CODE = -1  # an unseen category: contributes no one-hot column, as OneHotEncoder(handle_unknown="ignore")
ENCODING_DOC = (
    "features: float32 matrix [N, F], columns in input_schema.columns order. Numeric column: the value as "
    "float32, NaN when missing. Categorical column: the index of the value in that column's `categories` "
    "list; a missing value (null/NaN) gets the column's `missing_code`; any other value (unseen category) "
    f"gets {UNKNOWN_CODE}."
)

ColumnKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: numeric, or categorical with its ordered categories and the code of a missing value."""

    name: str
    kind: ColumnKind
    categories: tuple[str, ...] = ()
    missing_code: int = UNKNOWN_CODE

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise ValueError(f"column {self.name!r}: kind must be numeric or categorical, not {self.kind!r}")
        if self.kind == "numeric" and self.categories:
            raise ValueError(f"column {self.name!r}: a numeric column has no categories")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"column {self.name!r}: duplicate categories")
        if not UNKNOWN_CODE <= self.missing_code <= len(self.categories):
            raise ValueError(f"column {self.name!r}: missing_code {self.missing_code} out of range")


@dataclass(frozen=True)
class FeatureSpec:
    """The ordered input columns of the ONNX model and the class labels of its probability columns."""

    columns: tuple[ColumnSpec, ...]
    class_labels: tuple[str, ...]
    input_name: str = "features"
    outputs: tuple[str, ...] = field(default=("label", "probabilities"))

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("feature spec: duplicate column names")
        if not names:
            raise ValueError("feature spec: no columns")

    @property
    def names(self) -> list[str]:
        """Column names in matrix order."""
        return [c.name for c in self.columns]

    def index(self, name: str) -> int:
        """Position of column `name` in the matrix."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"feature spec: no column {name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready input schema for the manifest."""
        return {
            "input_name": self.input_name,
            "dtype": "float32",
            "shape": [None, len(self.columns)],
            "encoding": ENCODING_DOC,
            "unknown_code": UNKNOWN_CODE,
            "columns": [
                {"index": i, "name": c.name, "type": c.kind}
                | (
                    {"categories": [{"code": k, "value": v} for k, v in enumerate(c.categories)]}
                    | {"missing_code": c.missing_code}
                    if c.kind == "categorical"
                    else {}
                )
                for i, c in enumerate(self.columns)
            ],
            "class_labels": list(self.class_labels),
            "outputs": list(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpec":
        """Inverse of `to_dict`; ValueError naming what is missing when the schema is malformed."""
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"input schema: malformed ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpec":
        columns = []
        for entry in data["columns"]:
            cats = entry.get("categories", [])
            if [c["code"] for c in cats] != list(range(len(cats))):
                raise ValueError(f"input schema: column {entry['name']!r} codes must be 0..n-1 in order")
            columns.append(
                ColumnSpec(
                    name=entry["name"],
                    kind=entry["type"],
                    categories=tuple(c["value"] for c in cats),
                    missing_code=entry.get("missing_code", UNKNOWN_CODE),
                )
            )
        return cls(
            columns=tuple(columns),
            class_labels=tuple(data["class_labels"]),
            input_name=data.get("input_name", "features"),
            outputs=tuple(data.get("outputs", ("label", "probabilities"))),
        )


def is_missing(value: object) -> bool:
    """None, NaN and pandas NA are missing (a pandas NA exists only once pandas is loaded)."""
    pandas = sys.modules.get("pandas")
    if value is None or (pandas is not None and value is pandas.NA):
        return True
    return isinstance(value, float) and math.isnan(value)


def encode_category(value: object, column: ColumnSpec, lookup: Mapping[str, int] | None = None) -> int:
    """The integer code of one categorical value."""
    if is_missing(value):
        return column.missing_code
    table = lookup if lookup is not None else {v: i for i, v in enumerate(column.categories)}
    return table.get(value, UNKNOWN_CODE) if isinstance(value, str) else UNKNOWN_CODE


def to_serving_matrix(frame: "pd.DataFrame", spec: FeatureSpec) -> np.ndarray:
    """The float32 [N, F] matrix the ONNX model takes, built from a frame holding the spec's columns."""
    missing = [name for name in spec.names if name not in frame.columns]
    if missing:
        raise KeyError(f"serving matrix: frame lacks feature columns {missing}")
    out = np.empty((len(frame), len(spec.columns)), dtype=np.float32)
    for j, column in enumerate(spec.columns):
        values = frame[column.name]
        if column.kind == "numeric":
            try:
                out[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"serving matrix: column {column.name!r} is not numeric ({exc})") from exc
        else:
            lookup = {v: i for i, v in enumerate(column.categories)}
            out[:, j] = [encode_category(v, column, lookup) for v in values.to_numpy(dtype=object)]
    return out


def records_to_serving_matrix(records: Sequence[Mapping[str, Any]], spec: FeatureSpec) -> np.ndarray:
    """Same encoding from plain dicts (what the serving side does); absent keys are missing."""
    out = np.empty((len(records), len(spec.columns)), dtype=np.float32)
    lookups = [{v: i for i, v in enumerate(c.categories)} for c in spec.columns]
    for i, record in enumerate(records):
        for j, column in enumerate(spec.columns):
            value = record.get(column.name)
            if column.kind == "categorical":
                out[i, j] = encode_category(value, column, lookups[j])
            elif value is None or is_missing(value):
                out[i, j] = np.nan
            else:
                try:
                    out[i, j] = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"record {i}: column {column.name!r} is not a number: {value!r}") from None
    return out
