"""A reviewable snapshot of the code location from `dg list defs --json`: keys, groups, checks, jobs, schedules,
sensors and resources, sorted; a resource is named by its class, not by the module that defines it, and an asset's
code reference by its file, not its line (an edit above the asset moves the line, not the asset)."""

import json
from typing import Any

SORT_KEYS = {"assets": "asset_key", "asset_checks": "key", "jobs": "name", "resources": "name"}


def normalized_snapshot(listing: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """`listing` (dg list defs --json) with every list sorted and resource types reduced to class names."""
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for section, entries in listing.items():
        rows = [dict(entry) for entry in entries]
        if section == "resources":
            for row in rows:
                row["type"] = str(row["type"]).rsplit(".", 1)[-1]
        for row in rows:
            if "source" in row:
                row["source"] = str(row["source"]).rsplit(":", 1)[0]
        snapshot[section] = sorted(rows, key=lambda row: json.dumps(row.get(SORT_KEYS.get(section, "name"), row)))
    return snapshot


if __name__ == "__main__":
    import sys
    from pathlib import Path

    # python -m rare_triage_tests.defs.snapshot < listing.json: rewrite the fixture after a reviewed change
    target = Path(__file__).resolve().parents[1] / "fixtures" / "definitions" / "dg_list_defs.json"
    target.write_text(json.dumps(normalized_snapshot(json.load(sys.stdin)), indent=2, sort_keys=True) + "\n")
