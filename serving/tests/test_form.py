"""The triage form's server side over real HTTP: GET /v1/vocabulary, the page in Spanish or English, its static
files from the package, the strings of both languages. The browser itself is driven in test_form_browser.py."""

import dataclasses
import fnmatch
import html
import re
import tomllib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.api.form import (
    CONTENT_SECURITY_POLICY,
    MESSAGES,
    NUMBER_FIELDS,
    STATIC_DIR,
    choose_language,
    contract_bounds,
    render_page,
)
from serving.api.vocabulary import vocabulary_terms
from serving.contract import MAX_AGE_YEARS, MAX_SYMPTOM_DURATION_DAYS, SEVERITY_RANGE, Encounter
from serving.tests.http_server import API_KEY, Server, publish_release, running_server, service_env
from serving.tests.published import CLASS_LABELS, MAX_FEATURES, Release, build_release

SERVING = Path(__file__).resolve().parents[1]
# The platform's manifest vocabulary: {hpo_id, label} (rare_triage.lib.training.model), in the model's order.
VOCABULARY = [
    {"hpo_id": "HP:0001945", "label": "Fever"},
    {"hpo_id": "HP:0001954", "label": "Recurrent fever"},
    {"hpo_id": "HP:0001250", "label": "Seizure"},
    {"hpo_id": "HP:0002027", "label": "Abdominal pain"},
]


def labelled_release(seed: int = 0) -> Release:
    """The fixture version with the platform's vocabulary entries (hpo_id, label)."""
    release = build_release(seed=seed, n_features=MAX_FEATURES)
    return dataclasses.replace(release, manifest={**release.manifest, "vocabulary": VOCABULARY})


@pytest.fixture(scope="module")
def release() -> Release:
    return labelled_release()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, release: Release) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("form")
    publish_release(root / "bucket", release)
    env = service_env(root / "home", root / "bucket", SERVING_API_KEY=API_KEY)
    with running_server(env, root / "work") as running:
        yield running


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


class Resources(HTMLParser):
    """Every src and href of a page, and its <html lang>."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        self.links += [value for name, value in attrs if name in ("src", "href") and value is not None]


def parse(page: str) -> Resources:
    parser = Resources()
    parser.feed(page)
    return parser


def test_the_vocabulary_lists_the_models_terms_by_label(client: httpx.Client, release: Release) -> None:
    response = client.get("/v1/vocabulary")  # no key: the vocabulary is the model's, no patient data

    assert response.status_code == 200
    assert response.json() == {
        "model_version": release.version,
        "hpo_release": "2025-01-16",
        "terms": VOCABULARY,
    }


def test_the_vocabulary_is_503_without_a_model(tmp_path: Path) -> None:
    env = service_env(tmp_path / "home", tmp_path / "empty-bucket")

    with running_server(env, tmp_path / "work") as server, server.client() as client:
        response = client.get("/v1/vocabulary")
        page = client.get("/")

    assert response.status_code == 503
    assert response.json()["detail"].startswith("no model loaded for env dev")
    assert page.status_code == 200  # the form still answers, and says the vocabulary could not be loaded


def test_vocabulary_terms_fall_back_to_the_id_and_skip_what_predict_would_refuse() -> None:
    manifest: dict[str, Any] = {
        "vocabulary": [
            {"hpo_id": "HP:0001250", "label": "Seizure"},
            {"hpo_id": "HP:0001945"},
            {"hpo_id": "HP:0002027", "label": "  "},
            {"hpo_id": "HP:0001250", "label": "Seizure again"},
            {"hpo_id": "HP:12", "label": "Malformed"},
            {"label": "No id"},
            "HP:0000118",
        ]
    }

    terms = [(term.hpo_id, term.label) for term in vocabulary_terms(manifest)]

    assert terms == [("HP:0001250", "Seizure"), ("HP:0001945", "HP:0001945"), ("HP:0002027", "HP:0002027")]


@pytest.mark.parametrize(
    ("accept_language", "requested", "expected"),
    [
        ("es-ES,es;q=0.9,en;q=0.8", None, "es"),
        ("en-GB,en;q=0.9,es;q=0.8", None, "en"),
        ("fr-FR,es;q=0.5,en;q=0.4", None, "es"),  # the preferred one of the two the form speaks
        ("en;q=0.3, ES-mx;q=0.7", None, "es"),
        ("es;q=0, en;q=0.1", None, "en"),  # q=0: not acceptable
        ("es;q=abc, en;q=0.1", None, "en"),  # a malformed q-value counts as not acceptable
        ("es, en", None, "es"),  # equal q-values: the first one
        ("fr-FR,de", None, "en"),
        ("", None, "en"),
        (None, None, "en"),
        ("es-ES", "en", "en"),  # ?lang= wins
        ("en", " ES ", "es"),
        ("es", "fr", "es"),  # an unknown ?lang= is ignored
    ],
)
def test_the_language_follows_the_query_then_accept_language_then_english(
    accept_language: str | None, requested: str | None, expected: str
) -> None:
    assert choose_language(accept_language, requested) == expected


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"Accept-Language": "es-ES,es;q=0.9,en;q=0.8"}, "", "es"),
        ({"Accept-Language": "en-US,en;q=0.9"}, "", "en"),
        ({"Accept-Language": "es-ES"}, "?lang=en", "en"),
        ({}, "", "en"),
    ],
)
def test_the_form_is_served_in_the_browsers_language(
    client: httpx.Client, headers: dict[str, str], query: str, expected: str
) -> None:
    response = client.get("/" + query, headers=headers)

    messages = {"en": MESSAGES["en"], "es": MESSAGES["es"]}[expected]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-language"] == expected
    assert "accept-language" in response.headers["vary"].lower()
    assert parse(response.text).lang == expected
    for key in ("title", "symptom_search", "observed", "excluded", "temperature_c", "submit", "disclaimer"):
        assert html.escape(messages[key]) in response.text, key


def test_the_page_loads_nothing_from_elsewhere(client: httpx.Client) -> None:
    response = client.get("/")

    links = parse(response.text).links
    assert "/static/form.js" in links and "/static/form.css" in links
    assert all(link.startswith(("/", "?")) and not link.startswith("//") for link in links), links
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'self'" in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY
    for name, media_type in (("form.js", "text/javascript"), ("form.css", "text/css")):
        static = client.get(f"/static/{name}")
        assert static.status_code == 200, name
        assert static.headers["content-type"].startswith(media_type), name
        assert static.headers["x-content-type-options"] == "nosniff"
        assert "://" not in static.text and "url(" not in static.text and "@import" not in static.text, name


def test_the_key_field_is_required_only_when_the_service_has_a_key(client: httpx.Client) -> None:
    with_key = client.get("/").text
    without_key = render_page("en", key_required=False)

    assert 'data-key-required="true"' in with_key and 'aria-describedby="api-key-help" required>' in with_key
    assert 'data-key-required="false"' in without_key and "required>" not in without_key
    assert 'data-key-header="X-API-Key"' in with_key


def test_static_files_outside_the_folder_are_not_served(client: httpx.Client) -> None:
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/missing.js"):
        assert client.get(path).status_code == 404, path


def test_the_form_and_its_files_are_left_out_of_the_openapi_schema(client: httpx.Client) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]

    assert "/v1/vocabulary" in paths
    assert "/" not in paths and not any(path.startswith("/static") for path in paths)


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_every_string_is_in_both_languages() -> None:
    english, spanish = MESSAGES["en"], MESSAGES["es"]
    script = (STATIC_DIR / "form.js").read_text(encoding="utf-8")
    used = set(re.findall(r"""\bt\(\s*"(\w+)\"""", script)) | {f"class_{label}" for label in CLASS_LABELS}

    assert set(english) == set(spanish)
    assert used <= set(english), used - set(english)
    for key in english:
        assert english[key].strip() and spanish[key].strip(), key
        assert placeholders(english[key]) == placeholders(spanish[key]), key
    differ = {key for key in english if english[key] != spanish[key]}
    assert {"title", "disclaimer", "observed", "excluded", "submit", "result_class"} <= differ


def test_the_package_data_ships_every_static_file() -> None:
    setuptools = tomllib.loads((SERVING / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    patterns = setuptools["package-data"]["serving"]
    files = [path.relative_to(SERVING).as_posix() for path in STATIC_DIR.rglob("*") if path.is_file()]

    assert STATIC_DIR == SERVING / "static"
    assert {"static/form.js", "static/form.css"} <= set(files)
    assert all(any(fnmatch.fnmatchcase(file, pattern) for pattern in patterns) for file in files), files


def test_the_number_inputs_are_fields_of_the_contract_with_its_bounds() -> None:
    page = render_page("en", key_required=False)
    inputs = dict(re.findall(r'<input id="(\w+)" name="\1" type="number"[^>]*?min="([^"]+)"', page))

    assert list(inputs) == [field for field, _ in NUMBER_FIELDS]
    assert set(inputs) <= set(Encounter.__struct_fields__)
    assert contract_bounds("age_years") == (0, MAX_AGE_YEARS)
    assert contract_bounds("pain_score") == SEVERITY_RANGE
    assert contract_bounds("symptom_duration_days") == (0, MAX_SYMPTOM_DURATION_DAYS)
    assert contract_bounds("spo2") == (50.0, 100.0)
    assert 'id="temperature_c" name="temperature_c" type="number" inputmode="decimal" min="30" max="45"' in page
