"""Demographic values in the form the platform publishes them, before the manifest's categories are looked up.

Mirrors of the platform's governance and phenopacket code (serving imports none of it):
- centre_id: kept when shaped like a centre registry code (`contract.CENTRE_ID_PATTERN`), else `OTHER_CATEGORY`
  (`governance.vocabulary.published_centres`); region: the vocabulary spelling of a region matched case-, width- and
  spacing-insensitively, else `OTHER_CATEGORY` (`published_regions`). Text is stripped first, as ingest does.
- age: completed years top-coded at 90 (governance: `age_years`, `age_band`), and its ten-year band.
- published cases: phenopacket sex (MALE/FEMALE -> M/F, UNKNOWN_SEX/OTHER_SEX/none -> U) and the ISO 8601 age
  (`reference.loaders.parse_iso8601_age`: months are twelfths of a year, weeks and days over 365.25 days).
"""

import functools
import math
import re
import unicodedata
from typing import Final

from serving.contract import (
    AGE_BANDS,
    AGE_TOP_CODE,
    CENTRE_ID_PATTERN,
    ISO8601_AGE_PATTERN,
    OTHER_CATEGORY,
    PHENOPACKET_SEX,
    REGIONS,
)

_CENTRE_ID: Final = re.compile(CENTRE_ID_PATTERN)
_ISO_AGE: Final = re.compile(ISO8601_AGE_PATTERN)
_DAYS_PER_YEAR: Final = 365.25
_UNKNOWN_SEX: Final = "U"


def fold(text: str) -> str:
    """Case-, width- and spacing-insensitive form of a text (the platform's `governance.distinct.fold`)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


_REGION_OF_FOLDED: Final = {fold(region): region for region in REGIONS}


_SEEN_TEXTS: Final = 4096  # distinct centre ids and regions remembered (a service sees few; more only evicts)


@functools.lru_cache(maxsize=_SEEN_TEXTS)
def published_centre(value: str) -> str:
    """A centre registry code as it is (stripped), anything else `OTHER_CATEGORY`."""
    text = value.strip()
    return text if _CENTRE_ID.fullmatch(text) else OTHER_CATEGORY


@functools.lru_cache(maxsize=_SEEN_TEXTS)
def published_region(value: str) -> str:
    """The vocabulary spelling of a region, anything else `OTHER_CATEGORY`."""
    return _REGION_OF_FOLDED.get(fold(value), OTHER_CATEGORY)


def top_coded_age(age_years: float | None) -> float:
    """Completed years, top-coded at 90; NaN when unknown."""
    if age_years is None or math.isnan(age_years):
        return math.nan
    return float(math.floor(age_years if age_years < AGE_TOP_CODE else AGE_TOP_CODE))


def age_band(age: float) -> str | None:
    """Ten-year band of a top-coded age ("0-9" ... "90+"); None when unknown."""
    if math.isnan(age):
        return None
    band = int(age) // 10
    return AGE_BANDS[band if band < len(AGE_BANDS) else len(AGE_BANDS) - 1]


def case_sex(value: str | None) -> str:
    """F, M or U of a published case's sex (phenopacket or F/M/U); none is U."""
    if value is None:
        return _UNKNOWN_SEX
    return PHENOPACKET_SEX.get(value, value)


def iso8601_age_years(text: str | None) -> float:
    """Years of an ISO 8601 duration (P6Y, P3M, P1Y6M, P2W, P10D); NaN when none. The contract checked the syntax."""
    if text is None:
        return math.nan
    match = _ISO_AGE.fullmatch(text)
    if match is None:
        raise ValueError(f"age: {text!r} is not an ISO 8601 duration like P6Y, P3M, P1Y6M, P2W or P10D")
    years, months, weeks, days = (float(part) if part else 0.0 for part in match.groups())
    return years + months / 12.0 + (weeks * 7.0 + days) / _DAYS_PER_YEAR
