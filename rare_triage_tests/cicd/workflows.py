"""The GitHub Actions workflows of .github parsed, the repository's policy on them, and the offline linters.

Each `*_problems` function takes one workflow and returns one sentence per breach of the policy (empty when it
holds), so a test asserts `== []` on the real files and a non-empty list on a copy with a planted defect. The
linters (check-jsonschema, actionlint, zizmor) are the wheels of requirements/dev.lock, run from this venv's bin.
"""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GITHUB_DIR = REPO / ".github"
WORKFLOW_DIR = GITHUB_DIR / "workflows"
TOOLS = Path(sys.executable).parent
TOOL_TIMEOUT_S = 120

LOCAL_USES = ("./", "$/")  # a workflow or action of this repository (workspace-relative and self-repository forms)
PINNED_USES = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+(/[A-Za-z0-9._/-]+)?@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+(\.\d+){0,2}$")
LOCK_HASH = "hashFiles('requirements/*.lock')"
SECRET_REFERENCE = re.compile(r"\$\{\{\s*secrets\.(\w+)")
# Write scopes a job may hold, by (workflow file, job id); every other job reads at most. id-token: write is not
# needed anywhere: the images carry BuildKit's SBOM and provenance attestations, which need no OIDC token.
WRITE_SCOPES: dict[tuple[str, str], set[str]] = {
    ("ci.yml", "images"): {"packages"},  # the caller of images.yml grants what its job uses
    ("images.yml", "build-push"): {"packages"},  # push to ghcr.io
}
PERMISSION_LEVELS = {"read", "write", "none"}
# Package and chart registries are configured outside the repository (the Helm chart's address is a repository
# variable): no file of .github holds an address, and the only host name it may hold is ghcr.io, the image registry.
URL = re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)
HOST_NAME = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|dev|sh|cloud|app|ai)\b", re.IGNORECASE)
ALLOWED_HOSTS = {"ghcr.io"}


@dataclass(frozen=True)
class Workflow:
    path: Path
    text: str
    data: dict[Any, Any]  # YAML 1.1: the bare key `on` is read as True

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def triggers(self) -> dict[str, Any]:
        """The `on:` section (YAML 1.1 reads the bare key `on` as True)."""
        found = self.data.get("on", self.data.get(True))
        return found if isinstance(found, dict) else {}

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        jobs = self.data.get("jobs")
        return jobs if isinstance(jobs, dict) else {}

    def steps(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(job id, step) of every step, in order."""
        for job_id, job in self.jobs.items():
            for step in job.get("steps") or []:
                yield job_id, step

    def step(self, name: str) -> dict[str, Any]:
        """The one step called `name`."""
        found = [step for _, step in self.steps() if step.get("name") == name]
        assert len(found) == 1, f"{self.name}: {len(found)} steps named {name!r}"
        return found[0]


def load(path: Path) -> Workflow:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"{path}: not a mapping"
    return Workflow(path, text, data)


def workflow_files(directory: Path = WORKFLOW_DIR) -> list[Path]:
    return sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])


def uses_of(workflow: Workflow) -> list[str]:
    """Every `uses:` of the workflow: job-level (reusable workflows) and step-level."""
    found = [job["uses"] for job in workflow.jobs.values() if "uses" in job]
    return found + [step["uses"] for _, step in workflow.steps() if "uses" in step]


def strings_in(node: Any) -> Iterator[str]:
    """Every string value nested in a parsed YAML node."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)


def pin_problems(workflow: Workflow) -> list[str]:
    """Every action is pinned to a full commit sha, its release tag as a comment on the same line."""
    problems = [
        f"{workflow.name}: `uses: {ref}` is not pinned to a full commit sha"
        for ref in uses_of(workflow)
        if not ref.startswith(LOCAL_USES) and not PINNED_USES.match(ref)
    ]
    for number, line in enumerate(workflow.text.splitlines(), start=1):
        match = USES_LINE.match(line)
        if match and not match["ref"].startswith(LOCAL_USES) and not VERSION_COMMENT.match(match["rest"]):
            problems.append(f"{workflow.name}:{number}: `uses: {match['ref']}` has no `# vX.Y.Z` comment")
    return problems


def permission_problems(workflow: Workflow) -> list[str]:
    """Nothing at the top level; every job names its scopes; write only where WRITE_SCOPES allows it."""
    problems = []
    if workflow.data.get("permissions") != {}:
        problems.append(f"{workflow.name}: top-level permissions must be {{}}")
    for job_id, job in workflow.jobs.items():
        permissions = job.get("permissions")
        if not isinstance(permissions, dict):
            problems.append(f"{workflow.name}: job {job_id} does not list its permissions")
            continue
        allowed = WRITE_SCOPES.get((workflow.name, job_id), set())
        for scope, level in permissions.items():
            if level not in PERMISSION_LEVELS:
                problems.append(f"{workflow.name}: job {job_id}: {scope}: {level!r} is not read, write or none")
            elif level == "write" and scope not in allowed:
                problems.append(f"{workflow.name}: job {job_id} may not hold {scope}: write")
    return problems


def concurrency_problems(workflow: Workflow) -> list[str]:
    concurrency = workflow.data.get("concurrency")
    group = concurrency.get("group") if isinstance(concurrency, dict) else concurrency
    return [] if isinstance(group, str) and group else [f"{workflow.name}: no top-level concurrency group"]


def run_problems(workflow: Workflow) -> list[str]:
    """Run scripts take every value through `env:` (no expression is pasted into a script) and never trace."""
    problems = []
    for job_id, step in workflow.steps():
        script = step.get("run")
        if not isinstance(script, str):
            continue
        label = f"{workflow.name}: job {job_id}, step {step.get('name', script.splitlines()[0])!r}"
        if "${{" in script:
            problems.append(f"{label}: an expression inside run: (pass it through env:)")
        if re.search(r"\bset\s+(-[a-z]*x|-o\s+xtrace)", script):
            problems.append(f"{label}: set -x would print secrets' values")
    return problems


def job_problems(workflow: Workflow) -> list[str]:
    """Every job that runs steps is bounded in time and checks out without keeping the token."""
    problems = []
    for job_id, job in workflow.jobs.items():
        if "steps" in job and "timeout-minutes" not in job:
            problems.append(f"{workflow.name}: job {job_id} has no timeout-minutes")
        for step in job.get("steps") or []:
            if (
                str(step.get("uses", "")).startswith("actions/checkout@")
                and (step.get("with") or {}).get("persist-credentials") is not False
            ):
                problems.append(f"{workflow.name}: job {job_id}: checkout without persist-credentials: false")
    return problems


def environment_problems(workflow: Workflow) -> list[str]:
    """A job that reads a secret other than GITHUB_TOKEN, or talks to a cluster, runs in a GitHub environment."""
    problems = []
    for job_id, job in workflow.jobs.items():
        if "uses" in job:
            continue  # a call: the called workflow's jobs are checked in their own file
        texts = list(strings_in(job))
        secrets = {name for text in texts for name in SECRET_REFERENCE.findall(text)} - {"GITHUB_TOKEN"}
        cluster = any(re.search(r"\b(kubectl|helm)\s", text) for text in texts)
        if (secrets or cluster) and not job.get("environment"):
            problems.append(f"{workflow.name}: job {job_id} uses {sorted(secrets) or 'a cluster'} without environment:")
    return problems


def cache_problems(workflow: Workflow) -> list[str]:
    """Dependency caches are keyed on the lock files."""
    problems = []
    for job_id, step in workflow.steps():
        uses, given = str(step.get("uses", "")), step.get("with") or {}
        if uses.startswith("actions/cache@") and LOCK_HASH not in str(given.get("key", "")):
            problems.append(f"{workflow.name}: job {job_id}: cache key without {LOCK_HASH}")
        cache_path = str(given.get("cache-dependency-path", ""))
        if uses.startswith("actions/setup-python@") and given.get("cache") and "requirements/" not in cache_path:
            problems.append(f"{workflow.name}: job {job_id}: setup-python cache not keyed on requirements/*.lock")
    return problems


def registry_problems(path: Path) -> list[str]:
    """No address and no host name but ghcr.io in a file of .github (registries are configured in GitHub)."""
    text = path.read_text(encoding="utf-8")
    urls = [f"{path.name}: holds an address ({match.group(0)}...)" for match in URL.finditer(text)]
    hosts = {match.group(0).lower() for match in HOST_NAME.finditer(text)} - ALLOWED_HOSTS
    return urls + [f"{path.name}: names the host {host}" for host in sorted(hosts)]


def policy_problems(workflow: Workflow) -> list[str]:
    return [
        *pin_problems(workflow),
        *permission_problems(workflow),
        *concurrency_problems(workflow),
        *run_problems(workflow),
        *job_problems(workflow),
        *environment_problems(workflow),
        *cache_problems(workflow),
        *registry_problems(workflow.path),
    ]


def run_tool(argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A linter from this venv, offline: no GitHub token reaches it, colour off."""
    tokens = ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")
    env = {key: value for key, value in os.environ.items() if key not in tokens}
    env.update(NO_COLOR="1", ZIZMOR_OFFLINE="true")
    executable = TOOLS / argv[0]
    assert executable.is_file(), f"{executable} missing: install requirements/dev.lock"
    return subprocess.run(
        [str(executable), *argv[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


def check_jsonschema(
    paths: Sequence[Path], schema: str = "vendor.github-workflows"
) -> subprocess.CompletedProcess[str]:
    return run_tool(["check-jsonschema", "--builtin-schema", schema, *map(str, paths)], cwd=REPO)


@dataclass(frozen=True)
class Lint:
    returncode: int
    kinds: list[str]  # actionlint's error kinds, zizmor's audit idents
    output: str


def actionlint(paths: Sequence[Path], root: Path = REPO) -> Lint:
    """actionlint (and shellcheck on run scripts when it is on PATH); `root` holds the .github the files refer to."""
    result = run_tool(["actionlint", "-format", "{{json .}}", *map(str, paths)], cwd=root)
    assert result.returncode in (0, 1), f"actionlint failed to run ({result.returncode}): {result.stderr}"
    errors = json.loads(result.stdout or "[]")
    return Lint(result.returncode, [error["kind"] for error in errors], result.stdout + result.stderr)


def zizmor(target: Path, root: Path = REPO) -> Lint:
    """zizmor offline at the auditor persona (every audit, every severity), without configuration or ignore
    comments; a file it cannot parse fails the run (--strict-collection)."""
    argv = ["zizmor", "--offline", "--persona", "auditor", "--no-config", "--no-ignores", "--strict-collection"]
    result = run_tool([*argv, "--format", "json", "--no-progress", str(target)], cwd=root)
    try:
        findings = json.loads(result.stdout) if result.stdout.strip() else []
    except json.JSONDecodeError:
        findings = []
    return Lint(result.returncode, [finding["ident"] for finding in findings], result.stdout + result.stderr)


def bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A run: script under the shell GitHub uses for `run:` on Linux (bash -eo pipefail)."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **env},
        timeout=30,
        check=False,
    )
