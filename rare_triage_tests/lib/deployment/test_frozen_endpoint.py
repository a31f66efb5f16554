"""Every S3 client gives up on a frozen endpoint (a socket on 127.0.0.1 that never answers) with an error naming
it; the limits come from one place with defaults."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pytest

from rare_triage.lib.deployment.bucket import BucketUnreachableError, S3Bucket, s3_client
from rare_triage.lib.deployment.publication import publish_model
from rare_triage.lib.lake_fs import resolve_filesystem, write_parquet
from rare_triage.lib.s3_options import S3Options, s3_limits_from_environ
from rare_triage_tests.fixtures_s3 import ACCESS_KEY, SECRET_KEY, frozen_endpoint
from rare_triage_tests.helpers.published_model_factory import release_for

__all__ = ["frozen_endpoint"]  # pytest fixture used by name below

pytestmark = pytest.mark.integration
GUARD_S = 300  # wall-clock guard against a hang, not a speed assertion


def _quick(endpoint: str) -> S3Options:
    return S3Options(endpoint, ACCESS_KEY, SECRET_KEY, connect_timeout=1, read_timeout=1, max_attempts=2)


def _guarded(call: Callable[[], Any]) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(timeout=GUARD_S)


def test_publishing_to_a_frozen_endpoint_fails_naming_it(frozen_endpoint: str) -> None:
    bucket = S3Bucket(s3_client(_quick(frozen_endpoint)), "models", "rare")

    with pytest.raises(BucketUnreachableError) as caught:
        _guarded(lambda: publish_model(bucket, release_for(b"onnx")))

    message = str(caught.value)
    assert message.startswith(f"s3 endpoint {frozen_endpoint}: ")
    assert "s3://models/rare/models/rare-triage/" in message
    assert "connect timeout 1 s, read timeout 1 s, 2 attempts" in message
    assert SECRET_KEY not in message


def test_the_lake_filesystem_gives_up_on_a_frozen_endpoint(frozen_endpoint: str) -> None:
    fs, root = resolve_filesystem("s3://lake/rare-triage", _quick(frozen_endpoint))

    with pytest.raises(OSError, match="lake"):
        _guarded(lambda: write_parquet(fs, f"{root}/t/data.parquet", pd.DataFrame({"a": [1]})))


def test_limits_have_defaults_and_are_read_from_the_environment() -> None:
    assert s3_limits_from_environ({}) == {"connect_timeout": 3.0, "read_timeout": 30.0, "max_attempts": 3}
    assert s3_limits_from_environ({"RARE_TRIAGE_S3_READ_TIMEOUT": "5", "RARE_TRIAGE_S3_MAX_ATTEMPTS": "1"}) == {
        "connect_timeout": 3.0,
        "read_timeout": 5.0,
        "max_attempts": 1,
    }
    with pytest.raises(ValueError, match="RARE_TRIAGE_S3_CONNECT_TIMEOUT: 'soon' is not a number"):
        s3_limits_from_environ({"RARE_TRIAGE_S3_CONNECT_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match=r"s3 read_timeout: 0\.0 must be a positive"):
        s3_limits_from_environ({"RARE_TRIAGE_S3_READ_TIMEOUT": "0"})
    config = s3_client(S3Options("http://127.0.0.1:9", read_timeout=7, max_attempts=4)).meta.config
    assert (config.connect_timeout, config.read_timeout, config.retries) == (
        3.0,
        7,
        {"total_max_attempts": 4, "mode": "standard"},
    )
