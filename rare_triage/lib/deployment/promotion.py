"""Gated promotion of the dev model to prod, and rollback of any env to an earlier published version.

The gate: the challenger (what dev serves) passed every blocking check, and its orphan recall and
external-validation share are not worse than the champion's (what prod serves) minus a tolerance.
Every file is verified against the hashes recorded when it was published: by the pointers (the source env's for
a promotion, any pointer naming the version for a rollback) and by the model registry. MLflow stays out of this
module: the caller injects how to set the `champion` alias and how to read the registry's hashes.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rare_triage.lib.deployment.bucket import Bucket
from rare_triage.lib.deployment.metric_names import METRIC_EXTERNAL_VALIDATION_SHARE, METRIC_ORPHAN_RECALL
from rare_triage.lib.deployment.publication import (
    VERSION_PATTERN,
    IntegrityError,
    Pointer,
    RecordedHashes,
    env_pointers,
    move_pointer,
    pointer_key,
    read_pointer,
    verify_version,
)

DEV, PROD = "dev", "prod"
CHAMPION_ALIAS = "champion"
GATED_METRICS = (METRIC_ORPHAN_RECALL, METRIC_EXTERNAL_VALIDATION_SHARE)

# Called with the manifest of the version now served in prod; sets the registry alias on its model version.
AliasSetter = Callable[[Mapping[str, Any]], None]
# Called with a registry model version (the N of v<N>-...); the hashes the registry recorded at publication, or None.
RegistryHashes = Callable[[str], RecordedHashes | None]


def registry_version(version: str) -> str | None:
    """The model registry version a bucket version names (`v3-...` -> "3"); None for unregistered `v0-...`."""
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"version: {version!r} is not of the form v<N>-<12 hex digits>")
    number = version[1:].split("-", 1)[0]
    return None if int(number) == 0 else number


def recorded_hashes(
    version: str,
    registry: RegistryHashes | None,
    pointers: Sequence[Pointer] = (),
    previous_of: Sequence[Pointer] = (),
) -> list[RecordedHashes]:
    """Every record of `version`'s hashes: the registry's, `pointers` naming it, `previous_of` pointers that
    replaced it."""
    number = registry_version(version)
    records = [registry(number)] if registry is not None and number is not None else []
    records += [p.record() for p in pointers if p.version == version]
    records += [
        RecordedHashes(f"pointer {pointer_key(p.env)} (as its previous version)", p.previous_manifest_sha256)
        for p in previous_of
        if p.previous_version == version and p.previous_manifest_sha256
    ]
    return [r for r in records if r is not None]


@dataclass(frozen=True)
class GateResult:
    """Whether the challenger may replace the champion, and why."""

    passed: bool
    challenger: str
    champion: str | None
    reasons: list[str] = field(default_factory=list)
    comparisons: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class PromotionResult:
    """The gate's verdict and, when promoted, the new prod pointer."""

    promoted: bool
    gate: GateResult
    pointer: Pointer | None
    alias_set: bool = False


def _metric(manifest: Mapping[str, Any], name: str) -> float | None:
    value = manifest.get("metrics", {}).get(name)
    return float(value) if isinstance(value, int | float) else None


def promotion_gate(challenger: Mapping[str, Any], champion: Mapping[str, Any] | None, tolerance: float) -> GateResult:
    """Compare two manifests; every failed condition is listed in `reasons`, passed or not."""
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance: {tolerance} must be in [0, 1)")
    reasons: list[str] = []
    failed = False
    if challenger.get("checks_passed") is not True:
        failed = True
        reasons.append(
            f"challenger {challenger['version']}: blocking checks did not all pass ({challenger.get('checks')})"
        )
    comparisons: dict[str, dict[str, float | None]] = {}
    for name in GATED_METRICS:
        mine = _metric(challenger, name)
        theirs = _metric(champion, name) if champion is not None else None
        comparisons[name] = {"challenger": mine, "champion": theirs, "minimum": None}
        if mine is None:
            failed = True
            reasons.append(f"challenger has no metric {name!r}")
        elif champion is not None and theirs is None:
            failed = True
            reasons.append(f"champion {champion['version']} has no metric {name!r}: cannot compare")
        elif theirs is not None:
            minimum = theirs - tolerance
            comparisons[name]["minimum"] = minimum
            if mine < minimum:
                failed = True
                reasons.append(f"{name}: challenger {mine:.4f} < champion {theirs:.4f} - tolerance {tolerance}")
            else:
                reasons.append(f"{name}: challenger {mine:.4f} >= champion {theirs:.4f} - tolerance {tolerance}")
    if champion is None:
        reasons.append("no champion yet: first promotion to prod")
    return GateResult(
        passed=not failed,
        challenger=str(challenger["version"]),
        champion=str(champion["version"]) if champion is not None else None,
        reasons=reasons,
        comparisons=comparisons,
    )


def _set_alias(manifest: Mapping[str, Any], set_alias: AliasSetter | None) -> bool:
    if set_alias is None or manifest.get("mlflow_model_version") is None:
        return False
    set_alias(manifest)
    return True


def promote(  # noqa: PLR0917 - positional bucket and tolerance, the rest by keyword in practice
    bucket: Bucket,
    tolerance: float,
    set_alias: AliasSetter | None = None,
    source_env: str = DEV,
    target_env: str = PROD,
    registry: RegistryHashes | None = None,
) -> PromotionResult:
    """Move `target_env` to the version `source_env` serves if the gate passes, then set the champion alias.

    Challenger and champion are verified against their pointers' and the registry's hashes before the gate reads
    their manifests. The pointer moves first (it is what serving follows); the alias is set only after it moved.
    """
    bucket.check_exists()
    source = read_pointer(bucket, source_env)
    if source is None:
        raise IntegrityError(f"promote: env {source_env} serves no model yet; publish one first")
    records = recorded_hashes(source.version, registry, [source])
    _, challenger = verify_version(bucket, source.version, records)
    target = read_pointer(bucket, target_env)
    if target is not None and target.version == source.version:
        gate = GateResult(False, source.version, target.version, [f"{target_env} already serves {source.version}"])
        return PromotionResult(promoted=False, gate=gate, pointer=target)
    champion = None
    if target is not None:
        champion = verify_version(bucket, target.version, recorded_hashes(target.version, registry, [target]))[1]
    gate = promotion_gate(challenger, champion, tolerance)
    if not gate.passed:
        return PromotionResult(promoted=False, gate=gate, pointer=target)
    pointer = move_pointer(bucket, target_env, source.version, records=records)
    return PromotionResult(promoted=True, gate=gate, pointer=pointer, alias_set=_set_alias(challenger, set_alias))


def rollback(
    bucket: Bucket,
    env: str,
    version: str,
    set_alias: AliasSetter | None = None,
    registry: RegistryHashes | None = None,
) -> Pointer:
    """Point `env` back at an earlier published `version`; no gate, a deliberate human act.

    The version is verified against every record of its hashes (registry, pointers naming it, the env's previous
    version) and refused when nothing recorded them: an unrecorded manifest could have been edited.
    """
    bucket.check_exists()
    pointers = env_pointers(bucket)
    records = recorded_hashes(version, registry, pointers, [p for p in pointers if p.env == env])
    _, manifest = verify_version(bucket, version, records)
    if not records:
        raise IntegrityError(
            f"version {version}: no recorded hashes to verify it against (the model registry records none and "
            "no pointer names it); promote it through dev instead"
        )
    pointer = move_pointer(bucket, env, version, records=records)
    if env == PROD:
        _set_alias(manifest, set_alias)
    return pointer
