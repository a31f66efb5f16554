"""The inputs that weighed most in a prediction of a linear model (logistic regression), by occlusion.

For each input column whose value differs from the platform's encoding of its absence (what an empty encounter
encodes to: NaN, the column's `missing_code`, 0 for the counts and term counts), the row is scored again with that
column alone set to its absent value; the input's weight is the orphan probability with it minus without it. All
the occluded rows of a batch go through one extra model call. Only for linear models, where it is cheap and
readable (`serving.onnx_graph.model_family`): a tree ensemble gets none, and its path pays nothing.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec import Meta

from serving.contract import Encounter
from serving.encoding import Encoder

TOP_INPUTS: Final = 5

Predict = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.floating]]


class WeighedInput(msgspec.Struct, frozen=True, kw_only=True):
    """One input of the model and how much its value moved the orphan probability."""

    input: Annotated[str, Meta(description="the model's input column (manifest input_schema)")]
    value: Annotated[
        float | str | None,
        Meta(
            description=(
                "its value as the model read it: the number (a phenotype flag: 1 present, 0 absent), or the "
                "category; null for a category the model never saw"
            )
        ),
    ]
    orphan_probability_change: Annotated[
        float,
        Meta(description="orphan probability with this value minus with the input absent (all others unchanged)"),
    ]


@dataclass(frozen=True, eq=False)
class InputWeigher:
    """Occlusion weights of one linear model's inputs; built once per model load."""

    columns: tuple[str, ...]
    absent: npt.NDArray[np.float32]  # [F], the encoding of an empty encounter
    categories: tuple[Mapping[int, str] | None, ...]  # per column: code -> category, None for a numeric column
    orphan_index: int
    top: int = TOP_INPUTS

    @classmethod
    def build(cls, encoder: Encoder, orphan_index: int, top: int = TOP_INPUTS) -> "InputWeigher":
        absent = np.ascontiguousarray(encoder.encode([Encounter()]).matrix[0])
        categories = tuple(
            {code: value for value, code in column.codes.items()} if column.kind == "categorical" else None
            for column in encoder.schema.columns
        )
        return cls(encoder.columns, absent, categories, orphan_index, top)

    def weigh(
        self, matrix: npt.NDArray[np.float32], orphan_probability: npt.NDArray[np.floating], predict: Predict
    ) -> list[list[WeighedInput]]:
        """Per row of `matrix` (whose orphan probabilities are given), its `top` inputs by absolute weight."""
        absent = self.absent
        present = ~((matrix == absent) | (np.isnan(matrix) & np.isnan(absent)))
        rows, cols = np.nonzero(present)  # row-major: each row's columns in column order
        if not len(rows):
            return [[] for _ in range(len(matrix))]
        occluded = matrix[rows]
        occluded[np.arange(len(rows)), cols] = absent[cols]
        without = np.asarray(predict(occluded), dtype=np.float64)[:, self.orphan_index]
        change = np.asarray(orphan_probability, dtype=np.float64)[rows] - without
        ends = np.searchsorted(rows, np.arange(1, len(matrix) + 1))
        out: list[list[WeighedInput]] = []
        start = 0
        for i, end in enumerate(ends.tolist()):
            order = np.argsort(-np.abs(change[start:end]), kind="stable")[: self.top] + start
            out.append([self._input(i, int(cols[k]), float(change[k]), matrix) for k in order.tolist()])
            start = end
        return out

    def _input(self, row: int, col: int, change: float, matrix: npt.NDArray[np.float32]) -> WeighedInput:
        raw = float(matrix[row, col])
        codes = self.categories[col]
        value: float | str | None = raw if codes is None else codes.get(int(raw))
        return WeighedInput(input=self.columns[col], value=value, orphan_probability_change=change)
