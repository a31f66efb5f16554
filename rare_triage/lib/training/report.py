"""Small formatting helpers for asset metadata: markdown tables and JSON-safe values."""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def json_safe(value: Any) -> Any:
    """Plain JSON types: NaN/inf become None, numpy scalars become Python numbers, frames become records."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return [json_safe(r) for r in value.to_dict(orient="records")]
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-style markdown table (floats rounded to `digits`)."""

    def cell(value: Any) -> str:
        if isinstance(value, float | np.floating):
            return "" if not math.isfinite(float(value)) else f"{float(value):.{digits}g}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def metric_value(value: float) -> float | str:
    """A float for Dagster metadata: finite as is, otherwise its text ('nan')."""
    return float(value) if math.isfinite(float(value)) else str(value)
