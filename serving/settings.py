"""The service's settings, read once from the environment by `Settings.from_env`; nothing reads it at import time.

| variable | default | meaning |
|---|---|---|
| MODEL_ENV | (required) | `dev` or `prod`: the env pointer served, the prediction log's name |
| RARE_TRIAGE_BUCKET_URI | `$RARE_TRIAGE_HOME/bucket` | a folder, `file://...` or `s3://bucket/prefix` |
| RARE_TRIAGE_HOME | `.rare_triage` (in the working folder) | the platform's state folder, as the platform reads it |
| RARE_TRIAGE_S3_ENDPOINT_URL | (AWS) | S3-compatible endpoint, e.g. `http://127.0.0.1:9000` |
| AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY | (boto3's chain) | S3 credentials; unset, boto3 looks for them itself |
| AWS_DEFAULT_REGION | us-east-1 | S3 region |
| RARE_TRIAGE_S3_CONNECT_TIMEOUT / _READ_TIMEOUT / _MAX_ATTEMPTS | 3 s, 30 s, 3 | limits of every S3 request |
| SERVING_CACHE_DIR | `$RARE_TRIAGE_HOME/serving/cache` | verified copies of the served model |
| SERVING_LOG_DIR | `$RARE_TRIAGE_HOME/serving/logs` | prediction logs `predicciones_<env>.txt` |
| SERVING_LOG_MAX_BYTES | 67108864 | a log file is closed past this size (0: no size limit) |
| SERVING_LOG_HOURLY | true | a log file is closed when the hour changes |
| SERVING_API_KEY | (required in prod) | the key clients send; at least 16 characters |
| RARE_TRIAGE_HMAC_KEY | (see below) | the platform's pseudonymization key, hex, at least 32 bytes |
| RARE_TRIAGE_DEPLOYMENT | `local` | `local`: a dev service without RARE_TRIAGE_HMAC_KEY takes the public demo key |
| SERVING_ONNX_THREADS | 1 | ONNX Runtime intra-op threads per worker process |
| SERVING_RELOAD_INTERVAL_S | 30 | seconds between two reads of the env pointer |
| SERVING_MAX_BATCH | 256 | most encounters in one request |
| SERVING_MICROBATCH_WAIT_MS | 2 | ms a single prediction may wait to share a model call (0: scored alone) |
| SERVING_MICROBATCH_MAX | 32 | most single predictions scored in one model call (`serving.microbatch`) |
| SERVING_MAX_REQUEST_BYTES | 1048576 | largest request body |
| SERVING_HOST | 127.0.0.1 | address `python -m serving` listens on |
| SERVING_PORT | 8000 | port `python -m serving` listens on |

The S3 names are the platform's (its bucket resource reads the same variables), so one environment file
configures both sides. So are the pseudonymization key's (`serving.pseudonym`): a sent `patient_id` is logged as
its keyed pseudonym `patient_key` only; without a key (unset outside a local dev deployment) it is dropped, reported
in `dropped_fields`, and nothing of it is kept.
"""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from serving.pseudonym import DEPLOYMENT_ENV_VAR, HMAC_KEY_ENV_VAR, PseudonymKey, read_key

MODEL_ENVS = ("dev", "prod")
MIN_API_KEY_LENGTH = 16
DEFAULT_HOME = ".rare_triage"
MAX_PORT = 65535
MAX_MICROBATCH_WAIT_MS = 1000.0
MAX_MICROBATCH = 1024

ModelEnv = Literal["dev", "prod"]


class SettingsError(ValueError):
    """A variable of the environment is missing or has a value the service cannot use; the message names it."""


@dataclass(frozen=True)
class Secret:
    """A value that never shows in a repr, a log line or an error message."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"


@dataclass(frozen=True)
class S3Options:
    """Connection to an S3-compatible server; `endpoint_url` None means AWS itself.

    Every request gives up after `connect_timeout` / `read_timeout` seconds, at most `max_attempts` times in all.
    Credentials None leave them to boto3's own lookup (environment, profile, instance role).
    """

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: Secret | None = None
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    max_attempts: int = 3

    def describe_limits(self) -> str:
        """The limits in words, for error messages."""
        return (
            f"connect timeout {self.connect_timeout:g} s, read timeout {self.read_timeout:g} s, "
            f"{self.max_attempts} attempts"
        )


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, validated; the keys never show in a repr."""

    model_env: ModelEnv
    bucket_uri: str
    s3: S3Options
    cache_dir: Path
    log_dir: Path
    api_key: Secret | None
    pseudonym_key: PseudonymKey | None = None
    onnx_threads: int = 1
    reload_interval_s: float = 30.0
    max_batch: int = 256
    microbatch_wait_ms: float = 2.0
    microbatch_max: int = 32
    max_request_bytes: int = 1_048_576
    log_max_bytes: int = 64 * 1_048_576
    log_hourly: bool = True
    host: str = "127.0.0.1"
    port: int = 8000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read and validate the settings; SettingsError naming the first variable that is missing or wrong."""
        env = _Environ(os.environ if environ is None else environ)
        model_env = env.choice("MODEL_ENV", MODEL_ENVS)
        home = Path(env.text("RARE_TRIAGE_HOME") or DEFAULT_HOME)
        api_key = env.text("SERVING_API_KEY")
        if model_env == "prod" and not api_key:
            raise SettingsError("SERVING_API_KEY: required when MODEL_ENV=prod")
        if api_key and len(api_key) < MIN_API_KEY_LENGTH:
            raise SettingsError(f"SERVING_API_KEY: must be at least {MIN_API_KEY_LENGTH} characters")
        secret_key = env.text("AWS_SECRET_ACCESS_KEY")
        local = (env.text(DEPLOYMENT_ENV_VAR) or "local") == "local" and model_env != "prod"
        try:
            pseudonym_key = read_key(env.text(HMAC_KEY_ENV_VAR), allow_local_default=local)
        except ValueError as exc:
            raise SettingsError(f"{HMAC_KEY_ENV_VAR}: {exc}") from None
        return cls(
            model_env=cast(ModelEnv, model_env),
            bucket_uri=env.bucket_uri("RARE_TRIAGE_BUCKET_URI", default=str((home / "bucket").resolve())),
            s3=S3Options(
                endpoint_url=env.url("RARE_TRIAGE_S3_ENDPOINT_URL"),
                region=env.text("AWS_DEFAULT_REGION") or "us-east-1",
                access_key_id=env.text("AWS_ACCESS_KEY_ID") or None,
                secret_access_key=Secret(secret_key) if secret_key else None,
                connect_timeout=env.number("RARE_TRIAGE_S3_CONNECT_TIMEOUT", 3.0, minimum=0.0, exclusive=True),
                read_timeout=env.number("RARE_TRIAGE_S3_READ_TIMEOUT", 30.0, minimum=0.0, exclusive=True),
                max_attempts=env.integer("RARE_TRIAGE_S3_MAX_ATTEMPTS", 3, minimum=1),
            ),
            cache_dir=env.path("SERVING_CACHE_DIR", home / "serving" / "cache"),
            log_dir=env.path("SERVING_LOG_DIR", home / "serving" / "logs"),
            api_key=Secret(api_key) if api_key else None,
            pseudonym_key=pseudonym_key,
            onnx_threads=env.integer("SERVING_ONNX_THREADS", 1, minimum=1),
            reload_interval_s=env.number("SERVING_RELOAD_INTERVAL_S", 30.0, minimum=0.0, exclusive=True),
            max_batch=env.integer("SERVING_MAX_BATCH", 256, minimum=1),
            microbatch_wait_ms=env.number(
                "SERVING_MICROBATCH_WAIT_MS", 2.0, minimum=0.0, maximum=MAX_MICROBATCH_WAIT_MS
            ),
            microbatch_max=env.integer("SERVING_MICROBATCH_MAX", 32, minimum=1, maximum=MAX_MICROBATCH),
            max_request_bytes=env.integer("SERVING_MAX_REQUEST_BYTES", 1_048_576, minimum=1024),
            log_max_bytes=env.integer("SERVING_LOG_MAX_BYTES", 64 * 1_048_576, minimum=0),
            log_hourly=env.boolean("SERVING_LOG_HOURLY", True),
            host=env.text("SERVING_HOST") or "127.0.0.1",
            port=env.integer("SERVING_PORT", 8000, minimum=1, maximum=MAX_PORT),
        )


class _Environ:
    """Typed reads of environment variables, each error naming its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str:
        return self._environ.get(name, "").strip()

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        raw = self.text(name)
        if not raw:
            raise SettingsError(f"{name}: required, one of {', '.join(allowed)}")
        if raw not in allowed:
            raise SettingsError(f"{name}: {raw!r} is not one of {', '.join(allowed)}")
        return raw

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}: {raw!r} is not an integer") from None
        if value < minimum:
            raise SettingsError(f"{name}: {value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise SettingsError(f"{name}: {value} is above the maximum {maximum}")
        return value

    def number(
        self, name: str, default: float, *, minimum: float, exclusive: bool = False, maximum: float | None = None
    ) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}: {raw!r} is not a number") from None
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            bound = "above" if exclusive else "at least"
            raise SettingsError(f"{name}: {raw!r} must be a finite number {bound} {minimum:g}")
        if maximum is not None and value > maximum:
            raise SettingsError(f"{name}: {raw!r} is above the maximum {maximum:g}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name).lower()
        if not raw:
            return default
        if raw in {"1", "true", "yes", "on"}:
            return True
        if raw in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name}: {raw!r} is not a boolean (true/false, 1/0, yes/no, on/off)")

    def path(self, name: str, default: Path) -> Path:
        return Path(self.text(name) or default).resolve()

    def url(self, name: str) -> str | None:
        raw = self.text(name)
        if not raw:
            return None
        if not raw.startswith(("http://", "https://")):
            raise SettingsError(f"{name}: {raw!r} is not an http:// or https:// URL")
        return raw.rstrip("/")

    def bucket_uri(self, name: str, *, default: str) -> str:
        raw = self.text(name)
        if not raw:
            return default
        if raw.startswith("s3://"):
            bucket, _, prefix = raw.removeprefix("s3://").partition("/")
            if not bucket:
                raise SettingsError(f"{name}: {raw!r} names no bucket (s3://bucket/prefix)")
            return f"s3://{bucket}/{prefix.strip('/')}".rstrip("/")
        if "://" in raw and not raw.startswith("file://"):
            raise SettingsError(f"{name}: {raw!r} has an unsupported scheme (a folder, file:// or s3://bucket/prefix)")
        return str(Path(raw.removeprefix("file://")).resolve())
