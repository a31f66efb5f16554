"""Request ids: random (version 4) UUIDs in their canonical text form, as `str(uuid.uuid4())` writes them.

Each is 16 bytes of `os.urandom` with the version nibble set to 4 and the variant's two top bits to 10 (RFC 4122),
formatted without building a `uuid.UUID`; `new_request_ids(n)` reads the bytes of n ids at once.
"""

import os
from typing import Final

# The hex digit of byte 8's high nibble once its two top bits are set to the RFC 4122 variant (10).
_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 0b11] for digit in "0123456789abcdef"}


def _uuid4(text: str, at: int) -> str:
    """The uuid4 of the 32 hex digits of `text` from `at`."""
    return (
        f"{text[at : at + 8]}-{text[at + 8 : at + 12]}-4{text[at + 13 : at + 16]}-"
        f"{_VARIANT[text[at + 16]]}{text[at + 17 : at + 20]}-{text[at + 20 : at + 32]}"
    )


def new_request_id() -> str:
    """One request id."""
    return _uuid4(os.urandom(16).hex(), 0)


def new_request_ids(count: int) -> list[str]:
    """`count` request ids, from one read of `os.urandom`."""
    text = os.urandom(16 * count).hex()
    return [_uuid4(text, at) for at in range(0, 32 * count, 32)]
