"""What the routes share: the settings, the served model, the prediction log and the metrics of one app.

One `Runtime` per app, kept in the app's state (`create_app` builds it, the lifespan fills in the model): several
apps in one process share nothing.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from litestar.connection import ASGIConnection

from serving.decision import DecisionPolicy
from serving.encoding import Encoder
from serving.metrics import ServiceMetrics
from serving.model_store import LoadedModel, ModelHolder
from serving.prediction_log import PredictionLog
from serving.pseudonym import Pseudonymizer
from serving.settings import Settings
from serving.weighing import InputWeigher
from serving.xrefs import HPO_XREFS_TABLE, xrefs_from_table

STATE_KEY = "runtime"


@dataclass(frozen=True, eq=False)
class ServingModel:
    """What the service builds from each loaded model (its `prepared`): swapped together with the model."""

    encoder: Encoder
    policy: DecisionPolicy
    hpo_xrefs: Mapping[tuple[str, str], tuple[str, ...]] | None = None  # None: the version publishes none
    weigher: InputWeigher | None = None  # linear models only: the inputs that weighed most


def prepare_model(model: LoadedModel) -> ServingModel:
    """The encoder, decision policy, HPO cross-references and (linear models) input weigher of `model`; an error
    refuses the model (see `model_store.Prepare`)."""
    encoder = Encoder(model.manifest, model.phenotype_encoding)
    table = model.tables.get(HPO_XREFS_TABLE)
    xrefs = None if table is None else xrefs_from_table(table, encoder.phenotype.hpo_release)
    policy = DecisionPolicy.from_manifest(model.manifest)
    weigher = InputWeigher.build(encoder, policy.orphan_index) if model.family == "linear" else None
    return ServingModel(encoder, policy, xrefs, weigher)


@dataclass(eq=False)
class Runtime:
    """The state of one app. `startup_problem` says why no model could be loaded at start-up (None once one was);
    `pseudonymizer` None: the service has no pseudonymization key (a sent patient_id is dropped)."""

    settings: Settings
    holder: ModelHolder
    prediction_log: PredictionLog
    metrics: ServiceMetrics
    pseudonymizer: Pseudonymizer | None = None
    startup_problem: str | None = None

    def not_ready_reason(self) -> str:
        """Why nothing is served, in words for a 503."""
        status = self.holder.status
        events = [(refusal.at, f"version {refusal.version} refused: {refusal.reason}") for refusal in status.refused]
        if status.last_error is not None and status.last_error_at is not None:
            events.append((status.last_error_at, status.last_error))
        reason = max(events, key=lambda event: event[0])[1] if events else self.startup_problem
        return f"no model loaded for env {self.settings.model_env}: {reason or 'the first load has not finished'}"


def runtime_of(connection: ASGIConnection) -> Runtime:
    """The runtime of the app serving `connection`."""
    return cast(Runtime, connection.app.state[STATE_KEY])
