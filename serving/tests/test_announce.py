"""`python -m serving --announce`: a sample prediction and the addresses, read from a running service over HTTP."""

from pathlib import Path

import pytest

from serving.announce import SAMPLE_DESCRIPTION, announce_when_ready
from serving.tests.http_server import publish_release, running_server, service_env
from serving.tests.published import MAX_FEATURES, build_release


def test_a_ready_service_answers_the_sample_and_the_text_names_every_address(tmp_path: Path) -> None:
    publish_release(tmp_path / "bucket", build_release(seed=0, n_features=MAX_FEATURES))
    with running_server(service_env(tmp_path / "home", tmp_path / "bucket"), tmp_path / "work") as server:
        printed: list[str] = []
        announce_when_ready(server.base_url, None, out=printed.append, wait_s=30)
        with server.client() as client:
            version = client.get("/v1/model").json()["version"]
    text = "\n".join(printed)
    assert f"model {version}" in text and SAMPLE_DESCRIPTION in text
    assert "orphan flag" in text and "probabilities: none " in text and "not a diagnosis" in text.lower()
    for address in ("/\n", "/schema", "/v1/model", "make ui", "Ctrl-C"):
        assert address in text, address


def test_a_service_without_a_model_is_announced_as_not_ready(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    with running_server(service_env(tmp_path / "home", tmp_path / "bucket"), tmp_path / "work") as server:
        printed: list[str] = []
        announce_when_ready(server.base_url, None, out=printed.append, wait_s=2)
    assert "not ready" in printed[-1] and "triage form" in printed[-1]


def test_no_answer_within_the_wait_is_said(tmp_path: Path) -> None:
    printed: list[str] = []
    announce_when_ready("http://127.0.0.1:9", None, out=printed.append, wait_s=1)
    assert printed == ["rare-triage service: no answer from http://127.0.0.1:9/ready within 1 s"]


def test_the_command_line_documents_announce(capsys: pytest.CaptureFixture[str]) -> None:
    from serving.__main__ import main  # noqa: PLC0415 - the entry point, imported where it is exercised

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--announce" in capsys.readouterr().out
