"""The reference profile of a model: what its training-time inputs and predictions looked like, binned, as JSON.

Drift is measured against it (drift.py). Numeric features with at most DISCRETE_MAX_VALUES distinct values (0/1
flags, counts, 0-10 scores) get one bin per value, so a binary flag has two bins and PSI compares prevalences;
other numeric features get quantile bins and keep a seeded sample of their values for the two-sample KS test.
Missing (NaN or infinite) values are counted apart, as a missing rate; a categorical's missing value is its own
category MISSING_CATEGORY. The profile holds only the feature columns the caller names: never a key or identifier.
"""

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.identifiers import IDENTIFIERS

FORMAT_VERSION = 1
MISSING_CATEGORY = "<missing>"
UNSEEN_CATEGORY = "<unseen>"  # the window's values of a categorical that the reference never had
DISCRETE_MAX_VALUES = 20  # at most this many distinct values: one bin per value instead of quantile bins
SAMPLE_DIGITS = 6  # significant digits kept of the KS sample values (keeps the JSON small)
ORPHAN_PROBABILITY = "orphan_probability"
FORBIDDEN_COLUMNS = frozenset(
    (*schema.FEATURE_KEY_COLUMNS, schema.LABEL_COLUMN, "zip3", *(identifier.column for identifier in IDENTIFIERS))
)


def finite_values(series: pd.Series | np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """The finite values of a numeric column as float64, and how many values were missing (NaN, NA or infinite)."""
    try:
        values = pd.to_numeric(pd.Series(series), errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {name!r} is not numeric ({exc})") from exc
    finite = np.isfinite(values)
    n_missing = int(len(values) - np.count_nonzero(finite))
    return (values if n_missing == 0 else values[finite]), n_missing


@dataclass(frozen=True)
class NumericProfile:
    """One numeric column: bins over its finite values (bin i holds edges[i-1] <= x < edges[i]), shares, sample."""

    name: str
    discrete: bool  # one bin per distinct reference value (`values`); else quantile bins and a KS `sample`
    edges: tuple[float, ...]
    proportions: tuple[float, ...]  # reference share of the finite values in each bin, len(edges) + 1 bins
    n: int  # finite reference values
    missing_rate: float
    mean: float | None
    std: float | None
    values: tuple[float, ...] = ()
    sample: tuple[float, ...] = ()

    def bin_counts(self, finite: np.ndarray) -> np.ndarray:
        """How many of `finite` (no NaN) fall in each reference bin; a value between two discrete values goes to
        the bin of the nearer one."""
        bins = np.searchsorted(np.asarray(self.edges, dtype=np.float64), finite, side="right")
        return np.bincount(bins, minlength=len(self.edges) + 1).astype(np.float64)

    def bin_labels(self) -> list[str]:
        """Readable bin names: the value of a discrete bin, the interval of a quantile bin."""
        if self.discrete:
            return [f"{v:g}" for v in self.values] or ["(none)"]
        bounds = ["-inf", *[f"{e:.4g}" for e in self.edges], "inf"]
        return [f"[{low}, {high})" for low, high in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class CategoricalProfile:
    """One categorical column: share of each reference category, MISSING_CATEGORY always last (maybe 0)."""

    name: str
    categories: tuple[str, ...]
    shares: tuple[float, ...]
    n: int  # reference rows
    missing_rate: float

    def bin_counts(self, series: pd.Series) -> tuple[np.ndarray, pd.Series]:
        """Counts per reference category then one UNSEEN_CATEGORY count, and the unseen values by frequency."""
        missing = series.isna().to_numpy()
        known = list(self.categories[:-1])
        codes = pd.Categorical(series, categories=known).codes
        unseen = (codes < 0) & ~missing
        counts = np.bincount(codes[codes >= 0], minlength=len(known)).astype(np.float64)
        n_unseen = int(np.count_nonzero(unseen))
        values = series[unseen].astype(str).value_counts() if n_unseen else pd.Series(dtype=np.int64)
        return np.append(counts, [float(np.count_nonzero(missing)), float(n_unseen)]), values

    def bin_labels(self) -> list[str]:
        return [*self.categories, UNSEEN_CATEGORY]


@dataclass(frozen=True)
class PredictionProfile:
    """The model's predictions on the reference rows: predicted-class shares, orphan probability, flag rates."""

    class_labels: tuple[str, ...]
    class_shares: tuple[float, ...]  # share of rows whose most probable class is each label
    orphan_probability: NumericProfile
    flag_rate: float  # share of rows flagged as orphan suspicion
    review_rate: float  # share of rows sent to human review
    n: int

    @property
    def orphan_index(self) -> int:
        return self.class_labels.index(schema.ORPHAN_LABEL)


@dataclass(frozen=True)
class ReferenceProfile:
    """Everything drift detection needs of the reference window, JSON-serializable (to_dict / from_dict)."""

    model_version: str
    n_rows: int
    bins: int
    numeric: tuple[NumericProfile, ...]
    categorical: tuple[CategoricalProfile, ...]
    predictions: PredictionProfile
    format: int = FORMAT_VERSION

    @property
    def feature_names(self) -> list[str]:
        return [p.name for p in self.numeric] + [p.name for p in self.categorical]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain lists and numbers, None where a value is undefined (never NaN)."""
        return {
            "format": self.format,
            "model_version": self.model_version,
            "n_rows": self.n_rows,
            "bins": self.bins,
            "numeric": [_numeric_dict(p) for p in self.numeric],
            "categorical": [
                {
                    "name": p.name,
                    "categories": list(p.categories),
                    "shares": list(p.shares),
                    "n": p.n,
                    "missing_rate": p.missing_rate,
                }
                for p in self.categorical
            ],
            "predictions": {
                "class_labels": list(self.predictions.class_labels),
                "class_shares": list(self.predictions.class_shares),
                "orphan_probability": _numeric_dict(self.predictions.orphan_probability),
                "flag_rate": self.predictions.flag_rate,
                "review_rate": self.predictions.review_rate,
                "n": self.predictions.n,
            },
        }

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ReferenceProfile":
        """Inverse of to_dict; ValueError when the format is unknown or an entry is malformed."""
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"reference profile: format {data.get('format')!r}, expected {FORMAT_VERSION}")
        try:
            predictions = data["predictions"]
            return cls(
                model_version=str(data["model_version"]),
                n_rows=int(data["n_rows"]),
                bins=int(data["bins"]),
                numeric=tuple(_numeric_from(entry) for entry in data["numeric"]),
                categorical=tuple(
                    CategoricalProfile(
                        name=entry["name"],
                        categories=tuple(entry["categories"]),
                        shares=tuple(float(s) for s in entry["shares"]),
                        n=int(entry["n"]),
                        missing_rate=float(entry["missing_rate"]),
                    )
                    for entry in data["categorical"]
                ),
                predictions=PredictionProfile(
                    class_labels=tuple(predictions["class_labels"]),
                    class_shares=tuple(float(s) for s in predictions["class_shares"]),
                    orphan_probability=_numeric_from(predictions["orphan_probability"]),
                    flag_rate=float(predictions["flag_rate"]),
                    review_rate=float(predictions["review_rate"]),
                    n=int(predictions["n"]),
                ),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"reference profile: malformed ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def from_json_bytes(cls, data: bytes) -> "ReferenceProfile":
        return cls.from_dict(json.loads(data))


def _numeric_dict(p: NumericProfile) -> dict[str, Any]:
    return {
        "name": p.name,
        "discrete": p.discrete,
        "edges": list(p.edges),
        "proportions": list(p.proportions),
        "n": p.n,
        "missing_rate": p.missing_rate,
        "mean": p.mean,
        "std": p.std,
        "values": list(p.values),
        "sample": list(p.sample),
    }


def _numeric_from(entry: Mapping[str, Any]) -> NumericProfile:
    return NumericProfile(
        name=entry["name"],
        discrete=bool(entry["discrete"]),
        edges=tuple(float(e) for e in entry["edges"]),
        proportions=tuple(float(p) for p in entry["proportions"]),
        n=int(entry["n"]),
        missing_rate=float(entry["missing_rate"]),
        mean=None if entry["mean"] is None else float(entry["mean"]),
        std=None if entry["std"] is None else float(entry["std"]),
        values=tuple(float(v) for v in entry["values"]),
        sample=tuple(float(v) for v in entry["sample"]),
    )


def profile_numeric(
    name: str, column: pd.Series | np.ndarray, *, bins: int, sample_size: int, rng: np.random.Generator
) -> NumericProfile:
    """Bins, shares, moments and (continuous only) a seeded sample of one numeric column."""
    finite, n_missing = finite_values(column, name)
    n = len(finite)
    missing_rate = n_missing / (n + n_missing) if n + n_missing else 0.0
    if n == 0:
        return NumericProfile(name, True, (), (1.0,), 0, missing_rate, None, None)
    distinct, counts = np.unique(finite, return_counts=True)
    moments = float(finite.mean()), float(finite.std())
    if len(distinct) <= DISCRETE_MAX_VALUES:
        edges = (distinct[:-1] + distinct[1:]) / 2.0
        return NumericProfile(
            name, True, _floats(edges), _floats(counts / n), n, missing_rate, *moments, values=_floats(distinct)
        )
    quantiles = np.quantile(finite, np.arange(1, bins) / bins)
    # a point mass at the minimum (0 days, 0 visits) is a bin of its own: its first edge is the next value
    at_minimum = distinct[1:2] if np.any(quantiles <= distinct[0]) else distinct[:0]
    edges = np.unique(np.concatenate([at_minimum, quantiles[quantiles > distinct[0]]]))
    proportions = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1) / n
    chosen = rng.choice(n, size=min(n, sample_size), replace=False)
    sample = np.sort(finite[chosen])
    rounded = tuple(float(f"{v:.{SAMPLE_DIGITS}g}") for v in sample)
    return NumericProfile(name, False, _floats(edges), _floats(proportions), n, missing_rate, *moments, sample=rounded)


def profile_categorical(name: str, column: pd.Series, known: Sequence[str] = ()) -> CategoricalProfile:
    """Category shares, most frequent first, then `known` categories absent from `column` (share 0: seen in
    training, so never "unseen"), MISSING_CATEGORY last (its share is the missing rate)."""
    n = len(column)
    missing_rate = float(column.isna().mean()) if n else 0.0
    counts = column.dropna().astype(str).value_counts(sort=True)
    shares = (counts / n).tolist() if n else []
    categories = [str(c) for c in counts.index]
    absent = sorted(set(known) - set(categories))
    return CategoricalProfile(
        name, (*categories, *absent, MISSING_CATEGORY), (*shares, *[0.0] * len(absent), missing_rate), n, missing_rate
    )


def check_feature_columns(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> None:
    """ValueError naming the column when a key, identifier or label is asked for, or a column is absent or twice."""
    for column in [*numeric, *categorical]:
        if column in FORBIDDEN_COLUMNS:
            raise ValueError(f"column {column!r} is a key, identifier or the label: never part of a drift profile")
    both = [*numeric, *categorical]
    duplicated = sorted({c for c in both if both.count(c) > 1})
    if duplicated:
        raise ValueError(f"column(s) {duplicated} named twice (numeric and categorical columns must be disjoint)")
    absent = [c for c in both if c not in frame.columns]
    if absent:
        raise ValueError(f"features frame: missing column(s) {absent}")


def check_predictions(
    n_rows: int, probabilities: np.ndarray, class_labels: Sequence[str], orphan_flag: np.ndarray, review: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The predictions as float64 / bool arrays; ValueError when a shape disagrees with the rows or labels."""
    proba = np.asarray(probabilities, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (n_rows, len(class_labels)):
        raise ValueError(f"probabilities: shape {proba.shape}, expected ({n_rows}, {len(class_labels)})")
    flags, reviews = np.asarray(orphan_flag, dtype=bool), np.asarray(review, dtype=bool)
    for label, array in (("orphan_flag", flags), ("needs_review", reviews)):
        if array.shape != (n_rows,):
            raise ValueError(f"{label}: shape {array.shape}, expected ({n_rows},)")
    return proba, flags, reviews


def predicted_class_counts(probabilities: np.ndarray, n_classes: int) -> np.ndarray:
    """How many rows have each class as their most probable one."""
    if len(probabilities) == 0:
        return np.zeros(n_classes)
    return np.bincount(probabilities.argmax(axis=1), minlength=n_classes).astype(np.float64)


def build_reference_profile(
    features: pd.DataFrame,
    *,
    numeric_columns: Sequence[str],
    categorical_columns: Sequence[str],
    probabilities: np.ndarray,
    class_labels: Sequence[str],
    orphan_flag: np.ndarray,
    needs_review: np.ndarray,
    model_version: str,
    bins: int = 10,
    sample_size: int = 5000,
    seed: int = 0,
    known_categories: Mapping[str, Sequence[str]] | None = None,
) -> ReferenceProfile:
    """Profile the named feature columns and the model's predictions on the reference rows. `known_categories`:
    per categorical column, values seen in training outside the profiled rows (share 0, not "unseen")."""
    check_feature_columns(features, numeric_columns, categorical_columns)
    if bins < 2 or sample_size < 1:
        raise ValueError(f"bins must be >= 2 and sample_size >= 1, got {bins}, {sample_size}")
    if schema.ORPHAN_LABEL not in class_labels:
        raise ValueError(f"class_labels: {list(class_labels)} has no {schema.ORPHAN_LABEL!r}")
    n = len(features)
    if n == 0:
        raise ValueError("features frame: no rows to profile")
    proba, flags, reviews = check_predictions(n, probabilities, class_labels, orphan_flag, needs_review)
    rng = np.random.default_rng(seed)
    numeric = tuple(
        profile_numeric(c, features[c], bins=bins, sample_size=sample_size, rng=rng) for c in numeric_columns
    )
    known = known_categories or {}
    categorical = tuple(profile_categorical(c, features[c], known.get(c, ())) for c in categorical_columns)
    orphan = profile_numeric(
        ORPHAN_PROBABILITY,
        proba[:, list(class_labels).index(schema.ORPHAN_LABEL)],
        bins=bins,
        sample_size=sample_size,
        rng=rng,
    )
    predictions = PredictionProfile(
        class_labels=tuple(class_labels),
        class_shares=_floats(predicted_class_counts(proba, len(class_labels)) / n),
        orphan_probability=orphan,
        flag_rate=float(flags.mean()),
        review_rate=float(reviews.mean()),
        n=n,
    )
    return ReferenceProfile(model_version, n, bins, numeric, categorical, predictions)


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
