"""The manifest's `input_schema`: the model's ordered float32 input columns, as the platform's FeatureSpec writes it.

Numeric column: the value as float32, NaN when missing. Categorical column: the index of the value in its
`categories`; a missing value gets the column's `missing_code`; any other value gets `unknown_code`
(`rare_triage/lib/deployment/onnx_export/feature_spec.py`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from serving.encoding.errors import EncodingContractError


class _Category(msgspec.Struct):
    code: int
    value: str


class _Column(msgspec.Struct):
    index: int
    name: str
    type: Literal["numeric", "categorical"]
    categories: list[_Category] = msgspec.field(default_factory=list)
    missing_code: int | None = None


class _InputSchemaDocument(msgspec.Struct):
    """The fields the encoder reads (the schema also documents itself: `encoding`, `shape`, `outputs`)."""

    dtype: Literal["float32"]
    columns: list[_Column]
    unknown_code: int
    class_labels: list[str]
    input_name: str = "features"


@dataclass(frozen=True)
class InputColumn:
    """One column of the model input; `codes` maps a category to its code (empty for a numeric column)."""

    index: int
    name: str
    kind: Literal["numeric", "categorical"]
    codes: Mapping[str, int]
    missing_code: int


@dataclass(frozen=True)
class InputSchema:
    """The ordered input columns of a published model."""

    columns: tuple[InputColumn, ...]
    unknown_code: int
    input_name: str
    class_labels: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "InputSchema":
        """Read and check `manifest["input_schema"]`; EncodingContractError naming the field."""
        if not isinstance(manifest, Mapping) or "input_schema" not in manifest:
            raise EncodingContractError("manifest: missing field 'input_schema'")
        try:
            doc = msgspec.convert(manifest["input_schema"], _InputSchemaDocument)
        except msgspec.ValidationError as exc:
            raise EncodingContractError(f"manifest: input_schema: {exc}") from exc
        if not doc.columns:
            raise EncodingContractError("manifest: input_schema.columns is empty")
        columns = []
        for position, entry in enumerate(doc.columns):
            where = f"manifest: input_schema.columns[{position}] ({entry.name!r})"
            if entry.index != position:
                raise EncodingContractError(f"{where}: index {entry.index} is not its position")
            codes = {category.value: category.code for category in entry.categories}
            if [c.code for c in entry.categories] != list(range(len(entry.categories))) or len(codes) != len(
                entry.categories
            ):
                raise EncodingContractError(f"{where}: categories must be distinct values with codes 0..n-1 in order")
            if entry.type == "numeric":
                if entry.categories or entry.missing_code is not None:
                    raise EncodingContractError(f"{where}: a numeric column has no categories and no missing_code")
                missing_code = 0
            else:
                missing_code = doc.unknown_code if entry.missing_code is None else entry.missing_code
                if missing_code != doc.unknown_code and not 0 <= missing_code <= len(codes):
                    raise EncodingContractError(f"{where}: missing_code {missing_code} out of range")
                if 0 <= doc.unknown_code < len(codes):
                    raise EncodingContractError(f"{where}: unknown_code {doc.unknown_code} is a category's code")
            columns.append(InputColumn(position, entry.name, entry.type, codes, missing_code))
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise EncodingContractError("manifest: input_schema.columns repeats a column name")
        return cls(tuple(columns), doc.unknown_code, doc.input_name, tuple(doc.class_labels))
