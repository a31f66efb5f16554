"""GET /: the triage form for a clinician, in Spanish or English; its CSS and JS are served from the package under
/static (no external resource: the hospital network may be closed).

The form offers the served model's symptom vocabulary by name (GET /v1/vocabulary) with a search box, each term
ticked as observed or excluded, and sex, age, vitals, pain score and symptom duration. On submit the page posts the
encounter to POST /v1/predict (fetch, JSON) and shows the class, the probabilities, the orphan flag with its
threshold, needs-review, the model version, the HPO ids the model could not read and the disclaimer: triage
support, not a diagnosis.

Language: `?lang=es` or `?lang=en` when given, else the browser's Accept-Language (its preferred one of es and
en, by q-value), else English. Every string of the page and of its script comes from `MESSAGES` below, in both
languages; the script receives the chosen language's strings in a JSON block of the page.

API key: when the service has one (SERVING_API_KEY, always in prod) the form asks for it. The page keeps it in the
tab's sessionStorage only (never in a cookie, localStorage or the URL: it is gone when the tab closes, and a
"Forget" button removes it at once) and sends it as the X-API-Key header of each prediction.

The page, the script and the style sheet are sent with a Content-Security-Policy that allows this origin only:
a browser loads nothing from anywhere else, and runs no inline script.
"""

import html
import json
import string
from pathlib import Path
from typing import Final, Literal

import msgspec
from litestar import MediaType, Request, Response, Router, get
from litestar.params import FromQuery
from litestar.static_files import create_static_files_router

from serving.api.auth import API_KEY_HEADER
from serving.api.runtime import runtime_of
from serving.contract import Encounter
from serving.schemas import DISCLAIMER

Language = Literal["en", "es"]
LANGUAGES: Final[tuple[Language, ...]] = ("en", "es")
DEFAULT_LANGUAGE: Final[Language] = "en"
_LANGUAGE_OF: Final[dict[str, Language]] = {language: language for language in LANGUAGES}
STATIC_DIR: Final = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH: Final = "/static"
# This origin only; no inline script (the strings travel as a JSON data block, which is not run).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# Every string the page and its script show. `{name}` fields are filled by the script.
MESSAGES: Final[dict[Language, dict[str, str]]] = {
    "en": {
        "title": "Orphan-disease triage",
        "intro": (
            "Enter what is known of the encounter; every field is optional. The service estimates the probability "
            "of each triage class with the published model."
        ),
        "disclaimer": DISCLAIMER,
        "other_language": "Español",
        "other_language_name": "Versión en español",
        "noscript": "This form needs JavaScript. The API itself is documented at /schema.",
        "access_legend": "Access",
        "api_key": "API key",
        "api_key_help_required": (
            "This service requires its key (X-API-Key header). The key is kept in this browser tab only "
            "(sessionStorage) and sent with each prediction; it is gone when the tab is closed."
        ),
        "api_key_help_optional": (
            "This service answers without a key; a key entered here is kept in this browser tab only "
            "(sessionStorage) and sent with each prediction."
        ),
        "api_key_forget": "Forget the key",
        "api_key_forgotten": "The key was removed from this tab.",
        "symptoms_legend": "Symptoms",
        "symptom_search": "Search symptoms by name",
        "symptom_search_help": (
            "Names as in the model's vocabulary (HPO, in English). Tick Observed for a finding present, Excluded for "
            "one ruled out."
        ),
        "symptoms_loading": "Loading the model's symptom vocabulary…",
        "symptoms_unavailable": "The symptom vocabulary could not be loaded: {detail}",
        "symptoms_shown": "{shown} of {total} symptoms shown.",
        "symptoms_more": "{count} more match: refine the search.",
        "symptoms_no_match": "No symptom matches “{query}”.",
        "observed": "Observed",
        "excluded": "Excluded",
        "selected_heading": "Picked",
        "selected_none": "No symptom picked.",
        "selected_observed": "Observed: {terms}",
        "selected_excluded": "Excluded: {terms}",
        "patient_legend": "Patient",
        "sex": "Sex",
        "sex_unset": "Not recorded",
        "sex_F": "Female",
        "sex_M": "Male",
        "sex_U": "Unknown",
        "age_years": "Age (years)",
        "vitals_legend": "Vital signs",
        "temperature_c": "Temperature (°C)",
        "heart_rate": "Heart rate (beats/min)",
        "respiratory_rate": "Respiratory rate (breaths/min)",
        "spo2": "Oxygen saturation, SpO₂ (%)",
        "systolic_bp": "Systolic blood pressure (mmHg)",
        "diastolic_bp": "Diastolic blood pressure (mmHg)",
        "clinical_legend": "Pain and course",
        "pain_score": "Pain score (0–10)",
        "symptom_duration_days": "Symptom duration (days)",
        "submit": "Estimate triage",
        "reset": "Clear the form",
        "busy": "Estimating…",
        "result_heading": "Result",
        "result_class": "Triage class",
        "probabilities": "Probabilities by class",
        "column_class": "Class",
        "column_probability": "Probability",
        "class_none": "No disease",
        "class_common_mild": "Common, mild",
        "class_common_acute": "Common, acute",
        "class_common_chronic": "Common, chronic",
        "class_orphan": "Orphan (rare) disease",
        "orphan_flag": "Orphan flag",
        "orphan_flag_yes": "Yes: orphan probability {probability} reaches the threshold {threshold}",
        "orphan_flag_no": "No: orphan probability {probability} is below the threshold {threshold}",
        "needs_review": "Needs review",
        "needs_review_yes": "Yes: orphan probability in the review band [{review}, {threshold})",
        "needs_review_no": "No",
        "model_version": "Model version",
        "request_id": "Request id",
        "unknown_hpo": "HPO ids the model could not read",
        "unknown_hpo_none": "None",
        "dropped_fields": "Fields the model did not use",
        "unseen_categories": "Values the model never saw",
        "error_heading": "No estimate",
        "error_api_key": "The service needs a valid API key: enter it under Access and submit again.",
        "error_field": "{field}: {detail}",
        "error_status": "The service answered {status}: {detail}",
        "error_network": "The service could not be reached: {detail}",
        "error_timeout": "The service did not answer within {seconds} s.",
        "error_invalid": "Check the highlighted field.",
    },
    "es": {
        "title": "Triaje de enfermedades huérfanas",
        "intro": (
            "Introduzca lo que se sabe del encuentro; ningún campo es obligatorio. El servicio estima la "
            "probabilidad de cada clase de triaje con el modelo publicado."
        ),
        "disclaimer": (
            "Apoyo al triaje, no un diagnóstico: una estimación estadística a partir del encuentro codificado, que "
            "un clínico debe valorar con todo lo demás que se sabe del paciente."
        ),
        "other_language": "English",
        "other_language_name": "English version",
        "noscript": "Este formulario necesita JavaScript. La API está documentada en /schema.",
        "access_legend": "Acceso",
        "api_key": "Clave de API",
        "api_key_help_required": (
            "Este servicio exige su clave (cabecera X-API-Key). La clave se guarda solo en esta pestaña del "
            "navegador (sessionStorage) y se envía con cada predicción; desaparece al cerrar la pestaña."
        ),
        "api_key_help_optional": (
            "Este servicio responde sin clave; una clave introducida aquí se guarda solo en esta pestaña del "
            "navegador (sessionStorage) y se envía con cada predicción."
        ),
        "api_key_forget": "Olvidar la clave",
        "api_key_forgotten": "La clave se ha borrado de esta pestaña.",
        "symptoms_legend": "Síntomas",
        "symptom_search": "Buscar síntomas por nombre",
        "symptom_search_help": (
            "Nombres del vocabulario del modelo (HPO, en inglés). Marque Presente si el hallazgo está presente, "
            "Descartado si se ha descartado."
        ),
        "symptoms_loading": "Cargando el vocabulario de síntomas del modelo…",
        "symptoms_unavailable": "No se pudo cargar el vocabulario de síntomas: {detail}",
        "symptoms_shown": "{shown} de {total} síntomas mostrados.",
        "symptoms_more": "{count} más coinciden: afine la búsqueda.",
        "symptoms_no_match": "Ningún síntoma coincide con «{query}».",
        "observed": "Presente",
        "excluded": "Descartado",
        "selected_heading": "Seleccionados",
        "selected_none": "Ningún síntoma seleccionado.",
        "selected_observed": "Presentes: {terms}",
        "selected_excluded": "Descartados: {terms}",
        "patient_legend": "Paciente",
        "sex": "Sexo",
        "sex_unset": "Sin registrar",
        "sex_F": "Mujer",
        "sex_M": "Hombre",
        "sex_U": "Desconocido",
        "age_years": "Edad (años)",
        "vitals_legend": "Constantes vitales",
        "temperature_c": "Temperatura (°C)",
        "heart_rate": "Frecuencia cardiaca (lpm)",
        "respiratory_rate": "Frecuencia respiratoria (rpm)",
        "spo2": "Saturación de oxígeno, SpO₂ (%)",
        "systolic_bp": "Presión arterial sistólica (mmHg)",
        "diastolic_bp": "Presión arterial diastólica (mmHg)",
        "clinical_legend": "Dolor y evolución",
        "pain_score": "Escala de dolor (0–10)",
        "symptom_duration_days": "Duración de los síntomas (días)",
        "submit": "Estimar el triaje",
        "reset": "Vaciar el formulario",
        "busy": "Estimando…",
        "result_heading": "Resultado",
        "result_class": "Clase de triaje",
        "probabilities": "Probabilidad de cada clase",
        "column_class": "Clase",
        "column_probability": "Probabilidad",
        "class_none": "Sin enfermedad",
        "class_common_mild": "Común, leve",
        "class_common_acute": "Común, aguda",
        "class_common_chronic": "Común, crónica",
        "class_orphan": "Enfermedad huérfana (rara)",
        "orphan_flag": "Alerta de enfermedad huérfana",
        "orphan_flag_yes": "Sí: la probabilidad huérfana {probability} alcanza el umbral {threshold}",
        "orphan_flag_no": "No: la probabilidad huérfana {probability} está por debajo del umbral {threshold}",
        "needs_review": "Requiere revisión",
        "needs_review_yes": "Sí: probabilidad huérfana en la banda de revisión [{review}, {threshold})",
        "needs_review_no": "No",
        "model_version": "Versión del modelo",
        "request_id": "Identificador de la solicitud",
        "unknown_hpo": "Códigos HPO que el modelo no pudo leer",
        "unknown_hpo_none": "Ninguno",
        "dropped_fields": "Campos que el modelo no usó",
        "unseen_categories": "Valores que el modelo nunca vio",
        "error_heading": "Sin estimación",
        "error_api_key": "El servicio necesita una clave de API válida: introdúzcala en Acceso y envíe de nuevo.",
        "error_field": "{field}: {detail}",
        "error_status": "El servicio respondió {status}: {detail}",
        "error_network": "No se pudo contactar con el servicio: {detail}",
        "error_timeout": "El servicio no respondió en {seconds} s.",
        "error_invalid": "Revise el campo marcado.",
    },
}

# (field of the contract and key of its label, step): the number inputs, in the order they appear; their min and
# max are the contract's (`contract_bounds`), which the service checks again.
PATIENT_FIELDS: Final = (("age_years", "1"),)
VITAL_FIELDS: Final = (
    ("temperature_c", "0.1"),
    ("heart_rate", "1"),
    ("respiratory_rate", "1"),
    ("spo2", "1"),
    ("systolic_bp", "1"),
    ("diastolic_bp", "1"),
)
CLINICAL_FIELDS: Final = (("pain_score", "1"), ("symptom_duration_days", "any"))
NUMBER_FIELDS: Final = (*PATIENT_FIELDS, *VITAL_FIELDS, *CLINICAL_FIELDS)

PAGE: Final = string.Template("""<!doctype html>
<html lang="$lang">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$t_title</title>
<link rel="stylesheet" href="$static/form.css">
<script type="application/json" id="messages">$messages</script>
<script src="$static/form.js" defer></script>
</head>
<body>
<header>
<div class="top">
<h1>$t_title</h1>
<p class="language"><a href="?lang=$other_lang" hreflang="$other_lang" lang="$other_lang" \
aria-label="$t_other_language_name">$t_other_language</a></p>
</div>
<p>$t_intro</p>
<p class="disclaimer" role="note">$t_disclaimer</p>
</header>
<main>
<noscript><p class="error">$t_noscript</p></noscript>
<form id="triage-form" data-key-required="$key_required" data-key-header="$key_header" novalidate>
<fieldset>
<legend>$t_access_legend</legend>
<div class="field">
<label for="api-key">$t_api_key</label>
<input id="api-key" name="api_key" type="password" autocomplete="off" spellcheck="false" \
aria-describedby="api-key-help"$key_required_attribute>
<p id="api-key-help" class="help">$api_key_help</p>
<button type="button" id="api-key-forget" class="secondary">$t_api_key_forget</button>
<p id="api-key-status" class="help" role="status"></p>
</div>
</fieldset>
<fieldset id="symptoms">
<legend>$t_symptoms_legend</legend>
<div class="field">
<label for="symptom-search">$t_symptom_search</label>
<input id="symptom-search" type="search" autocomplete="off" aria-controls="symptom-list" \
aria-describedby="symptom-search-help symptom-count">
<p id="symptom-search-help" class="help">$t_symptom_search_help</p>
</div>
<p id="symptom-count" class="help" role="status">$t_symptoms_loading</p>
<ul id="symptom-list" class="symptoms"></ul>
<p id="symptom-more" class="help" hidden></p>
<h2 class="small">$t_selected_heading</h2>
<div id="symptom-selected" aria-live="polite"><p>$t_selected_none</p></div>
</fieldset>
<fieldset>
<legend>$t_patient_legend</legend>
<div class="grid">
<div class="field">
<label for="sex">$t_sex</label>
<select id="sex" name="sex">
<option value="">$t_sex_unset</option>
<option value="F">$t_sex_F</option>
<option value="M">$t_sex_M</option>
<option value="U">$t_sex_U</option>
</select>
</div>
$patient_inputs
</div>
</fieldset>
<fieldset>
<legend>$t_vitals_legend</legend>
<div class="grid">
$vital_inputs
</div>
</fieldset>
<fieldset>
<legend>$t_clinical_legend</legend>
<div class="grid">
$clinical_inputs
</div>
</fieldset>
<div class="actions">
<button type="submit" id="submit">$t_submit</button>
<button type="reset" id="reset" class="secondary">$t_reset</button>
<span id="busy" role="status"></span>
</div>
</form>
<section id="result" tabindex="-1" aria-labelledby="result-heading" hidden>
<h2 id="result-heading">$t_result_heading</h2>
<dl>
<dt>$t_result_class</dt><dd id="result-class"></dd>
<dt>$t_orphan_flag</dt><dd id="result-orphan-flag"></dd>
<dt>$t_needs_review</dt><dd id="result-needs-review"></dd>
<dt>$t_model_version</dt><dd id="result-model-version"></dd>
<dt>$t_request_id</dt><dd id="result-request-id"></dd>
<dt>$t_unknown_hpo</dt><dd id="result-unknown-hpo"></dd>
<dt class="optional" hidden>$t_dropped_fields</dt><dd id="result-dropped-fields" class="optional" hidden></dd>
<dt class="optional" hidden>$t_unseen_categories</dt>\
<dd id="result-unseen-categories" class="optional" hidden></dd>
</dl>
<table id="result-probabilities">
<caption>$t_probabilities</caption>
<thead><tr><th scope="col">$t_column_class</th><th scope="col">$t_column_probability</th></tr></thead>
<tbody></tbody>
</table>
<p id="result-disclaimer" class="disclaimer" role="note">$t_disclaimer</p>
</section>
<section id="error" tabindex="-1" role="alert" aria-labelledby="error-heading" hidden>
<h2 id="error-heading">$t_error_heading</h2>
<p id="error-message"></p>
</section>
</main>
</body>
</html>
""")


def choose_language(accept_language: str | None, requested: str | None = None) -> Language:
    """`requested` (the `lang` query parameter) when it is es or en; else the Accept-Language entry of es or en
    with the highest q-value (the first of equal ones); else English."""
    asked = _LANGUAGE_OF.get((requested or "").strip().lower())
    if asked is not None:
        return asked
    best: tuple[float, Language] | None = None
    for entry in (accept_language or "").split(","):
        tag, _, parameters = entry.strip().partition(";")
        language = _LANGUAGE_OF.get(tag.strip().lower().split("-", maxsplit=1)[0])
        quality = _quality(parameters)
        if language is not None and quality > 0 and (best is None or quality > best[0]):
            best = (quality, language)
    return best[1] if best is not None else DEFAULT_LANGUAGE


def _quality(parameters: str) -> float:
    """The q-value of an Accept-Language entry's parameters (`q=0.8`), 1 when absent, 0 when malformed."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return quality if 0.0 <= quality <= 1.0 else 0.0
    return 1.0


def contract_bounds(field: str) -> tuple[float, float]:
    """The inclusive range `Encounter` accepts for the number `field`."""
    struct = msgspec.inspect.type_info(Encounter)
    if not isinstance(struct, msgspec.inspect.StructType):
        raise TypeError("Encounter is not a msgspec Struct")
    [info] = [info for info in struct.fields if info.name == field]
    [number] = [
        kind.type if isinstance(kind, msgspec.inspect.Metadata) else kind
        for kind in getattr(info.type, "types", (info.type,))
        if not isinstance(kind, msgspec.inspect.NoneType)
    ]
    if not isinstance(number, msgspec.inspect.FloatType | msgspec.inspect.IntType):
        raise TypeError(f"Encounter.{field} is not a number")
    if number.ge is None or number.le is None:
        raise TypeError(f"Encounter.{field} has no inclusive range")
    return number.ge, number.le


def _number_input(field: str, label: str, step: str) -> str:
    minimum, maximum = contract_bounds(field)
    return (
        f'<div class="field">\n<label for="{field}">{html.escape(label)}</label>\n'
        f'<input id="{field}" name="{field}" type="number" inputmode="decimal" min="{minimum:g}" max="{maximum:g}" '
        f'step="{step}" aria-describedby="{field}-error">\n'
        f'<p id="{field}-error" class="field-error" hidden></p>\n</div>'
    )


def render_page(language: Language, *, key_required: bool) -> str:
    """The form in `language`; `key_required` marks the API key field required."""
    messages = MESSAGES[language]
    other = next(known for known in LANGUAGES if known != language)

    def inputs(fields: tuple[tuple[str, str], ...]) -> str:
        return "\n".join(_number_input(field, messages[field], step) for field, step in fields)

    # A JSON data block inside <script>: no "<" may close it early.
    messages_json = json.dumps(messages, ensure_ascii=False).replace("<", "\\u003c")
    return PAGE.substitute(
        {f"t_{key}": html.escape(value) for key, value in messages.items()},
        lang=language,
        other_lang=other,
        static=STATIC_PATH,
        messages=messages_json,
        key_required="true" if key_required else "false",
        key_header=API_KEY_HEADER,
        key_required_attribute=" required" if key_required else "",
        api_key_help=html.escape(messages["api_key_help_required" if key_required else "api_key_help_optional"]),
        patient_inputs=inputs(PATIENT_FIELDS),
        vital_inputs=inputs(VITAL_FIELDS),
        clinical_inputs=inputs(CLINICAL_FIELDS),
    )


@get(
    "/",
    summary="Triage form",
    description="The HTML triage form (Spanish or English by Accept-Language, or `?lang=es|en`).",
    include_in_schema=False,
    media_type="text/html",
)
async def form(request: Request, lang: FromQuery[str | None] = None) -> Response[str]:
    language = choose_language(request.headers.get("Accept-Language"), lang)
    key_required = runtime_of(request).settings.api_key is not None
    return Response(
        render_page(language, key_required=key_required),
        media_type=MediaType.HTML,
        headers={
            **SECURITY_HEADERS,
            "Content-Language": language,
            "Vary": "Accept-Language",
            "Cache-Control": "no-cache",
        },
    )


async def _static_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


static_router = create_static_files_router(
    path=STATIC_PATH, directories=[STATIC_DIR], name="form-static", after_request=_static_headers
)
router = Router(path="/", route_handlers=[form, static_router])
