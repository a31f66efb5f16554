"""`python -m serving --announce`: once the service is ready, one sample prediction and where everything is.

The README's main command (`make run`) ends with the service in the foreground; this tells its user what the freshly
published model answers to a sample encounter and which addresses to open. It calls the service over HTTP like any
client, from a daemon thread, with a bounded wait.
"""

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

READY_WAIT_S = 120.0
POLL_S = 0.5
REQUEST_TIMEOUT_S = 10.0
# a synthetic encounter: fever and cough for three days in primary care (no real person)
SAMPLE_ENCOUNTER: dict[str, Any] = {
    "sex": "F",
    "age_years": 34,
    "consultation_type": "primary_care",
    "temperature_c": 38.6,
    "heart_rate": 96,
    "respiratory_rate": 18,
    "spo2": 97,
    "symptom_duration_days": 3,
    "hpo_observed": ["HP:0001945", "HP:0012735"],
}
SAMPLE_DESCRIPTION = "fever and cough for 3 days, 38.6 °C, primary care, a woman of 34"


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _post(url: str, body: dict[str, Any], api_key: str | None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"} | ({"X-API-Key": api_key} if api_key else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        return dict(json.loads(response.read()))


def announcement(base_url: str, ready: dict[str, Any], prediction: dict[str, Any] | None) -> str:
    """The text printed once the service answered: the sample prediction (if a model is loaded) and the addresses."""
    lines = ["", "rare-triage service"]
    if prediction is None:
        detail = ready.get("detail", "no model loaded")
        lines.append(f"  not ready: {detail} (it loads the model when one is published)")
    else:
        probabilities = ", ".join(f"{label} {p:.3f}" for label, p in prediction["probabilities"].items())
        lines += [
            f"  model {prediction['model_version']} ({ready.get('source', 'bucket')})",
            f"  sample encounter: {SAMPLE_DESCRIPTION}",
            f"  -> {prediction['class']}; orphan flag {'yes' if prediction['orphan_flag'] else 'no'} "
            f"(threshold {prediction['orphan_threshold']:.3f}); needs review: "
            f"{'yes' if prediction['needs_review'] else 'no'}",
            f"     probabilities: {probabilities}",
            f"     {prediction['disclaimer']}",
        ]
    lines += [
        f"  triage form:      {base_url}/",
        f"  API docs:         {base_url}/schema  (OpenAPI: {base_url}/schema/openapi.json)",
        f"  model served:     {base_url}/v1/model",
        "  Dagster UI:       make ui  ->  http://127.0.0.1:3000",
        "  Ctrl-C stops the service.",
        "",
    ]
    return "\n".join(lines)


def announce_when_ready(
    base_url: str,
    api_key: str | None,
    *,
    out: Callable[[str], None] = print,
    wait_s: float = READY_WAIT_S,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait (bounded) until /ready answers, post the sample to /v1/predict if a model is loaded, print the text."""
    deadline = clock() + wait_s
    status, ready = 0, dict[str, Any]()
    while clock() < deadline:
        try:
            status, ready = _get(f"{base_url}/ready")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(POLL_S)
            continue
        if status == 200:
            break
        time.sleep(POLL_S)
    if status == 0:
        out(f"rare-triage service: no answer from {base_url}/ready within {wait_s:.0f} s")
        return
    prediction = None
    if status == 200:
        try:
            prediction = _post(f"{base_url}/v1/predict", SAMPLE_ENCOUNTER, api_key)
        except urllib.error.HTTPError as exc:
            out(f"rare-triage service: the sample prediction failed: HTTP {exc.code} {exc.read()[:300]!r}")
            return
    out(announcement(base_url, ready, prediction))


def start_announcer(base_url: str, api_key: str | None) -> threading.Thread:
    """`announce_when_ready` in a daemon thread (it never holds the process up)."""
    thread = threading.Thread(target=announce_when_ready, args=(base_url, api_key), name="announce", daemon=True)
    thread.start()
    return thread
