"""ICD-10 / ICD-10-CM codes: the syntax accepted, and the acuity of any code from its chapter or block.

A code is a letter, two digits, then optionally a dot and 1-4 letters or digits (E11.9, I10, S72.001A, Z00.00).
The acuity of a code is the project's own rule for it where one exists (loaders.icd10_acuity), else that of the
first row of ICD10_BLOCKS containing its three-character category; None means no disease acuity (Z codes).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

ICD10_PATTERN: Final = r"[A-Z][0-9]{2}(?:\.[0-9A-Z]{1,4})?"
_ICD10 = re.compile(ICD10_PATTERN)


def is_icd10_code(value: object) -> bool:
    """Whether ``value`` is a syntactically valid ICD-10 / ICD-10-CM code (ICD10_PATTERN, upper case)."""
    return isinstance(value, str) and _ICD10.fullmatch(value) is not None


@dataclass(frozen=True)
class Icd10Block:
    """Categories ``first``-``last`` (inclusive, three characters) and their acuity, with the reason for it."""

    first: str
    last: str
    acuity: str | None
    reason: str


# First match wins: the exceptions come before the chapter that contains them. Every category A00-Z99 is covered.
ICD10_BLOCKS: Final = (
    Icd10Block("B18", "B18", "chronic", "chronic viral hepatitis, a long-term infection"),
    Icd10Block("B20", "B24", "chronic", "HIV disease, a long-term infection"),
    Icd10Block("A00", "B99", "acute", "infections present as acute illness"),
    Icd10Block("C00", "D49", "chronic", "neoplasms need long-term management"),
    Icd10Block("D50", "D99", "chronic", "anaemias and immune disorders are long-standing"),
    Icd10Block("E00", "E99", "chronic", "endocrine and metabolic diseases (diabetes, thyroid, lipids) are lasting"),
    Icd10Block("F00", "F99", "chronic", "mental and behavioural disorders are long-standing"),
    Icd10Block("G00", "G09", "acute", "meningitis and encephalitis are emergencies"),
    Icd10Block("G10", "G99", "chronic", "nervous system diseases (epilepsy, Parkinson, migraine) are lasting"),
    Icd10Block("H00", "H59", "mild", "eye visits are mostly minor (conjunctivitis, refraction)"),
    Icd10Block("H60", "H99", "acute", "ear visits are mostly otitis"),
    Icd10Block("I21", "I24", "acute", "acute ischaemic heart disease (infarction) is an emergency"),
    Icd10Block("I26", "I26", "acute", "pulmonary embolism is an emergency"),
    Icd10Block("I60", "I64", "acute", "stroke is an emergency"),
    Icd10Block("I00", "I99", "chronic", "circulatory diseases (hypertension, heart failure, AF) are lasting"),
    Icd10Block("J40", "J47", "chronic", "chronic lower respiratory diseases (COPD, asthma, bronchiectasis)"),
    Icd10Block("J00", "J99", "acute", "respiratory visits are mostly infections"),
    Icd10Block("K50", "K51", "chronic", "inflammatory bowel disease is lifelong"),
    Icd10Block("K70", "K77", "chronic", "liver diseases (cirrhosis, fatty liver) are lasting"),
    Icd10Block("K00", "K99", "acute", "digestive visits are mostly acute (gastroenteritis, appendicitis, colic)"),
    Icd10Block("L00", "L99", "mild", "skin visits are mostly minor (rash, dermatitis)"),
    Icd10Block("M00", "M99", "chronic", "musculoskeletal diseases (arthrosis, osteoporosis) are lasting"),
    Icd10Block("N18", "N19", "chronic", "chronic kidney disease"),
    Icd10Block("N00", "N99", "acute", "genitourinary visits are mostly infections and colic"),
    Icd10Block("O00", "O99", "acute", "pregnancy complications need timely care"),
    Icd10Block("P00", "P99", "acute", "conditions of the perinatal period need timely care"),
    Icd10Block("Q00", "Q99", "chronic", "congenital malformations are lifelong (orphan only with an ORPHA code)"),
    Icd10Block("R00", "R99", "mild", "symptoms and findings without a diagnosis"),
    Icd10Block("S00", "T99", "acute", "injuries and poisonings"),
    Icd10Block("U00", "U99", "acute", "codes for new diseases, COVID-19 (U07.1) foremost"),
    Icd10Block("V00", "Y99", "acute", "external causes of injury"),
    Icd10Block("Z00", "Z99", None, "examinations, vaccinations, history: no disease"),
)


def block_of(code: str) -> Icd10Block:
    """The first ICD10_BLOCKS row containing the category of ``code``; KeyError when it is not an ICD-10 code."""
    if not is_icd10_code(code):
        raise KeyError(code)
    category = code[:3]
    for block in ICD10_BLOCKS:
        if block.first <= category <= block.last:
            return block
    raise KeyError(code)  # unreachable while ICD10_BLOCKS covers A00-Z99 (tested)


@dataclass(frozen=True)
class Icd10Acuity:
    """Acuity of any ICD-10 code: ``specific`` (the project's finer rule) where it has the code, else its block."""

    specific: Mapping[str, str]

    def __getitem__(self, code: str, /) -> str | None:
        """ "mild" | "acute" | "chronic", or None for no disease; KeyError when ``code`` is not an ICD-10 code."""
        if code in self.specific:
            return self.specific[code]
        return block_of(code).acuity

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and (code in self.specific or is_icd10_code(code))
