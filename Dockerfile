# Image of the Dagster code location (data, training, deployment). The serving image comes with the service.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RARE_TRIAGE_HOME=/var/lib/rare-triage \
    DAGSTER_HOME=/var/lib/rare-triage/dagster_home

WORKDIR /app
COPY requirements/base.lock requirements/base.lock
RUN python -m pip install --no-cache-dir -r requirements/base.lock
COPY pyproject.toml README.md workspace.yaml dagster.yaml ./
COPY rare_triage rare_triage
COPY serving serving
# editable: dg.load_from_defs_folder finds the project through pyproject.toml beside the package
RUN python -m pip install --no-cache-dir --no-deps -e . \
    && useradd --system --create-home --uid 10001 triage \
    && mkdir -p "$DAGSTER_HOME" \
    && cp dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
    && chown -R triage "$RARE_TRIAGE_HOME"
USER triage
# A code-location server for a Dagster deployment (webserver and daemon run from their own images).
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-m", "rare_triage.definitions", "-h", "0.0.0.0", "-p", "4000"]
