"""The patient key: the platform's HMAC pseudonym (values computed with its `Pseudonymizer`; the platform's test
`test_serving_patient_key.py` compares the two live), and the key rules of the settings."""

from pathlib import Path

import pytest

from serving.pseudonym import LOCAL_DEVELOPMENT_HMAC_KEY, Pseudonymizer, PseudonymKey
from serving.settings import Settings, SettingsError

KEY_HEX = bytes(range(32)).hex()
# rare_triage.lib.governance.anonymize.Pseudonymizer(bytes(range(32))) and (LOCAL_DEVELOPMENT_HMAC_KEY)
PLATFORM_PSEUDONYMS = [
    (bytes(range(32)), "PAC-000123", "a6674342b6cf862696836dc9a6f58e5d"),
    (bytes(range(32)), "Ñandú 7", "8c9d6c94e1ac94e18f6b5a19a2e8fa74"),
    (LOCAL_DEVELOPMENT_HMAC_KEY, "p1", "48d5f26596fdc28313869ac7f3a9ed5e"),
]


@pytest.mark.parametrize(("key", "patient_id", "expected"), PLATFORM_PSEUDONYMS)
def test_the_pseudonym_is_the_platforms(key: bytes, patient_id: str, expected: str) -> None:
    assert Pseudonymizer(PseudonymKey(key))(patient_id) == expected


def settings(tmp_path: Path, **variables: str) -> Settings:
    return Settings.from_env({"MODEL_ENV": "dev", "RARE_TRIAGE_HOME": str(tmp_path), **variables})


def test_the_key_is_read_as_hex_and_never_shown(tmp_path: Path) -> None:
    read = settings(tmp_path, RARE_TRIAGE_HMAC_KEY=f"  {KEY_HEX.upper()}\n")

    assert read.pseudonym_key == PseudonymKey(bytes(range(32)))
    assert KEY_HEX not in repr(read).lower() and "<hidden>" in repr(read)
    assert KEY_HEX not in repr(Pseudonymizer(PseudonymKey(bytes(range(32))))).lower()


@pytest.mark.parametrize(
    ("variables", "public"),
    [
        ({}, True),  # a local dev deployment: the platform's demo key, as the platform's local default
        ({"RARE_TRIAGE_DEPLOYMENT": "local"}, True),
        ({"RARE_TRIAGE_DEPLOYMENT": "shared"}, None),  # elsewhere: no key, a sent patient_id is dropped
        ({"MODEL_ENV": "prod", "SERVING_API_KEY": "k" * 24}, None),  # prod never takes the public key
        ({"RARE_TRIAGE_HMAC_KEY": LOCAL_DEVELOPMENT_HMAC_KEY.hex()}, True),
        ({"RARE_TRIAGE_HMAC_KEY": KEY_HEX, "RARE_TRIAGE_DEPLOYMENT": "shared"}, False),
        ({"RARE_TRIAGE_HMAC_KEY": KEY_HEX, "MODEL_ENV": "prod", "SERVING_API_KEY": "k" * 24}, False),
    ],
)
def test_which_key_applies(tmp_path: Path, variables: dict[str, str], public: bool | None) -> None:
    key = settings(tmp_path, **variables).pseudonym_key

    assert (None if key is None else key.public) == public


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"RARE_TRIAGE_HMAC_KEY": "zz" * 32}, "not valid hex"),
        ({"RARE_TRIAGE_HMAC_KEY": "ab" * 31}, "too short: 31 bytes, at least 32 required"),
        (
            {"RARE_TRIAGE_HMAC_KEY": LOCAL_DEVELOPMENT_HMAC_KEY.hex(), "RARE_TRIAGE_DEPLOYMENT": "shared"},
            "holds the public local development key",
        ),
        (
            {
                "RARE_TRIAGE_HMAC_KEY": LOCAL_DEVELOPMENT_HMAC_KEY.hex(),
                "MODEL_ENV": "prod",
                "SERVING_API_KEY": "k" * 24,
            },
            "holds the public local development key",
        ),
    ],
)
def test_an_unusable_key_stops_the_service_naming_the_variable_not_the_value(
    tmp_path: Path, variables: dict[str, str], problem: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        settings(tmp_path, **variables)

    assert str(raised.value).startswith("RARE_TRIAGE_HMAC_KEY: ") and problem in str(raised.value)
    assert variables["RARE_TRIAGE_HMAC_KEY"] not in str(raised.value)
