"""The GitHub Actions workflows (issue 12) checked offline: a broken or unsafe workflow fails the suite before it lands.

check-jsonschema (GitHub's workflow and dependabot schemas), actionlint and zizmor (offline, auditor persona, no
ignores) find nothing in .github; the repository's own policy holds (pins, permissions, concurrency, caches keyed on
the locks, no expression inside a script, secrets only in environments); the pipeline has the shape issue 12 asks for;
the scripts that validate inputs and write the kubeconfig behave as intended under bash. Copies of the workflows with
one planted defect each are refused by the tools and the policy.
"""

from __future__ import annotations

import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from rare_triage.cli import build_parser
from rare_triage.defs.shared import keys as c
from rare_triage.lib.deployment.publication import VERSION_PATTERN
from rare_triage_tests.cicd.workflows import (
    GITHUB_DIR,
    REPO,
    SECRET_REFERENCE,
    Workflow,
    actionlint,
    bash,
    cache_problems,
    check_jsonschema,
    concurrency_problems,
    environment_problems,
    job_problems,
    load,
    permission_problems,
    pin_problems,
    policy_problems,
    registry_problems,
    run_problems,
    strings_in,
    uses_of,
    workflow_files,
    zizmor,
)

EXPECTED = {"ci.yml", "images.yml", "deploy.yml", "promote.yml", "rollback.yml"}
ROLLOUT_STEPS = ("Kubeconfig", "Roll out the service", "Roll out the Dagster platform", "Remove the kubeconfig")
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def workflows() -> dict[str, Workflow]:
    return {path.name: load(path) for path in workflow_files()}


def planted(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A copy of .github under tmp_path with one exact replacement in workflows/`name` (or .github/`name`); returns
    the defective file."""
    shutil.copytree(GITHUB_DIR, tmp_path / ".github")
    target = tmp_path / ".github" / "workflows" / name
    if not target.exists():
        target = tmp_path / ".github" / name
    text = target.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {name}: the defect would not be planted"
    target.write_text(text.replace(old, new), encoding="utf-8")
    return target


# --- the offline linters find nothing --------------------------------------------------------------------------


def test_the_workflows_of_issue_12_are_all_there() -> None:
    assert {path.name for path in workflow_files()} == EXPECTED
    assert (GITHUB_DIR / "dependabot.yml").is_file()


def test_check_jsonschema_accepts_every_workflow_and_the_dependabot_config() -> None:
    workflows = check_jsonschema(workflow_files())
    dependabot = check_jsonschema([GITHUB_DIR / "dependabot.yml"], schema="vendor.dependabot")

    assert (workflows.returncode, dependabot.returncode) == (0, 0), workflows.stdout + dependabot.stdout


def test_actionlint_finds_nothing() -> None:
    result = actionlint(workflow_files())

    assert (result.returncode, result.kinds) == (0, []), result.output


def test_zizmor_offline_finds_nothing_at_any_severity_without_ignores() -> None:
    result = zizmor(GITHUB_DIR)

    assert (result.returncode, result.kinds) == (0, []), result.output


# --- the repository's policy holds ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_policy_holds(workflows: dict[str, Workflow], name: str) -> None:
    assert policy_problems(workflows[name]) == []


def test_dependabot_config_names_no_registry() -> None:
    assert registry_problems(GITHUB_DIR / "dependabot.yml") == []


def test_each_action_is_pinned_to_one_sha_and_tag_everywhere(workflows: dict[str, Workflow]) -> None:
    pins: dict[str, set[str]] = {}
    for workflow in workflows.values():
        for line in workflow.text.splitlines():
            match = re.match(r"^\s*(?:-\s+)?uses:\s*([^@\s]+)@([0-9a-f]{40})\s+# (v\S+)$", line)
            if match:
                pins.setdefault(match[1], set()).add(f"{match[2]} {match[3]}")
    external = {ref.split("@")[0] for w in workflows.values() for ref in uses_of(w) if not ref.startswith(("./", "$/"))}

    assert set(pins) == external
    assert {action: len(found) for action, found in pins.items()} == dict.fromkeys(external, 1)


def test_secrets_reach_scripts_only_through_env_in_environment_jobs(workflows: dict[str, Workflow]) -> None:
    secret_users = {
        (workflow.name, job_id)
        for workflow in workflows.values()
        for job_id, job in workflow.jobs.items()
        if {name for text in strings_in(job) for name in SECRET_REFERENCE.findall(text)} - {"GITHUB_TOKEN"}
    }

    assert secret_users == {("deploy.yml", "deploy"), ("promote.yml", "promote"), ("rollback.yml", "rollback")}
    assert all(workflows[name].jobs[job_id].get("environment") for name, job_id in secret_users)


# --- the pipeline of issue 12 --------------------------------------------------------------------------------


def test_ci_runs_lint_tests_and_smoke_on_pull_requests_and_main(workflows: dict[str, Workflow]) -> None:
    ci = workflows["ci.yml"]
    commands = {
        job_id: [step.get("run") for step in job.get("steps", []) if "run" in step] for job_id, job in ci.jobs.items()
    }

    assert set(ci.triggers) == {"pull_request", "push"}
    assert ci.triggers["push"] == {"branches": ["main"]}
    assert commands["lint"] == ["make lint"]  # ruff check and format, mypy, lint-imports, dg check defs
    assert commands["test"][-1] == "make test"  # the whole suite, the service's tests included
    assert commands["smoke"] == ["make smoke"]  # writes the check table to GITHUB_STEP_SUMMARY itself
    assert "GITHUB_STEP_SUMMARY" not in str(ci.jobs["smoke"])  # the runner's summary file is left as it is


def test_main_builds_then_deploys_dev_then_promotes_to_prod(workflows: dict[str, Workflow]) -> None:
    jobs = workflows["ci.yml"].jobs

    assert sorted(jobs["images"]["needs"]) == ["lint", "smoke", "test"]
    assert jobs["images"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert (jobs["deploy-dev"]["needs"], jobs["promote-prod"]["needs"]) == (["images"], ["deploy-dev"])
    assert [jobs[job]["uses"] for job in ("images", "deploy-dev", "promote-prod")] == [
        "$/.github/workflows/images.yml",
        "$/.github/workflows/deploy.yml",
        "$/.github/workflows/promote.yml",
    ]
    assert jobs["deploy-dev"]["with"] == jobs["promote-prod"]["with"] == {"image-tag": "${{ github.sha }}"}
    for name in ("images.yml", "deploy.yml", "promote.yml"):
        assert "workflow_call" in workflows[name].triggers


def test_the_pull_request_run_is_cancelled_by_a_newer_push_but_main_runs_to_the_end(
    workflows: dict[str, Workflow],
) -> None:
    concurrency = workflows["ci.yml"].data["concurrency"]
    groups = {
        name: workflows[name].data["concurrency"]["group"] for name in ("deploy.yml", "promote.yml", "rollback.yml")
    }

    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert "github.sha" in concurrency["group"]
    assert groups == {
        "deploy.yml": "deploy-dev",
        "promote.yml": "deploy-prod",
        "rollback.yml": "deploy-${{ inputs.env }}",
    }
    assert all(workflows[name].data["concurrency"]["cancel-in-progress"] is False for name in groups)


def test_both_images_are_pushed_with_sha_and_latest_oci_labels_sbom_and_provenance(
    workflows: dict[str, Workflow],
) -> None:
    images = workflows["images.yml"]
    job = images.jobs["build-push"]
    build = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("docker/build-push-action@"))
    login = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("docker/login-action@"))
    meta = images.step("Tags and OCI labels")["with"]

    assert {
        (entry["image"], entry["file"], entry["context"], entry["prepare"])
        for entry in job["strategy"]["matrix"]["include"]
    } == {
        ("serving", "Dockerfile", ".", "service"),
        ("code-location", "docker/code-location.Dockerfile", "build/code-location", "code-location"),
    }
    assert 'bash docker/prepare_context.sh "$PREPARE"' in images.step("Build context (wheels from the locks)")["run"]
    assert (
        "ghcr.io/${GITHUB_REPOSITORY_OWNER,,}/rare-triage-${IMAGE}"
        in images.step("Image name (owner lowercased)")["run"]
    )
    assert meta["tags"].split() == ["type=sha,format=long,prefix=", "type=raw,value=latest"]
    assert login["with"] == {
        "registry": "ghcr.io",
        "username": "${{ github.actor }}",
        "password": "${{ secrets.GITHUB_TOKEN }}",
    }
    assert build["with"]["push"] is True and build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    assert build["with"]["labels"] == "${{ steps.meta.outputs.labels }}"  # org.opencontainers.image.source, .revision
    assert build["with"]["tags"] == "${{ steps.meta.outputs.tags }}"
    assert [arg.split("=")[0] for arg in build["with"]["build-args"].splitlines()] == [
        "IMAGE_SOURCE",
        "IMAGE_REVISION",
        "IMAGE_VERSION",
    ]
    assert "cache-from" not in build["with"]  # a published image is built from the checkout and the locks only


def test_deployments_run_in_their_github_environment(workflows: dict[str, Workflow]) -> None:
    rollback = workflows["rollback.yml"]
    inputs = rollback.triggers["workflow_dispatch"]["inputs"]

    assert workflows["deploy.yml"].jobs["deploy"]["environment"] == "dev"
    assert workflows["promote.yml"].jobs["promote"]["environment"] == "prod"
    assert set(workflows["promote.yml"].triggers) == {"workflow_dispatch", "workflow_call"}
    assert rollback.jobs["rollback"]["environment"] == "${{ inputs.env }}"
    assert set(rollback.triggers) == {"workflow_dispatch"}
    assert (inputs["env"]["type"], inputs["env"]["options"]) == ("choice", ["dev", "prod"])
    assert (inputs["version"]["required"], inputs["image-tag"]["required"]) == (True, False)


def test_the_rollout_steps_are_the_same_in_deploy_promote_and_rollback(workflows: dict[str, Workflow]) -> None:
    def rollout(name: str) -> list[tuple[object, object]]:
        return [(workflows[name].step(step).get("env"), workflows[name].step(step)["run"]) for step in ROLLOUT_STEPS]

    assert rollout("deploy.yml") == rollout("promote.yml") == rollout("rollback.yml")
    assert all(workflows["rollback.yml"].step(step)["if"] == "env.IMAGE_TAG != ''" for step in ROLLOUT_STEPS[:-1])
    assert workflows["deploy.yml"].step("Remove the kubeconfig")["if"] == "always()"


def test_the_rollout_targets_what_deploy_holds(workflows: dict[str, Workflow]) -> None:
    helm = workflows["deploy.yml"].step("Roll out the Dagster platform")["run"]
    chart_version = re.search(r"--version (\S+)", helm)
    dagster_pin = re.search(
        r"^dagster==(\S+)$", (REPO / "requirements/base.lock").read_text(encoding="utf-8"), re.MULTILINE
    )

    for env in ("dev", "prod"):
        overlay = yaml.safe_load(
            (REPO / f"deploy/k8s/serving/overlays/{env}/kustomization.yaml").read_text(encoding="utf-8")
        )
        values = yaml.safe_load((REPO / f"deploy/helm/dagster/values-{env}.yaml").read_text(encoding="utf-8"))
        assert overlay["namespace"] == f"rare-triage-{env}"  # the Helm release goes there too
        assert [image["name"] for image in overlay["images"]] == ["rare-triage-serving"]  # what `edit set image` sets
        assert set(values["dagster-user-deployments"]["deployments"][0]["image"]) >= {"repository", "tag"}
    assert chart_version and dagster_pin and chart_version[1] == dagster_pin[1]  # the chart of the platform's Dagster
    for name in ("Dockerfile", "docker/code-location.Dockerfile", "docker/prepare_context.sh"):
        assert (REPO / name).is_file(), name


def test_the_model_steps_call_the_cli_with_flags_it_accepts(workflows: dict[str, Workflow]) -> None:
    values = {"$TOLERANCE": "0.02", "$DEPLOY_ENV": "prod", "$MODEL_VERSION": "v3-0123456789ab"}

    def command(name: str, step: str) -> list[str]:
        line = workflows[name].step(step)["run"].strip().splitlines()[-1]
        argv = [values.get(word, word) for word in shlex.split(line)]
        assert argv[:3] == [".venv/bin/python", "-m", "rare_triage"], line
        return argv[3:]

    promote = build_parser().parse_args(command("promote.yml", "Model promotion gate (dev -> prod)"))
    rollback = build_parser().parse_args(command("rollback.yml", "Model rollback"))

    assert (promote.command, promote.tolerance) == ("promote", 0.02)
    assert (rollback.command, rollback.env, rollback.version) == ("rollback", "prod", "v3-0123456789ab")


def test_the_model_steps_set_variables_the_project_reads(workflows: dict[str, Workflow]) -> None:
    source = "\n".join(path.read_text(encoding="utf-8") for path in (REPO / "rare_triage").rglob("*.py"))
    gate = workflows["promote.yml"].step("Model promotion gate (dev -> prod)")["env"]
    back = workflows["rollback.yml"].step("Model rollback")["env"]

    assert (
        gate
        == back
        == {
            "RARE_TRIAGE_BUCKET_URI": "${{ vars.RARE_TRIAGE_BUCKET_URI }}",
            "RARE_TRIAGE_MLFLOW_TRACKING_URI": "${{ vars.RARE_TRIAGE_MLFLOW_TRACKING_URI }}",
            "RARE_TRIAGE_S3_ENDPOINT_URL": "${{ vars.RARE_TRIAGE_S3_ENDPOINT_URL }}",
            "AWS_DEFAULT_REGION": "${{ vars.AWS_DEFAULT_REGION }}",
            "AWS_ACCESS_KEY_ID": "${{ secrets.AWS_ACCESS_KEY_ID }}",
            "AWS_SECRET_ACCESS_KEY": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
        }
    )
    assert [name for name in gate if f'"{name}"' not in source] == []  # each one is read by rare_triage


# --- the scripts behave under bash -----------------------------------------------------------------------------


MAIN = "refs/heads/main"


@pytest.mark.parametrize(
    ("inputs", "accepted"),
    [
        (("prod", "v3-0123456789ab", "", MAIN), True),
        (("dev", "v12-abcdef012345", SHA, MAIN), True),
        (("prod", "v3-0123456789ab", "", "refs/heads/feature"), False),
        (("staging", "v3-0123456789ab", "", MAIN), False),
        (("prod", "v3-0123456789AB", "", MAIN), False),
        (("prod", "v3-0123456789ab; touch pwned", "", MAIN), False),
        (("prod", "$(touch pwned)", "", MAIN), False),
        (("prod", "v3-0123456789ab", "latest", MAIN), False),
        (("prod", "v3-0123456789ab", SHA[:12], MAIN), False),
    ],
)
def test_rollback_validates_its_inputs(
    workflows: dict[str, Workflow], tmp_path: Path, inputs: tuple[str, str, str, str], accepted: bool
) -> None:
    script = workflows["rollback.yml"].step("Inputs valid")["run"]
    environ = dict(zip(("DEPLOY_ENV", "MODEL_VERSION", "IMAGE_TAG", "GITHUB_REF"), inputs, strict=True))

    result = bash(script, environ, tmp_path)

    assert (result.returncode == 0) == accepted, result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # an input is data, never a command


@pytest.mark.parametrize(
    "version",
    ["v3-0123456789ab", "v0-000000000000", "v3-0123456789a", "v3-0123456789abc", "3-0123456789ab", "vx-0123456789ab"],
)
def test_rollback_accepts_exactly_the_versions_the_project_publishes(
    workflows: dict[str, Workflow], tmp_path: Path, version: str
) -> None:
    script = workflows["rollback.yml"].step("Inputs valid")["run"]
    environ = {"DEPLOY_ENV": "dev", "MODEL_VERSION": version, "IMAGE_TAG": "", "GITHUB_REF": MAIN}

    assert (bash(script, environ, tmp_path).returncode == 0) == bool(VERSION_PATTERN.match(version))


@pytest.mark.parametrize(
    ("tolerance", "image_tag", "accepted"),
    [
        ("0.01", SHA, True),
        ("0", SHA, True),
        ("0.000001", SHA, True),
        ("1", SHA, False),
        ("-0.01", SHA, False),
        ("0.01 --help", SHA, False),
        ("", SHA, False),
        ("0.01", "", False),
        ("0.01", "latest", False),
    ],
)
def test_promote_validates_its_inputs(
    workflows: dict[str, Workflow], tmp_path: Path, tolerance: str, image_tag: str, accepted: bool
) -> None:
    script = workflows["promote.yml"].step("Inputs valid")["run"]
    environ = {"TOLERANCE": tolerance, "IMAGE_TAG": image_tag, "GITHUB_REF": MAIN}

    assert (bash(script, environ, tmp_path).returncode == 0) == accepted


def test_the_kubeconfig_is_written_private_and_never_printed(workflows: dict[str, Workflow], tmp_path: Path) -> None:
    secret = "apiVersion: v1\nusers:\n- name: ci\n  user:\n    token: planted-secret-token\n"
    github_env = tmp_path / "github_env"
    environ = {
        "KUBECONFIG_DATA": secret,
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_ENV": str(github_env),
        "DEPLOY_ENV": "dev",
    }

    result = bash(workflows["deploy.yml"].step("Kubeconfig")["run"], environ, tmp_path)
    written = tmp_path / "kubeconfig"

    assert result.returncode == 0, result.stderr
    assert "planted-secret-token" not in result.stdout + result.stderr
    assert written.read_text(encoding="utf-8") == secret
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert github_env.read_text(encoding="utf-8") == f"KUBECONFIG={written}\n"
    removed = bash(workflows["deploy.yml"].step("Remove the kubeconfig")["run"], environ, tmp_path)
    assert removed.returncode == 0 and not written.exists()


def test_a_missing_kubeconfig_secret_stops_the_rollout(workflows: dict[str, Workflow], tmp_path: Path) -> None:
    environ = {
        "KUBECONFIG_DATA": "",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_ENV": str(tmp_path / "e"),
        "DEPLOY_ENV": "prod",
    }

    result = bash(workflows["promote.yml"].step("Kubeconfig")["run"], environ, tmp_path)

    assert result.returncode == 1
    assert "secret KUBECONFIG of environment prod is not set" in result.stdout
    assert list(tmp_path.iterdir()) == []


STUB = """#!/usr/bin/env bash
printf '%s\\t%s\\n' "$PWD" "${0##*/} $*" >> "$STUB_LOG"
case "${0##*/} $1 $2" in
  "kubectl get -k") printf '%b' "$STUB_DEPLOYMENTS" ;;
  "helm upgrade --help") printf '%s\\n' "$STUB_HELM_HELP" ;;
esac
[[ -z "$STUB_FAIL" || "${0##*/} $1" != "$STUB_FAIL" ]] || exit 1
"""


def rollout(
    workflow: Workflow, step: str, tmp_path: Path, **overrides: str
) -> tuple[subprocess.CompletedProcess[str], list[tuple[str, str]]]:
    """Run a rollout step with kubectl, kustomize and helm replaced by stubs that record their calls (working
    directory relative to the checkout, command line)."""
    bin_dir, checkout, log = tmp_path / "bin", tmp_path / "checkout", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("kubectl", "kustomize", "helm"):
        (bin_dir / tool).write_text(STUB, encoding="utf-8")
        (bin_dir / tool).chmod(0o755)
    (checkout / "deploy/k8s/serving/overlays/prod").mkdir(parents=True)
    environ = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "STUB_LOG": str(log),
        "STUB_DEPLOYMENTS": "Service rare-triage-prod rare-triage-serving\\n"
        "Deployment rare-triage-prod rare-triage-serving\\n",
        "STUB_HELM_HELP": "--atomic  if set, upgrade process rolls back changes made in case of failed upgrade",
        "STUB_FAIL": "",
        "DEPLOY_ENV": "prod",
        "IMAGE_TAG": SHA,
        "GITHUB_REPOSITORY_OWNER": "Rare-Org",
        "DAGSTER_HELM_REPO": "address-of-the-chart-repository",
        **overrides,
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", workflow.step(step)["run"]],
        capture_output=True,
        text=True,
        cwd=checkout,
        env=environ,
        timeout=30,
        check=False,
    )
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    calls = [
        (str(Path(cwd).relative_to(checkout)), command) for cwd, command in (line.split("\t", 1) for line in lines)
    ]
    return result, calls


def test_the_service_rollout_sets_the_commit_s_image_applies_the_overlay_and_waits(
    workflows: dict[str, Workflow], tmp_path: Path
) -> None:
    result, calls = rollout(workflows["promote.yml"], "Roll out the service", tmp_path)
    overlay = "deploy/k8s/serving/overlays/prod"

    assert result.returncode == 0, result.stderr
    assert calls == [
        (overlay, f"kustomize edit set image rare-triage-serving=ghcr.io/rare-org/rare-triage-serving:{SHA}"),
        (".", f"kubectl apply -k {overlay}"),
        (
            ".",
            f"kubectl get -k {overlay} --no-headers"
            " -o custom-columns=KIND:.kind,NAMESPACE:.metadata.namespace,NAME:.metadata.name",
        ),
        (".", "kubectl rollout status deployment/rare-triage-serving --namespace rare-triage-prod --timeout=10m"),
    ]


def test_a_service_rollout_that_does_not_become_ready_fails_the_step(
    workflows: dict[str, Workflow], tmp_path: Path
) -> None:
    result, calls = rollout(workflows["deploy.yml"], "Roll out the service", tmp_path, STUB_FAIL="kubectl rollout")

    assert result.returncode != 0
    assert calls[-1][1].startswith("kubectl rollout status deployment/rare-triage-serving")


def test_an_overlay_without_a_deployment_fails_the_service_rollout(
    workflows: dict[str, Workflow], tmp_path: Path
) -> None:
    result, calls = rollout(
        workflows["rollback.yml"], "Roll out the service", tmp_path, STUB_DEPLOYMENTS="Service rare-triage-prod x\\n"
    )

    assert result.returncode == 1
    assert "no Deployment in deploy/k8s/serving/overlays/prod" in result.stdout
    assert not any(command.startswith("kubectl rollout") for _, command in calls)


@pytest.mark.parametrize(
    ("helm_help", "rollback_flag"),
    [("--atomic  roll back on failure", "--atomic"), ("--rollback-on-failure  roll back", "--rollback-on-failure")],
)
def test_the_platform_rollout_upgrades_the_chart_with_the_commit_s_code_location(
    workflows: dict[str, Workflow], tmp_path: Path, helm_help: str, rollback_flag: str
) -> None:
    result, calls = rollout(
        workflows["rollback.yml"], "Roll out the Dagster platform", tmp_path, STUB_HELM_HELP=helm_help
    )
    deployment = "dagster-user-deployments.deployments[0].image"

    assert result.returncode == 0, result.stderr
    assert calls[-1] == (
        ".",
        "helm upgrade --install dagster dagster --repo address-of-the-chart-repository --version 1.13.27"
        " --namespace rare-triage-prod"
        " --values deploy/helm/dagster/values.yaml --values deploy/helm/dagster/values-prod.yaml"
        f" --set {deployment}.repository=ghcr.io/rare-org/rare-triage-code-location --set {deployment}.tag={SHA}"
        f" --wait --timeout 15m {rollback_flag}",
    )


@pytest.mark.parametrize("name", ["deploy.yml", "promote.yml", "rollback.yml"])
def test_every_rollout_sets_the_duckdb_writer_pool_after_the_platform(
    workflows: dict[str, Workflow], tmp_path: Path, name: str
) -> None:
    steps = [step.get("name") for _, step in workflows[name].steps()]
    assert steps.index("Set the DuckDB writer pool") == steps.index("Roll out the Dagster platform") + 1
    result, calls = rollout(workflows[name], "Set the DuckDB writer pool", tmp_path)

    assert result.returncode == 0, result.stderr
    assert calls == [
        (
            ".",
            "kubectl exec --namespace rare-triage-prod deployment/dagster-daemon --"
            f" dagster instance concurrency set {c.DUCKDB_POOL} 1",
        )
    ]


def test_the_platform_rollout_needs_the_chart_repository_variable(
    workflows: dict[str, Workflow], tmp_path: Path
) -> None:
    result, calls = rollout(workflows["deploy.yml"], "Roll out the Dagster platform", tmp_path, DAGSTER_HELM_REPO="")

    assert result.returncode == 1
    assert "repository variable DAGSTER_HELM_REPO is not set" in result.stdout
    assert calls == []


# --- planted defects are refused ---------------------------------------------------------------------------------


def test_an_unpinned_action_is_refused(tmp_path: Path) -> None:
    pinned = "docker/login-action@4907a6ddec9925e35a0a9e82d7399ccc52663121 # v4.1.0"
    defective = planted(tmp_path, "images.yml", pinned, "docker/login-action@v4")

    problems = pin_problems(load(defective))

    assert "unpinned-uses" in zizmor(defective, tmp_path).kinds
    assert len(problems) == 2
    assert problems[0] == "images.yml: `uses: docker/login-action@v4` is not pinned to a full commit sha"
    assert problems[1].endswith(": `uses: docker/login-action@v4` has no `# vX.Y.Z` comment")


def test_a_pull_request_title_pasted_into_a_script_is_refused(tmp_path: Path) -> None:
    injected = (
        '        run: make lint\n      - name: Title\n        run: echo "${{ github.event.pull_request.title }}"\n'
    )
    defective = planted(tmp_path, "ci.yml", "        run: make lint\n", injected)

    assert "template-injection" in zizmor(defective, tmp_path).kinds
    assert "expression" in actionlint([defective], tmp_path).kinds
    assert run_problems(load(defective)) == [
        "ci.yml: job lint, step 'Title': an expression inside run: (pass it through env:)"
    ]


def test_a_secret_pasted_into_a_script_is_refused(tmp_path: Path) -> None:
    defective = planted(
        tmp_path, "deploy.yml", "printf '%s' \"$KUBECONFIG_DATA\"", "printf '%s' '${{ secrets.KUBECONFIG }}'"
    )

    assert run_problems(load(defective)) == [
        "deploy.yml: job deploy, step 'Kubeconfig': an expression inside run: (pass it through env:)"
    ]


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    defective = planted(tmp_path, "rollback.yml", "    steps:\n", "    stepz:\n")

    assert check_jsonschema([defective]).returncode == 1
    assert "syntax-check" in actionlint([defective], tmp_path).kinds
    assert zizmor(defective, tmp_path).returncode != 0


def test_a_yaml_syntax_error_is_refused(tmp_path: Path) -> None:
    defective = planted(tmp_path, "rollback.yml", "    runs-on: ubuntu-latest\n", "   runs-on: ubuntu-latest\n")

    assert check_jsonschema([defective]).returncode == 1
    assert "syntax-check" in actionlint([defective], tmp_path).kinds
    assert zizmor(defective, tmp_path).returncode != 0


def test_a_checkout_that_keeps_the_token_is_refused(tmp_path: Path) -> None:
    defective = planted(tmp_path, "deploy.yml", "        with:\n          persist-credentials: false\n", "")

    assert "artipacked" in zizmor(defective, tmp_path).kinds
    assert job_problems(load(defective)) == ["deploy.yml: job deploy: checkout without persist-credentials: false"]


def test_a_write_permission_outside_the_image_job_is_refused(tmp_path: Path) -> None:
    defective = planted(
        tmp_path,
        "promote.yml",
        "      contents: read # checkout\n",
        "      contents: read # checkout\n      id-token: write\n",
    )

    assert permission_problems(load(defective)) == ["promote.yml: job promote may not hold id-token: write"]


def test_broad_default_permissions_are_refused(tmp_path: Path) -> None:
    defective = planted(tmp_path, "rollback.yml", "permissions: {}\n", "permissions: write-all\n")

    assert "excessive-permissions" in zizmor(defective, tmp_path).kinds
    assert permission_problems(load(defective)) == ["rollback.yml: top-level permissions must be {}"]


def test_a_workflow_without_concurrency_or_with_a_cache_off_the_locks_is_refused(tmp_path: Path) -> None:
    defective = planted(
        tmp_path, "promote.yml", "concurrency:\n  group: deploy-prod\n  cancel-in-progress: false\n", ""
    )
    workflow = load(defective)
    cache = next(step for _, step in workflow.steps() if str(step.get("uses", "")).startswith("actions/cache@"))
    cache["with"]["key"] = "deps-${{ hashFiles('pyproject.toml') }}"

    assert concurrency_problems(workflow) == ["promote.yml: no top-level concurrency group"]
    assert cache_problems(workflow) == ["promote.yml: job promote: cache key without hashFiles('requirements/*.lock')"]


def test_a_cluster_job_outside_an_environment_is_refused(tmp_path: Path) -> None:
    defective = planted(tmp_path, "deploy.yml", "    environment: dev\n", "")

    assert environment_problems(load(defective)) == ["deploy.yml: job deploy uses ['KUBECONFIG'] without environment:"]


def test_a_chart_registry_address_is_refused(tmp_path: Path) -> None:
    defective = planted(
        tmp_path, "deploy.yml", '--repo "$DAGSTER_HELM_REPO"', "--repo https://charts.example.org/dagster"
    )

    assert registry_problems(defective) == [
        "deploy.yml: holds an address (https://...)",
        "deploy.yml: names the host charts.example.org",
    ]
