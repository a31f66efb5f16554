#!/usr/bin/env bash
# Build both images and smoke-test them, on a Debian bookworm machine with nothing but Python 3.11 and apt, as
# root: the service (Dockerfile, context the repository root) and the Dagster code location
# (docker/code-location.Dockerfile, context build/code-location/). Phases, each timed:
#   tools         apt-get install docker.io and debootstrap when dockerd or debootstrap is missing
#   daemon        a private dockerd: data-root, socket and pidfile in the cache folder, no iptables, no bridge
#   base          local/python:3.11 by debootstrap (Debian's python3, 3.11) from the host's apt mirror, when absent
#   context/*     docker/prepare_context.sh: the wheels of the image's lock (host pip, cached per lock) and a wheel
#                 of the project, in build/ (ignored by git)
#   build/*       docker build --network=none: nothing is downloaded inside a build
#   smoke/service a published model in a temporary bucket folder, the container on 127.0.0.1 (host network,
#                 --init, non-root, bucket read-only): /ready 200, one POST /v1/predict 200, docker's health status
#                 healthy, the server's uid not 0; then stopped (gracefully) and removed
#   smoke/code-location  the code server on 127.0.0.1 (host network, --init, non-root): `dagster api
#                 grpc-health-check` from the host's .venv, the jobs listed through a workspace pointing at it
#                 (grpc_server), docker's health status healthy, the server's uid not 0; then stopped (gracefully)
#                 and removed
# dockerd is stopped by its PID when the script ends, whatever happens. The cache folder (data-root, wheels) is
# reused by the next run. Measured on 2 shared cores: about 13 minutes from scratch (debootstrap 2.5, the code
# location's build 6: its venv is 1.4 GB), about 2 minutes warm (the layers reused; the classic builder still
# hashes the venv it copies into the runtime stage, and each code server loads every definition before it answers).
#
# Environment:
#   RARE_TRIAGE_DOCKER_CACHE  cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/rare-triage/docker)
#   DEBIAN_MIRROR             the Debian mirror for debootstrap (default: the host's bookworm entry of apt's sources)
#   IMAGE                     the service's image name and tag (default rare-triage-serving:latest)
#   CODE_LOCATION_IMAGE       the code location's image name and tag (default rare-triage-code-location:latest)
#   IMAGE_SOURCE              org.opencontainers.image.source label (default: the origin remote, without credentials)
# When docker cannot run, the script fails (exit 1), in CI (CI=true) as anywhere else: it never skips.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${RARE_TRIAGE_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rare-triage/docker}"
IMAGE="${IMAGE:-rare-triage-serving:latest}"
CODE_LOCATION_IMAGE="${CODE_LOCATION_IMAGE:-rare-triage-code-location:latest}"
BASE_IMAGE=local/python:3.11
SUITE=bookworm
SMOKE_UID=10001
WAIT_S=90                # bound of every wait of the smoke test
LOAD_WAIT_S=240          # bound of the code server's start: it loads every definition first
DOCKERD_START_S=60
DOCKERD_STOP_S=30
export DOCKER_BUILDKIT=0  # the classic builder: Debian's docker.io has no buildx

PHASES=()
DOCKERD_PID=""
CONTAINER=""
WORK=""
SCRIPT_START=$(date +%s.%N)

log() { printf '[image] %s\n' "$*"; }
die() {
  printf '[image] FAILED: %s\n' "$*" >&2
  if [[ "${CI:-}" == "true" ]]; then
    printf '[image] CI=true: both images must build and pass their smoke tests on this machine\n' >&2
  fi
  exit 1
}

# Seconds since the `date +%s.%N` given, one decimal.
elapsed() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }
phase_start() { PHASE_NAME="$1"; PHASE_T0=$(date +%s.%N); log "== $1: $2"; }
phase_end() {
  local seconds
  seconds=$(elapsed "$PHASE_T0")
  PHASES+=("$PHASE_NAME ${seconds}s${1:+ ($1)}")
  log "   $PHASE_NAME done in ${seconds}s${1:+ ($1)}"
}

# Each line of the input after the seconds elapsed since its start.
stamp() {
  local t0=$SECONDS line
  while IFS= read -r line; do printf '%4ss %s\n' "$((SECONDS - t0))" "$line"; done
}

cleanup() {
  local status=$?
  set +e
  if [[ -n "$CONTAINER" ]]; then
    if ((status != 0)); then
      log "container logs (last 40 lines):"
      docker logs --tail 40 "$CONTAINER" 2>&1 | sed 's/^/    /'
    fi
    docker rm -f "$CONTAINER" >/dev/null 2>&1
  fi
  if [[ -n "$DOCKERD_PID" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq $((DOCKERD_STOP_S * 5))); do
      kill -0 "$DOCKERD_PID" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      log "dockerd $DOCKERD_PID still running after ${DOCKERD_STOP_S}s: killing it"
      kill -KILL "$DOCKERD_PID"
    fi
    log "dockerd $DOCKERD_PID stopped"
  fi
  if ((status != 0)) && [[ -s "$CACHE/dockerd.log" ]]; then
    log "dockerd log (last 15 lines):"
    tail -n 15 "$CACHE/dockerd.log" | sed 's/^/    /'
  fi
  if [[ -n "$WORK" ]]; then
    # dockerd leaves its exec-root's default network namespace mounted: unmount what lies under the work folder
    awk -v work="$WORK/" 'index($2, work) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount; do
      umount "$mount" || umount --lazy "$mount"
    done
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------------------------------
(( EUID == 0 )) || die "run as root: the script installs Debian packages and starts its own dockerd"
PYTHON="$(command -v python3.11 || command -v python3 || true)"
[[ -n "$PYTHON" ]] || die "python3 not found"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || die "the wheelhouse is made with the host's Python, which must be 3.11 (the image's)"
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock --wait 600 9 || die "another run holds $CACHE/lock"
WORK="$(mktemp -d /tmp/rare-triage-image.XXXXXX)"

phase_start tools "docker.io and debootstrap"
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  apt-get -o DPkg::Lock::Timeout=600 update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" \
    >"$WORK/apt.log" 2>&1 || { tail -n 20 "$WORK/apt.log" >&2; die "apt-get install ${missing[*]}"; }
  phase_end "installed ${missing[*]}"
else
  phase_end "already installed"
fi

phase_start daemon "private dockerd, data-root $CACHE/data-root"
if [[ -s "$CACHE/dockerd.pid" ]] && kill -0 "$(cat "$CACHE/dockerd.pid")" 2>/dev/null; then
  die "a dockerd (pid $(cat "$CACHE/dockerd.pid")) still runs on $CACHE: stop it first"
fi
rm -f "$CACHE/dockerd.pid" "$CACHE/docker.sock"
export DOCKER_HOST="unix://$CACHE/docker.sock"
mkdir -p "$WORK/exec"
setsid dockerd --data-root="$CACHE/data-root" --exec-root="$WORK/exec" --pidfile="$CACHE/dockerd.pid" \
  --host="$DOCKER_HOST" --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none \
  >"$CACHE/dockerd.log" 2>&1 </dev/null 9>&- &
DOCKERD_PID=$!
for _ in $(seq $((DOCKERD_START_S * 5))); do
  docker info >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited at start (see $CACHE/dockerd.log)"
  sleep 0.2
done
docker info >/dev/null 2>&1 || die "dockerd did not answer within ${DOCKERD_START_S}s (see $CACHE/dockerd.log)"
phase_end "dockerd $(docker version --format '{{.Server.Version}}'), pid $DOCKERD_PID"

# The first bookworm entry of apt's sources (one-line or deb822 format), never a name written in this repository.
host_mirror() {
  "$PYTHON" - "$SUITE" <<'PY'
import pathlib, sys
suite = sys.argv[1]
files = [pathlib.Path("/etc/apt/sources.list")]
for pattern in ("*.list", "*.sources"):
    files += sorted(pathlib.Path("/etc/apt/sources.list.d").glob(pattern))
for path in files:
    if not path.is_file():
        continue
    text = path.read_text(errors="replace")
    if path.suffix == ".sources":
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
            if (
                "deb" in fields.get("types", [])
                and suite in fields.get("suites", [])
                and fields.get("enabled", ["yes"]) != ["no"]
            ):
                print(fields["uris"][0])
                sys.exit(0)
    else:
        for line in text.splitlines():
            words = [w for w in line.split("#")[0].split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                print(words[1])
                sys.exit(0)
sys.exit(1)
PY
}

phase_start base "$BASE_IMAGE"
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  phase_end "present in the data-root"
else
  mirror="${DEBIAN_MIRROR:-$(host_mirror || true)}"
  [[ -n "$mirror" ]] || die "no '$SUITE' entry in apt's sources: set DEBIAN_MIRROR to a Debian mirror"
  log "   debootstrap $SUITE from $mirror"
  rootfs="$WORK/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$rootfs" "$mirror" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap"; }
  # apt's downloads and lists, translations, manuals; of the package docs only the copyright files stay
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  find "$rootfs/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  phase_end "debootstrap, $("$PYTHON" -c 'import sys; print(int(sys.argv[1]) // 10**6)' \
    "$(docker image inspect --format '{{.Size}}' "$BASE_IMAGE")") MB"
fi

# ---------------------------------------------------------------------------------------------------------------------
# Shared by both images: the labels' revision and source, the build itself, the checks of a running container.

revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ "$revision" != unknown ]] && [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]]; then
  revision="$revision-dirty"
fi
# the origin remote without credentials (user:token@ dropped), empty without one
origin="$(git -C "$ROOT" remote get-url origin 2>/dev/null | sed -E 's#^([a-z+]+://)[^/@]*@#\1#' || true)"
source_url="${IMAGE_SOURCE:-$origin}"

project_version() {  # <pyproject.toml>
  "$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$1"
}

# context <service|code-location>: docker/prepare_context.sh, its summary line as the phase's note.
context() {
  local summary
  phase_start "context/$1" "docker/prepare_context.sh $1"
  summary="$(RARE_TRIAGE_DOCKER_CACHE="$CACHE" PYTHON="$PYTHON" bash "$ROOT/docker/prepare_context.sh" "$1")" \
    || die "the context of the $1 image (docker/prepare_context.sh $1)"
  phase_end "${summary#*: }"
}

# build <phase> <image> <Dockerfile> <context folder> <version>: sets IMAGE_MB.
IMAGE_MB=""
build() {
  local name="$1" image="$2" dockerfile="$3" context_dir="$4" version="$5" previous build_log
  phase_start "build/$name" "docker build --network=none -t $image"
  build_log="$WORK/build-$name.log"
  previous="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  docker build --network=none --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "IMAGE_REVISION=$revision" \
    --build-arg "IMAGE_SOURCE=$source_url" --build-arg "IMAGE_VERSION=$version" -t "$image" -f "$dockerfile" \
    "$context_dir" 2>&1 | stamp >"$build_log" || { tail -n 30 "$build_log" >&2; die "docker build of $image"; }
  grep -E '^ *[0-9]+s Step ' "$build_log" | sed 's/^/[image]      /' || true
  grep -E '^ *[0-9]+s definitions: ' "$build_log" | sed 's/^ *[0-9]*s /[image]      /' || true
  if [[ -n "$previous" && "$previous" != "$(docker image inspect --format '{{.Id}}' "$image")" ]]; then
    docker rmi "$previous" >/dev/null 2>&1 || true  # the previous build's image, now untagged (its layers in use stay)
  fi
  IMAGE_MB="$("$PYTHON" -c 'import sys; print(f"{int(sys.argv[1]) / 10**6:.0f}")' \
    "$(docker image inspect --format '{{.Size}}' "$image")")"
  phase_end "$IMAGE_MB MB"
}

# wait_healthy: docker's health status of CONTAINER healthy within WAIT_S; unhealthy fails at once (the run options'
# start period decides when a failed check starts to count).
wait_healthy() {
  local health=""
  for _ in $(seq $((WAIT_S * 2))); do
    health="$(docker inspect --format '{{.State.Health.Status}}' "$CONTAINER")"
    [[ "$health" == healthy || "$health" == unhealthy ]] && break
    sleep 0.5
  done
  [[ "$health" == healthy ]] || die "docker health status: '$health' (expected healthy)"
  log "   docker health status: healthy"
}

# check_non_root <image> <words of the server's command line after its python>: the uid of the server process
# itself (not of docker-init, not of a docker exec), read from /proc inside CONTAINER, and the image's USER: neither
# root. Sets SERVER_UID.
SERVER_UID=""
check_non_root() {
  local image="$1" words="$2" image_user
  SERVER_UID="$(docker exec "$CONTAINER" python -c '
import os, pathlib, sys
words = [word.encode() for word in sys.argv[1].split()]
for proc in pathlib.Path("/proc").glob("[0-9]*"):
    try:
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        rest = cmdline[1:]
        if os.path.basename(cmdline[0]).startswith(b"python") and any(
            rest[i : i + len(words)] == words for i in range(len(rest))
        ):
            print(next(l.split()[1] for l in (proc / "status").read_text().splitlines() if l.startswith("Uid:")))
            break
    except OSError:
        pass
' "$words")"
  image_user="$(docker image inspect --format '{{.Config.User}}' "$image")"
  [[ -n "$SERVER_UID" && "$SERVER_UID" != 0 ]] || die "server process uid: '$SERVER_UID'"
  [[ -n "$image_user" && "${image_user%%:*}" != 0 && "${image_user%%:*}" != root ]] || die "image USER '$image_user'"
  log "   server process uid $SERVER_UID, image USER $image_user"
}

# stop_gracefully <pattern of the server's last line>: docker stop --time 15, then exit 0, or 143 (the server
# re-raised SIGTERM) after its last line; 137 (SIGKILL after the 15 s of docker stop) is not graceful. Removed.
stop_gracefully() {
  local pattern="$1" stop_t0 stop_s exit_code last_line
  stop_t0=$(date +%s.%N)
  docker stop --time 15 "$CONTAINER" >/dev/null
  exit_code="$(docker inspect --format '{{.State.ExitCode}}' "$CONTAINER")"
  stop_s=$(elapsed "$stop_t0")
  last_line="$(docker logs --tail 1 "$CONTAINER" 2>&1)"
  [[ ( "$exit_code" == 0 || "$exit_code" == 143 ) && "$last_line" == *$pattern* ]] \
    || die "docker stop: exit code $exit_code, last line '$last_line' (expected a graceful shutdown)"
  docker rm "$CONTAINER" >/dev/null
  CONTAINER=""
  log "   stopped gracefully in ${stop_s}s (exit $exit_code: SIGTERM through --init), last line: ${last_line##* - }"
  log "   container removed"
}

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------------------------------------------------------------
# The service image.
context service
build service "$IMAGE" "$ROOT/Dockerfile" "$ROOT" "$(project_version "$ROOT/serving/pyproject.toml")"
service_mb="$IMAGE_MB"

phase_start smoke/service "published model, container on 127.0.0.1"
bucket="$WORK/bucket"
publisher="$ROOT/.venv-serving/bin/python"
[[ -x "$publisher" ]] || publisher="$ROOT/.venv/bin/python"
[[ -x "$publisher" ]] || die "no .venv-serving or .venv to run serving/tests/published.py (make setup-serving)"
(cd "$ROOT" && "$publisher" -c '
import sys
from pathlib import Path
from serving.tests.published import MAX_FEATURES, build_release, folder_put, publish
release = build_release(n_features=MAX_FEATURES)
publish(folder_put(Path(sys.argv[1])), release, "dev")
print(release.version)
' "$bucket") >"$WORK/version" || die "publishing the smoke model"
chmod -R a+rX "$bucket"
port="$(free_port)"
CONTAINER="$(docker run --detach --network=host --init --user "$SMOKE_UID:$SMOKE_UID" \
  --volume "$bucket:/bucket:ro" --env MODEL_ENV=dev --env RARE_TRIAGE_BUCKET_URI=/bucket \
  --env SERVING_HOST=127.0.0.1 --env "SERVING_PORT=$port" \
  --health-interval=1s --health-start-period=1s --health-timeout=5s --health-retries=3 "$IMAGE")"
log "   container ${CONTAINER:0:12} on 127.0.0.1:$port, version $(cat "$WORK/version")"

# GET /ready until 200, then POST /v1/predict once; every wait bounded, proxies of the environment ignored.
"$PYTHON" - "$port" "$WAIT_S" <<'PY' || die "the service did not answer as expected"
import json, sys, time, urllib.error, urllib.request
port, wait_s = int(sys.argv[1]), float(sys.argv[2])
base = f"http://127.0.0.1:{port}"
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()

deadline, status, body, t0 = time.monotonic() + wait_s, None, b"", time.monotonic()
while time.monotonic() < deadline:
    try:
        status, body = call("/ready")
    except OSError:
        status = None
    if status == 200:
        break
    time.sleep(0.5)
if status != 200:
    sys.exit(f"GET /ready: {status} after {wait_s:.0f}s: {body[:300]!r}")
print(f"[image]    GET /ready 200 after {time.monotonic() - t0:.1f}s: {json.loads(body)['detail']}")
status, body = call("/v1/predict", {"sex": "F", "age_years": 7, "hpo_observed": ["HP:0001250"]})
if status != 200:
    sys.exit(f"POST /v1/predict: {status}: {body[:300]!r}")
print(f"[image]    POST /v1/predict 200: {body[:200].decode()}")
PY

wait_healthy
check_non_root "$IMAGE" "-m serving"
# uvicorn shuts down on SIGTERM, then re-raises it: its last line is "Finished server process".
stop_gracefully "Finished server process"
phase_end "ready, predict, healthy, uid $SERVER_UID"

# ---------------------------------------------------------------------------------------------------------------------
# The code-location image.
context code-location
build code-location "$CODE_LOCATION_IMAGE" "$ROOT/docker/code-location.Dockerfile" "$ROOT/build/code-location" \
  "$(project_version "$ROOT/pyproject.toml")"
code_location_mb="$IMAGE_MB"

phase_start smoke/code-location "code server on 127.0.0.1, its jobs listed through a workspace"
dagster="$ROOT/.venv/bin/dagster"
[[ -x "$dagster" ]] || die "no .venv/bin/dagster to call the code server from the host (make setup)"
# The host's dagster commands: an instance of their own (telemetry off), proxies of the environment ignored.
client_home="$WORK/dagster_home"
mkdir -p "$client_home"
printf 'telemetry:\n  enabled: false\n' >"$client_home/dagster.yaml"
client() {
  env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u grpc_proxy DAGSTER_HOME="$client_home" "$@"
}
port="$(free_port)"
location="$(docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$CODE_LOCATION_IMAGE" \
  | sed -n 's/^DAGSTER_LOCATION_NAME=//p')"
[[ -n "$location" ]] || die "the image sets no DAGSTER_LOCATION_NAME"
# The start period covers the loading of the definitions: only a success ends it, so no failure before counts.
CONTAINER="$(docker run --detach --network=host --init --user "$SMOKE_UID:$SMOKE_UID" \
  --env DAGSTER_GRPC_HOST=127.0.0.1 --env "DAGSTER_GRPC_PORT=$port" \
  --health-interval=1s --health-start-period="${LOAD_WAIT_S}s" --health-timeout=5s --health-retries=3 \
  "$CODE_LOCATION_IMAGE")"
log "   container ${CONTAINER:0:12} on 127.0.0.1:$port, location $location"

wait_t0=$(date +%s.%N)
deadline=$((SECONDS + LOAD_WAIT_S))
served=""
while ((SECONDS < deadline)); do
  if served="$(client timeout 20 "$dagster" api grpc-health-check -h 127.0.0.1 -p "$port" 2>&1)"; then
    break
  fi
  served=""
  [[ "$(docker inspect --format '{{.State.Running}}' "$CONTAINER")" == true ]] \
    || die "the code server exited (exit code $(docker inspect --format '{{.State.ExitCode}}' "$CONTAINER"))"
  sleep 1
done
[[ -n "$served" ]] || die "dagster api grpc-health-check did not succeed within ${LOAD_WAIT_S}s"
log "   dagster api grpc-health-check -h 127.0.0.1 -p $port after $(elapsed "$wait_t0")s: $served"

# The jobs of the repository, through a workspace like the webserver's and the daemon's (deploy/workspace.yaml).
printf 'load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: %s\n      location_name: %s\n' \
  "$port" "$location" >"$WORK/workspace.yaml"
client timeout 120 "$dagster" job list -w "$WORK/workspace.yaml" >"$WORK/jobs.txt" 2>"$WORK/jobs.err" \
  || { tail -n 20 "$WORK/jobs.err" >&2; die "dagster job list through the code server"; }
repository="$(sed -n 's/^Repository //p' "$WORK/jobs.txt" | head -n 1)"
mapfile -t jobs < <(sed -n 's/^Job: //p' "$WORK/jobs.txt" | grep -v '^__')
((${#jobs[@]})) || { cat "$WORK/jobs.txt" >&2; die "the code server lists no job"; }
log "   dagster job list -w <grpc_server 127.0.0.1:$port, $location>: repository $repository, ${#jobs[@]} jobs"
log "     ${jobs[*]}"

wait_healthy
check_non_root "$CODE_LOCATION_IMAGE" "api grpc"
# dagster api grpc stops on SIGTERM: "Shutting down Dagster code server for module ...", then exit 0.
stop_gracefully "Shutting down Dagster code server"
phase_end "health check, ${#jobs[@]} jobs listed, healthy, uid $SERVER_UID"

total=$(elapsed "$SCRIPT_START")
log "== image $IMAGE: $service_mb MB, revision $revision"
log "== image $CODE_LOCATION_IMAGE: $code_location_mb MB, revision $revision"
for line in "${PHASES[@]}"; do log "   $line"; done
log "   total ${total}s"
