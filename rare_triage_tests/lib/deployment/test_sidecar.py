"""Table files next to the manifest: canonical bytes, an entry naming their sha256, verified before they are read."""

import dataclasses
import hashlib
import json

import pytest

from rare_triage.lib import schema
from rare_triage.lib.deployment.manifest import ManifestError, manifest_to_bytes
from rare_triage.lib.deployment.onnx_export import ColumnSpec, FeatureSpec
from rare_triage.lib.deployment.release import build_release
from rare_triage.lib.deployment.sidecar import build_sidecar, load_sidecar, sidecar_bytes
from rare_triage.lib.features.phenotype_encoding import phenotype_encoding
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.testing.synthetic_models import SYSTEMS, feature_columns, vocabulary
from rare_triage_tests.helpers.published_model_factory import PHENOTYPE_ENCODING, trained_model

VERSION = "v3-0123456789ab"
MANIFEST_LIMIT_BYTES = 100 * 1024


def test_equal_tables_give_equal_compact_bytes() -> None:
    reordered = dict(reversed(list(PHENOTYPE_ENCODING.items())))
    data = sidecar_bytes(PHENOTYPE_ENCODING)

    assert data == sidecar_bytes(reordered) == sidecar_bytes(json.loads(data))
    assert data.endswith(b"}\n") and data.count(b"\n") == 1
    assert b", " not in data and b": " not in data
    assert data.index(b'"fever_terms"') < data.index(b'"format"') < data.index(b'"terms"')  # sorted keys
    assert sidecar_bytes({"label": "Fièvre"}) == '{"label":"Fièvre"}\n'.encode()  # UTF-8, not \u escapes


def test_a_table_with_nan_is_refused() -> None:
    with pytest.raises(ManifestError, match=r"^phenotype_encoding: .*NaN or infinity"):
        build_sidecar("phenotype_encoding", {"terms": {"HP:0001945": [float("nan"), [], []]}})


def test_the_entry_names_the_file_its_sha256_and_size() -> None:
    entry, data = build_sidecar("phenotype_encoding", PHENOTYPE_ENCODING)

    assert entry == {
        "file": "phenotype_encoding.json",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
    }
    assert load_sidecar(VERSION, entry, data) == PHENOTYPE_ENCODING


@pytest.mark.parametrize(
    "tampered",
    [
        lambda data: data.replace(b"0.912", b"0.001"),  # same size, other bytes
        lambda data: data.replace(b"0.912", b"9.9"),  # other size
        lambda data: data[:-1],  # truncated
        lambda data: b"",
    ],
)
def test_bytes_that_differ_from_the_entry_are_refused_naming_version_and_file(tampered: object) -> None:
    entry, data = build_sidecar("phenotype_encoding", PHENOTYPE_ENCODING)
    changed = tampered(data)  # type: ignore[operator]
    assert changed != data

    with pytest.raises(ManifestError, match=rf"^{VERSION}/phenotype_encoding\.json \(.*\) does not match its manifest"):
        load_sidecar(VERSION, entry, changed)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"\xff{", "not valid UTF-8 JSON"), (b"[1, 2]\n", "top level is not an object")],
)
def test_bytes_matching_a_forged_entry_must_still_be_a_json_object(data: bytes, message: str) -> None:
    entry = {"file": "phenotype_encoding.json", "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}

    with pytest.raises(ManifestError, match=rf"{VERSION}/phenotype_encoding\.json: {message}"):
        load_sidecar(VERSION, entry, data)


def test_the_real_phenotype_encoding_leaves_the_manifest_small(reference_tables: ReferenceTables) -> None:
    encoding = phenotype_encoding(reference_tables)
    systems = [{"hpo_id": hpo_id, "label": label} for hpo_id, label in SYSTEMS]
    model = dataclasses.replace(trained_model(phenotype_encoding=encoding), vocabulary=vocabulary(), systems=systems)
    categorical, numeric = feature_columns()
    spec = FeatureSpec(  # the served input: schema columns (12 categories each), vocabulary and system flags
        columns=(
            *(ColumnSpec(name, "categorical", tuple(f"{name}-{i}" for i in range(12))) for name in categorical),
            *(ColumnSpec(name, "numeric") for name in numeric),
        ),
        class_labels=schema.LABELS,
    )

    release = build_release(model, b"onnx", spec, checks={"onnx_parity": True}, dagster_run_id=None)
    again = build_release(model, b"onnx", spec, checks={"onnx_parity": True}, dagster_run_id=None)

    manifest_size = len(manifest_to_bytes(release.manifest))
    table = release.sidecars["phenotype_encoding.json"]
    assert manifest_size < MANIFEST_LIMIT_BYTES, manifest_size
    assert len(table) > 5 * MANIFEST_LIMIT_BYTES  # the HPO term table: some 20,000 terms
    assert len(release.manifest["vocabulary"]) == len(vocabulary()) > 50
    assert again.sidecars == release.sidecars  # deterministic: same table, same bytes, same sha256
    assert load_sidecar(release.version, release.manifest["files"]["phenotype_encoding"], table) == encoding
