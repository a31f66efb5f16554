"""Encounters and published cases -> the model's float32 input matrix, as the platform's features encode them.

Built once per model load from the manifest (`input_schema`) and the phenotype encoding; every lookup table is
made then. Encoding a batch is one pass over its requests in Python (dictionary lookups) and a fixed number of
numpy operations over the whole batch, whatever its size.

What the platform does, and so what the encoder does (`rare_triage/lib/features/sql/`, governance):
- categoricals: published form (`demographics`), then the manifest's code; missing -> `missing_code`; a value
  outside the model's categories -> `unknown_code`, and the column is named in `EncodingReport.unseen_categories`;
- age: completed years top-coded at 90, its ten-year band; vitals and pain score as given; missing -> NaN;
- fever score: kept only with an observed fever term; symptom duration: kept only with an observed term of the
  release (the platform reads both on observed symptom rows); a value dropped so is named in `dropped_fields`;
- comorbidity count and prior visits: missing -> 0 (no comorbidity row; governance counts unknown visits as none);
- HPO ids, distinct per list: an id outside the release (not in `terms`) is ignored, as governance quarantines its
  row; an observed id of the release counts in `n_present_terms`, its information content in
  `phenotype_ic_max` / `phenotype_ic_sum` / `n_specific_terms`, and sets the vocabulary and organ-system flags it
  rolls up to (1); an excluded id marks absent (0) what `phenotype` describes; present wins over absent; a flag
  neither present nor absent is NaN; `n_systems_involved` counts the systems present.
Published cases (`encode_phenopacket`) follow the platform's `external_features`: centre "external", other
encounter fields missing (comorbidity count 0, prior visits NaN), and an observed id outside the release still
counts as a present term of information content 0 (no governance step runs on them).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from serving.contract import Encounter, PublishedCase
from serving.encoding.demographics import (
    age_band,
    case_sex,
    iso8601_age_years,
    published_centre,
    published_region,
    top_coded_age,
)
from serving.encoding.errors import EncodingContractError
from serving.encoding.input_schema import InputColumn, InputSchema
from serving.encoding.phenotype import IC_SCALE, PhenotypeEncoding, PhenotypeTables

CATEGORICAL_COLUMNS: Final = ("sex", "age_band", "centre_id", "centre_level", "region", "consultation_type")
# Numeric inputs taken from the request, in the order `_request_numbers` gives them.
REQUEST_NUMERIC_COLUMNS: Final = (
    "age_years",
    "temperature_c",
    "heart_rate",
    "respiratory_rate",
    "spo2",
    "systolic_bp",
    "diastolic_bp",
    "fever_score",
    "pain_score",
    "symptom_duration_days",
    "comorbidity_count",
    "prior_visits_365d",
)
PHENOTYPE_NUMERIC_COLUMNS: Final = (
    "n_systems_involved",
    "n_present_terms",
    "n_specific_terms",
    "phenotype_ic_max",
    "phenotype_ic_sum",
)
VOCABULARY_PREFIX: Final = "hpo_"
SYSTEM_PREFIX: Final = "sys_"
EXTERNAL_CENTRE_ID: Final = "external"  # the centre of a published case (the platform's features build)
_FEVER: Final = REQUEST_NUMERIC_COLUMNS.index("fever_score")
_DURATION: Final = REQUEST_NUMERIC_COLUMNS.index("symptom_duration_days")
_NAN: Final = math.nan

Published = tuple[str | None, str | None, str | None, str | None, str | None, str | None]


class EncodingReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the encoder made of one request's HPO ids and categoricals (each id once, in request order).

    hpo_used: ids of the release that set or cleared a vocabulary or organ-system flag.
    hpo_outside: ids of the release that set no flag (an observed one still counts in `n_present_terms` and the
        information content, as the platform counts every recorded term); e.g. HP:0000005 (mode of inheritance).
    hpo_unknown: ids outside the HPO release of the encoding (not in `terms`).
    unseen_categories: categorical columns whose value is not among the model's categories (-> unknown_code).
    dropped_fields: request fields the platform's features would not carry (see the module doc).
    """

    hpo_used: tuple[str, ...] = ()
    hpo_outside: tuple[str, ...] = ()
    hpo_unknown: tuple[str, ...] = ()
    unseen_categories: tuple[str, ...] = ()
    dropped_fields: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class EncodedBatch:
    """`matrix`: float32 [n, len(columns)], C-contiguous, in the manifest's column order; one report per row."""

    matrix: npt.NDArray[np.float32]
    reports: tuple[EncodingReport, ...]

    def __len__(self) -> int:
        return len(self.reports)


class _Observed(msgspec.Struct):
    """HPO bookkeeping of one request, filled while walking its lists."""

    used: dict[str, None] = msgspec.field(default_factory=dict)
    outside: dict[str, None] = msgspec.field(default_factory=dict)
    unknown: dict[str, None] = msgspec.field(default_factory=dict)
    any_known: bool = False
    any_fever: bool = False


@dataclass(eq=False)
class _Batch:
    """What one pass over the requests collects; `observed` / `excluded` hold table rows, request after request,
    each request's rows ending at its `*_ends` entry."""

    published: list[Published] = field(default_factory=list)
    numbers: list[list[float]] = field(default_factory=list)
    dropped: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[_Observed] = field(default_factory=list)
    observed: list[int] = field(default_factory=list)
    observed_ends: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    excluded_ends: list[int] = field(default_factory=list)

    def end_request(
        self, note: _Observed, published: Published, numbers: list[float], dropped: tuple[str, ...]
    ) -> None:
        self.observed_ends.append(len(self.observed))
        self.excluded_ends.append(len(self.excluded))
        self.notes.append(note)
        self.published.append(published)
        self.numbers.append(numbers)
        self.dropped.append(dropped)


class Encoder:
    """Encodes requests into the input matrix of one published model."""

    def __init__(self, manifest: Mapping[str, Any], phenotype_encoding: Mapping[str, Any] | PhenotypeEncoding) -> None:
        """`manifest`: the published manifest (format 1 or 2: only `input_schema` and `hpo_release` are read);
        `phenotype_encoding`: its phenotype encoding (format 1: `manifest["phenotype_encoding"]`, format 2: the
        verified `phenotype_encoding.json`). EncodingContractError naming the field when they do not fit."""
        self.schema = InputSchema.from_manifest(manifest)
        self.phenotype = (
            phenotype_encoding
            if isinstance(phenotype_encoding, PhenotypeEncoding)
            else PhenotypeEncoding.from_dict(phenotype_encoding)
        )
        release = manifest.get("hpo_release")
        if release is not None and release != self.phenotype.hpo_release:
            raise EncodingContractError(
                f"manifest: hpo_release {release!r} differs from the phenotype encoding's "
                f"{self.phenotype.hpo_release!r}"
            )
        self._tables = PhenotypeTables.build(self.phenotype)
        n_fixed = len(CATEGORICAL_COLUMNS) + len(REQUEST_NUMERIC_COLUMNS) + len(PHENOTYPE_NUMERIC_COLUMNS)
        self._vocabulary_start = n_fixed
        self._systems_start = n_fixed + self._tables.n_vocabulary
        self._width = self._systems_start + self._tables.n_systems
        slots = self._slots()
        self._take = np.array([self._source_slot(column, slots) for column in self.schema.columns], dtype=np.intp)
        by_name = {column.name: column for column in self.schema.columns}
        # per categorical slot: its manifest column, or None when the model does not read it
        self._categorical: tuple[InputColumn | None, ...] = tuple(by_name.get(name) for name in CATEGORICAL_COLUMNS)
        self._reads_fever = "fever_score" in by_name
        self._reads_duration = "symptom_duration_days" in by_name

    @property
    def columns(self) -> tuple[str, ...]:
        """Input column names, in matrix order."""
        return self.schema.names

    @property
    def input_name(self) -> str:
        return self.schema.input_name

    @property
    def class_labels(self) -> tuple[str, ...]:
        return self.schema.class_labels

    def encode(self, encounters: Sequence[Encounter]) -> EncodedBatch:
        """The input matrix of `encounters`, one row each, and what was made of each one's codes."""
        batch = _Batch()
        for encounter in encounters:
            note = _Observed()
            self._walk_observed(encounter.hpo_observed, note, batch.observed, count_unknown=False)
            self._walk_excluded(encounter.hpo_excluded, note, batch.excluded, count_unknown=False)
            age = top_coded_age(encounter.age_years)
            published = (
                encounter.sex,
                age_band(age),
                None if encounter.centre_id is None else published_centre(encounter.centre_id),
                encounter.centre_level,
                None if encounter.region is None else published_region(encounter.region),
                encounter.consultation_type,
            )
            numbers = _request_numbers(encounter, age)
            dropped: list[str] = []
            if not note.any_fever and encounter.fever_score is not None:
                numbers[_FEVER] = _NAN
                if self._reads_fever:
                    dropped.append("fever_score")
            if not note.any_known and encounter.symptom_duration_days is not None:
                numbers[_DURATION] = _NAN
                if self._reads_duration:
                    dropped.append("symptom_duration_days")
            batch.end_request(note, published, numbers, tuple(dropped))
        return self._assemble(batch)

    def encode_phenopacket(self, cases: Sequence[PublishedCase]) -> EncodedBatch:
        """The input matrix of published case reports, as the platform's `external_features` encodes them."""
        batch = _Batch()
        for case in cases:
            note = _Observed()
            self._walk_observed(case.hpo_observed, note, batch.observed, count_unknown=True)
            self._walk_excluded(case.hpo_excluded, note, batch.excluded, count_unknown=True)
            age = top_coded_age(iso8601_age_years(case.age))
            published = (case_sex(case.sex), age_band(age), EXTERNAL_CENTRE_ID, None, None, None)
            numbers = [age, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, 0.0, _NAN]
            batch.end_request(note, published, numbers, ())
        return self._assemble(batch)

    # ---- construction ----

    def _slots(self) -> dict[str, int]:
        """Column name -> its slot in the internal row (every column the encoder can compute)."""
        names = [*CATEGORICAL_COLUMNS, *REQUEST_NUMERIC_COLUMNS, *PHENOTYPE_NUMERIC_COLUMNS]
        names += [VOCABULARY_PREFIX + hpo_id.removeprefix("HP:") for hpo_id in self.phenotype.vocabulary_ids]
        names += [SYSTEM_PREFIX + hpo_id.removeprefix("HP:") for hpo_id in self.phenotype.system_ids]
        return {name: slot for slot, name in enumerate(names)}

    def _source_slot(self, column: InputColumn, slots: Mapping[str, int]) -> int:
        where = f"manifest: input_schema.columns[{column.index}] ({column.name!r})"
        slot = slots.get(column.name)
        if slot is None:
            if column.name.startswith((VOCABULARY_PREFIX, SYSTEM_PREFIX)):
                raise EncodingContractError(f"{where}: not a vocabulary term or organ system of the phenotype encoding")
            raise EncodingContractError(f"{where}: not a feature the encoder computes")
        expected = "categorical" if column.name in CATEGORICAL_COLUMNS else "numeric"
        if column.kind != expected:
            raise EncodingContractError(f"{where}: type {column.kind!r}, the platform's column is {expected}")
        return slot

    # ---- one request ----

    def _walk_observed(self, hpo_ids: list[str], note: _Observed, rows: list[int], *, count_unknown: bool) -> None:
        terms = self._tables.terms
        seen: set[str] = set()
        for hpo_id in hpo_ids:
            if hpo_id in seen:
                continue
            seen.add(hpo_id)
            info = terms.get(hpo_id)
            if info is None:
                note.unknown[hpo_id] = None
                if count_unknown:
                    rows.append(self._tables.unknown_row)
                continue
            rows.append(info.row)
            note.any_known = True
            note.any_fever = note.any_fever or info.is_fever
            (note.used if info.sets_flag else note.outside)[hpo_id] = None

    def _walk_excluded(self, hpo_ids: list[str], note: _Observed, rows: list[int], *, count_unknown: bool) -> None:
        terms, excluded_rows = self._tables.terms, self._tables.excluded_rows
        seen: set[str] = set()
        for hpo_id in hpo_ids:
            if hpo_id in seen:
                continue
            seen.add(hpo_id)
            known = hpo_id in terms
            if not known:
                note.unknown[hpo_id] = None
                if not count_unknown:  # governance quarantines the row: it marks nothing
                    continue
            row = excluded_rows.get(hpo_id)
            if row is not None:
                rows.append(row)
                note.used[hpo_id] = None
            elif known:
                note.outside[hpo_id] = None

    # ---- the batch ----

    def _assemble(self, batch: _Batch) -> EncodedBatch:
        n = len(batch.published)
        tables = self._tables
        full = np.full((n, self._width), np.nan, dtype=np.float32)
        codes, unseen = self._codes(batch.published)
        full[:, : len(CATEGORICAL_COLUMNS)] = codes
        start = len(CATEGORICAL_COLUMNS)
        if n:
            full[:, start : start + len(REQUEST_NUMERIC_COLUMNS)] = np.array(batch.numbers, dtype=np.float64)
        start += len(REQUEST_NUMERIC_COLUMNS)

        rows = np.asarray(batch.observed, dtype=np.intp)
        offsets = np.asarray([0, *batch.observed_ends], dtype=np.intp)
        n_present = np.diff(offsets)
        vocabulary_present = _any_per_group(tables.vocabulary_present, rows, offsets)
        systems_present = _any_per_group(tables.systems_present, rows, offsets)
        ic_sum = _reduce_per_group(np.add, tables.ic_millionths, rows, offsets)
        ic_max = _reduce_per_group(np.maximum, tables.ic_millionths, rows, offsets)
        n_specific = _reduce_per_group(np.add, tables.specific.astype(np.int64), rows, offsets)
        absent_rows = np.asarray(batch.excluded, dtype=np.intp)
        absent_offsets = np.asarray([0, *batch.excluded_ends], dtype=np.intp)
        vocabulary_absent = _any_per_group(tables.vocabulary_absent, absent_rows, absent_offsets)
        systems_absent = _any_per_group(tables.systems_absent, absent_rows, absent_offsets)

        full[:, start] = systems_present.sum(axis=1)
        full[:, start + 1] = n_present
        full[:, start + 2] = n_specific
        full[:, start + 3] = ic_max / IC_SCALE  # exact millionths -> the double nearest, as DECIMAL -> DOUBLE
        full[:, start + 4] = ic_sum / IC_SCALE
        full[:, self._vocabulary_start : self._systems_start] = _flags(vocabulary_present, vocabulary_absent)
        full[:, self._systems_start :] = _flags(systems_present, systems_absent)

        reports = tuple(
            EncodingReport(
                hpo_used=tuple(note.used),
                hpo_outside=tuple(h for h in note.outside if h not in note.used),
                hpo_unknown=tuple(note.unknown),
                unseen_categories=columns,
                dropped_fields=gone,
            )
            for note, columns, gone in zip(batch.notes, unseen, batch.dropped, strict=True)
        )
        return EncodedBatch(np.ascontiguousarray(full[:, self._take]), reports)

    def _codes(self, published: list[Published]) -> tuple[npt.NDArray[np.float64], list[tuple[str, ...]]]:
        """Category codes [n, 6] (NaN where the model reads no such column) and the unseen columns of each row."""
        unknown_code = self.schema.unknown_code
        codes = np.full((len(published), len(CATEGORICAL_COLUMNS)), np.nan, dtype=np.float64)
        unseen: list[tuple[str, ...]] = []
        for i, values in enumerate(published):
            names: list[str] = []
            for j, (column, value) in enumerate(zip(self._categorical, values, strict=True)):
                if column is None:
                    continue
                if value is None:
                    codes[i, j] = column.missing_code
                    continue
                code = column.codes.get(value)
                if code is None:
                    code = unknown_code
                    names.append(column.name)
                codes[i, j] = code
            unseen.append(tuple(names))
        return codes, unseen


def _request_numbers(encounter: Encounter, age: float) -> list[float]:
    """The REQUEST_NUMERIC_COLUMNS of an encounter: NaN when missing, counts 0 when missing."""
    values = (
        encounter.temperature_c,
        encounter.heart_rate,
        encounter.respiratory_rate,
        encounter.spo2,
        encounter.systolic_bp,
        encounter.diastolic_bp,
        encounter.fever_score,
        encounter.pain_score,
        encounter.symptom_duration_days,
    )
    return [
        age,
        *(_NAN if value is None else float(value) for value in values),
        float(encounter.comorbidity_count or 0),
        float(encounter.prior_visits_365d or 0),
    ]


def _any_per_group(
    table: npt.NDArray[np.bool_], rows: npt.NDArray[np.intp], offsets: npt.NDArray[np.intp]
) -> npt.NDArray[np.bool_]:
    """[groups, columns]: for each group (rows[offsets[g]:offsets[g + 1]]), whether any of its table rows is set."""
    out = np.zeros((len(offsets) - 1, table.shape[1]), dtype=np.bool_)
    filled = np.diff(offsets) > 0
    if filled.any():
        out[filled] = np.logical_or.reduceat(table[rows], offsets[:-1][filled], axis=0)
    return out


def _reduce_per_group(
    ufunc: np.ufunc, values: npt.NDArray[np.int64], rows: npt.NDArray[np.intp], offsets: npt.NDArray[np.intp]
) -> npt.NDArray[np.int64]:
    """[groups]: `ufunc` reduced over each group's values, 0 for an empty group."""
    out = np.zeros(len(offsets) - 1, dtype=np.int64)
    filled = np.diff(offsets) > 0
    if filled.any():
        out[filled] = ufunc.reduceat(values[rows], offsets[:-1][filled])
    return out


def _flags(present: npt.NDArray[np.bool_], absent: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """1 present, else 0 absent, else NaN (present wins)."""
    return np.where(present, 1.0, np.where(absent, 0.0, np.nan))
