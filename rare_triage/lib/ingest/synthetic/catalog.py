"""Reference data compiled to flat numpy arrays (CSR lists) so the generator can work without Python loops.

Sources: suggested_common_conditions.csv, chronic_comorbidities.csv, incidental_findings.csv (this package's
lib/reference/data/vocabulary), Orphanet prevalence and onset (Orphadata 2021-03-01, CC BY 4.0) and HPO
phenotype.hpoa frequencies (HPO release 2025-01-16), the last two through ReferenceTables.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pandas as pd

from rare_triage.lib.reference.loaders import (
    ACUITIES,
    COMORBIDITY_PREVALENCE_COLUMNS,
    load_chronic_comorbidities,
    load_common_conditions,
    load_incidental_findings,
)
from rare_triage.lib.reference.ontology import ReferenceTables
from rare_triage.lib.schema import FEVER_HPO

ONSET_CATEGORIES = ("Antenatal", "Neonatal", "Infancy", "Childhood", "Adolescent", "Adult", "Elderly", "All ages")
VITAL_SHIFT_COLUMNS = ("temp_shift_c", "hr_shift", "rr_shift", "spo2_shift", "sbp_shift", "dbp_shift")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Csr:
    """Variable-length lists per row: items of row i are ``codes[offsets[i]:offsets[i + 1]]``."""

    offsets: IntArray
    codes: IntArray
    values: FloatArray

    @property
    def lengths(self) -> IntArray:
        return np.diff(self.offsets)

    def explode(self, rows: npt.NDArray[np.integer]) -> tuple[IntArray, IntArray]:
        """For each requested row, one entry per item: (position in ``rows``, item index into codes/values)."""
        lengths = self.lengths[rows]
        owner = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        starts = np.repeat(self.offsets[rows] - np.cumsum(lengths) + lengths, lengths)
        return owner, starts + np.arange(owner.size, dtype=np.int64)


def _csr(lists: list[list[tuple[int, float]]]) -> Csr:
    lengths = np.array([len(items) for items in lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    codes = np.array([code for items in lists for code, _ in items], dtype=np.int64)
    values = np.array([value for items in lists for _, value in items], dtype=np.float64)
    return Csr(offsets, codes, values)


@dataclass(frozen=True, eq=False)
class Catalog:
    """Everything the generator samples from, as arrays indexed by small integer codes."""

    terms: npt.NDArray[np.object_]  # HPO id per term code
    term_is_pain: npt.NDArray[np.bool_]
    fever_code: int
    condition_icd10: npt.NDArray[np.object_]
    condition_acuity: npt.NDArray[np.int8]  # index into ACUITIES
    condition_table: pd.DataFrame  # numeric columns of the conditions csv, one row per condition code
    condition_symptoms: Csr
    condition_comorbidity: IntArray  # comorbidity code of the same ICD-10, or -1
    comorbidity_icd10: npt.NDArray[np.object_]
    comorbidity_prevalence: FloatArray  # (n_comorbidities, n_age_knots)
    comorbidity_share_female: FloatArray
    comorbidity_age: FloatArray  # (n_comorbidities, 2) min, max age at which the condition can be active
    comorbidity_symptoms: Csr
    incidental_codes: IntArray
    incidental_weights: FloatArray
    incidental_age: FloatArray  # (n, 2) min, max
    disease_codes: IntArray  # ORPHA code per disease index
    disease_weights: FloatArray
    disease_onsets: Csr  # onset category codes per disease
    disease_phenotypes: Csr  # term codes with frequencies, most frequent first, per disease


def _onset_lists(onsets: pd.Series) -> list[list[tuple[int, float]]]:
    lookup = {name: code for code, name in enumerate(ONSET_CATEGORIES)}
    lists = []
    for text in onsets.fillna(""):
        codes = [lookup[part] for part in str(text).split("|") if part in lookup]
        lists.append([(code, 1.0) for code in codes] or [(lookup["All ages"], 1.0)])
    return lists


@lru_cache(maxsize=4)
def build_catalog(ref: ReferenceTables) -> Catalog:
    """Compile the reference tables and csvs; cached per ReferenceTables object."""
    conditions = load_common_conditions()
    comorbidities = load_chronic_comorbidities()
    incidental = load_incidental_findings()
    diseases = ref.orpha_diseases
    phenotypes = ref.orpha_phenotypes[ref.orpha_phenotypes["orpha_code"].isin(diseases["orpha_code"])]
    phenotypes = phenotypes[phenotypes["frequency"] > 0]

    term_ids = pd.Index(
        pd.unique(
            np.concatenate(
                [
                    [FEVER_HPO],
                    [hpo for items in conditions["symptoms"] for hpo, _ in items],
                    [hpo for items in comorbidities["symptoms"] for hpo, _ in items],
                    incidental["hpo_id"].to_numpy(),
                    phenotypes["hpo_id"].to_numpy(),
                ]
            )
        )
    )
    code_of = {hpo: code for code, hpo in enumerate(term_ids)}

    def coded(column: pd.Series) -> list[list[tuple[int, float]]]:
        return [[(code_of[hpo], prob) for hpo, prob in items] for items in column]

    ordered = phenotypes.assign(term=phenotypes["hpo_id"].map(code_of)).sort_values(
        ["orpha_code", "frequency", "hpo_id"], ascending=[True, False, True]
    )
    disease_index = pd.Index(diseases["orpha_code"])
    position = disease_index.get_indexer(ordered["orpha_code"])
    counts = np.bincount(position, minlength=len(diseases))
    comorbidity_index = pd.Index(comorbidities["icd10"])
    condition_table = conditions.drop(columns=["symptoms"]).reset_index(drop=True)
    condition_table["peak_month"] = condition_table["peak_month"].fillna(1.0)
    condition_table["share_female"] = condition_table["share_female"].fillna(0.5)
    return Catalog(
        terms=np.asarray(term_ids, dtype=object),
        term_is_pain=term_ids.isin(ref.pain_terms["hpo_id"]),
        fever_code=code_of[FEVER_HPO],
        condition_icd10=conditions["icd10"].to_numpy(dtype=object),
        condition_acuity=np.array([ACUITIES.index(a) for a in conditions["acuity"]], dtype=np.int8),
        condition_table=condition_table,
        condition_symptoms=_csr(coded(conditions["symptoms"])),
        condition_comorbidity=comorbidity_index.get_indexer(conditions["icd10"]).astype(np.int64),
        comorbidity_icd10=comorbidities["icd10"].to_numpy(dtype=object),
        comorbidity_prevalence=comorbidities[list(COMORBIDITY_PREVALENCE_COLUMNS)].to_numpy(dtype=np.float64),
        comorbidity_share_female=comorbidities["share_female"].to_numpy(dtype=np.float64),
        comorbidity_age=comorbidities[["age_min", "age_max"]].to_numpy(dtype=np.float64),
        comorbidity_symptoms=_csr(coded(comorbidities["symptoms"])),
        incidental_codes=incidental["hpo_id"].map(code_of).to_numpy(dtype=np.int64),
        incidental_weights=incidental["weight"].to_numpy(dtype=np.float64),
        incidental_age=incidental[["age_min", "age_max"]].to_numpy(dtype=np.float64),
        disease_codes=diseases["orpha_code"].to_numpy(dtype=np.int64),
        disease_weights=diseases["weight"].to_numpy(dtype=np.float64) * (counts > 0),
        disease_onsets=_csr(_onset_lists(diseases["onset"])),
        disease_phenotypes=Csr(
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            codes=ordered["term"].to_numpy(dtype=np.int64),
            values=ordered["frequency"].to_numpy(dtype=np.float64),
        ),
    )
