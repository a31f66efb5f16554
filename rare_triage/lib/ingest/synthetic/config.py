"""Configuration of the synthetic EHR source: population, centres, volumes, errors and drift."""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from rare_triage.lib.schema import CENTRE_LEVELS

DRIFT_KINDS: Final = ("thermometer_offset", "case_mix", "new_centre")


@dataclass(frozen=True)
class CentreSpec:
    """One care centre; ``capacity`` is its relative share of the visits of its level."""

    centre_id: str
    level: str
    region: str
    capacity: float = 1.0
    spo2_loinc: str = "59408-5"

    def __post_init__(self) -> None:
        if self.level not in CENTRE_LEVELS:
            raise ValueError(f"centre {self.centre_id}: level {self.level!r} is not one of {CENTRE_LEVELS}")
        if self.capacity <= 0:
            raise ValueError(f"centre {self.centre_id}: capacity must be > 0, got {self.capacity}")


@dataclass(frozen=True)
class DriftScenario:
    """A change in the source from ``start`` (inclusive) on; no effect before.

    kinds and params:
    - ``thermometer_offset``: ``centre_id``, ``offset_c`` (added to that centre's temperatures, default 0.8).
    - ``case_mix``: ``acute_multiplier`` (odds of acute visits, default 1.5), ``orphan_multiplier`` (visit rate of
      orphan patients, default 1.0).
    - ``new_centre``: ``centre_id``, ``level``, ``region``, optional ``capacity`` (1.0): a centre that starts sending.
    """

    kind: str
    start: dt.date
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"drift kind {self.kind!r} is not one of {DRIFT_KINDS}")
        if not isinstance(self.start, dt.date):
            raise ValueError(f"drift {self.kind}: start must be a date, got {self.start!r}")
        required = {"thermometer_offset": ("centre_id",), "new_centre": ("centre_id", "level", "region")}
        missing = [name for name in required.get(self.kind, ()) if name not in self.params]
        if missing:
            raise ValueError(f"drift {self.kind}: params {missing} are required")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def active(self, day: dt.date) -> bool:
        """True from the start day on."""
        return day >= self.start


DEFAULT_CENTRES: Final = (
    CentreSpec("C01", "primary", "Madrid", 1.4),
    CentreSpec("C02", "primary", "Madrid", 1.0),
    CentreSpec("C03", "secondary", "Madrid", 1.2),
    CentreSpec("C04", "tertiary", "Madrid", 1.5, spo2_loinc="2708-6"),
    CentreSpec("C05", "primary", "Cataluña", 1.3),
    CentreSpec("C06", "secondary", "Cataluña", 1.0),
    CentreSpec("C07", "tertiary", "Cataluña", 1.2),
    CentreSpec("C08", "primary", "Andalucía", 1.4),
    CentreSpec("C09", "primary", "Andalucía", 0.8),
    CentreSpec("C10", "secondary", "Andalucía", 1.1),
    CentreSpec("C11", "primary", "Galicia", 0.8),
    CentreSpec("C12", "secondary", "Galicia", 0.7),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """What the synthetic source generates; the same (seed, day) always gives the same extract."""

    seed: int = 0
    encounters_per_day: int = 2000  # mean on a weekday of average season, before drift
    population_size: int = 200_000  # persistent patients; each visits about encounters_per_day*365/size times a year
    # share of the population living with an orphan disease whose visits show it: below the 3.5-5.9% point
    # prevalence of rare diseases estimated from Orphanet (Nguengang Wakap et al., Eur J Hum Genet 2020;28:165-173),
    # since many rare diseases are mild or unrecognised at a visit; about 2.5% of encounters end up orphan, so a
    # 7-day window holds about 300 orphan encounters at 2,000 encounters a day
    orphan_share: float = 0.02
    error_rate: float = 0.002  # share of encounters carrying one realistic error; 0 gives clean data
    weekend_factor: float = 0.45  # Saturday/Sunday volume relative to weekdays
    seasonal_amplitude: float = 0.12  # winter peak of volume, relative
    reference_date: dt.date = dt.date(2025, 1, 1)  # patients' ages are defined on this date
    centres: tuple[CentreSpec, ...] = DEFAULT_CENTRES
    drift: tuple[DriftScenario, ...] = ()

    def __post_init__(self) -> None:
        checks = {
            "seed": self.seed >= 0,
            "encounters_per_day": self.encounters_per_day >= 0,
            "population_size": self.population_size >= 1,
            "orphan_share": 0.0 <= self.orphan_share <= 0.2,
            "error_rate": 0.0 <= self.error_rate <= 0.1,
            "weekend_factor": 0.0 <= self.weekend_factor <= 2.0,
            "seasonal_amplitude": 0.0 <= self.seasonal_amplitude < 1.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SyntheticConfig.{name}: value {getattr(self, name)!r} is out of range")
        ids = [centre.centre_id for centre in self.centres]
        ids += [str(d.params["centre_id"]) for d in self.drift if d.kind == "new_centre"]
        if len(ids) != len(set(ids)):
            raise ValueError(f"SyntheticConfig.centres: duplicate centre ids in {ids}")
        for level in ("primary",):
            if not any(centre.level == level for centre in self.centres):
                raise ValueError(f"SyntheticConfig.centres: need at least one {level} centre")
        known = set(ids)
        for scenario in self.drift:
            if scenario.kind == "thermometer_offset" and scenario.params["centre_id"] not in known:
                raise ValueError(f"drift thermometer_offset: centre_id {scenario.params['centre_id']!r} is unknown")

    def active_drift(self, day: dt.date, kind: str) -> list[DriftScenario]:
        """Scenarios of ``kind`` in force on ``day``."""
        return [scenario for scenario in self.drift if scenario.kind == kind and scenario.active(day)]

    def centres_on(self, day: dt.date) -> tuple[CentreSpec, ...]:
        """The configured centres plus new centres whose drift has started."""
        added = tuple(
            CentreSpec(
                str(s.params["centre_id"]),
                str(s.params["level"]),
                str(s.params["region"]),
                float(s.params.get("capacity", 1.0)),
                str(s.params.get("spo2_loinc", "59408-5")),
            )
            for s in self.active_drift(day, "new_centre")
        )
        return self.centres + added
