"""What publication writes for one version: the ONNX file, its manifest and the table files the manifest lists."""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rare_triage.lib.deployment.manifest import PHENOTYPE_ENCODING, build_manifest
from rare_triage.lib.deployment.model_bundle import ModelBundle
from rare_triage.lib.deployment.onnx_export.feature_spec import FeatureSpec
from rare_triage.lib.deployment.sidecar import build_sidecar

HPO_XREFS = "hpo_xrefs"  # (system, code) -> HPO ids of the release, for the service's FHIR mapping
# the training distribution of every input and of the predictions (lib/monitoring/profile.py), for drift_report
MONITORING_REFERENCE = "monitoring_reference"


@dataclass(frozen=True)
class Release:
    """A version ready to publish; `sidecars` maps each file name of `manifest["files"]` to its bytes."""

    onnx_bytes: bytes = field(repr=False)
    manifest: dict[str, Any]
    sidecars: dict[str, bytes] = field(repr=False)

    @property
    def version(self) -> str:
        """The content-addressed version the manifest names."""
        return str(self.manifest["version"])


def model_tables(model: ModelBundle) -> dict[str, Mapping[str, Any]]:
    """The tables of `model` that travel as files of their own, by table name."""
    return {PHENOTYPE_ENCODING: model.phenotype_encoding}


def build_release(
    model: ModelBundle,
    onnx_bytes: bytes,
    spec: FeatureSpec,
    *,
    checks: Mapping[str, bool],
    dagster_run_id: str | None,
    parity: Mapping[str, Any] | None = None,
    created_at: dt.datetime | None = None,
    extra_tables: Mapping[str, Mapping[str, Any]] | None = None,
) -> Release:
    """The manifest of `onnx_bytes` exported from `model` (see `build_manifest`) with its table files; `extra_tables`
    travel too (the service's lookups that are not part of the model, such as the HPO cross-references)."""
    tables = {**model_tables(model), **(extra_tables or {})}
    built = {name: build_sidecar(name, table) for name, table in tables.items()}
    manifest = build_manifest(
        model,
        onnx_bytes,
        spec,
        files={name: entry for name, (entry, _) in built.items()},
        checks=checks,
        dagster_run_id=dagster_run_id,
        parity=parity,
        created_at=created_at,
    )
    return Release(onnx_bytes, manifest, {entry["file"]: data for entry, data in built.values()})
