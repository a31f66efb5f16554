"""The one conversion of `ReferenceTables` to and from the frames stored in the lake."""

import dataclasses

import pandas as pd

from rare_triage.lib.reference.ontology import ReferenceTables

RELEASE_TABLE = "hpo_release"


def reference_to_frames(tables: ReferenceTables) -> dict[str, pd.DataFrame]:
    """ReferenceTables as Parquet-storable frames (the release becomes a one-row table)."""
    frames = {f.name: getattr(tables, f.name) for f in dataclasses.fields(tables) if f.name != RELEASE_TABLE}
    frames[RELEASE_TABLE] = pd.DataFrame({RELEASE_TABLE: [tables.hpo_release]})
    return frames


def reference_from_frames(frames: dict[str, pd.DataFrame]) -> ReferenceTables:
    """Inverse of `reference_to_frames`."""
    kwargs: dict[str, object] = {k: v for k, v in frames.items() if k != RELEASE_TABLE}
    kwargs[RELEASE_TABLE] = str(frames[RELEASE_TABLE][RELEASE_TABLE].iloc[0])
    return ReferenceTables(**kwargs)  # type: ignore[arg-type]
