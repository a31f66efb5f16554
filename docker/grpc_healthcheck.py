"""The code-location image's HEALTHCHECK: the gRPC health service of `dagster api grpc` in this container.

Exit 0 when the server reports SERVING for "DagsterApi" (what `dagster api grpc-health-check` asks), else 1. It
imports grpcio and grpc_health only, not dagster: about 0.2 s a check instead of the seconds the dagster CLI takes
to start. `dagster api grpc` binds its port and reports SERVING only once the definitions are loaded, so healthy
means "serves its definitions". It asks the address the server listens on (DAGSTER_GRPC_HOST, DAGSTER_GRPC_PORT,
the variables `dagster api grpc` reads), a wildcard address through loopback; gRPC's proxy variables are ignored
(a proxy set for S3 must not carry a loopback call).
"""

import os
import sys
from collections.abc import Mapping

TIMEOUT_S = 4.0  # below the HEALTHCHECK --timeout of docker/code-location.Dockerfile
SERVICE = "DagsterApi"  # the service name dagster's server registers with the health servicer
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def target(environ: Mapping[str, str]) -> str:
    host = environ.get("DAGSTER_GRPC_HOST", "").strip() or "127.0.0.1"
    host = WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    port = environ.get("DAGSTER_GRPC_PORT", "").strip() or "4000"
    return f"{host}:{port}"


def main() -> int:
    import grpc  # noqa: PLC0415 (imported here: target() is tested without grpc)
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    address = target(os.environ)
    try:
        with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=TIMEOUT_S
            )
    except grpc.RpcError as exc:
        print(f"unhealthy: {address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if status != "SERVING":
        print(f"unhealthy: {address}: {SERVICE} is {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
