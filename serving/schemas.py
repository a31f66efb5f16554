"""What the HTTP API answers, as msgspec Structs (Litestar documents them in the OpenAPI schema at /schema).

The request bodies are the contract's (`serving.contract.Encounter`) and `BatchRequest` below. Every error, of any
status, is an `ErrorBody`: `detail` says what is wrong, `field` names where (a JSON path such as `$.age_years`,
`$.encounters[2].hpo_observed[0]`, or `$` for the body as a whole), null when no field is concerned.
"""

from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from serving.contract import Encounter
from serving.weighing import TOP_INPUTS, WeighedInput

DISCLAIMER: Final = (
    "Triage support, not a diagnosis: a statistical estimate from the coded encounter, to be weighed by a clinician "
    "with everything else known about the patient."
)


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Several encounters scored together (at most the service's SERVING_MAX_BATCH)."""

    encounters: Annotated[
        list[Encounter], Meta(min_length=1, description="the encounters, each one as for /v1/predict")
    ]


class HpoReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the model made of the request's HPO ids (each id once, in request order)."""

    used: Annotated[list[str], Meta(description="ids of the model's HPO release that set or cleared one of its inputs")]
    unknown: Annotated[
        list[str], Meta(description="ids outside the model's HPO release: the model could not read them")
    ]
    outside: Annotated[
        list[str], Meta(description="ids of the release under none of the model's vocabulary terms or organ systems")
    ]


class Prediction(msgspec.Struct, frozen=True, kw_only=True):
    """One encounter's triage estimate and the decision the published policy takes on it."""

    predicted_class: Annotated[
        str, Meta(description="the predicted class: orphan when flagged, else the most probable other class")
    ] = msgspec.field(name="class")
    outcome: Annotated[str, Meta(description="`class`, or needs_review inside the review band")]
    probabilities: Annotated[dict[str, float], Meta(description="probability of each class of the model")]
    orphan_probability: float
    orphan_flag: Annotated[bool, Meta(description="the orphan probability reaches `orphan_threshold`")]
    orphan_threshold: float
    needs_review: Annotated[bool, Meta(description="review_threshold <= orphan probability < orphan_threshold")]
    review_threshold: float
    needs_review_reason: str | None
    model_version: str
    request_id: Annotated[
        str, Meta(description="uuid4, also in the X-Request-ID header; `<id>-<i>` for row i of a batch")
    ]
    hpo: HpoReport
    unseen_categories: Annotated[
        list[str], Meta(description="categorical fields whose value the model never saw (not used)")
    ]
    dropped_fields: Annotated[
        list[str],
        Meta(
            description=(
                "fields the model's features do not carry for this encounter, and `patient_id` when the service has "
                "no pseudonymization key (nothing of it is then kept)"
            )
        ),
    ]
    disclaimer: str = DISCLAIMER
    weighed_most: Annotated[
        list[WeighedInput] | msgspec.UnsetType,
        Meta(
            description=(
                f"POST /v1/predict with a linear (logistic-regression) model only, absent for tree ensembles: the "
                f"{TOP_INPUTS} inputs whose value moved the orphan probability most, by absolute change, each "
                "measured by scoring the encounter again with that input alone set to its absent encoding "
                "(occlusion); empty when every input is absent"
            )
        ),
    ] = msgspec.UNSET


class BatchPrediction(msgspec.Struct, frozen=True, kw_only=True):
    """One prediction per encounter, in request order; row i has request id `<request_id>-<i>`."""

    request_id: str
    model_version: str
    count: int
    predictions: list[Prediction]
    disclaimer: str = DISCLAIMER


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """Every error answer: what is wrong and which field (null: none in particular)."""

    detail: str
    field: str | None = None


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str = "alive"


class RefusedVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A version the service would not serve, and why (versions are immutable: it is retried only later)."""

    version: str
    manifest_sha256: str
    reason: str
    at: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """Whether predictions can be served, from which version and where that version was read."""

    ready: bool
    detail: str
    model_version: str | None = None
    source: str | None = None  # "bucket", or "cache" when the bucket could not be read at start-up
    served_from_cache: bool = False
    loaded_at: str | None = None
    last_check_at: str | None = None
    last_check_error: str | None = None  # the last read of the env pointer that could not tell
    refused: list[RefusedVersion] = msgspec.field(default_factory=list)


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The served version, its contract and provenance (from its manifest) and the reload history."""

    version: str
    env: str
    model_name: str
    source: str
    served_from_cache: bool
    bucket: str
    cache_dir: str
    loaded_at: str
    manifest_sha256: str
    onnx_sha256: str
    n_features: int
    model_family: Annotated[
        str, Meta(description="linear, tree_ensemble or other: read from the ONNX graph's operators")
    ]
    class_labels: list[str]
    thresholds: dict[str, float]
    needs_review: dict[str, Any]
    metrics: dict[str, float | None]
    hpo_release: str
    training_partitions: list[str]
    mlflow_run_id: str | None
    mlflow_model_version: str | None
    dagster_run_id: str | None
    code_revision: str
    created_at: str
    swaps_total: int
    refusals_total: int
    refused: list[RefusedVersion]
    last_check_at: str | None
    last_check_error: str | None


# ---- OpenAPI examples ----

ENCOUNTER_EXAMPLE: Final[dict[str, Any]] = {
    "sex": "F",
    "age_years": 7,
    "centre_id": "C01",
    "centre_level": "tertiary",
    "region": "Madrid",
    "consultation_type": "emergency",
    "temperature_c": 38.4,
    "heart_rate": 121,
    "spo2": 97,
    "pain_score": 3,
    "prior_visits_365d": 4,
    "hpo_observed": ["HP:0001250", "HP:0001945"],
    "hpo_excluded": ["HP:0002027"],
}
