"""Which encounters a problem-list Condition is active at: the patient's encounters on or after its onset."""

import datetime as dt
from typing import Any, Final

from rare_triage.lib.ingest.fhir.bundle import codes_in, to_day

ACTIVE_CLINICAL_STATUSES: Final = frozenset({"active", "recurrence", "relapse"})


def is_active(condition: Any) -> bool:
    """clinicalStatus active, recurrence or relapse (or not stated)."""
    statuses = set(codes_in([condition.clinicalStatus]))
    return not statuses or bool(statuses & ACTIVE_CLINICAL_STATUSES)


def onset_day(condition: Any) -> dt.date | None:
    """The day of ``onsetDateTime`` / ``onsetPeriod.start`` (else ``recordedDate``), None when unknown."""
    period = condition.onsetPeriod
    return to_day(condition.onsetDateTime or (period.start if period else None) or condition.recordedDate)


def abatement_day(condition: Any) -> dt.date | None:
    period = condition.abatementPeriod
    return to_day(condition.abatementDateTime or (period.start if period else None))


def problem_encounters(
    condition: Any, patient_encounters: list[tuple[str, dt.date]], recorded_at: str | None = None
) -> list[str]:
    """Encounter ids, in order, dated on or after the onset and before any abatement (plus ``recorded_at``)."""
    if not is_active(condition):
        return []
    onset, abatement = onset_day(condition), abatement_day(condition)
    chosen = [
        encounter_id
        for encounter_id, day in patient_encounters
        if (onset is None or day >= onset) and (abatement is None or day < abatement)
    ]
    if recorded_at is not None and recorded_at not in chosen:
        chosen.insert(0, recorded_at)
    return chosen
