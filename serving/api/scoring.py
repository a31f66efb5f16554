"""Encounters in, predictions out: encode, one `predict_proba` call for the whole batch, the published decision,
one prediction-log line per row.

The model is taken from the holder once, so a reload mid-request changes nothing of it. A prediction is returned
only once its line is in the log: a log that cannot be written makes the request fail (503) rather than answer
without a trace.

`score_one` is POST /v1/predict's way in: concurrent single encounters of one app are micro-batched
(`serving.microbatch`, SERVING_MICROBATCH_WAIT_MS / SERVING_MICROBATCH_MAX) into one `score` call, so one model
snapshot scores the whole batch and a failure of that call (no model, log not written) fails each of its requests.
A log line's `latency_ms` is the time of the call that scored it (encoding, model, decision), whatever its size.
"""

import datetime as dt
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, cast

import msgspec
from litestar.exceptions import ServiceUnavailableException

from serving.api.request_id import new_request_ids
from serving.api.runtime import Runtime, ServingModel
from serving.contract import Encounter, PublishedCase
from serving.decision import decide
from serving.encoding import EncodedBatch, Encoder
from serving.microbatch import MicroBatcher
from serving.prediction_log import PredictionRecord
from serving.schemas import HpoReport, Prediction
from serving.weighing import WeighedInput

logger = logging.getLogger(__name__)

PATIENT_ID: Final = "patient_id"


def review_reason(orphan_probability: float, review: float, orphan: float) -> str:
    return (
        f"orphan probability {orphan_probability:.4g} is in the review band [{review:.4g}, {orphan:.4g}): "
        "below the orphan threshold, too high to clear without a clinician's review"
    )


def score(
    runtime: Runtime, encounters: Sequence[Encounter], request_ids: Sequence[str], *, weigh: bool = False
) -> list[Prediction]:
    """One prediction per encounter (request ids in the same order), each logged; 503 when no model is loaded or
    the log cannot be written. `weigh`: with a linear model, each prediction says which inputs weighed most."""
    return _score(runtime, encounters, request_ids, lambda encoder: encoder.encode(encounters), weigh=weigh)


def score_cases(runtime: Runtime, cases: Sequence[PublishedCase], request_ids: Sequence[str]) -> list[Prediction]:
    """`score` of published cases (phenopackets), encoded as the platform encodes them (phenotype, age, sex)."""
    return _score(runtime, cases, request_ids, lambda encoder: encoder.encode_phenopacket(cases))


def _score(
    runtime: Runtime,
    encounters: Sequence[Encounter] | Sequence[PublishedCase],
    request_ids: Sequence[str],
    encode: Callable[[Encoder], EncodedBatch],
    *,
    weigh: bool = False,
) -> list[Prediction]:
    model = runtime.holder.model
    if model is None:
        raise ServiceUnavailableException(detail=runtime.not_ready_reason())
    serving: ServingModel = model.prepared
    start = time.perf_counter()
    batch = encode(serving.encoder)
    proba = model.predict_proba(batch.matrix)
    decisions = decide(proba, serving.policy)
    weigher = serving.weigher if weigh else None
    weighed: Sequence[list[WeighedInput] | msgspec.UnsetType] = (
        [msgspec.UNSET] * len(encounters)
        if weigher is None
        else weigher.weigh(batch.matrix, decisions.orphan_probability, model.predict_proba)
    )
    latency_ms = (time.perf_counter() - start) * 1000.0
    pseudonymize = runtime.pseudonymizer
    policy = serving.policy
    labels, version = policy.class_labels, model.version
    orphan_threshold, review_threshold = policy.orphan_threshold, policy.review_threshold
    # One pass over the rows, with Python values taken from the arrays once.
    rows = proba.astype(float).tolist()
    orphan_probabilities = decisions.orphan_probability.tolist()
    orphan_flags = decisions.orphan_flag.tolist()
    reviews = decisions.needs_review.tolist()
    now = dt.datetime.now(dt.UTC)
    predictions: list[Prediction] = []
    records: list[PredictionRecord] = []
    for i, encounter in enumerate(encounters):
        report = batch.reports[i]
        probabilities = dict(zip(labels, rows[i], strict=True))
        p_orphan, review = orphan_probabilities[i], reviews[i]
        patient_id = getattr(encounter, PATIENT_ID, None)
        dropped = list(report.dropped_fields)
        if pseudonymize is None and patient_id is not None:
            dropped.append(PATIENT_ID)
        prediction = Prediction(
            predicted_class=decisions.labels[i],
            outcome=decisions.outcomes[i],
            probabilities=probabilities,
            orphan_probability=p_orphan,
            orphan_flag=orphan_flags[i],
            orphan_threshold=orphan_threshold,
            needs_review=review,
            review_threshold=review_threshold,
            needs_review_reason=review_reason(p_orphan, review_threshold, orphan_threshold) if review else None,
            model_version=version,
            request_id=request_ids[i],
            hpo=HpoReport(
                used=list(report.hpo_used), unknown=list(report.hpo_unknown), outside=list(report.hpo_outside)
            ),
            unseen_categories=list(report.unseen_categories),
            dropped_fields=dropped,
            weighed_most=weighed[i],
        )
        predictions.append(prediction)
        records.append(
            PredictionRecord(
                timestamp=now,
                request_id=prediction.request_id,
                model_version=version,
                inputs=_logged_inputs(encounter, patient_id),
                probabilities=probabilities,
                predicted_class=prediction.predicted_class,
                orphan_flag=prediction.orphan_flag,
                needs_review=review,
                latency_ms=latency_ms,
                patient_key=None if patient_id is None or pseudonymize is None else pseudonymize(patient_id),
            )
        )
    try:
        runtime.prediction_log.write_many(records)
    except OSError as exc:
        logger.exception(
            "prediction log %s not written: %d predictions withheld", runtime.prediction_log.path, len(records)
        )
        runtime.metrics.errors.labels("prediction_log_write").inc()
        raise ServiceUnavailableException(
            detail="the prediction log cannot be written: no prediction is returned without its log line"
        ) from exc
    runtime.metrics.observe_predictions(decisions.labels, sum(orphan_flags), sum(reviews))
    return predictions


def _logged_inputs(encounter: msgspec.Struct, patient_id: str | None) -> dict[str, Any]:
    """The validated request as logged: every field but the patient id (only its pseudonym is logged).

    The request's Struct itself, its patient id cleared: msgspec writes it as the JSON object `to_builtins` would
    make of it (its fields in order, those at their default left out, as `omit_defaults` asks), without building
    that dict; the record it goes in is only ever encoded."""
    if patient_id is not None:
        encounter = msgspec.structs.replace(encounter, patient_id=None)
    return cast("dict[str, Any]", encounter)


# One batcher per app (its Runtime), made on the first single prediction and gone with the app.
_BATCHERS: "weakref.WeakKeyDictionary[Runtime, MicroBatcher[Encounter, Prediction]]" = weakref.WeakKeyDictionary()


def score_singles(runtime: Runtime, encounters: Sequence[Encounter]) -> list[Prediction]:
    """`score` of several single requests at once (one model call, one model snapshot), each given a new request
    id."""
    return score(runtime, encounters, new_request_ids(len(encounters)), weigh=True)


def batcher_of(runtime: Runtime) -> MicroBatcher[Encounter, Prediction]:
    """The micro-batcher of `runtime`'s app."""
    batcher = _BATCHERS.get(runtime)
    if batcher is None:
        settings = runtime.settings
        app_runtime = weakref.ref(runtime)  # the batcher must not keep its own key alive

        def run(encounters: Sequence[Encounter]) -> list[Prediction]:
            live = app_runtime()
            if live is None:
                raise ServiceUnavailableException(detail="the app of this request has stopped")
            return score_singles(live, encounters)

        batcher = MicroBatcher(run, max_batch=settings.microbatch_max, max_wait_s=settings.microbatch_wait_ms / 1000.0)
        _BATCHERS[runtime] = batcher
    return batcher


def score_one(runtime: Runtime, encounter: Encounter) -> Awaitable[Prediction]:
    """The prediction of one encounter (its request id a new one), scored with the concurrent ones (alone when
    micro-batching is off); to be awaited on the app's event loop (micro-batched: the future of its batch's result,
    awaited directly)."""
    settings = runtime.settings
    if settings.microbatch_wait_ms <= 0 or settings.microbatch_max <= 1:
        return _score_alone(runtime, encounter)
    return batcher_of(runtime).enqueue(encounter)


async def _score_alone(runtime: Runtime, encounter: Encounter) -> Prediction:
    [prediction] = score_singles(runtime, [encounter])
    return prediction
