"""A tour of what a data person sees after `make run`, in real headless Chromium: screenshots of the Dagster UI
(`make ui`) and of the MLflow UI, and one line per page saying what was found there.

    make run                    # once: the demo's runs, backfill, checks, model
    make ui                     # terminal 1: the Dagster UI on 127.0.0.1:3000
    make mlflow-ui              # terminal 2: the MLflow UI on 127.0.0.1:5000
    make ui-tour                # screenshots into .rare_triage/reports/ui_tour/

Each page is opened, the script waits (bounded) for the text that proves the point, and fails naming the page when
it does not show. What to look for comes from the Dagster GraphQL API and the MLflow REST API of the same servers:
the runs of each job, the demo's backfill, a partitioned check, the logged training run and its child runs.
Needs selenium (the serving environment has it), /usr/bin/chromium and /usr/bin/chromedriver.
"""

import argparse
import json
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

LOCATION = "rare_triage"
REPOSITORY = "__repository__"
CHECKED_ASSET = "encounter_features"
PARTITIONED_CHECK = "features_schema"
COLUMN_SHOWN = "n_systems_involved"
MLFLOW_EXPERIMENT = "rare-triage"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1200",
)
TIMEOUT_S = 60.0


class TourError(Exception):
    """A page did not show what it should: the message names the page and what was missing."""


def post_json(url: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return json.load(response)


def graphql(dagster: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = post_json(f"{dagster}/graphql", {"query": query, "variables": variables or {}})
    if answer.get("errors"):
        raise TourError(f"Dagster GraphQL: {answer['errors']}")
    return answer["data"]


def job_runs(dagster: str, job: str) -> list[dict[str, Any]]:
    query = """query ($s: PipelineSelector!) { pipelineOrError(params: $s) {
        ... on Pipeline { runs(limit: 100) { runId status } } ... on PipelineNotFoundError { message } } }"""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "pipelineName": job}
    found = graphql(dagster, query, {"s": selector})["pipelineOrError"]
    if "runs" not in found:
        raise TourError(f"job {job}: {found}")
    return found["runs"]


def latest_backfill(dagster: str) -> dict[str, Any]:
    query = """{ partitionBackfillsOrError(limit: 1) { ... on PartitionBackfills {
        results { id status numPartitions title } } } }"""
    results = graphql(dagster, query)["partitionBackfillsOrError"].get("results") or []
    if not results:
        raise TourError("no backfill recorded: run `make run` first")
    return results[0]


def logged_model(mlflow: str, experiment: str, run_id: str) -> str:
    """The id of the model logged by run `run_id`."""
    models = post_json(
        f"{mlflow}/api/2.0/mlflow/logged-models/search",
        {"experiment_ids": [experiment], "filter": f"source_run_id = '{run_id}'"},
    ).get("models", [])
    if not models:
        raise TourError(f"MLflow run {run_id}: no logged model")
    return str(models[0]["info"]["model_id"])


def mlflow_training_run(mlflow: str) -> tuple[str, str, list[str]]:
    """The experiment id, the latest parent training run and its candidate child runs' names."""
    experiment = json.load(
        urllib.request.urlopen(
            f"{mlflow}/api/2.0/mlflow/experiments/get-by-name?experiment_name={MLFLOW_EXPERIMENT}", timeout=TIMEOUT_S
        )
    )["experiment"]["experiment_id"]
    search = f"{mlflow}/api/2.0/mlflow/runs/search"
    candidate = "tags.run_kind = 'cv_candidate'"
    latest = post_json(
        search,
        {
            "experiment_ids": [experiment],
            "filter": candidate,
            "order_by": ["attributes.start_time DESC"],
            "max_results": 1,
        },
    ).get("runs", [])
    if not latest:
        raise TourError(f"MLflow: no candidate run of triage_model in experiment {MLFLOW_EXPERIMENT}")
    parent = next(t["value"] for t in latest[0]["data"]["tags"] if t["key"] == "mlflow.parentRunId")
    children = post_json(
        search,
        {
            "experiment_ids": [experiment],
            "filter": f"tags.mlflow.parentRunId = '{parent}' and {candidate}",
            "max_results": 100,
        },
    ).get("runs", [])
    return experiment, parent, sorted(child["info"]["run_name"] for child in children)


def backfill_partitions(dagster: str, backfill_id: str) -> list[str]:
    query = """query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
        ... on PartitionBackfill { partitionNames } } }"""
    return graphql(dagster, query, {"id": backfill_id})["partitionBackfillOrError"]["partitionNames"]


@dataclass
class Page:
    name: str
    url: str
    expected: list[str]  # every text that must be on the page
    found: str  # what the page shows, in words, for the report
    click: str | None = None  # XPath of what to click first (once the page shows it): a tab, an expander


def tab(text: str) -> str:
    """XPath of the tab (or button) reading `text`."""
    return f"//*[self::a or self::button or self::span or self::div][normalize-space(text())='{text}']"


def open_browser() -> WebDriver:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(TIMEOUT_S)
    return driver


def shows(expected: list[str]) -> Callable[[WebDriver], bool]:
    def all_there(driver: WebDriver) -> bool:
        text = driver.find_element(By.TAG_NAME, "body").text
        return all(item in text for item in expected)

    return all_there


def visit(driver: WebDriver, page: Page, out: Path) -> Path:
    driver.get(page.url)
    try:
        if page.click:
            target = page.click
            WebDriverWait(driver, TIMEOUT_S).until(lambda d: d.find_elements(By.XPATH, target))
            driver.find_elements(By.XPATH, target)[0].click()
        WebDriverWait(driver, TIMEOUT_S).until(shows(page.expected))
    except TimeoutException:
        text = driver.find_element(By.TAG_NAME, "body").text
        missing = [item for item in page.expected if item not in text]
        driver.save_screenshot(str(out / f"{page.name}.failed.png"))
        raise TourError(f"{page.name} ({page.url}): not shown after {TIMEOUT_S:g} s: {missing}") from None
    shot = out / f"{page.name}.png"
    driver.save_screenshot(str(shot))
    return shot


def dagster_pages(dagster: str) -> list[Page]:
    ingest, training = job_runs(dagster, "daily_ingest_job"), job_runs(dagster, "train_and_publish_job")
    if not ingest or not training:
        raise TourError(f"job pages: {len(ingest)} ingest runs, {len(training)} training runs; run `make run` first")
    backfill = latest_backfill(dagster)
    days = sorted(backfill_partitions(dagster, backfill["id"]))
    jobs = f"{dagster}/locations/{LOCATION}/jobs"
    return [
        Page(
            "job_daily_ingest_job",
            f"{jobs}/daily_ingest_job/runs",
            [ingest[0]["runId"][:8]],
            f"daily_ingest_job: {len(ingest)} runs listed on its job page",
        ),
        Page(
            "job_train_and_publish_job",
            f"{jobs}/train_and_publish_job/runs",
            [training[0]["runId"][:8]],
            f"train_and_publish_job: {len(training)} runs listed on its job page",
        ),
        Page(
            "timeline",
            f"{dagster}/overview/activity/timeline",
            ["daily_ingest_job", "train_and_publish_job"],
            "Overview timeline: the runs of both jobs in the code location's row",
        ),
        Page(
            "backfill",
            f"{dagster}/runs/b/{backfill['id']}",
            [backfill["id"]],
            f"backfill {backfill['id']} ({backfill['title']}): {backfill['numPartitions']} partitions, "
            f"{backfill['status']}",
        ),
        Page(
            "check_history",
            f"{dagster}/assets/{CHECKED_ASSET}?view=checks",
            [PARTITIONED_CHECK, *days[-2:]],
            f"{CHECKED_ASSET}: {PARTITIONED_CHECK}'s execution history, one row per partition ({days[-2]}, "
            f"{days[-1]}, ...)",
            click=tab("Execution history"),
        ),
        Page(
            "column_schema",
            f"{dagster}/assets/{CHECKED_ASSET}",
            ["Columns", COLUMN_SHOWN],
            f"{CHECKED_ASSET}: the column schema with types and descriptions",
        ),
    ]


def mlflow_pages(mlflow: str) -> list[Page]:
    experiment, parent, candidates = mlflow_training_run(mlflow)
    if not candidates:
        raise TourError(f"MLflow run {parent}: no child runs")
    model = logged_model(mlflow, experiment, parent)
    return [
        Page(
            "mlflow_runs",
            f"{mlflow}/#/experiments/{experiment}/runs",
            ["triage_model", *candidates],
            f"experiment {MLFLOW_EXPERIMENT}: the training run expanded to its {len(candidates)} candidate child runs",
            # the expander of the training run's row
            click="//span[normalize-space(text())='triage_model']/ancestor::*[contains(@class,'ag-cell-value')][1]"
            "//button",
        ),
        Page(
            "mlflow_training_run",
            f"{mlflow}/#/experiments/{experiment}/runs/{parent}",
            ["validation.orphan_recall", "encounter_features train", "encounter_features validation"],
            f"run {parent}: parameters, 14 headline metrics, the train and validation windows as datasets",
        ),
        Page(
            "mlflow_model_signature",
            f"{mlflow}/#/experiments/{experiment}/models/{model}/artifacts",
            ["signature:", "inputs:"],
            f"logged model {model} of run {parent}: its MLmodel with the signature (and the input example beside it)",
            click=tab("MLmodel"),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dagster", default="http://127.0.0.1:3000", help="the Dagster UI of `make ui`")
    parser.add_argument("--mlflow", default="http://127.0.0.1:5000", help="the MLflow UI")
    parser.add_argument("--out", type=Path, default=Path(".rare_triage/reports/ui_tour"), help="screenshot folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        pages = dagster_pages(args.dagster.rstrip("/")) + mlflow_pages(args.mlflow.rstrip("/"))
        driver = open_browser()
        try:
            for page in pages:
                shot = visit(driver, page, args.out)
                print(f"{page.name}: {page.found} -> {shot}")
        finally:
            driver.quit()
    except (TourError, OSError) as exc:
        print(f"ui tour: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
