"""k-anonymity of anonymized encounters: measure it and enforce it by local generalisation.

Quasi-identifiers are (age_band, sex, centre_id). The centre implies its level and region,
so the default also lists centre_level and region: that changes no class while the centre
is kept, and keeps the region in the class once the centre is suppressed.

Enforcement touches only the rows of classes smaller than k, in three steps, each applied
to the rows still in a small class: (1) centre_id and centre_level -> "*" (region kept);
(2) age_band -> "*", and age_years -> NA with it, since the exact age would reveal the band;
(3) region and sex -> "*". Rows whose class is still smaller than k after step 3 are not
dropped silently: they come back in ``below_k`` for the caller to quarantine.

Limitation: age_years stays in the output (top-coded at 90) and is NOT a quasi-identifier
by default, so a class of k rows may hold fewer than k distinct ages. Pass
``quasi_identifiers`` including "age_years" to measure or enforce k over the exact age.
"""

import json
from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np
import pandas as pd

from rare_triage.lib import schema

K_ANONYMITY: Final = 5  # the k of every partition unless configured otherwise (PseudonymizationResource)
DEFAULT_QUASI_IDENTIFIERS: tuple[str, ...] = ("age_band", "sex", "centre_id", "centre_level", "region")
SUPPRESSED = "*"
BELOW_K_REASON = "k-anonymity: equivalence class below k"
# (step name, columns set to "*"), in the order they are applied
GENERALISATION_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("centre", ("centre_id", "centre_level")),
    ("age_band", ("age_band",)),
    ("region_sex", ("region", "sex")),
)
BLANKED_WITH_AGE_BAND: tuple[str, ...] = ("age_years",)


class KAnonymityResult(NamedTuple):
    """Encounters with every class of size >= k, the rows that could not reach k, and counts."""

    encounters: pd.DataFrame
    below_k: pd.DataFrame
    report: dict[str, int]


def equivalence_class_sizes(frame: pd.DataFrame, quasi_identifiers: Sequence[str]) -> np.ndarray:
    """Size of each row's equivalence class (missing values form their own class)."""
    if len(frame) == 0:
        return np.zeros(0, dtype=np.int64)
    codes = frame.groupby(list(quasi_identifiers), dropna=False, sort=False, observed=True).ngroup().to_numpy()
    return np.bincount(codes)[codes]


def k_anonymity(frame: pd.DataFrame, quasi_identifiers: Sequence[str], *, engine: str = "pandas") -> int:
    """Smallest equivalence class over ``quasi_identifiers`` (0 for an empty frame).

    ``engine="pycanon"`` asks pycanon (CSIC), which ignores rows with a missing value: they
    are given a placeholder first so both engines see the same classes.
    """
    missing = [q for q in quasi_identifiers if q not in frame.columns]
    if missing:
        raise KeyError(f"quasi-identifier column(s) {missing} not in the frame")
    if len(frame) == 0:
        return 0
    if engine == "pandas":
        return int(equivalence_class_sizes(frame, quasi_identifiers).min())
    if engine == "pycanon":
        from pycanon import anonymity  # noqa: PLC0415 - takes about 1 s to import, only this engine needs it

        qis = frame[list(quasi_identifiers)].astype(object)
        filled = qis.where(qis.notna(), "<NA>")
        return int(anonymity.k_anonymity(filled, list(quasi_identifiers)))
    raise ValueError(f"engine: {engine!r} is not 'pandas' or 'pycanon'")


def enforce_k_anonymity(
    encounters: pd.DataFrame,
    k: int = K_ANONYMITY,
    quasi_identifiers: Sequence[str] = DEFAULT_QUASI_IDENTIFIERS,
) -> KAnonymityResult:
    """Generalise rows of classes smaller than ``k`` step by step; return what still falls short apart."""
    if k < 1:
        raise ValueError(f"k: {k} must be at least 1")
    missing = [q for q in quasi_identifiers if q not in encounters.columns]
    if missing:
        raise KeyError(f"quasi-identifier column(s) {missing} not in encounters")
    out = encounters.copy()
    for column in BLANKED_WITH_AGE_BAND:
        if column in out.columns and pd.api.types.is_integer_dtype(out[column]):
            out[column] = out[column].astype("Int64")
    report = {"k": k, "rows_in": len(out)}
    for name, columns in GENERALISATION_STEPS:
        small = equivalence_class_sizes(out, quasi_identifiers) < k
        report[f"rows_generalised_{name}"] = int(small.sum())
        if not small.any():
            continue
        for column in columns:
            if column in out.columns:
                out.loc[small, column] = SUPPRESSED
        if "age_band" in columns:
            for column in BLANKED_WITH_AGE_BAND:
                if column in out.columns:
                    out.loc[small, column] = pd.NA
    small = equivalence_class_sizes(out, quasi_identifiers) < k
    below_k = encounters[small]
    kept = out[~small]
    report["rows_below_k"] = int(small.sum())
    report["rows_out"] = len(kept)
    report["k_achieved"] = k_anonymity(kept, quasi_identifiers)
    return KAnonymityResult(encounters=kept, below_k=below_k, report=report)


def below_k_quarantine(below_k: pd.DataFrame, *, partition_day: str, k: int) -> pd.DataFrame:
    """QUARANTINE_COLUMNS rows for encounters that no generalisation brought to a class of size k."""
    rows = below_k.astype(object).where(below_k.notna(), None)
    return pd.DataFrame(
        {
            "partition_day": partition_day,
            "table": schema.RAW_ENCOUNTERS,
            "row_ref": below_k["encounter_key"].astype(object),
            "field": "age_band,sex,centre_id",
            "reason": f"{BELOW_K_REASON} (k={k})",
            "row_json": [json.dumps(r, default=str) for r in rows.to_dict(orient="records")],
        },
        index=below_k.index,
        columns=list(schema.QUARANTINE_COLUMNS),
    ).reset_index(drop=True)
