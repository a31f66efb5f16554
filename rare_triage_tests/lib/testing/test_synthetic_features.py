import pandas as pd
import pytest

from rare_triage.lib import schema
from rare_triage.lib.features.build import features_table_columns
from rare_triage.lib.testing.synthetic_features import PhenotypeLayout, synthesize_features


def test_columns_are_the_features_table_in_order(features: pd.DataFrame, layout: PhenotypeLayout) -> None:
    assert list(features.columns) == features_table_columns(list(layout.vocabulary["hpo_id"]), list(layout.system_ids))


def test_orphan_share_days_and_determinism(layout: PhenotypeLayout) -> None:
    frame = synthesize_features(20000, n_days=5, seed=1, orphan_share=0.03, layout=layout)
    assert frame["label"].eq(schema.ORPHAN_LABEL).mean() == pytest.approx(0.03, abs=0.005)
    assert frame["partition_day"].nunique() == 5 and frame["partition_day"].is_monotonic_increasing
    assert frame["encounter_key"].is_unique
    pd.testing.assert_frame_equal(
        frame.head(50), synthesize_features(20000, n_days=5, seed=1, orphan_share=0.03, layout=layout).head(50)
    )


def test_orphans_involve_more_systems_but_overlap(features: pd.DataFrame) -> None:
    systems = features.groupby("label")["n_systems_involved"]
    assert systems.mean()["orphan"] > systems.mean()["common_chronic"]
    assert systems.quantile(0.25)["orphan"] <= systems.quantile(0.75)["common_acute"]


def test_flags_are_one_zero_or_unknown(features: pd.DataFrame) -> None:
    flags = features[[c for c in features.columns if c.startswith(("hpo_", "sys_"))]]
    assert flags.stack().isin([0.0, 1.0]).all()  # stack() drops NaN: what is left is 0 or 1
    assert flags.isna().to_numpy().any()


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="orphan_share"):
        synthesize_features(10, orphan_share=0.0)
