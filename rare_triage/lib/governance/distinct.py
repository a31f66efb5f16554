"""Column operations evaluated once per distinct value, and the text folding the vocabularies and screening share."""

import unicodedata
from collections.abc import Callable

import numpy as np
import pandas as pd


def fold(text: str) -> str:
    """Case-, width- and spacing-insensitive form of a text."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def membership(known: Callable[[str], object] | frozenset[str]) -> Callable[[str], object]:
    """A code list or a predicate, as a predicate."""
    return known.__contains__ if isinstance(known, (set, frozenset)) else known


def map_distinct(values: pd.Series, function: Callable[[object], object], missing: object = None) -> pd.Series:
    """``function`` of each value (object dtype), called once per distinct value; ``missing`` where values are."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.asarray([function(u) for u in uniques] + [missing], dtype=object)
    return pd.Series(lookup[codes], index=values.index, dtype=object)


def test_distinct(values: pd.Series, predicate: Callable[[object], object], *, default: bool) -> pd.Series:
    """``predicate`` of each value as booleans, called once per distinct value; ``default`` for missing values.

    Meant for vocabulary-sized columns; on key columns it still costs one call per key.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.fromiter((bool(predicate(u)) for u in uniques), dtype=bool, count=len(uniques))
    return pd.Series(np.append(lookup, default)[codes], index=values.index)


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-d array by sorting (numpy's hash-based unique of 64-bit integers is ten times slower)."""
    ordered = np.sort(values)
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first]
