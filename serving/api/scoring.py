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
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
from litestar.exceptions import ServiceUnavailableException

from serving.api.runtime import Runtime, ServingModel
from serving.contract import Encounter, PublishedCase
from serving.decision import Decisions, decide
from serving.encoding import EncodedBatch, Encoder, EncodingReport
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


def _prediction(
    decisions: Decisions,
    row: int,
    *,
    probabilities: dict[str, float],
    report: EncodingReport,
    serving: ServingModel,
    version: str,
    request_id: str,
    patient_id_dropped: bool,
    weighed: list[WeighedInput] | msgspec.UnsetType,
) -> Prediction:
    policy = serving.policy
    p_orphan = float(decisions.orphan_probability[row])
    review = bool(decisions.needs_review[row])
    dropped = list(report.dropped_fields)
    if patient_id_dropped:
        dropped.append(PATIENT_ID)
    return Prediction(
        predicted_class=decisions.labels[row],
        outcome=decisions.outcomes[row],
        probabilities=probabilities,
        orphan_probability=p_orphan,
        orphan_flag=bool(decisions.orphan_flag[row]),
        orphan_threshold=policy.orphan_threshold,
        needs_review=review,
        review_threshold=policy.review_threshold,
        needs_review_reason=review_reason(p_orphan, policy.review_threshold, policy.orphan_threshold)
        if review
        else None,
        model_version=version,
        request_id=request_id,
        hpo=HpoReport(used=list(report.hpo_used), unknown=list(report.hpo_unknown), outside=list(report.hpo_outside)),
        unseen_categories=list(report.unseen_categories),
        dropped_fields=dropped,
        weighed_most=weighed,
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
    patient_ids = _patient_ids(encounters)
    patient_keys = [None if i is None or pseudonymize is None else pseudonymize(i) for i in patient_ids]
    labels = serving.policy.class_labels
    rows = [dict(zip(labels, values, strict=True)) for values in proba.astype(float).tolist()]
    predictions = [
        _prediction(
            decisions,
            i,
            probabilities=rows[i],
            report=batch.reports[i],
            serving=serving,
            version=model.version,
            request_id=request_ids[i],
            patient_id_dropped=pseudonymize is None and patient_ids[i] is not None,
            weighed=weighed[i],
        )
        for i in range(len(encounters))
    ]
    now = dt.datetime.now(dt.UTC)
    records = [
        PredictionRecord(
            timestamp=now,
            request_id=prediction.request_id,
            model_version=model.version,
            inputs=_logged_inputs(encounter),
            probabilities=prediction.probabilities,
            predicted_class=prediction.predicted_class,
            orphan_flag=prediction.orphan_flag,
            needs_review=prediction.needs_review,
            latency_ms=latency_ms,
            patient_key=key,
        )
        for encounter, prediction, key in zip(encounters, predictions, patient_keys, strict=True)
    ]
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
    runtime.metrics.observe_predictions(
        list(decisions.labels), int(decisions.orphan_flag.sum()), int(decisions.needs_review.sum())
    )
    return predictions


def _patient_ids(encounters: Sequence[Encounter] | Sequence[PublishedCase]) -> list[str | None]:
    return [getattr(encounter, PATIENT_ID, None) for encounter in encounters]


def _logged_inputs(encounter: msgspec.Struct) -> dict[str, Any]:
    """The validated request as logged: every field but the patient id (only its pseudonym is logged)."""
    inputs: dict[str, Any] = msgspec.to_builtins(encounter)
    inputs.pop(PATIENT_ID, None)
    return inputs


Single = tuple[Encounter, str]  # one encounter of POST /v1/predict and its request id

# One batcher per app (its Runtime), made on the first single prediction and gone with the app.
_BATCHERS: "weakref.WeakKeyDictionary[Runtime, MicroBatcher[Single, Prediction]]" = weakref.WeakKeyDictionary()


def score_singles(runtime: Runtime, singles: Sequence[Single]) -> list[Prediction]:
    """`score` of several single requests at once (one model call, one model snapshot)."""
    return score(
        runtime, [encounter for encounter, _ in singles], [request_id for _, request_id in singles], weigh=True
    )


def batcher_of(runtime: Runtime) -> MicroBatcher[Single, Prediction]:
    """The micro-batcher of `runtime`'s app."""
    batcher = _BATCHERS.get(runtime)
    if batcher is None:
        settings = runtime.settings
        app_runtime = weakref.ref(runtime)  # the batcher must not keep its own key alive

        def run(singles: Sequence[Single]) -> list[Prediction]:
            live = app_runtime()
            if live is None:
                raise ServiceUnavailableException(detail="the app of this request has stopped")
            return score_singles(live, singles)

        batcher = MicroBatcher(run, max_batch=settings.microbatch_max, max_wait_s=settings.microbatch_wait_ms / 1000.0)
        _BATCHERS[runtime] = batcher
    return batcher


async def score_one(runtime: Runtime, encounter: Encounter, request_id: str) -> Prediction:
    """The prediction of one encounter, scored with the concurrent ones (alone when micro-batching is off)."""
    settings = runtime.settings
    if settings.microbatch_wait_ms <= 0 or settings.microbatch_max <= 1:
        [prediction] = score(runtime, [encounter], [request_id], weigh=True)
        return prediction
    return await batcher_of(runtime).submit((encounter, request_id))
