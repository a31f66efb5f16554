# The triage service's image (serving/ alone: Litestar on uvicorn, the published ONNX model read from the bucket).
# Nothing is downloaded during the build: build/wheelhouse/ holds the wheels of requirements/serving.lock and
# build/serving-wheel/ a wheel of serving, both made on the host, so the build runs with --network=none.
# docker/build_and_smoke.sh does it all (wheels, base image, build, smoke test). By hand, once the wheels are there:
#   docker build -t rare-triage-serving .          (BASE_IMAGE below, for a machine that can pull it)
#   docker build --network=none --build-arg BASE_IMAGE=local/python:3.11 -t rare-triage-serving .
# The base is any Debian bookworm with Python 3.11 and venv (the script makes local/python:3.11 by debootstrap).
# The platform's image (the Dagster code location) is not built here: it comes with its own issue.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# deps: the locked runtime in a venv, layers kept as long as the lock does not change.
FROM ${BASE_IMAGE} AS deps
WORKDIR /build
COPY requirements/serving.lock ./
COPY build/wheelhouse/ wheelhouse/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --no-index --find-links=wheelhouse -r serving.lock

# venv: the same without pip and setuptools, which the service does not need.
FROM deps AS venv
RUN /opt/venv/bin/python -m pip uninstall --yes --quiet setuptools pip

# app: serving itself, without dependencies, in a folder of its own (so a change of code rebuilds this small layer
# only); pip check fails when the lock misses a dependency, the import when the package misses a module.
FROM deps AS app
COPY build/serving-wheel/ serving-wheel/
RUN /opt/venv/bin/python -m pip install --no-cache-dir --no-index --no-deps --target=/opt/serving \
        serving-wheel/rare_triage_serving-*.whl \
    && PYTHONPATH=/opt/serving /opt/venv/bin/python -m pip check \
    && PYTHONPATH=/opt/serving /opt/venv/bin/python -c "import serving.__main__"

FROM ${BASE_IMAGE}
# uid 10001, the state folder group 0 as well: another uid of the operator's (docker run -u <uid>:0) can write it.
RUN useradd --system --no-log-init --uid 10001 --user-group --home-dir /var/lib/rare-triage \
        --shell /usr/sbin/nologin triage \
    && mkdir -p /var/lib/rare-triage/serving \
    && chown -R 10001:0 /var/lib/rare-triage \
    && chmod -R g=u /var/lib/rare-triage
COPY --from=venv /opt/venv /opt/venv
COPY --from=app /opt/serving/ /opt/venv/lib/python3.11/site-packages/
COPY docker/healthcheck.py /usr/local/lib/rare-triage/healthcheck.py

# Configuration is the environment (serving/settings.py): MODEL_ENV (required), RARE_TRIAGE_BUCKET_URI (a mounted
# folder or s3://bucket/prefix), RARE_TRIAGE_S3_*, AWS_*, SERVING_*. The service listens on every address of the
# container; which host address it is published on is the operator's choice (-p 127.0.0.1:8000:8000).
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RARE_TRIAGE_HOME=/var/lib/rare-triage \
    SERVING_HOST=0.0.0.0 \
    SERVING_PORT=8000
WORKDIR /var/lib/rare-triage
USER 10001:10001
EXPOSE 8000
# Liveness (GET /health); readiness, a model loaded, is GET /ready for the load balancer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/rare-triage/healthcheck.py"]
# Exec form, so the server gets the stop signal: run with --init (uvicorn then stops within its 10 s grace).
CMD ["python", "-m", "serving"]

ARG IMAGE_SOURCE=""
ARG IMAGE_REVISION=unknown
ARG IMAGE_VERSION=0.1.0
LABEL org.opencontainers.image.title="rare-triage-serving" \
      org.opencontainers.image.description="HTTP triage service of rare-triage: serves the published ONNX model" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${IMAGE_VERSION}" \
      org.opencontainers.image.source="${IMAGE_SOURCE}" \
      org.opencontainers.image.revision="${IMAGE_REVISION}"
