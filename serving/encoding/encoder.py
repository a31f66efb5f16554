"""Encounters and published cases -> the model's float32 input matrix, as the platform's features encode them.

Built once per model load from the manifest (`input_schema`) and the phenotype encoding; every lookup table is
made then. Encoding a batch is one pass over its requests in Python (dictionary lookups; a request's vocabulary
and organ-system flags are the OR of its HPO ids' bit masks, `PhenotypeTables`) and a fixed number of numpy
operations over the whole batch, whatever its size.

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

import functools
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
_N_LEADING: Final = len(CATEGORICAL_COLUMNS) + len(REQUEST_NUMERIC_COLUMNS) + len(PHENOTYPE_NUMERIC_COLUMNS)
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


# What one request's HPO lists give (`Encoder._phenotype`): the flags set present and marked absent (bits as in
# `PhenotypeTables`), its PHENOTYPE_NUMERIC_COLUMNS, the report's used / outside / unknown ids, and whether an
# observed id of the release, and a fever term, was among them.
_Phenotype = tuple[int, int, tuple[float, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], bool, bool]
_NO_PHENOTYPE: Final[_Phenotype] = (0, 0, (0, 0, 0, 0.0, 0.0), (), (), (), False, False)


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
        self._n_flags = self._tables.n_vocabulary + self._tables.n_systems  # after the leading columns
        self._width = _N_LEADING + self._n_flags
        self._flag_bytes = (self._n_flags + 7) // 8
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
        leading: list[float] = []
        present: list[int] = []
        absent: list[int] = []
        reports: list[EncodingReport] = []
        nan = _NAN
        for encounter in encounters:
            flags_present, flags_absent, numbers, used, outside, unknown, any_known, any_fever = self._phenotype(
                encounter.hpo_observed, encounter.hpo_excluded, False
            )
            age = top_coded_age(encounter.age_years)
            centre, region = encounter.centre_id, encounter.region
            unseen = self._codes(
                leading,
                (
                    encounter.sex,
                    age_band(age),
                    None if centre is None else published_centre(centre),
                    encounter.centre_level,
                    None if region is None else published_region(region),
                    encounter.consultation_type,
                ),
            )
            fever, duration = encounter.fever_score, encounter.symptom_duration_days
            dropped: tuple[str, ...] = ()
            if fever is not None and not any_fever:
                fever = None
                if self._reads_fever:
                    dropped = ("fever_score",)
            if duration is not None and not any_known:
                duration = None
                if self._reads_duration:
                    dropped = (*dropped, "symptom_duration_days")
            temperature, heart_rate, respiratory_rate, spo2 = (
                encounter.temperature_c,
                encounter.heart_rate,
                encounter.respiratory_rate,
                encounter.spo2,
            )
            systolic, diastolic, pain = encounter.systolic_bp, encounter.diastolic_bp, encounter.pain_score
            leading += (  # REQUEST_NUMERIC_COLUMNS: NaN when missing, the counts 0
                age,
                nan if temperature is None else temperature,
                nan if heart_rate is None else heart_rate,
                nan if respiratory_rate is None else respiratory_rate,
                nan if spo2 is None else spo2,
                nan if systolic is None else systolic,
                nan if diastolic is None else diastolic,
                nan if fever is None else fever,
                nan if pain is None else pain,
                nan if duration is None else duration,
                encounter.comorbidity_count or 0,
                encounter.prior_visits_365d or 0,
            )
            leading += numbers
            present.append(flags_present)
            absent.append(flags_absent)
            reports.append(
                EncodingReport(
                    hpo_used=used,
                    hpo_outside=outside,
                    hpo_unknown=unknown,
                    unseen_categories=unseen,
                    dropped_fields=dropped,
                )
            )
        return self._assemble(leading, present, absent, reports)

    def encode_phenopacket(self, cases: Sequence[PublishedCase]) -> EncodedBatch:
        """The input matrix of published case reports, as the platform's `external_features` encodes them: phenotype,
        age and sex; every other input missing (a case report says nothing of the problem list: its comorbidity
        count is unknown, not 0)."""
        leading: list[float] = []
        present: list[int] = []
        absent: list[int] = []
        reports: list[EncodingReport] = []
        for case in cases:
            flags_present, flags_absent, numbers, used, outside, unknown, _, _ = self._phenotype(
                case.hpo_observed, case.hpo_excluded, True
            )
            age = top_coded_age(iso8601_age_years(case.age))
            unseen = self._codes(leading, (case_sex(case.sex), age_band(age), EXTERNAL_CENTRE_ID, None, None, None))
            leading += (age, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN)
            leading += numbers
            present.append(flags_present)
            absent.append(flags_absent)
            reports.append(
                EncodingReport(hpo_used=used, hpo_outside=outside, hpo_unknown=unknown, unseen_categories=unseen)
            )
        return self._assemble(leading, present, absent, reports)

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

    def _phenotype(self, observed: list[str], excluded: list[str], count_unknown: bool) -> _Phenotype:
        """Walk a request's HPO lists (each id once, in order): an observed id of the release sets its flags and
        counts (term, information content, specific); an excluded one marks absent what it describes. An id
        outside the release is reported unknown and ignored, unless `count_unknown` (published cases): then an
        observed one counts as a term of information content 0 and an excluded one still marks what it names."""
        if not observed and not excluded:
            return _NO_PHENOTYPE
        terms, excluded_masks = self._tables.terms, self._tables.excluded_masks
        used: dict[str, None] = {}
        outside: dict[str, None] = {}
        unknown: dict[str, None] = {}
        present = absent = n_present = n_specific = ic_max = ic_sum = 0
        any_known = any_fever = False
        for hpo_id in dict.fromkeys(observed):
            info = terms.get(hpo_id)
            if info is None:
                unknown[hpo_id] = None
                if count_unknown:  # a term of information content 0 that sets nothing
                    n_present += 1
                continue
            n_present += 1
            present |= info.mask
            ic = info.ic
            ic_sum += ic
            # information content is never negative: 0 is the maximum of no term (max() is slower here)
            if ic > ic_max:  # noqa: PLR1730
                ic_max = ic
            if info.specific:
                n_specific += 1
            any_known = True
            if info.is_fever:
                any_fever = True
            (used if info.sets_flag else outside)[hpo_id] = None
        for hpo_id in dict.fromkeys(excluded):
            known = hpo_id in terms
            if not known:
                unknown[hpo_id] = None
                if not count_unknown:  # governance quarantines the row: it marks nothing
                    continue
            marks = excluded_masks.get(hpo_id)
            if marks is not None:
                absent |= marks
                used[hpo_id] = None
            elif known:
                outside[hpo_id] = None
        numbers = (
            (present >> self._tables.n_vocabulary).bit_count(),  # organ systems present
            n_present,
            n_specific,
            ic_max / IC_SCALE,  # exact millionths -> the double nearest, as DECIMAL -> DOUBLE
            ic_sum / IC_SCALE,
        )
        return (
            present,
            absent,
            numbers,
            tuple(used),
            tuple(h for h in outside if h not in used) if outside else (),
            tuple(unknown),
            any_known,
            any_fever,
        )

    def _codes(self, leading: list[float], published: Published) -> tuple[str, ...]:
        """Append the category codes of a request's published values (NaN where the model reads no such column);
        the columns whose value the model never saw."""
        unknown_code = self.schema.unknown_code
        unseen: tuple[str, ...] = ()
        for column, value in zip(self._categorical, published, strict=True):
            if column is None:
                leading.append(_NAN)
            elif value is None:
                leading.append(column.missing_code)
            else:
                code = column.codes.get(value)
                if code is None:
                    code = unknown_code
                    unseen = (*unseen, column.name)
                leading.append(code)
        return unseen

    # ---- the batch ----

    def _assemble(
        self, leading: list[float], present: list[int], absent: list[int], reports: list[EncodingReport]
    ) -> EncodedBatch:
        """The matrix of the requests' leading values (`_N_LEADING` each, in slot order) and flags."""
        n = len(reports)
        full = np.empty((n, self._width), dtype=np.float32)
        full[:, :_N_LEADING] = np.frombuffer(_doubles(len(leading)).pack(*leading), dtype=np.float64).reshape(
            n, _N_LEADING
        )
        if self._n_flags:
            state = self._bits(present)  # per flag: 2 present, else 1 absent, else 0
            state <<= 1
            state |= self._bits(absent)
            full[:, _N_LEADING:] = _FLAG_VALUES[state]
        return EncodedBatch(np.ascontiguousarray(full[:, self._take]), tuple(reports))

    def _bits(self, masks: list[int]) -> npt.NDArray[np.uint8]:
        """[requests, flags]: each request's mask as 0 / 1 per flag."""
        size = self._flag_bytes
        packed = np.frombuffer(b"".join(mask.to_bytes(size, "little") for mask in masks), dtype=np.uint8)
        return np.unpackbits(packed.reshape(len(masks), size), axis=1, count=self._n_flags, bitorder="little")


# A flag's value by its state (present << 1 | absent): 1 present (whatever else), else 0 absent, else NaN.
_FLAG_VALUES: Final = np.array([_NAN, 0.0, 1.0, 1.0], dtype=np.float32)


@functools.lru_cache(maxsize=64)
def _doubles(count: int) -> struct.Struct:
    """Packs `count` numbers as native doubles (what `np.frombuffer(..., float64)` reads back)."""
    return struct.Struct(f"={count}d")
