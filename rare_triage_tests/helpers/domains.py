"""The assets and checks of one folder of `defs/`, for tests that wire a domain next to stand-ins of its inputs."""

from types import ModuleType

import dagster as dg


def domain_assets(package: ModuleType) -> list[dg.AssetsDefinition]:
    """Every asset defined under `package` (a folder of rare_triage.defs)."""
    return [a for a in dg.load_assets_from_package_module(package) if isinstance(a, dg.AssetsDefinition)]


def domain_checks(package: ModuleType) -> list[dg.AssetChecksDefinition]:
    """Every asset check defined under `package`, outside the assets' own check specs."""
    return list(dg.load_asset_checks_from_package_module(package))
