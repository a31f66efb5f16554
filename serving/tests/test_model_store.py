"""Loading a published version: every hash, the format-2 manifest, ONNX Runtime and a smoke prediction checked;
verified files cached and served from there while the bucket is unavailable; anything off refused."""

import dataclasses
import hashlib
import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.bucket import LocalBucket
from serving.model_store import (
    ModelRefusedError,
    NoModelError,
    PointerInvalidError,
    cache_marker_path,
    load_cached,
    load_initial,
    load_version,
    missing_row,
    thaw,
)
from serving.tests.onnx_fixture import linear_softmax_model, weights
from serving.tests.published import (
    CLASS_LABELS,
    N_FEATURES,
    Release,
    build_release,
    canonical_json,
    folder_put,
    phenotype_encoding,
    point,
    pointer_key,
    publish,
    version_key,
)
from serving.tests.s3_support import s3_put, serving_bucket


def reference_probabilities(features: np.ndarray, seed: int) -> np.ndarray:
    """What the fixture model computes, in numpy: softmax(W x + b) with NaN read as 0."""
    matrix, bias = weights(N_FEATURES, len(CLASS_LABELS), seed)
    scores = np.nan_to_num(features.astype(np.float64)) @ np.reshape(matrix, (N_FEATURES, -1)) + np.asarray(bias)
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def test_load_verifies_and_serves_the_pointed_version(
    published: LocalBucket, release: Release, cache_dir: Path
) -> None:
    model = load_version(published, "dev", cache_dir, onnx_threads=1)

    assert (model.version, model.env, model.source, model.cache_error) == (release.version, "dev", "bucket", None)
    assert model.pointer.manifest_sha256 == hashlib.sha256(release.manifest_bytes).hexdigest()
    assert thaw(model.phenotype_encoding) == phenotype_encoding(0)
    assert thaw(model.manifest) == release.manifest
    assert model.class_labels == tuple(CLASS_LABELS)
    assert (model.input_name, model.probabilities_output, model.n_features) == ("features", "probabilities", N_FEATURES)
    rows = np.asarray([[1, 2, 30.0, 38.5, 3, 4.2], [-1, -1, math.nan, math.nan, 0, math.nan]], dtype=np.float32)
    np.testing.assert_allclose(model.predict_proba(rows), reference_probabilities(rows, 0), rtol=1e-5)
    assert model.describe()["version"] == release.version
    assert model.describe()["thresholds"] == {"orphan": 0.3, "needs_review": 0.2}


def test_a_loaded_model_cannot_be_changed(published: LocalBucket, cache_dir: Path) -> None:
    model = load_version(published, "dev", cache_dir)

    with pytest.raises(dataclasses.FrozenInstanceError):
        model.version = "v9-000000000000"  # type: ignore[misc]
    with pytest.raises(TypeError):
        model.manifest["thresholds"]["orphan"] = 0.9
    with pytest.raises(TypeError):
        model.phenotype_encoding["fever_terms"] = ()  # type: ignore[index]


def test_the_missing_row_has_the_input_width(release: Release) -> None:
    row = missing_row(release.manifest["input_schema"])

    assert row.shape == (1, N_FEATURES) and row.dtype == np.float32
    assert row[0, :2].tolist() == [-1.0, -1.0]
    assert np.isnan(row[0, 2:]).all()


def test_verified_files_are_cached_with_the_pointer(published: LocalBucket, release: Release, cache_dir: Path) -> None:
    load_version(published, "dev", cache_dir)

    folder = cache_dir / release.version
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.onnx", "phenotype_encoding.json"]
    assert (folder / "model.onnx").read_bytes() == release.onnx_bytes
    assert (folder / "manifest.json").read_bytes() == release.manifest_bytes
    marker = json.loads(cache_marker_path(cache_dir, "dev").read_bytes())
    assert marker["pointer"]["version"] == release.version
    assert marker["pointer"]["onnx_sha256"] == hashlib.sha256(release.onnx_bytes).hexdigest()
    assert [p.name for p in cache_dir.rglob(".*")] == []  # no temporary file left behind


def test_an_unwritable_cache_does_not_refuse_a_verified_model(published: LocalBucket, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")

    model = load_version(published, "dev", not_a_folder)

    assert model.source == "bucket"
    assert model.cache_error is not None and "NotADirectoryError" in model.cache_error


def test_unavailable_bucket_at_start_up_serves_the_cache(
    published: LocalBucket, release: Release, cache_dir: Path
) -> None:
    load_version(published, "dev", cache_dir)
    shutil.rmtree(published.root)

    model = load_initial(published, "dev", cache_dir)

    assert (model.version, model.source) == (release.version, "cache")
    assert thaw(model.phenotype_encoding) == phenotype_encoding(0)
    assert model.predict_proba(missing_row(release.manifest["input_schema"])).shape == (1, len(CLASS_LABELS))


def test_nothing_anywhere_is_no_model(tmp_path: Path, cache_dir: Path) -> None:
    expected = r"bucket unavailable .*does not exist.* and env dev: no verified model cached"
    with pytest.raises(NoModelError, match=expected):
        load_initial(LocalBucket(tmp_path / "nowhere"), "dev", cache_dir)


def test_an_env_without_pointer_is_no_model(published: LocalBucket, cache_dir: Path) -> None:
    with pytest.raises(NoModelError, match=r"env prod: no pointer at models/rare-triage/env/prod.json"):
        load_initial(published, "prod", cache_dir)


def test_the_cache_of_another_env_is_not_served(published: LocalBucket, cache_dir: Path) -> None:
    load_version(published, "dev", cache_dir)
    shutil.rmtree(published.root)

    with pytest.raises(NoModelError, match="env prod: no verified model cached"):
        load_initial(published, "prod", cache_dir)


def test_a_tampered_cache_is_not_served(published: LocalBucket, release: Release, cache_dir: Path) -> None:
    load_version(published, "dev", cache_dir)
    shutil.rmtree(published.root)
    cached = cache_dir / release.version / "model.onnx"
    cached.write_bytes(cached.read_bytes() + b"\0")

    with pytest.raises(NoModelError, match=r"cached version .* fails verification: model.onnx \(\d+ bytes"):
        load_initial(published, "dev", cache_dir)
    with pytest.raises(NoModelError, match="fails verification"):
        load_cached("dev", cache_dir)


def rewrite(root: Path, key: str, change: Callable[[bytes], bytes]) -> None:
    path = root.joinpath(*key.split("/"))
    path.write_bytes(change(path.read_bytes()))


def edited_manifest(release: Release, edit: Callable[[dict[str, Any]], object]) -> Release:
    manifest = json.loads(release.manifest_bytes)
    edit(manifest)
    return dataclasses.replace(release, manifest=manifest)


def test_a_tampered_onnx_file_is_refused(published: LocalBucket, release: Release, cache_dir: Path) -> None:
    rewrite(published.root, version_key(release.version, "model.onnx"), lambda data: data[:-1] + b"\x01")

    with pytest.raises(ModelRefusedError, match=r"refused: model.onnx \(\d+ bytes, sha256 \w+\.\.\.\) does not match"):
        load_version(published, "dev", cache_dir)
    assert not cache_marker_path(cache_dir, "dev").exists()


def test_a_tampered_manifest_is_refused(published: LocalBucket, release: Release, cache_dir: Path) -> None:
    edited = edited_manifest(release, lambda m: m["thresholds"].update(orphan=0.9))
    rewrite(published.root, version_key(release.version, "manifest.json"), lambda _: edited.manifest_bytes)

    with pytest.raises(ModelRefusedError, match=r"refused: manifest.json .* does not match its record"):
        load_version(published, "dev", cache_dir)


def test_a_tampered_table_file_is_refused(published: LocalBucket, release: Release, cache_dir: Path) -> None:
    rewrite(
        published.root,
        version_key(release.version, "phenotype_encoding.json"),
        lambda data: data.replace(b"1945", b"1946"),
    )

    with pytest.raises(ModelRefusedError, match=r"refused: phenotype_encoding.json \(\d+ bytes, sha256"):
        load_version(published, "dev", cache_dir)


def test_a_missing_table_file_is_refused(published: LocalBucket, release: Release, cache_dir: Path) -> None:
    (published.root / version_key(release.version, "phenotype_encoding.json")).unlink()

    with pytest.raises(ModelRefusedError, match=r"phenotype_encoding.json is missing from"):
        load_version(published, "dev", cache_dir)


def test_a_pointer_to_another_manifest_is_refused(bucket_root: Path, cache_dir: Path) -> None:
    """The manifest edited and re-published under the same version, the pointer still holding the old hash."""
    put = folder_put(bucket_root)
    release = build_release(seed=0)
    publish(put, release, "dev")
    edited = edited_manifest(release, lambda m: m["metrics"].update(orphan_recall=0.99))
    put(version_key(release.version, "manifest.json"), edited.manifest_bytes)

    with pytest.raises(ModelRefusedError, match=r"manifest\.json"):
        load_version(LocalBucket(bucket_root), "dev", cache_dir)


def format_1(manifest: dict[str, Any]) -> None:
    manifest["format"] = 1
    manifest["phenotype_encoding"] = phenotype_encoding(0)
    del manifest["files"]


def remove(field: str) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest.pop(field)


MANIFEST_EDITS: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "format 1": (format_1, "manifest format 1 is not 2"),
    "format missing": (remove("format"), "manifest format None is not 2"),
    "format true": (lambda m: m.update(format=True), "manifest format True is not 2"),
    "field missing": (remove("input_schema"), "missing field 'input_schema'"),
    "wrong type": (lambda m: m.update(metrics=[]), "field 'metrics' has type list"),
    "other model": (lambda m: m.update(model_name="other"), "model_name 'other' is not 'rare-triage'"),
    "checks failed": (lambda m: m.update(checks_passed=False), "did not pass its blocking checks"),
    "onnx file": (lambda m: m["onnx"].update(file="other.onnx"), "onnx.file is 'other.onnx'"),
    "onnx size": (lambda m: m["onnx"].update(size_bytes=m["onnx"]["size_bytes"] + 1), r"model.onnx \(\d+ bytes"),
    "probabilities": (lambda m: m["onnx"].update(probabilities_output="p"), "probabilities_output 'p' is not one"),
    "version": (lambda m: m.update(mlflow_model_version="7"), "does not match onnx.sha256 and mlflow_model_version"),
    "input name": (lambda m: m["input_schema"].update(input_name="x"), "input_name 'x' differs from onnx.input"),
    "column order": (lambda m: m["input_schema"]["columns"][1].update(index=5), r"columns\[1\]: index 5"),
    "column type": (lambda m: m["input_schema"]["columns"][3].update(type="text"), "type 'text' is neither"),
    "categories": (lambda m: m["input_schema"]["columns"][0].pop("categories"), "missing field 'categories'"),
    "labels": (lambda m: m.update(class_labels=["a", "b"]), "class_labels differ from input_schema.class_labels"),
    "no orphan": (
        lambda m: (m.update(class_labels=["a", "b"]), m["input_schema"].update(class_labels=["a", "b"])),
        "class_labels has no 'orphan' class",
    ),
    "threshold": (lambda m: m["thresholds"].update(orphan=1.5), "thresholds.orphan is 1.5, not a probability"),
    "threshold order": (lambda m: m["thresholds"].update(needs_review=0.5), "needs_review is above thresholds.orphan"),
    "no table": (lambda m: m["files"].clear(), r"files lacks the tables \['phenotype_encoding'\]"),
    "path in file": (
        lambda m: m["files"]["phenotype_encoding"].update(file="../escape.json"),
        "'../escape.json' is not a plain file name",
    ),
    "reserved file": (
        lambda m: m["files"]["phenotype_encoding"].update(file="model.onnx"),
        "'model.onnx' is not a plain file name",
    ),
    "entry fields": (lambda m: m["files"]["phenotype_encoding"].update(extra=1), "an entry is exactly"),
    "size as bool": (lambda m: m["files"]["phenotype_encoding"].update(size_bytes=True), "'size_bytes' has type bool"),
    "table sha": (lambda m: m["files"]["phenotype_encoding"].update(sha256="ABC"), "sha256 is not 64 lowercase hex"),
}


@pytest.mark.parametrize("edit", sorted(MANIFEST_EDITS))
def test_a_manifest_serving_cannot_use_is_refused(bucket_root: Path, cache_dir: Path, edit: str) -> None:
    """Even with its pointer moved consistently (manifest hash recorded): the content itself is checked."""
    change, message = MANIFEST_EDITS[edit]
    release = edited_manifest(build_release(seed=0), change)
    publish(folder_put(bucket_root), release, "dev")

    with pytest.raises(ModelRefusedError) as refused:
        load_version(LocalBucket(bucket_root), "dev", cache_dir)

    assert refused.value.version == release.version
    assert re.search(message, refused.value.reason), refused.value.reason


SMOKE_FAILURES = {
    "raw scores": (dict(onnx_bytes=linear_softmax_model(N_FEATURES, 5, softmax=False)), "probabilities sum to"),
    "missing values": (dict(onnx_bytes=linear_softmax_model(N_FEATURES, 5, impute=False)), "are not finite"),
    "input width": (dict(onnx_bytes=linear_softmax_model(N_FEATURES + 1, 5)), r"not a float32 matrix \[N, 6\]"),
    "classes": (dict(onnx_bytes=linear_softmax_model(N_FEATURES, 4)), r"shape \(1, 4\), not \(1, 5\)"),
    "input name": (dict(onnx_bytes=linear_softmax_model(N_FEATURES, 5, input_name="x")), r"inputs \['x'\]"),
    "not onnx": (dict(onnx_bytes=b"not a model"), "ONNX Runtime: "),
}


@pytest.mark.parametrize("case", sorted(SMOKE_FAILURES))
def test_a_model_failing_its_smoke_prediction_is_refused(bucket_root: Path, cache_dir: Path, case: str) -> None:
    options, message = SMOKE_FAILURES[case]
    release = build_release(**options)  # type: ignore[arg-type]
    publish(folder_put(bucket_root), release, "dev")

    with pytest.raises(ModelRefusedError, match=message):
        load_version(LocalBucket(bucket_root), "dev", cache_dir)
    assert not (cache_dir / release.version).exists()


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        (b"not json", "pointer models/rare-triage/env/dev.json: JSON is malformed"),
        (b'{"env": "dev"}', "Object missing required field `version`"),
        (
            b'{"env":"prod","version":"v1-000000000000","manifest_sha256":"'
            + b"0" * 64
            + b'","onnx_sha256":"'
            + b"0" * 64
            + b'"}',
            "names env 'prod'",
        ),
        (
            b'{"env":"dev","version":"../x","manifest_sha256":"' + b"0" * 64 + b'","onnx_sha256":"' + b"0" * 64 + b'"}',
            "version '../x' is not of the form",
        ),
        (
            b'{"env":"dev","version":"v1-000000000000","manifest_sha256":"x","onnx_sha256":"' + b"0" * 64 + b'"}',
            "manifest_sha256 is not 64 lowercase hex digits",
        ),
    ],
)
def test_an_invalid_pointer_is_reported(bucket_root: Path, cache_dir: Path, pointer: bytes, message: str) -> None:
    folder_put(bucket_root)(pointer_key("dev"), pointer)

    with pytest.raises(PointerInvalidError, match=message):
        load_version(LocalBucket(bucket_root), "dev", cache_dir)


def test_a_second_load_of_the_same_version_keeps_the_cache(
    published: LocalBucket, release: Release, cache_dir: Path
) -> None:
    load_version(published, "dev", cache_dir)
    cached = cache_dir / release.version / "model.onnx"
    before = cached.stat().st_ino

    load_version(published, "dev", cache_dir)

    assert cached.stat().st_ino == before


def test_the_platforms_canonical_json_is_what_the_pointer_hashes(release: Release) -> None:
    """The fixture writes manifests byte for byte as the platform does (sorted keys, indent 2, newline)."""
    assert release.manifest_bytes == canonical_json(json.loads(release.manifest_bytes))
    assert release.manifest_bytes.endswith(b"}\n")


@pytest.mark.integration
def test_load_from_s3_then_from_cache_when_the_endpoint_is_down(
    s3_endpoint: str, s3_bucket_name: str, refused_endpoint: str, cache_dir: Path
) -> None:
    release = build_release(seed=3)
    publish(s3_put(s3_endpoint, s3_bucket_name, "prefix"), release, "prod")

    loaded = load_initial(serving_bucket(s3_endpoint, s3_bucket_name, "prefix"), "prod", cache_dir)
    cached = load_initial(serving_bucket(refused_endpoint, s3_bucket_name, "prefix", timeout_s=1.0), "prod", cache_dir)

    assert (loaded.version, loaded.source) == (release.version, "bucket")
    assert (cached.version, cached.source) == (release.version, "cache")
    rows = np.asarray([[1, 2, 30.0, 38.5, 3, 4.2]], dtype=np.float32)
    np.testing.assert_allclose(cached.predict_proba(rows), loaded.predict_proba(rows))


def test_a_new_pointer_is_followed(bucket_root: Path, cache_dir: Path) -> None:
    put = folder_put(bucket_root)
    first, second = build_release(seed=0), build_release(seed=1, mlflow_model_version="2")
    publish(put, first, "dev")
    publish(put, second, "dev", move_pointer=False)
    bucket = LocalBucket(bucket_root)
    assert load_version(bucket, "dev", cache_dir).version == first.version

    point(put, "dev", second)

    assert load_version(bucket, "dev", cache_dir).version == second.version
    assert json.loads(cache_marker_path(cache_dir, "dev").read_bytes())["pointer"]["version"] == second.version
    assert load_cached("dev", cache_dir).version == second.version


def test_what_the_service_prepares_travels_with_the_model(published: LocalBucket, cache_dir: Path) -> None:
    model = load_version(published, "dev", cache_dir, prepare=lambda loaded: ("encoder of", loaded.version))

    assert model.prepared == ("encoder of", model.version)


def refuse_encoding(model: Any) -> None:
    raise ValueError("phenotype encoding: format 'x' is not 'rare-triage-phenotype-encoding/1'")


def test_a_model_the_service_cannot_prepare_is_refused(published: LocalBucket, cache_dir: Path) -> None:
    with pytest.raises(ModelRefusedError, match=r"refused: prepare: ValueError: phenotype encoding: format"):
        load_version(published, "dev", cache_dir, prepare=refuse_encoding)
    assert not cache_marker_path(cache_dir, "dev").exists()

    load_version(published, "dev", cache_dir)
    with pytest.raises(NoModelError, match="fails verification: prepare: ValueError"):
        load_cached("dev", cache_dir, prepare=refuse_encoding)
