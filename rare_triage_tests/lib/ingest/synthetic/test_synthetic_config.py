"""Configuration of the synthetic source: defaults and clear errors."""

import datetime as dt

import pytest

from rare_triage.lib.ingest.synthetic import DEFAULT_CENTRES, CentreSpec, DriftScenario, SyntheticConfig


def test_defaults_have_centres_of_every_level_in_several_regions() -> None:
    config = SyntheticConfig()
    assert 8 <= len(config.centres) <= 12
    assert {centre.level for centre in config.centres} == {"primary", "secondary", "tertiary"}
    assert len({centre.region for centre in config.centres}) >= 3
    assert config.encounters_per_day == 2000
    assert config.error_rate == pytest.approx(0.002)
    assert config.centres == DEFAULT_CENTRES


@pytest.mark.parametrize(
    ("field", "value"),
    [("encounters_per_day", -1), ("population_size", 0), ("orphan_share", 0.5), ("error_rate", 0.5), ("seed", -3)],
)
def test_config_rejects_out_of_range_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"SyntheticConfig.{field}"):
        SyntheticConfig(**{field: value})


def test_centre_and_drift_validation_name_the_problem() -> None:
    with pytest.raises(ValueError, match="level 'quaternary'"):
        CentreSpec("C99", "quaternary", "Madrid")
    with pytest.raises(ValueError, match="drift kind 'volcano'"):
        DriftScenario("volcano", dt.date(2025, 1, 1))
    with pytest.raises(ValueError, match=r"params \['centre_id'\] are required"):
        DriftScenario("thermometer_offset", dt.date(2025, 1, 1), {"offset_c": 1.0})
    with pytest.raises(ValueError, match="centre_id 'C77' is unknown"):
        SyntheticConfig(drift=(DriftScenario("thermometer_offset", dt.date(2025, 1, 1), {"centre_id": "C77"}),))
    with pytest.raises(ValueError, match="duplicate centre ids"):
        SyntheticConfig(
            drift=(
                DriftScenario(
                    "new_centre", dt.date(2025, 1, 1), {"centre_id": "C01", "level": "primary", "region": "Madrid"}
                ),
            )
        )


def test_drift_is_active_from_its_start_day() -> None:
    scenario = DriftScenario("case_mix", dt.date(2025, 3, 1), {"acute_multiplier": 2.0})
    assert not scenario.active(dt.date(2025, 2, 28))
    assert scenario.active(dt.date(2025, 3, 1))
    config = SyntheticConfig(drift=(scenario,))
    assert config.active_drift(dt.date(2025, 3, 2), "case_mix") == [scenario]
    assert config.active_drift(dt.date(2025, 2, 2), "case_mix") == []


def test_new_centre_joins_on_its_start_day() -> None:
    scenario = DriftScenario(
        "new_centre", dt.date(2025, 3, 1), {"centre_id": "C13", "level": "tertiary", "region": "Andalucía"}
    )
    config = SyntheticConfig(drift=(scenario,))
    assert "C13" not in {centre.centre_id for centre in config.centres_on(dt.date(2025, 2, 28))}
    assert "C13" in {centre.centre_id for centre in config.centres_on(dt.date(2025, 3, 1))}
