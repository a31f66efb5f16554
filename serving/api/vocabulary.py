"""GET /v1/vocabulary: the symptom vocabulary of the served model (HPO id and label), which the triage form at `/`
offers by name.

Open like /v1/model: the vocabulary is the model's, no patient data. 503 while no model is loaded. A term whose
manifest entry has no label is listed under its id, so it can still be picked; an entry without a well-formed HPO
id (which /v1/predict would refuse) is left out.
"""

import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get
from litestar.exceptions import ServiceUnavailableException
from litestar.openapi.datastructures import ResponseSpec
from msgspec import Meta

from serving.api.runtime import runtime_of
from serving.contract import HPO_ID_PATTERN
from serving.schemas import ErrorBody

_HPO_ID = re.compile(HPO_ID_PATTERN)


class VocabularyTerm(msgspec.Struct, frozen=True, kw_only=True):
    hpo_id: Annotated[str, Meta(description="HPO term id, e.g. HP:0001250")]
    label: Annotated[str, Meta(description="the term's name in the model's HPO release, e.g. Seizure")]


class Vocabulary(msgspec.Struct, frozen=True, kw_only=True):
    """The symptom terms the served model reads as inputs, in the manifest's order."""

    model_version: str
    hpo_release: str
    terms: list[VocabularyTerm]


def vocabulary_terms(manifest: Mapping[str, Any]) -> list[VocabularyTerm]:
    """The manifest's `vocabulary` entries ({hpo_id, label}) as terms, each HPO id once."""
    terms: list[VocabularyTerm] = []
    seen: set[str] = set()
    for entry in manifest["vocabulary"]:
        hpo_id = entry.get("hpo_id") if isinstance(entry, Mapping) else None
        if not isinstance(hpo_id, str) or not _HPO_ID.match(hpo_id) or hpo_id in seen:
            continue
        seen.add(hpo_id)
        label = entry.get("label")
        terms.append(
            VocabularyTerm(hpo_id=hpo_id, label=label.strip() if isinstance(label, str) and label.strip() else hpo_id)
        )
    return terms


@get(
    "/vocabulary",
    summary="The model's symptom vocabulary",
    description=(
        "The HPO terms the served model reads (id and label, in the manifest's order): what the triage form at `/` "
        "lets a clinician pick by name. 503 while no model is loaded."
    ),
    tags=["operations"],
    responses={503: ResponseSpec(ErrorBody, description="No model loaded")},
)
async def vocabulary(request: Request) -> Vocabulary:
    runtime = runtime_of(request)
    model = runtime.holder.status.model
    if model is None:
        raise ServiceUnavailableException(detail=runtime.not_ready_reason())
    return Vocabulary(
        model_version=model.version,
        hpo_release=str(model.manifest["hpo_release"]),
        terms=vocabulary_terms(model.manifest),
    )


router = Router(path="/v1", route_handlers=[vocabulary])
