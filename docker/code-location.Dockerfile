# The platform's image: the Dagster code location (rare_triage, its locked runtime of requirements/base.lock), served
# by a gRPC code server on port 4000 for a webserver and a daemon elsewhere (workspace: grpc_server, port 4000,
# location_name rare_triage). The same image holds dagster-webserver, dagster-daemon and mlflow, for another command.
# The context is build/code-location/, made on the host by docker/prepare_context.sh code-location (the wheels of
# base.lock, a wheel of rare_triage, dg.toml, the instance, the health check), so the build runs with
# --network=none. docker/build_and_smoke.sh does it all (context, base image, build, smoke test). By hand:
#   docker/prepare_context.sh code-location
#   docker build -f docker/code-location.Dockerfile -t rare-triage-code-location build/code-location
#   docker build --network=none --build-arg BASE_IMAGE=local/python:3.11 -f docker/code-location.Dockerfile \
#       -t rare-triage-code-location build/code-location
# The base is any Debian bookworm with Python 3.11 and venv (the script makes local/python:3.11 by debootstrap).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# deps: the locked runtime in a venv, layers kept as long as the lock does not change.
FROM ${BASE_IMAGE} AS deps
WORKDIR /build
COPY base.lock ./
COPY wheelhouse/ wheelhouse/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --no-index --find-links=wheelhouse -r base.lock

# venv: the same without pip, which nothing needs at run time. setuptools stays: base.lock has it, a dependency of
# dagster-cloud-cli and dagster-dg-core (pip check would say so).
FROM deps AS venv
RUN /opt/venv/bin/python -m pip uninstall --yes --quiet pip

# app: rare_triage without dependencies in a folder of its own, /opt/rare-triage (so a change of code rebuilds this
# small layer only), beside dg.toml: dg.load_from_defs_folder looks for the project file in the folders above the
# package. pip check fails when the lock misses a dependency; loading the definitions here, with no network and
# no repository around, fails when the package misses a module or a data file; ldd when a library of the system is
# missing for an extension module (the libraries vendored in *.libs/ are found through their users' RPATH).
FROM deps AS app
COPY rare-triage-wheel/ rare-triage-wheel/
COPY dg.toml /opt/rare-triage/dg.toml
RUN /opt/venv/bin/python -m pip install --no-cache-dir --no-index --no-deps --target=/opt/rare-triage \
        rare-triage-wheel/rare_triage-*.whl \
    && mv /opt/rare-triage/bin /opt/rare-triage-bin \
    && PYTHONPATH=/opt/rare-triage /opt/venv/bin/python -m pip check \
    && PYTHONPATH=/opt/rare-triage DAGSTER_HOME="$(mktemp -d)" RARE_TRIAGE_HOME="$(mktemp -d)" \
        /opt/venv/bin/python -c "import dagster as dg; from rare_triage.definitions import build_definitions; \
defs = build_definitions(); dg.Definitions.validate_loadable(defs); \
print('definitions:', ', '.join(sorted(job.name for job in defs.resolve_all_job_defs())))" \
    && { find /opt/venv /opt/rare-triage -name '*.so*' -type f -not -path '*.libs/*' -exec ldd {} + \
        >/tmp/ldd.txt 2>&1 || true; } \
    && ! grep 'not found' /tmp/ldd.txt

FROM ${BASE_IMAGE}
# uid 10001; the state folders group 0 as well: another uid of the operator's (docker run -u <uid>:0) can write them.
# DAGSTER_HOME is Dagster's usual /opt/dagster/dagster_home (instance storage under storage/, a volume in
# deploy/compose.yaml); RARE_TRIAGE_HOME holds the platform's local state (warehouse, lake and bucket when local).
RUN useradd --system --no-log-init --uid 10001 --user-group --home-dir /var/lib/rare-triage \
        --shell /usr/sbin/nologin triage \
    && mkdir -p /var/lib/rare-triage /opt/dagster/dagster_home/storage \
    && chown -R 10001:0 /var/lib/rare-triage /opt/dagster/dagster_home \
    && chmod -R g=u /var/lib/rare-triage /opt/dagster/dagster_home
COPY --from=venv /opt/venv /opt/venv
COPY --from=app /opt/rare-triage /opt/rare-triage
COPY --from=app /opt/rare-triage-bin/ /opt/venv/bin/
COPY rare-triage.pth /opt/venv/lib/python3.11/site-packages/rare-triage.pth
# The local instance (sqlite under DAGSTER_HOME): a shared deployment mounts its own (deploy/) over it.
COPY dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY grpc_healthcheck.py /usr/local/lib/rare-triage/grpc_healthcheck.py

# Configuration is the environment: the code server's address (DAGSTER_GRPC_HOST, DAGSTER_GRPC_PORT, read by
# `dagster api grpc` and by the health check), the platform's RARE_TRIAGE_* (bucket, lake, S3, MLflow, HMAC key),
# AWS_*. It listens on every address of the container; which host address it is published on is the operator's.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    RARE_TRIAGE_HOME=/var/lib/rare-triage \
    DAGSTER_GRPC_HOST=0.0.0.0 \
    DAGSTER_GRPC_PORT=4000 \
    DAGSTER_LOCATION_NAME=rare_triage
WORKDIR /var/lib/rare-triage
USER 10001:10001
EXPOSE 4000
# Healthy: the gRPC health service answers SERVING, which `dagster api grpc` reports once the definitions are loaded.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/usr/local/lib/rare-triage/grpc_healthcheck.py"]
# `dagster api grpc` loads the definitions in its own process and serves them; a definition that fails to load
# stops it (exit 1, the traceback in the log), so the orchestrator restarts it instead of reporting healthy. Exec
# form, so the server gets the stop signal: run with --init (it stops within seconds, exit 0).
CMD ["dagster", "api", "grpc", "-m", "rare_triage.definitions", "-d", "/opt/rare-triage"]

ARG IMAGE_SOURCE=""
ARG IMAGE_REVISION=unknown
ARG IMAGE_VERSION=0.1.0
# The revision also tags the MLflow runs of this image (rare_triage.lib.training.tracking: no git in the image).
ENV RARE_TRIAGE_CODE_REVISION="${IMAGE_REVISION}"
LABEL org.opencontainers.image.title="rare-triage-code-location" \
      org.opencontainers.image.description="Dagster code location of rare-triage: the platform's assets and jobs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${IMAGE_VERSION}" \
      org.opencontainers.image.source="${IMAGE_SOURCE}" \
      org.opencontainers.image.revision="${IMAGE_REVISION}"
