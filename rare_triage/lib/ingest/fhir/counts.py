"""Counts of one FHIR import (numbers only, never a value): centres filled in, problem list, HPO mapping."""

from dataclasses import asdict, dataclass
from typing import Any, Protocol


class _Centre(Protocol):
    @property
    def level_inferred(self) -> bool: ...
    @property
    def region_unknown(self) -> bool: ...
    @property
    def id_unknown(self) -> bool: ...


@dataclass
class ImportCounts:
    """What an import did beyond copying values; ``add`` sums the counts of several Bundles or files."""

    encounters: int = 0
    encounters_with_finding: int = 0  # encounters with at least one present symptom row
    centre_unknown: int = 0
    centre_level_inferred: int = 0
    region_unknown: int = 0
    observations_unlinked: int = 0  # no Encounter reference and no same-day encounter of the patient
    findings_seen: int = 0  # Observations / Conditions coded in SNOMED CT, ICD-10 or UMLS (not vitals)
    findings_mapped: int = 0  # ... of which at least one code has an HPO cross-reference
    codes_seen: int = 0  # SNOMED CT / ICD-10 / UMLS codings of those findings
    codes_mapped: int = 0
    problem_list_seen: int = 0  # problem-list-item Conditions, or Conditions with no encounter
    problem_list_attached: int = 0  # ... active and attached to at least one encounter
    problem_list_without_icd10: int = 0  # ... attached but with no ICD-10 code (no comorbidity row)
    comorbidity_rows: int = 0
    observations_left_out: int = 0  # Observations of a rejected encounter, left out with it
    conditions_left_out: int = 0  # Conditions of a rejected encounter attached to no other, left out with it
    centre_resources_invalid: int = 0  # Organizations / Locations that fail validation (the centre id still reads)
    resources_repeated: int = 0  # a bare resource repeated, unchanged, in the NDJSON files of a day (read once)

    @property
    def mapped_share(self) -> float:
        """Share of findings mapped to HPO (0 when none was seen)."""
        return self.findings_mapped / self.findings_seen if self.findings_seen else 0.0

    def add_centre(self, centre: _Centre) -> None:
        self.centre_unknown += centre.id_unknown
        self.centre_level_inferred += centre.level_inferred
        self.region_unknown += centre.region_unknown

    def add_finding(self, codes_seen: int, codes_mapped: int) -> None:
        self.findings_seen += 1
        self.findings_mapped += codes_mapped > 0
        self.codes_seen += codes_seen
        self.codes_mapped += codes_mapped

    def add(self, other: "ImportCounts") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mapped_share": round(self.mapped_share, 4)}
