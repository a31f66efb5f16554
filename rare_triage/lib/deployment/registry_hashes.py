"""The hashes of a published version as tags of its model registry version: a record outside the bucket.

Set once at publication; promotion and rollback compare the bucket's files with them, so editing a manifest
(and even its pointer) in the bucket is caught.
"""

from collections.abc import Mapping

from rare_triage.lib.deployment.publication import IntegrityError, PublishedVersion, RecordedHashes

MANIFEST_SHA256_TAG = "bucket_manifest_sha256"
ONNX_SHA256_TAG = "bucket_onnx_sha256"
VERSION_TAG = "bucket_version"


def hash_tags(published: PublishedVersion) -> dict[str, str]:
    """The tags recording `published` on its registry version."""
    return {
        VERSION_TAG: published.version,
        MANIFEST_SHA256_TAG: published.manifest_sha256,
        ONNX_SHA256_TAG: published.onnx_sha256,
    }


def tags_to_set(existing: Mapping[str, str], published: PublishedVersion, source: str) -> dict[str, str]:
    """The hash tags still missing on a registry version; IntegrityError when it already records other hashes."""
    wanted = hash_tags(published)
    differing = sorted(k for k, v in wanted.items() if k in existing and existing[k] != v)
    if differing:
        raise IntegrityError(
            f"version {published.version}: {source} already records other values for {differing}; "
            "the bucket's files differ from what was published first"
        )
    return {k: v for k, v in wanted.items() if k not in existing}


def recorded_in_tags(tags: Mapping[str, str], source: str) -> RecordedHashes | None:
    """The hashes a registry version's tags record, or None when it carries none (published before the tags)."""
    if MANIFEST_SHA256_TAG not in tags and ONNX_SHA256_TAG not in tags:
        return None
    return RecordedHashes(source, tags.get(MANIFEST_SHA256_TAG), tags.get(ONNX_SHA256_TAG))
