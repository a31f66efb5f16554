"""Who answers for the assets, and where their code is: applied to every asset of the code location at load."""

import warnings

import dagster as dg

# One team owns the platform end to end (data, models, serving); the UI filters and shows assets by this owner.
OWNER = "team:data-platform"


def with_owner(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The spec with the platform team as owner, unless the asset names its own owners."""
    return spec if spec.owners else spec.replace_attributes(owners=[OWNER])


def owned_and_referenced(defs: dg.Definitions) -> dg.Definitions:
    """Every asset owned (`with_owner`) and carrying a code reference to the file and line of its function (the
    UI's "Code" link; the repository has no remote to link to, so the reference is the local path)."""
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition | dg.AssetSpec)]
    if len(assets) != len(list(defs.assets or [])):
        raise TypeError("defs/ holds an asset that is neither an AssetsDefinition nor an AssetSpec")
    with warnings.catch_warnings():
        # code references are a beta API; the warning is repeated once per asset at every load, for no action to take
        warnings.simplefilter("ignore", dg.BetaWarning)
        referenced = dg.with_source_code_references(dg.map_asset_specs(with_owner, assets))
    return dg.Definitions(
        assets=referenced,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        metadata=defs.metadata,
        component_tree=defs.component_tree,
    )
