"""Fake but realistic-looking identifiers of a patient, a pure function of (seed, patient index).

Numbers that must be unique (national id, MRN, phone) come from an affine bijection of the patient
index modulo 10^8, so two patients never share one and the same patient keeps it on every day.
"""

import unicodedata
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pandas as pd

from rare_triage.lib.ingest.synthetic.hashing import hash_bits, hash_choice, hash_uniform
from rare_triage.lib.ingest.synthetic.names import (
    EMAIL_DOMAINS,
    FAMILY_NAMES,
    GIVEN_NAMES_F,
    GIVEN_NAMES_M,
    REGIONS,
    STREETS,
)
from rare_triage.lib.ingest.synthetic.population import REGION_NAMES, SEX_CODES, Population

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_PADDED = {
    width: np.array([f"{value:0{width}d}" for value in range(10**width)], dtype=object) for width in (1, 2, 3, 4)
}
_BIJECTION_MODULUS = 100_000_000
SALT_GIVEN, SALT_FAMILY_1, SALT_FAMILY_2, SALT_STREET, SALT_NUMBER, SALT_FLOOR = 41, 42, 43, 44, 45, 46
SALT_CITY, SALT_ZIP, SALT_EMAIL_NUMBER, SALT_DOMAIN, SALT_NATIONAL, SALT_MRN, SALT_PHONE = 47, 48, 49, 50, 51, 52, 53


def _ascii_lower(names: tuple[str, ...]) -> npt.NDArray[np.object_]:
    plain = (unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower() for name in names)
    return np.array([name.replace(" ", "").replace("'", "") for name in plain], dtype=object)


def digits(values: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.object_]:
    """Zero-padded decimal strings of the last ``width`` digits, built from lookup tables (no per-row loop)."""
    out = np.full(values.shape, "", dtype=object)
    remaining = np.asarray(values, dtype=np.int64)
    while width > 0:
        chunk = min(width, 4)
        out = _PADDED[chunk][remaining % 10**chunk] + out
        remaining = remaining // 10**chunk
        width -= chunk
    return out


def _unique_number(seed: int, index: npt.NDArray[np.int64], salt: int) -> npt.NDArray[np.int64]:
    """A number in [0, 10^8) that no other patient index below 10^8 maps to (affine bijection)."""
    bits = int(hash_bits(seed, np.array([0]), salt)[0])
    multiplier = (bits % 4_999_999) * 20 + 7  # odd and not a multiple of 5: coprime with 10^8
    offset = (bits >> 32) % _BIJECTION_MODULUS
    return (index % _BIJECTION_MODULUS * multiplier + offset) % _BIJECTION_MODULUS


def patient_ids(index: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    """Source-system patient key: ``P`` and the zero-padded index."""
    return "P" + digits(index, 9)


@lru_cache(maxsize=1)
def _lookup_tables() -> dict[str, npt.NDArray[np.object_]]:
    """Every possible family name pair, street address and ZIP, built once and shared by reference across rows."""
    families = [f"{first} {second}" for first in FAMILY_NAMES for second in FAMILY_NAMES]
    addresses = [
        f"{street}, {number}, {floor}º" for street in STREETS for number in range(1, 181) for floor in range(1, 9)
    ]
    areas = [area for name in REGION_NAMES for _, area, _ in REGIONS[name]]
    zips = [f"{area}{tail:02d}" for area in areas for tail in range(100)]
    return {
        "family": np.array(families, dtype=object),
        "address": np.array(addresses, dtype=object),
        "zip": np.array(zips, dtype=object),
        "given_f": np.array(GIVEN_NAMES_F, dtype=object),
        "given_m": np.array(GIVEN_NAMES_M, dtype=object),
        "given_f_ascii": _ascii_lower(GIVEN_NAMES_F),
        "given_m_ascii": _ascii_lower(GIVEN_NAMES_M),
        "family_ascii": _ascii_lower(FAMILY_NAMES),
        "domain": np.array(EMAIL_DOMAINS, dtype=object),
        "dni_letter": np.array(list(_DNI_LETTERS), dtype=object),
        "sex": np.array(SEX_CODES, dtype=object),
    }


def _uniform_index(seed: int, index: npt.NDArray[np.int64], salt: int, size: int) -> npt.NDArray[np.int64]:
    return (hash_uniform(seed, index, salt) * size).astype(np.int64)


def build_patients(population: Population, index: npt.NDArray[np.int64]) -> pd.DataFrame:
    """The RAW patients table for the given patient indices (columns in schema order)."""
    seed = population.seed
    lookup = _lookup_tables()
    sex = population.sex[index]
    female = sex == 0
    given_f = _uniform_index(seed, index, SALT_GIVEN, len(GIVEN_NAMES_F))
    given_m = _uniform_index(seed, index, SALT_GIVEN, len(GIVEN_NAMES_M))
    family_1 = _uniform_index(seed, index, SALT_FAMILY_1, len(FAMILY_NAMES))
    family_2 = _uniform_index(seed, index, SALT_FAMILY_2, len(FAMILY_NAMES))

    national = _unique_number(seed, index, SALT_NATIONAL)
    phone = _unique_number(seed, index, SALT_PHONE)
    mobile_prefix = np.where(phone % 5 == 0, "+34 7", "+34 6").astype(object)
    phone_text = mobile_prefix + digits(phone // 1_000_000, 2) + " " + digits(phone // 1000, 3) + " " + digits(phone, 3)
    given_ascii = np.where(female, lookup["given_f_ascii"][given_f], lookup["given_m_ascii"][given_m])
    email = (
        given_ascii
        + "."
        + lookup["family_ascii"][family_1]
        + digits(_uniform_index(seed, index, SALT_EMAIL_NUMBER, 100), 2)
        + "@"
        + lookup["domain"][_uniform_index(seed, index, SALT_DOMAIN, len(EMAIL_DOMAINS))]
    )
    address = (
        _uniform_index(seed, index, SALT_STREET, len(STREETS)) * 180 * 8
        + _uniform_index(seed, index, SALT_NUMBER, 180) * 8
        + _uniform_index(seed, index, SALT_FLOOR, 8)
    )
    city, area = _cities(seed, index, population.region[index])
    epoch = np.datetime64("1970-01-01", "ns")
    return pd.DataFrame(
        {
            "patient_id": patient_ids(index),
            "mrn": "MRN" + digits(_unique_number(seed, index, SALT_MRN), 8),
            "national_id": digits(national, 8) + lookup["dni_letter"][national % 23],
            "given_name": np.where(female, lookup["given_f"][given_f], lookup["given_m"][given_m]),
            "family_name": lookup["family"][family_1 * len(FAMILY_NAMES) + family_2],
            "phone": phone_text,
            "email": email,
            "street_address": lookup["address"][address],
            "city": city,
            "zip_code": lookup["zip"][area * 100 + _uniform_index(seed, index, SALT_ZIP, 100)],
            "birth_date": epoch + population.birth_day[index].astype("timedelta64[D]").astype("timedelta64[ns]"),
            "sex": lookup["sex"][sex],
        }
    )


def _cities(
    seed: int, index: npt.NDArray[np.int64], region: npt.NDArray[np.int8]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int64]]:
    """City name and position of its ZIP area in the flattened REGIONS list."""
    city = np.empty(index.shape, dtype=object)
    area = np.zeros(index.shape, dtype=np.int64)
    first_area = 0
    for code, name in enumerate(REGION_NAMES):
        mask = region == code
        places = REGIONS[name]
        pick = hash_choice(seed, index[mask], SALT_CITY, [weight for _, _, weight in places])
        city[mask] = np.array([place for place, _, _ in places], dtype=object)[pick]
        area[mask] = first_area + pick
        first_area += len(places)
    return city, area
