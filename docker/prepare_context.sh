#!/usr/bin/env bash
# The host side of an image build: everything a build needs is fetched and made here, so `docker build` runs with
# --network=none and installs with pip --no-index. Used by docker/build_and_smoke.sh, and by GitHub Actions before
# docker/build-push-action. Usage: docker/prepare_context.sh <service|code-location>
#
#   service        the context is the repository root (Dockerfile, .dockerignore); made here:
#                    build/wheelhouse/     the wheels of requirements/serving.lock
#                    build/serving-wheel/  a wheel of serving (serving/pyproject.toml)
#   code-location  build/code-location/, a self-contained context for docker/code-location.Dockerfile:
#                    base.lock             requirements/base.lock, installed as is
#                    wheelhouse/           the wheels of base.lock
#                    rare-triage-wheel/    a wheel of the rare_triage package (its reference data and SQL included:
#                                          pyproject.toml's package-data)
#                    dg.toml               the [tool.dg] project of pyproject.toml and the code location's name:
#                                          dg.load_from_defs_folder (rare_triage/definitions.py) looks for it in
#                                          the folders above the package, where an installed wheel has none
#                    rare-triage.pth       puts the folder of the package and dg.toml (/opt/rare-triage) on the path
#                    dagster.yaml          the default instance of DAGSTER_HOME (./dagster.yaml: sqlite, telemetry
#                                          off); a shared deployment mounts its own over it (deploy/)
#                    grpc_healthcheck.py   the HEALTHCHECK (docker/grpc_healthcheck.py)
#                    .dockerignore         nothing to exclude, but the Dockerfile and the ignore file themselves
# The wheels of a lock come from the host's pip (Python 3.11, as in the image), cached per lock in
# $RARE_TRIAGE_DOCKER_CACHE/wheels/<sha256 of the lock, 16 digits>/; a package with no wheel for this platform is
# downloaded as an sdist and built into a wheel here (pip wheel), and named in the summary. The wheels of the
# project are reproducible (SOURCE_DATE_EPOCH): unchanged code, unchanged bytes, and docker reuses its layers.
# Progress and errors go to stderr; the last line on stdout is a one-line summary.
#
# Environment:
#   RARE_TRIAGE_DOCKER_CACHE  cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/rare-triage/docker)
#   PYTHON                    the host's Python 3.11 (default python3.11, else python3)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${RARE_TRIAGE_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rare-triage/docker}"
SOURCE_DATE_EPOCH=315532800  # 1980-01-01, the earliest date a zip file can hold
export SOURCE_DATE_EPOCH
TMP=""

log() { printf '[context] %s\n' "$*" >&2; }
die() {
  printf '[context] FAILED: %s\n' "$*" >&2
  exit 1
}
cleanup() {
  local status=$?
  [[ -z "$TMP" ]] || rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT

# The host's pip, quiet; its output in $TMP/pip.log, the end of which is shown when it fails.
pip_quiet() {
  "$PYTHON" -m pip --disable-pip-version-check "$@" >>"$TMP/pip.log" 2>&1 \
    || { tail -n 20 "$TMP/pip.log" >&2; return 1; }
}

# lock_wheels <lock>: WHEELS, the cache folder holding a wheel of every package of the lock, filled when absent
# in a temporary folder renamed at the end (a run stopped half-way leaves nothing that looks complete); LOCK_NOTE.
WHEELS=""
LOCK_NOTE=""
lock_wheels() {
  local lock="$1" sha wheels partial sdist built=()
  sha="$(sha256sum "$lock" | cut -c1-16)"
  wheels="$CACHE/wheels/$sha"
  WHEELS="$wheels"
  if [[ -f "$wheels/.complete" ]]; then
    LOCK_NOTE="lock wheels cached"
    return
  fi
  mkdir -p "$CACHE/wheels"
  partial="$(mktemp -d "$CACHE/wheels/.partial-$sha.XXXXXX")"
  log "downloading the wheels of ${lock#"$ROOT"/}"
  if ! pip_quiet download --only-binary=:all: --no-deps -r "$lock" -d "$partial"; then
    # Some package has no wheel for this platform: what has a wheel comes as a wheel, the rest as sdists, each
    # built here into a wheel of this Python and platform (the image's).
    log "no wheel for some package of ${lock#"$ROOT"/}: building those from their sdists on the host"
    pip_quiet download --no-deps -r "$lock" -d "$partial" || die "pip download of ${lock#"$ROOT"/}"
    for sdist in "$partial"/*.tar.gz "$partial"/*.zip; do
      [[ -e "$sdist" ]] || continue
      pip_quiet wheel --no-deps -w "$partial" "$sdist" || die "pip wheel of $(basename "$sdist")"
      built+=("$(basename "$sdist")")
      rm -f "$sdist"
    done
    printf '%s\n' "${built[@]}" >"$partial/.built-on-host"
  fi
  touch "$partial/.complete"
  [[ -f "$wheels/.complete" ]] || rm -rf "$wheels"  # what a stopped run of an older version of this script left
  if ! mv -T "$partial" "$wheels" 2>/dev/null; then
    rm -rf "$partial"  # another run completed the same folder meanwhile
    [[ -f "$wheels/.complete" ]] || die "cannot fill $wheels"
  fi
  LOCK_NOTE="lock wheels downloaded"
}

# fill_wheelhouse <cache folder> <wheelhouse>: the cached wheels, hard-linked when the file system allows it.
fill_wheelhouse() {
  local wheels="$1" wheelhouse="$2"
  rm -rf "$wheelhouse"
  mkdir -p "$wheelhouse"
  cp -l "$wheels"/*.whl "$wheelhouse/" 2>/dev/null || cp "$wheels"/*.whl "$wheelhouse/"
  if [[ -s "$wheels/.built-on-host" ]]; then
    LOCK_NOTE="$LOCK_NOTE, built on the host from sdists: $(paste -sd ' ' "$wheels/.built-on-host")"
  fi
}

# project_wheel <source folder> <output folder> <tar exclusions...>: a wheel of a copy of the folder (so the build
# writes nothing into the work tree: no build/, no egg-info).
project_wheel() {
  local source="$1" output="$2" copy
  shift 2
  copy="$(mktemp -d "$TMP/src.XXXXXX")"
  tar -C "$source" --exclude=__pycache__ --exclude='*.egg-info' --exclude=./build "$@" -cf - . | tar -C "$copy" -xf -
  rm -rf "$output"
  mkdir -p "$output"
  pip_quiet wheel --no-deps -w "$output" "$copy"
}

summary_of() {  # <wheelhouse>: "N wheels, M MB"
  printf '%s wheels, %s MB' "$(find "$1" -name '*.whl' | wc -l)" "$(du -smL "$1" | cut -f1)"
}

prepare_service() {
  lock_wheels "$ROOT/requirements/serving.lock"
  fill_wheelhouse "$WHEELS" "$ROOT/build/wheelhouse"
  project_wheel "$ROOT/serving" "$ROOT/build/serving-wheel" --exclude=./tests \
    || die "wheel of serving"
  printf 'service: %s, %s, %s\n' "$LOCK_NOTE" "$(summary_of "$ROOT/build/wheelhouse")" \
    "$(cd "$ROOT/build/serving-wheel" && echo *.whl)"
}

# The dg project of pyproject.toml as a dg.toml, with the code location's name of [tool.dagster].
write_dg_toml() {
  "$PYTHON" - "$ROOT/pyproject.toml" "$1" <<'PY'
import sys, tomllib
pyproject = tomllib.load(open(sys.argv[1], "rb"))
dg = pyproject["tool"]["dg"]
project = dict(dg["project"])
project.setdefault("code_location_name", pyproject["tool"]["dagster"]["code_location_name"])
for key, value in [("directory_type", dg["directory_type"]), *project.items()]:
    if not isinstance(value, str) or '"' in value or "\\" in value:
        sys.exit(f"[tool.dg] {key}: only plain strings are copied to dg.toml")
lines = [
    "# Made by docker/prepare_context.sh from pyproject.toml ([tool.dg], [tool.dagster]): the project file",
    "# dg.load_from_defs_folder looks for in the folders above the rare_triage package.",
    f'directory_type = "{dg["directory_type"]}"',
    "",
    "[project]",
    *(f'{key} = "{value}"' for key, value in project.items()),
]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
}

prepare_code_location() {
  local context="$ROOT/build/code-location" source
  lock_wheels "$ROOT/requirements/base.lock"
  rm -rf "$context"
  mkdir -p "$context"
  fill_wheelhouse "$WHEELS" "$context/wheelhouse"
  cp "$ROOT/requirements/base.lock" "$context/base.lock"
  # The package as pyproject.toml builds it (README.md is its readme): no tests, no serving, no state folders.
  source="$(mktemp -d "$TMP/rare-triage.XXXXXX")"
  tar -C "$ROOT" --exclude=__pycache__ --exclude='*.egg-info' -cf - pyproject.toml README.md rare_triage \
    | tar -C "$source" -xf -
  project_wheel "$source" "$context/rare-triage-wheel" || die "wheel of rare_triage"
  write_dg_toml "$context/dg.toml" || die "dg.toml from pyproject.toml"
  printf '/opt/rare-triage\n' >"$context/rare-triage.pth"
  cp "$ROOT/dagster.yaml" "$context/dagster.yaml"
  cp "$ROOT/docker/grpc_healthcheck.py" "$context/grpc_healthcheck.py"
  printf '%s\n' "# The context is made for the image (docker/prepare_context.sh): all of it goes in but these." \
    ".dockerignore" "Dockerfile" "*.Dockerfile" >"$context/.dockerignore"
  printf 'code-location: %s, %s, %s\n' "$LOCK_NOTE" "$(summary_of "$context/wheelhouse")" \
    "$(cd "$context/rare-triage-wheel" && echo *.whl)"
}

# ---------------------------------------------------------------------------------------------------------------------
target="${1:-}"
[[ "$target" == service || "$target" == code-location ]] || die "usage: $0 <service|code-location>"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
[[ -n "$PYTHON" ]] || die "python3 not found"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || die "the wheels are fetched and built with the host's Python, which must be 3.11 (the image's)"
TMP="$(mktemp -d /tmp/rare-triage-context.XXXXXX)"
case "$target" in
  service) prepare_service ;;
  code-location) prepare_code_location ;;
esac
