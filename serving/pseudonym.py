"""The keyed pseudonym of a patient id, as the platform's anonymization makes it: HMAC-SHA256(key, id as UTF-8),
lowercase hex cut to 32 characters (`rare_triage/lib/governance/anonymize.py`, `Pseudonymizer`), so a logged
prediction joins the diagnoses the platform later records under the same `patient_key`.

The key rules copy the platform's `load_pseudonymization_key` (serving imports none of it; the platform's test
`rare_triage_tests/integration/test_serving_patient_key.py` fails when they drift apart): RARE_TRIAGE_HMAC_KEY in
hex, at least 32 bytes; unset, a local deployment (RARE_TRIAGE_DEPLOYMENT unset or `local`) takes the public
development key the platform's embedded demo uses, and any other deployment has none. The service adds one rule:
MODEL_ENV=prod never uses the public key (unset: no key; set to it: refused).
"""

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final

HMAC_KEY_ENV_VAR: Final = "RARE_TRIAGE_HMAC_KEY"
DEPLOYMENT_ENV_VAR: Final = "RARE_TRIAGE_DEPLOYMENT"
MIN_KEY_BYTES: Final = 32
PSEUDONYM_HEX_CHARS: Final = 32
# The platform's public constant (anonymize.LOCAL_DEVELOPMENT_HMAC_KEY): embedded demo and local development only.
LOCAL_DEVELOPMENT_HMAC_KEY: Final = hashlib.sha256(
    b"rare-triage LOCAL DEVELOPMENT key - public, not secret, embedded demo only"
).digest()


@dataclass(frozen=True)
class PseudonymKey:
    """The HMAC key; its bytes never show in a repr. `public`: the published development key (demo only)."""

    value: bytes = field(repr=False)
    public: bool = False

    def __repr__(self) -> str:
        return f"PseudonymKey(<hidden>, public={self.public})"


def read_key(raw: str, *, allow_local_default: bool) -> PseudonymKey | None:
    """The key of RARE_TRIAGE_HMAC_KEY's value `raw` (stripped); None when unset and no default applies.
    ValueError (never quoting the value) when it is not hex, too short, or the public key where none is allowed."""
    if not raw:
        return PseudonymKey(LOCAL_DEVELOPMENT_HMAC_KEY, public=True) if allow_local_default else None
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        raise ValueError(f"not valid hex (expected {2 * MIN_KEY_BYTES}+ hex characters)") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"too short: {len(key)} bytes, at least {MIN_KEY_BYTES} required")
    public = key == LOCAL_DEVELOPMENT_HMAC_KEY
    if public and not allow_local_default:
        raise ValueError("holds the public local development key")
    return PseudonymKey(key, public=public)


class Pseudonymizer:
    """Patient id -> its `patient_key` (the HMAC state of the key is made once, copied per id)."""

    __slots__ = ("_base",)

    def __init__(self, key: PseudonymKey) -> None:
        self._base = hmac.new(key.value, digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "Pseudonymizer(key=<hidden>)"

    def __call__(self, patient_id: str) -> str:
        mac = self._base.copy()
        mac.update(patient_id.encode("utf-8"))
        return mac.hexdigest()[:PSEUDONYM_HEX_CHARS]
