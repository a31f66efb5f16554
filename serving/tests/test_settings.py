"""Settings: read once from an environment mapping, validated, every error naming its variable, secrets hidden."""

import dataclasses
from pathlib import Path

import pytest

from serving.settings import Settings, SettingsError

KEY = "k" * 24


def test_defaults_of_a_dev_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"MODEL_ENV": "dev", "RARE_TRIAGE_HOME": str(tmp_path)})

    assert settings.model_env == "dev"
    assert settings.bucket_uri == str(tmp_path / "bucket")
    assert settings.cache_dir == tmp_path / "serving" / "cache"
    assert settings.log_dir == tmp_path / "serving" / "logs"
    assert settings.api_key is None
    assert (settings.onnx_threads, settings.reload_interval_s, settings.max_batch) == (1, 30.0, 256)
    assert (settings.microbatch_wait_ms, settings.microbatch_max) == (2.0, 32)
    assert (settings.max_request_bytes, settings.log_max_bytes, settings.log_hourly) == (1_048_576, 64 << 20, True)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.s3.endpoint_url is None
    assert settings.s3.region == "us-east-1"
    assert (settings.s3.connect_timeout, settings.s3.read_timeout, settings.s3.max_attempts) == (3.0, 30.0, 3)


def test_without_a_home_the_bucket_is_the_platforms_local_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    settings = Settings.from_env({"MODEL_ENV": "dev"})

    assert settings.bucket_uri == str(tmp_path / ".rare_triage" / "bucket")


def test_every_variable_is_read(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "MODEL_ENV": "prod",
            "RARE_TRIAGE_BUCKET_URI": "s3://models/rare/triage/",
            "RARE_TRIAGE_S3_ENDPOINT_URL": "http://127.0.0.1:9000/",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "access",
            "AWS_SECRET_ACCESS_KEY": "very-secret-value",
            "RARE_TRIAGE_S3_CONNECT_TIMEOUT": "0.5",
            "RARE_TRIAGE_S3_READ_TIMEOUT": "2",
            "RARE_TRIAGE_S3_MAX_ATTEMPTS": "1",
            "SERVING_CACHE_DIR": str(tmp_path / "c"),
            "SERVING_LOG_DIR": str(tmp_path / "l"),
            "SERVING_API_KEY": KEY,
            "SERVING_ONNX_THREADS": "2",
            "SERVING_RELOAD_INTERVAL_S": "0.25",
            "SERVING_MAX_BATCH": "64",
            "SERVING_MICROBATCH_WAIT_MS": "0.5",
            "SERVING_MICROBATCH_MAX": "16",
            "SERVING_MAX_REQUEST_BYTES": "65536",
            "SERVING_LOG_MAX_BYTES": "0",
            "SERVING_LOG_HOURLY": "off",
            "SERVING_HOST": "0.0.0.0",
            "SERVING_PORT": "8443",
        }
    )

    assert settings.bucket_uri == "s3://models/rare/triage"
    assert settings.s3.endpoint_url == "http://127.0.0.1:9000"
    assert (settings.s3.region, settings.s3.access_key_id) == ("eu-west-1", "access")
    assert settings.s3.secret_access_key is not None and settings.s3.secret_access_key.value == "very-secret-value"
    assert (settings.s3.connect_timeout, settings.s3.read_timeout, settings.s3.max_attempts) == (0.5, 2.0, 1)
    assert (settings.cache_dir, settings.log_dir) == (tmp_path / "c", tmp_path / "l")
    assert settings.api_key is not None and settings.api_key.value == KEY
    assert (settings.onnx_threads, settings.reload_interval_s, settings.max_batch) == (2, 0.25, 64)
    assert (settings.microbatch_wait_ms, settings.microbatch_max) == (0.5, 16)
    assert (settings.max_request_bytes, settings.log_max_bytes, settings.log_hourly) == (65536, 0, False)
    assert (settings.host, settings.port) == ("0.0.0.0", 8443)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("file:///srv/bucket", "/srv/bucket"), ("/srv/bucket/", "/srv/bucket"), ("s3://b", "s3://b")],
)
def test_bucket_uris(uri: str, expected: str) -> None:
    assert Settings.from_env({"MODEL_ENV": "dev", "RARE_TRIAGE_BUCKET_URI": uri}).bucket_uri == expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MODEL_ENV", "", "MODEL_ENV: required, one of dev, prod"),
        ("MODEL_ENV", "staging", "MODEL_ENV: 'staging' is not one of dev, prod"),
        ("RARE_TRIAGE_BUCKET_URI", "gs://bucket", "RARE_TRIAGE_BUCKET_URI: 'gs://bucket' has an unsupported scheme"),
        ("RARE_TRIAGE_BUCKET_URI", "s3:///prefix", "RARE_TRIAGE_BUCKET_URI: 's3:///prefix' names no bucket"),
        ("RARE_TRIAGE_S3_ENDPOINT_URL", "127.0.0.1:9000", "RARE_TRIAGE_S3_ENDPOINT_URL: '127.0.0.1:9000' is not an"),
        ("RARE_TRIAGE_S3_CONNECT_TIMEOUT", "0", "RARE_TRIAGE_S3_CONNECT_TIMEOUT: '0' must be a finite number above 0"),
        ("RARE_TRIAGE_S3_READ_TIMEOUT", "soon", "RARE_TRIAGE_S3_READ_TIMEOUT: 'soon' is not a number"),
        ("RARE_TRIAGE_S3_READ_TIMEOUT", "inf", "RARE_TRIAGE_S3_READ_TIMEOUT: 'inf' must be a finite number"),
        ("RARE_TRIAGE_S3_MAX_ATTEMPTS", "0", "RARE_TRIAGE_S3_MAX_ATTEMPTS: 0 is below the minimum 1"),
        ("SERVING_ONNX_THREADS", "1.5", "SERVING_ONNX_THREADS: '1.5' is not an integer"),
        ("SERVING_RELOAD_INTERVAL_S", "-1", "SERVING_RELOAD_INTERVAL_S: '-1' must be a finite number above 0"),
        ("SERVING_MAX_BATCH", "0", "SERVING_MAX_BATCH: 0 is below the minimum 1"),
        ("SERVING_MICROBATCH_WAIT_MS", "-1", "SERVING_MICROBATCH_WAIT_MS: '-1' must be a finite number at least 0"),
        ("SERVING_MICROBATCH_WAIT_MS", "5000", "SERVING_MICROBATCH_WAIT_MS: '5000' is above the maximum 1000"),
        ("SERVING_MICROBATCH_WAIT_MS", "nan", "SERVING_MICROBATCH_WAIT_MS: 'nan' must be a finite number"),
        ("SERVING_MICROBATCH_MAX", "0", "SERVING_MICROBATCH_MAX: 0 is below the minimum 1"),
        ("SERVING_MICROBATCH_MAX", "4096", "SERVING_MICROBATCH_MAX: 4096 is above the maximum 1024"),
        ("SERVING_MAX_REQUEST_BYTES", "100", "SERVING_MAX_REQUEST_BYTES: 100 is below the minimum 1024"),
        ("SERVING_LOG_MAX_BYTES", "-5", "SERVING_LOG_MAX_BYTES: -5 is below the minimum 0"),
        ("SERVING_LOG_HOURLY", "maybe", "SERVING_LOG_HOURLY: 'maybe' is not a boolean"),
        ("SERVING_API_KEY", "short", "SERVING_API_KEY: must be at least 16 characters"),
        ("SERVING_PORT", "0", "SERVING_PORT: 0 is below the minimum 1"),
        ("SERVING_PORT", "70000", "SERVING_PORT: 70000 is above the maximum 65535"),
        ("SERVING_PORT", "http", "SERVING_PORT: 'http' is not an integer"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(variable: str, value: str, message: str) -> None:
    environ = {"MODEL_ENV": "dev", variable: value}

    with pytest.raises(SettingsError) as raised:
        Settings.from_env(environ)

    assert str(raised.value).startswith(message)


def test_prod_requires_an_api_key() -> None:
    with pytest.raises(SettingsError, match=r"^SERVING_API_KEY: required when MODEL_ENV=prod$"):
        Settings.from_env({"MODEL_ENV": "prod"})


def test_secrets_never_show() -> None:
    settings = Settings.from_env(
        {"MODEL_ENV": "prod", "SERVING_API_KEY": KEY, "AWS_SECRET_ACCESS_KEY": "very-secret-value"}
    )

    shown = f"{settings!r} {settings} {settings.api_key} {settings.s3!r}"
    assert KEY not in shown
    assert "very-secret-value" not in shown
    assert "**********" in shown


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({"MODEL_ENV": "dev"})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_batch = 1  # type: ignore[misc]


def test_the_process_environment_is_read_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_ENV", "dev")
    monkeypatch.setenv("SERVING_MAX_BATCH", "7")

    assert Settings.from_env().max_batch == 7


def test_micro_batching_can_be_turned_off() -> None:
    settings = Settings.from_env({"MODEL_ENV": "dev", "SERVING_MICROBATCH_WAIT_MS": "0"})

    assert settings.microbatch_wait_ms == 0.0
