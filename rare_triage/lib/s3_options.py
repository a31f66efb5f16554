"""S3 connection settings, shared by every S3 client of the platform (the lake's and the landing zone's pyarrow
filesystems, the model bucket's boto3 client). Standard library only: whoever needs the settings (the `status`
command) loads neither pandas nor pyarrow."""

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_CONNECT_TIMEOUT_S = 3.0
DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_MAX_ATTEMPTS = 3
# environment variable -> S3Options field; read by `s3_limits_from_environ`
LIMIT_VARIABLES = {
    "RARE_TRIAGE_S3_CONNECT_TIMEOUT": "connect_timeout",
    "RARE_TRIAGE_S3_READ_TIMEOUT": "read_timeout",
    "RARE_TRIAGE_S3_MAX_ATTEMPTS": "max_attempts",
}


@dataclass(frozen=True)
class S3Options:
    """Connection to an S3-compatible server; endpoint_url None means AWS itself.

    Every request gives up after `connect_timeout` / `read_timeout` seconds, at most `max_attempts` times in all.
    """

    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout: float = DEFAULT_READ_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"s3 {name}: {getattr(self, name)} must be a positive number of seconds")
        if self.max_attempts < 1:
            raise ValueError(f"s3 max_attempts: {self.max_attempts} must be at least 1")

    def describe_limits(self) -> str:
        """The limits in words, for error messages."""
        return (
            f"connect timeout {self.connect_timeout:g} s, read timeout {self.read_timeout:g} s, "
            f"{self.max_attempts} attempts"
        )


def s3_limits_from_environ(environ: Mapping[str, str]) -> dict[str, float | int]:
    """Timeouts and attempts set in `environ` (RARE_TRIAGE_S3_*), as S3Options fields; defaults when unset."""
    limits: dict[str, float | int] = {
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT_S,
        "read_timeout": DEFAULT_READ_TIMEOUT_S,
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
    }
    for variable, field in LIMIT_VARIABLES.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        try:
            limits[field] = int(raw) if field == "max_attempts" else float(raw)
        except ValueError:
            raise ValueError(f"{variable}: {raw!r} is not a number") from None
    # validates the ranges, naming the field
    S3Options(
        connect_timeout=float(limits["connect_timeout"]),
        read_timeout=float(limits["read_timeout"]),
        max_attempts=int(limits["max_attempts"]),
    )
    return limits
