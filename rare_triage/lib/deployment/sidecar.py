"""Large tables of a version as immutable files next to its manifest, named with their sha256 in `files`.

The manifest stays small (what a reviewer reads, what every move hashes); a table's file is canonical JSON, so
the same table always gives the same bytes, and it is trusted only once its bytes match the manifest's entry.
"""

import json
from collections.abc import Mapping
from typing import Any

from rare_triage.lib.deployment.manifest import ManifestError, sha256_hex, validate_file_name


def sidecar_bytes(table: Mapping[str, Any], name: str = "table") -> bytes:
    """Canonical compact JSON of `table` (sorted keys, UTF-8, no NaN, trailing newline): equal tables, equal bytes."""
    try:
        text = json.dumps(table, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        raise ManifestError(f"{name}: {exc} (NaN or infinity in a value)") from exc
    return (text + "\n").encode("utf-8")


def build_sidecar(name: str, table: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The manifest's `files` entry of table `name` (file `<name>.json`) and the file's bytes."""
    data = sidecar_bytes(table, name)
    entry = {"file": validate_file_name(f"{name}.json"), "sha256": sha256_hex(data), "size_bytes": len(data)}
    return entry, data


def load_sidecar(version: str, entry: Mapping[str, Any], data: bytes) -> dict[str, Any]:
    """The table in `data`, once its size and sha256 match the manifest's `entry`; else ManifestError naming the
    version, the file and what differs."""
    where = f"{version}/{entry['file']}"
    digest = sha256_hex(data)
    if (len(data), digest) != (entry["size_bytes"], entry["sha256"]):
        raise ManifestError(
            f"{where} ({len(data)} bytes, sha256 {digest[:12]}...) does not match its manifest entry "
            f"({entry['size_bytes']} bytes, sha256 {str(entry['sha256'])[:12]}...)"
        )
    try:
        table = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{where}: not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(table, dict):
        raise ManifestError(f"{where}: top level is not an object")
    return table
