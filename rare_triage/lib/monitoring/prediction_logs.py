"""Shipped prediction logs -> one row per logged prediction, and the lines that are not predictions.

The service writes one JSON object per line (`serving/prediction_log.py`, `PredictionRecord`); the platform does not
import serving, so the line's contract is restated here, strictly: an unknown field, a wrong type, a probability
label missing, probabilities not summing to 1, a timestamp not in UTC or a malformed `patient_key` refuse the line.
A last line without its newline is a write cut short: counted as truncated, refused, never parsed.

Privacy: a refused line may hold anything, so it is kept as its sha256 and length only; a reason names the field
and the problem, never a value of the line (an unknown field is not named either: its name is text of the line).
"""

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Final, Literal, get_args

import msgspec
import numpy as np
import pandas as pd

from rare_triage.lib import schema
from rare_triage.lib.governance.validation import MAX_AGE_YEARS, SEVERITY_RANGE

PROBABILITY_TOLERANCE: Final = 1e-3
TRUNCATED_REASON: Final = "truncated last line"
PATIENT_KEY_REASON: Final = "patient_key: not 32 lowercase hex characters"
PROBABILITY_COLUMNS: Final = tuple(f"p_{label}" for label in schema.LABELS)
RECORD_COLUMNS: Final = (
    "source",
    "line_number",
    "timestamp",
    "request_id",
    "model_version",
    "patient_key",
    "input_kind",
    "predicted_class",
    "orphan_flag",
    "needs_review",
    "latency_ms",
    *PROBABILITY_COLUMNS,
    "inputs",
)
REJECTED_COLUMNS: Final = ("source", "line_number", "reason", "line_sha256", "line_bytes")

ENCOUNTER: Final = "encounter"  # POST /v1/predict, /predict/batch, /predict/fhir: serving's `Encounter`
PUBLISHED_CASE: Final = "published_case"  # POST /v1/predict/phenopacket: serving's `PublishedCase`
PHENOPACKET_SEXES: Final = ("MALE", "FEMALE", "UNKNOWN_SEX", "OTHER_SEX")
CASE_ONLY_FIELDS: Final = ("age",)
SHARED_FIELDS: Final = ("sex", "hpo_observed", "hpo_excluded")
MAX_HPO_TERMS: Final = 256
MAX_COMORBIDITIES: Final = 1_000
ISO8601_AGE_PATTERN: Final = (
    r"^P(?=\d)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?\Z"
)

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Label = Literal["none", "common_mild", "common_acute", "common_chronic", "orphan"]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


def _vital(name: str) -> msgspec.Meta:
    low, high = next((low, high) for feature, _unit, low, high in schema.VITAL_LOINC.values() if feature == name)
    return msgspec.Meta(ge=low, le=high)


Score = Annotated[float, msgspec.Meta(ge=SEVERITY_RANGE[0], le=SEVERITY_RANGE[1])]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
HpoIds = Annotated[list[str], msgspec.Meta(max_length=MAX_HPO_TERMS)]  # ids checked by _check_hpo_ids (cached)


class LoggedInputs(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True, gc=False):
    """A line's `inputs`: the fields of serving's `Encounter` or of its `PublishedCase` (`age`, phenopacket sex),
    with the platform's vocabularies and ranges; a field left out is None (HPO lists: empty)."""

    sex: Literal["F", "M", "U", "MALE", "FEMALE", "UNKNOWN_SEX", "OTHER_SEX"] | None = None
    age_years: Annotated[float, msgspec.Meta(ge=0, le=MAX_AGE_YEARS)] | None = None
    age: Annotated[str, msgspec.Meta(pattern=ISO8601_AGE_PATTERN, max_length=32)] | None = None
    centre_id: Text | None = None
    centre_level: Literal["primary", "secondary", "tertiary"] | None = None
    region: Text | None = None
    consultation_type: (
        Literal["primary_care", "emergency", "outpatient_specialist", "inpatient", "telehealth"] | None
    ) = None
    temperature_c: Annotated[float, _vital("temperature_c")] | None = None
    heart_rate: Annotated[float, _vital("heart_rate")] | None = None
    respiratory_rate: Annotated[float, _vital("respiratory_rate")] | None = None
    spo2: Annotated[float, _vital("spo2")] | None = None
    systolic_bp: Annotated[float, _vital("systolic_bp")] | None = None
    diastolic_bp: Annotated[float, _vital("diastolic_bp")] | None = None
    fever_score: Score | None = None
    pain_score: Score | None = None
    symptom_duration_days: Annotated[float, msgspec.Meta(ge=0)] | None = None
    prior_visits_365d: Annotated[int, msgspec.Meta(ge=0)] | None = None
    comorbidity_count: Annotated[int, msgspec.Meta(ge=0, le=MAX_COMORBIDITIES)] | None = None
    hpo_observed: HpoIds = msgspec.field(default_factory=list)
    hpo_excluded: HpoIds = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.systolic_bp is not None and self.diastolic_bp is not None and self.systolic_bp < self.diastolic_bp:
            raise ValueError("systolic_bp: below diastolic_bp")


def input_kind(inputs: LoggedInputs) -> str:
    """ENCOUNTER or PUBLISHED_CASE. A case is told by its `age` or a phenopacket sex; inputs holding only an F/M/U
    sex and HPO lists fit both and are read as an encounter (the line does not say which endpoint logged it).
    ValueError naming the fields when encounter and case fields are mixed."""
    case = inputs.age is not None or inputs.sex in PHENOPACKET_SEXES
    if not case:
        return ENCOUNTER
    encounter_fields = [
        name
        for name in LoggedInputs.__struct_fields__
        if name not in (*SHARED_FIELDS, *CASE_ONLY_FIELDS) and getattr(inputs, name) is not None
    ]
    if encounter_fields:
        raise ValueError(f"case fields (age, phenopacket sex) mixed with encounter field(s) {encounter_fields}")
    return PUBLISHED_CASE


class Probabilities(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """The class probabilities of a line, one per label of `schema.LABELS`."""

    none: Probability
    common_mild: Probability
    common_acute: Probability
    common_chronic: Probability
    orphan: Probability


class LogLine(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """One line of a prediction log (serving's `PredictionRecord`, plus the optional patient pseudonym)."""

    timestamp: dt.datetime
    request_id: Identifier
    model_version: Identifier
    inputs: msgspec.Raw
    probabilities: Probabilities
    predicted_class: Label
    orphan_flag: bool
    needs_review: bool
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)]
    patient_key: Annotated[str, msgspec.Meta(min_length=32, max_length=32)] | None = None  # and lowercase hex


if Probabilities.__struct_fields__ != schema.LABELS or get_args(Label) != schema.LABELS:
    raise RuntimeError("prediction_logs: the probability labels are out of step with schema.LABELS")

_LINE: Final = msgspec.json.Decoder(LogLine)
_INPUTS: Final = msgspec.json.Decoder(LoggedInputs)
_HPO_ID: Final = re.compile(r"HP:\d{7}")
_HEX_DIGITS: Final = "0123456789abcdef"
# Well-formed HPO ids already seen (a regex per id costs a third of the throughput); a few thousand in practice.
_valid_hpo_ids: set[str] = set()
_AT: Final = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_TYPES: Final = re.compile(r"^Expected `(?P<expected>[a-z0-9 |]+)`, got `(?P<got>[a-z]+)`$")
_MISSING: Final = re.compile(r"^Object missing required field `(?P<name>[a-z_0-9]+)`$")


@dataclass(frozen=True)
class ParsedLog:
    """`records`: one row per valid line (RECORD_COLUMNS); `rejected`: one row per refused line
    (REJECTED_COLUMNS, the truncated last line included). lines_read = parsed + n_rejected + duplicates_dropped."""

    records: pd.DataFrame
    rejected: pd.DataFrame
    lines_read: int
    truncated: int
    duplicates_dropped: int = 0

    @property
    def parsed(self) -> int:
        return len(self.records)

    @property
    def n_rejected(self) -> int:
        return len(self.rejected)


def parse_prediction_log(data: bytes, *, source: str) -> ParsedLog:
    """The records and refused lines of one log file's bytes; `source` (e.g. the bucket key) goes on every row."""
    lines = data.split(b"\n")
    last = lines.pop()
    accepted: list[tuple[int, LogLine, str]] = []
    refused: list[tuple[int, str, bytes]] = []
    for number, line in enumerate(lines, start=1):
        outcome = _read_line(line)
        if isinstance(outcome, str):
            refused.append((number, outcome, line))
        else:
            accepted.append((number, *outcome))
    if last:
        refused.append((len(lines) + 1, TRUNCATED_REASON, last))
    return ParsedLog(
        records=_records_frame(accepted, source),
        rejected=_rejected_frame(refused, source),
        lines_read=len(lines) + (1 if last else 0),
        truncated=1 if last else 0,
    )


def read_shipped_logs(objects: Iterable[tuple[str, bytes]]) -> ParsedLog:
    """`parse_prediction_log` of several (key, bytes) objects, the key as source; a request id seen again (a file
    shipped twice) keeps its first row and counts in `duplicates_dropped`."""
    parts = [parse_prediction_log(data, source=key) for key, data in objects]
    records = pd.concat([p.records for p in parts], ignore_index=True) if parts else _records_frame([], "")
    rejected = pd.concat([p.rejected for p in parts], ignore_index=True) if parts else _rejected_frame([], "")
    repeated = records["request_id"].duplicated(keep="first").to_numpy()
    return ParsedLog(
        records=records[~repeated].reset_index(drop=True),
        rejected=rejected,
        lines_read=sum(p.lines_read for p in parts),
        truncated=sum(p.truncated for p in parts),
        duplicates_dropped=int(repeated.sum()),
    )


class _RefusedLineError(ValueError):
    """A line that is not a valid record; `reason` names the field and the problem."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _read_line(line: bytes) -> tuple[LogLine, str] | str:
    """The decoded line and its input kind, or the reason it is refused."""
    try:
        record = _decoded(line)
        _check_record(record)
        return record, _checked_kind(record.inputs)
    except _RefusedLineError as exc:
        return exc.reason


def _decoded(line: bytes) -> LogLine:
    if not line.strip():
        raise _RefusedLineError("empty line")
    try:
        return _LINE.decode(line)
    except msgspec.ValidationError as exc:
        raise _RefusedLineError(_reason(str(exc), "")) from None
    except msgspec.DecodeError:
        raise _RefusedLineError("not JSON") from None


def _check_record(record: LogLine) -> None:
    """What the types cannot say: a hex pseudonym, a UTC time, probabilities summing to 1."""
    if record.patient_key is not None and record.patient_key.strip(_HEX_DIGITS):
        raise _RefusedLineError(PATIENT_KEY_REASON)
    offset = record.timestamp.utcoffset()
    if offset is None or offset != dt.timedelta(0):
        raise _RefusedLineError("timestamp: not UTC")
    p = record.probabilities
    if abs(p.none + p.common_mild + p.common_acute + p.common_chronic + p.orphan - 1.0) > PROBABILITY_TOLERANCE:
        raise _RefusedLineError(f"probabilities: sum is not 1 within {PROBABILITY_TOLERANCE:g}")


def _checked_kind(raw: msgspec.Raw) -> str:
    """The input kind of a line's inputs, once they pass LoggedInputs and every HPO id is well formed."""
    try:
        inputs = _INPUTS.decode(raw)
    except msgspec.ValidationError as exc:
        raise _RefusedLineError(_reason(str(exc), "inputs")) from None
    for field, hpo_ids in (("hpo_observed", inputs.hpo_observed), ("hpo_excluded", inputs.hpo_excluded)):
        for i, hpo_id in enumerate(hpo_ids):
            if hpo_id not in _valid_hpo_ids:
                if not _HPO_ID.fullmatch(hpo_id):
                    raise _RefusedLineError(f"inputs.{field}[{i}]: not an HPO id")
                _valid_hpo_ids.add(hpo_id)
    try:
        return input_kind(inputs)
    except ValueError as exc:  # input_kind's own reasons name fields only
        raise _RefusedLineError(f"inputs: {exc}") from None


_PROBLEMS: Final = (  # msgspec message -> our problem (the messages that quote a value are among them)
    ("Object contains unknown field", "unknown field"),
    ("Invalid enum value", "not an allowed value"),
    ("Invalid RFC3339", "not an RFC 3339 datetime"),
    ("matching regex", "malformed"),
    ("of length", "length out of range"),
    *((f"` {op} ", "out of range") for op in (">=", "<=", ">", "<")),
)


def _reason(message: str, prefix: str) -> str:
    """`<field>: <problem>` from a msgspec validation message, without the values some messages quote."""
    match = _AT.match(message)
    problem, path = (match.group("problem"), match.group("path") or "") if match else (message, "")
    field = ".".join(part for part in (prefix, path.lstrip(".")) if part)
    missing = _MISSING.match(problem)
    if missing:
        return f"{'.'.join(p for p in (field, missing.group('name')) if p)}: missing"
    if problem.startswith(tuple(f"{name}:" for name in LoggedInputs.__struct_fields__)):
        return f"{prefix}.{problem}"  # LoggedInputs' own checks, which name fields only
    types = _TYPES.match(problem)
    if field == "patient_key" and not types:
        return PATIENT_KEY_REASON
    if types:
        return f"{field or 'line'}: wrong type (expected {types.group('expected')}, got {types.group('got')})"
    found = next((text for start, text in _PROBLEMS if start in problem), "invalid")
    return f"{field or 'line'}: {found}"


def _records_frame(accepted: list[tuple[int, LogLine, str]], source: str) -> pd.DataFrame:
    records = [r for _, r, _ in accepted]
    probabilities = np.array(
        [
            (p.none, p.common_mild, p.common_acute, p.common_chronic, p.orphan)
            for p in (r.probabilities for r in records)
        ],
        dtype=np.float64,
    ).reshape(len(records), len(schema.LABELS))
    columns: dict[str, object] = {
        "source": pd.Series([source] * len(records), dtype=object),
        "line_number": np.array([n for n, _, _ in accepted], dtype=np.int64),
        "timestamp": pd.to_datetime([r.timestamp for r in records], utc=True).as_unit("us"),
        "request_id": pd.Series([r.request_id for r in records], dtype=object),
        "model_version": pd.Series([r.model_version for r in records], dtype=object),
        "patient_key": pd.Series([r.patient_key for r in records], dtype=object),
        "input_kind": pd.Series([kind for _, _, kind in accepted], dtype=object),
        "predicted_class": pd.Series([r.predicted_class for r in records], dtype=object),
        "orphan_flag": np.array([r.orphan_flag for r in records], dtype=bool),
        "needs_review": np.array([r.needs_review for r in records], dtype=bool),
        "latency_ms": np.array([r.latency_ms for r in records], dtype=np.float64),
        **{name: probabilities[:, i] for i, name in enumerate(PROBABILITY_COLUMNS)},
        "inputs": pd.Series([bytes(r.inputs).decode("utf-8") for r in records], dtype=object),
    }
    return pd.DataFrame(columns, columns=list(RECORD_COLUMNS))


def _rejected_frame(refused: list[tuple[int, str, bytes]], source: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": pd.Series([source] * len(refused), dtype=object),
            "line_number": np.array([n for n, _, _ in refused], dtype=np.int64),
            "reason": pd.Series([reason for _, reason, _ in refused], dtype=object),
            "line_sha256": pd.Series([hashlib.sha256(line).hexdigest() for _, _, line in refused], dtype=object),
            "line_bytes": np.array([len(line) for _, _, line in refused], dtype=np.int64),
        },
        columns=list(REJECTED_COLUMNS),
    )
