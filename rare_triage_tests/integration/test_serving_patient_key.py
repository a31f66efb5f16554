"""The service's `patient_key` joins the platform's: serving's copy of the pseudonymization (`serving.pseudonym`)
gives the platform's `Pseudonymizer` pseudonyms and follows `load_pseudonymization_key`'s rules, and the patient id
the service reads from a FHIR Bundle is the `patient_id` the platform's FHIR importer keys the same encounter by.
"""

from pathlib import Path

import pytest

from rare_triage.lib.governance import anonymize
from rare_triage_tests.integration.test_serving_fhir_parity import FIXTURE_FILES, IDS, imported, served_bundles
from serving import fhir, pseudonym

KEYS = [bytes(range(32)), b"k" * 48, anonymize.LOCAL_DEVELOPMENT_HMAC_KEY]
IDS_TO_HASH = ["p1", "PAC-000123", "6d367230-21b3-5816-8d8c-5239028c388f", "Ñandú 7", " spaced ", "x" * 100]


def test_the_copied_constants_are_the_platforms() -> None:
    assert pseudonym.HMAC_KEY_ENV_VAR == anonymize.HMAC_KEY_ENV_VAR
    assert pseudonym.MIN_KEY_BYTES == anonymize.MIN_KEY_BYTES
    assert pseudonym.PSEUDONYM_HEX_CHARS == anonymize.PSEUDONYM_HEX_CHARS
    assert pseudonym.LOCAL_DEVELOPMENT_HMAC_KEY == anonymize.LOCAL_DEVELOPMENT_HMAC_KEY


@pytest.mark.parametrize("key", KEYS, ids=["bytes-0-31", "48-bytes", "local-development"])
def test_the_service_pseudonym_is_the_platforms(key: bytes) -> None:
    served = pseudonym.Pseudonymizer(pseudonym.PseudonymKey(key))

    assert [served(patient_id) for patient_id in IDS_TO_HASH] == anonymize.Pseudonymizer(key).many(IDS_TO_HASH)


@pytest.mark.parametrize(
    "raw",
    ["", bytes(range(32)).hex(), bytes(range(32)).hex().upper(), "ab" * 31, "zz" * 32, "ab" * 40,
     anonymize.local_development_key_hex()],
)  # fmt: skip
@pytest.mark.parametrize("allow_local_default", [True, False])
def test_the_key_rules_are_the_platforms(raw: str, allow_local_default: bool) -> None:
    try:
        platform: bytes | None = anonymize.load_pseudonymization_key(
            {anonymize.HMAC_KEY_ENV_VAR: raw}, allow_local_default=allow_local_default
        )
    except anonymize.PseudonymizationKeyError:
        platform = None
    try:
        key = pseudonym.read_key(raw, allow_local_default=allow_local_default)
        served = None if key is None else key.value
    except ValueError:
        served = None

    assert served == platform  # the platform raises where the service has no key (unset) or refuses to start


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=IDS)
def test_the_fhir_patient_id_is_the_importers(path: Path) -> None:
    platform = imported(path)["encounters"]
    served = {}
    for bundle in served_bundles(path):
        encounter, _ = fhir.encounter_from_bundle(bundle)
        entry = next(
            e
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Encounter" and e["resource"].get("status") != "cancelled"
        )
        served[entry["resource"].get("id") or entry["fullUrl"].rsplit(":", 1)[-1]] = encounter.patient_id

    expected = dict(zip(platform["encounter_id"], platform["patient_id"], strict=True))
    assert served == {key: expected[key] for key in served} and served
    assert all(patient_id for patient_id in served.values())
