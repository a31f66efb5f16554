"""POST /v1/predict/fhir (an HL7 FHIR R4 Bundle) and POST /v1/predict/phenopacket (a GA4GH Phenopacket v2): the
formats clinicians' systems already exchange, mapped to the input contract (`serving.fhir`, `serving.phenopacket`),
then scored and logged like any prediction. The answer carries the mapping report: what was read, ignored or not
mapped (never a value of an identifier). A document the mapping refuses is a 422 naming its JSON path.
"""

from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, Router, post
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY

from serving.api.auth import SECURITY_SCHEME, require_api_key
from serving.api.predict import ERRORS, REQUEST_ID, REQUEST_ID_HEADER, new_request_id
from serving.api.runtime import ServingModel, runtime_of
from serving.api.scoring import score, score_cases
from serving.errors import FieldError
from serving.fhir import FhirInputError, FhirMappingReport, encounter_from_bundle
from serving.phenopacket import PhenopacketInputError, PhenopacketReport, case_from_phenopacket
from serving.schemas import Prediction

BUNDLE_EXAMPLE: Final = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1991-04-02"}},
        {
            "resource": {
                "resourceType": "Encounter",
                "id": "e1",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": "Patient/p1"},
                "period": {"start": "2025-03-04T09:30:00Z"},
            }
        },
        {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
                "subject": {"reference": "Patient/p1"},
                "encounter": {"reference": "Encounter/e1"},
                "valueQuantity": {"value": 38.4, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"},
            }
        },
        {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://purl.obolibrary.org/obo/hp.owl", "code": "HP:0001250"}]},
                "subject": {"reference": "Patient/p1"},
                "encounter": {"reference": "Encounter/e1"},
            }
        },
    ],
}
PHENOPACKET_EXAMPLE: Final = {
    "id": "case-1",
    "subject": {"id": "s1", "sex": "FEMALE", "timeAtLastEncounter": {"age": {"iso8601duration": "P7Y"}}},
    "phenotypicFeatures": [
        {"type": {"id": "HP:0001250", "label": "Seizure"}},
        {"type": {"id": "HP:0001263", "label": "Global developmental delay"}},
        {"type": {"id": "HP:0001945", "label": "Fever"}, "excluded": True},
    ],
    "metaData": {"phenopacketSchemaVersion": "2.0"},
}

BUNDLE_BODY: Final[Any] = Body(
    title="FHIR R4 Bundle", examples=[Example(summary="A febrile seizure", value=BUNDLE_EXAMPLE)]
)
PHENOPACKET_BODY: Final[Any] = Body(
    title="Phenopacket v2", examples=[Example(summary="A child with seizures", value=PHENOPACKET_EXAMPLE)]
)


class FhirPrediction(msgspec.Struct, frozen=True, kw_only=True):
    """The prediction of the Bundle's encounter and how the Bundle was read."""

    prediction: Prediction
    mapping: FhirMappingReport


class PhenopacketPrediction(msgspec.Struct, frozen=True, kw_only=True):
    """The prediction of the phenopacket's case and how it was read."""

    prediction: Prediction
    mapping: PhenopacketReport


def _json_path(path: str) -> str:
    """`entry[3].resource` -> `$.entry[3].resource`, as the other errors of the service name their field."""
    return "$" if not path else "$" + path if path.startswith("[") else "$." + path


def _document(data: Any, kind: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise FieldError(HTTP_422_UNPROCESSABLE_ENTITY, f"a {kind} is a JSON object", "$")
    return data


def _serving_model(request: Request[Any, Any, Any]) -> ServingModel | None:
    model = runtime_of(request).holder.model
    return None if model is None else model.prepared


@post(
    "/predict/fhir",
    summary="Triage the encounter of an HL7 FHIR R4 Bundle",
    description=(
        "A Bundle with one Patient, at most one Encounter, Observations (LOINC vitals, HPO-coded findings, "
        "present or absent) and Conditions (the problem list counts as comorbidities). Mapped to the encounter "
        "contract, scored and logged; `mapping` says what was read, ignored or not mapped. Triage support, not a "
        "diagnosis."
    ),
    status_code=HTTP_200_OK,
    response_headers=[REQUEST_ID],
    responses=ERRORS,
)
async def predict_fhir(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, Any], BUNDLE_BODY],
) -> Response[FhirPrediction]:
    runtime = runtime_of(request)
    serving = _serving_model(request)
    try:
        encounter, report = encounter_from_bundle(
            _document(data, "FHIR Bundle"),
            phenotype=None if serving is None else serving.encoder.phenotype,
            hpo_xrefs=None if serving is None else serving.hpo_xrefs,
        )
    except FhirInputError as exc:
        raise FieldError(HTTP_422_UNPROCESSABLE_ENTITY, exc.problem, _json_path(exc.field_path)) from exc
    request_id = new_request_id()
    (prediction,) = score(runtime, [encounter], [request_id])
    return Response(FhirPrediction(prediction=prediction, mapping=report), headers={REQUEST_ID_HEADER: request_id})


@post(
    "/predict/phenopacket",
    summary="Triage a GA4GH Phenopacket v2",
    description=(
        "What rare-disease clinics already exchange: `phenotypicFeatures` (HPO, with `excluded`), `subject.sex`, "
        "`subject.timeAtLastEncounter.age.iso8601duration`. Encoded as the platform encodes published cases "
        "(phenotype, age and sex only), scored and logged. Triage support, not a diagnosis."
    ),
    status_code=HTTP_200_OK,
    response_headers=[REQUEST_ID],
    responses=ERRORS,
)
async def predict_phenopacket(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, Any], PHENOPACKET_BODY],
) -> Response[PhenopacketPrediction]:
    runtime = runtime_of(request)
    try:
        case, report = case_from_phenopacket(_document(data, "phenopacket"))
    except PhenopacketInputError as exc:
        raise FieldError(HTTP_422_UNPROCESSABLE_ENTITY, exc.problem, _json_path(exc.json_path)) from exc
    request_id = new_request_id()
    (prediction,) = score_cases(runtime, [case], [request_id])
    body = PhenopacketPrediction(prediction=prediction, mapping=report)
    return Response(body, headers={REQUEST_ID_HEADER: request_id})


router = Router(
    path="/v1",
    route_handlers=[predict_fhir, predict_phenopacket],
    guards=[require_api_key],
    security=[{SECURITY_SCHEME: []}],
    tags=["predictions"],
)
