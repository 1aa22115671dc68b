"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real
server: every page opens with the server's data, charts hold points, live figures arrive
by server-sent events, and a weight change and an update made in the page change the
server's state. Screenshots go to test-artifacts/screenshots (CI keeps them)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.client import Client
from tests.conftest import RunningServer
from tests.e2e.helpers import Load, digit_rows
from tests.e2e.test_pipeline_executions import DEFINITION, data  # noqa: F401

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def chromium() -> str:
    found = os.environ.get("SLUICE_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise RuntimeError("the dashboard tests need Chromium: apt-get install chromium")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def problems() -> list[str]:
    """Script errors and console errors of the page (a test removes those it expects)."""
    return []


@pytest.fixture
def page(browser: Any, problems: list[str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    yield opened
    context.close()
    assert problems == [], problems  # no script error, no refused request, no CSP breach


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_overview_and_endpoint_pages_show_the_server_and_act_on_it(
    server: RunningServer, artifacts: dict[str, Path], page: Any
) -> None:
    with Client(server.url) as client:
        client.create_model("logreg", str(artifacts["logreg"]))
        client.create_model("tree", str(artifacts["tree"]))
        client.create_endpoint_config(
            "ab", [{"name": "A", "model": "logreg"}, {"name": "B", "model": "tree"}]
        )
        client.create_endpoint_config(
            "ab-2", [{"name": "A", "model": "tree"}, {"name": "B", "model": "tree"}]
        )
        client.create_endpoint("digits", "ab", wait=True, timeout=60)
        client.put_alarm(
            "digits-5xx", metric="Invocation5XXErrors", statistic="Sum", threshold=1,
            period_s=2, endpoint="digits",
        )  # fmt: skip
    with Load(server.url, "digits", digit_rows(30), concurrency=2, pause_s=0.02) as load:
        deadline = time.monotonic() + 40
        while len(overview(server)["endpoints"][0]["spark"]) < 2:  # two 10 s samples
            assert time.monotonic() < deadline, "no samples in the history"
            time.sleep(1)

        page.goto(f"{server.url}/")
        row = page.locator("#endpoints tr[data-endpoint=digits]")
        row.wait_for()
        assert "InService" in row.inner_text()
        assert int(row.locator("svg.spark").get_attribute("data-points")) >= 2
        # Live figures arrive every 2 s while the load runs.
        page.wait_for_function(
            "() => Number(document.querySelector('tr[data-endpoint=digits] .rps').textContent) > 5",
            timeout=10_000,
        )
        shot(page, "overview")

        row.locator("a").click()
        page.locator("#charts [data-chart=invocations]").wait_for()
        for chart in ("invocations", "p99_ms", "cpu_percent", "memory_percent", "instances"):
            points = page.locator(f"#charts [data-chart={chart}]").get_attribute("data-points")
            assert int(points) >= 2, chart  # both variants, at least one period each
        assert page.locator("#charts canvas").count() == 8
        assert (
            "Invocation5XXErrors Sum"
            in page.locator("#alarms tr[data-alarm=digits-5xx]").inner_text()
        )
        page.wait_for_function(
            "() => Number(document.querySelector('#variants tr[data-variant=A] .rps')"
            ".textContent) > 0",
            timeout=10_000,
        )
        shot(page, "endpoint")

        # A weight change made in the page changes the server's split.
        page.fill("#weights-form input[name=A]", "3")
        page.fill("#weights-form input[name=B]", "1")
        page.click("#weights-form button")
        page.wait_for_function(
            "() => document.querySelector('#variants tr[data-variant=A] .weight')"
            ".textContent === '3.00'"
        )
        weights = {v["name"]: v["current_weight"] for v in endpoint(server)["variants"]}
        assert weights == {"A": 3.0, "B": 1.0}

        # So does an update started there.
        page.select_option("#update-form select[name=config]", "ab-2")
        page.select_option("#update-form select[name=type]", "ALL_AT_ONCE")
        page.fill("#update-form input[name=wait]", "0")
        page.click("#update-form button")
        page.locator("#deployments li[data-deployment]").first.wait_for()
        deadline = time.monotonic() + 60
        while endpoint(server)["config"] != "ab-2":
            assert time.monotonic() < deadline, "the update started in the page never finished"
            time.sleep(0.5)
    assert not load.failed()
    page.reload()
    page.locator("#deployments li.Completed").first.wait_for()
    shot(page, "endpoint-after-update")


def test_the_api_page_works_offline(server: RunningServer, page: Any) -> None:
    blocked: list[str] = []
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(server.url)
            else (blocked.append(route.request.url), route.abort())
        ),
    )
    page.goto(f"{server.url}/api/v1/docs")  # redirects to the dashboard's API page
    page.locator("#docs .opblock").first.wait_for(timeout=20_000)
    assert page.locator("#docs .opblock").count() > 50
    assert blocked == []  # nothing outside the server was asked for
    shot(page, "api")


def test_a_server_with_authentication_asks_for_a_token(
    tmp_path: Path, page: Any, problems: list[str]
) -> None:
    server = RunningServer(tmp_path / "home", auth=True)
    try:
        page.goto(f"{server.url}/ui/")
        page.locator("#login[open]").wait_for()
        assert server.token is not None
        page.fill("#login-token", server.token)
        page.click("#login-form button")
        page.locator("main h1").wait_for()
        assert page.locator("main h1").inner_text() == "Endpoints"
        # The shell is open; the data is not.
        assert httpx.get(f"{server.url}/ui/static/app.js").status_code == 200
        assert httpx.get(f"{server.url}/api/v1/dashboard/overview").status_code == 401
        page.goto("about:blank")  # (the live stream ends before the server does)
        # The first call, before signing in, was refused: that is what asked for the token.
        problems[:] = [p for p in problems if "status of 401" not in p]
    finally:
        server.stop()


def overview(server: RunningServer) -> dict[str, Any]:
    return json.loads(httpx.get(f"{server.url}/api/v1/dashboard/overview").text)


def endpoint(server: RunningServer) -> dict[str, Any]:
    return json.loads(httpx.get(f"{server.url}/api/v1/endpoints/digits").text)


def test_registry_experiment_monitoring_and_jobs_pages(
    server: RunningServer, artifacts: dict[str, Path], page: Any, tmp_path: Path
) -> None:
    from tests.e2e.test_monitoring import _baselines

    data_baseline, _ = _baselines(tmp_path)
    with Client(server.url) as client:
        client.create_package_group("digits", "the digits classifier", requires_approval=True)
        client.register_package("digits", str(artifacts["logreg"]), metrics={"accuracy": 0.96})
        client.register_package("digits", str(artifacts["tree"]), metrics={"accuracy": 0.83})
        client.create_model("logreg", str(artifacts["logreg"]))
        client.create_model("tree", str(artifacts["tree"]))
        client.create_endpoint_config(
            "cfg", [{"name": "A", "model": "logreg"}], data_capture={"sampling_percentage": 100}
        )
        client.create_endpoint("scored", "cfg", wait=True, timeout=60)
        with Load(server.url, "scored", digit_rows(200), concurrency=2) as load:
            time.sleep(2)
        assert not load.failed()
        client.create_monitoring_schedule(
            "pixels", "rate(1 hour)", {"endpoint": "scored", "baseline": str(data_baseline)}
        )
        ran = client.wait_for_monitoring_execution(
            client.run_monitoring_schedule("pixels").id, timeout=120
        )
        assert ran.status in ("Completed", "CompletedWithViolations"), ran
        client.create_experiment("tree-shadow", "scored", "A", [{"name": "S", "model": "tree"}])
        deadline = time.monotonic() + 60
        while client.get_experiment("tree-shadow").status != "Running":
            assert time.monotonic() < deadline, "the experiment never started"
            time.sleep(0.5)
        with Load(server.url, "scored", digit_rows(100), concurrency=2) as load:
            time.sleep(2)
        inputs = server.home / "s3" / "batch" / "in"
        inputs.mkdir(parents=True)
        (inputs / "rows.jsonl").write_bytes(b"\n".join(digit_rows(50)) + b"\n")
        client.create_transform(
            "score-all", "logreg", "s3://batch/in/", "s3://batch/out/",
            content_type="application/json", split_type="Line",
        )  # fmt: skip
        client.wait_for_transform("score-all", timeout=60)

    # Registry: versions side by side with their metrics; an approval made in the page.
    page.goto(f"{server.url}/ui/#/registry")
    group = page.locator("section[data-group=digits]")
    group.wait_for()
    assert "accuracy" in group.locator("thead").inner_text()
    assert group.locator("tr[data-version]").count() == 2
    group.locator("tr[data-version='1'] input[name=comment]").fill("best so far")
    group.locator("tr[data-version='1'] button.approve").click()
    page.locator("section[data-group=digits] tr[data-version='1'] .badge.Approved").wait_for()
    approved = json.loads(
        httpx.get(f"{server.url}/api/v1/model-package-groups/digits/packages/1").text
    )
    assert (approved["approval"], approved["approval_reason"]) == ("Approved", "best so far")
    shot(page, "registry")

    # Monitoring: the schedule, its execution and the drift of each feature.
    page.goto(f"{server.url}/ui/#/monitoring")
    schedule = page.locator("section[data-schedule=pixels]")
    schedule.wait_for()
    assert schedule.locator("table.executions tbody tr").count() == 1
    assert schedule.locator("table.drift tbody tr").count() == 64
    shot(page, "monitoring")

    # The endpoint page charts the shadow beside production.
    deadline = time.monotonic() + 30
    while not any(
        v is not None
        for v in json.loads(
            httpx.get(f"{server.url}/api/v1/dashboard/endpoints/scored/series").text
        )["variants"]["S"]["p99_ms"]
    ):
        assert time.monotonic() < deadline, "no shadow figures in the history"
        time.sleep(1)
    page.goto(f"{server.url}/ui/#/endpoints/scored")
    page.locator("#charts [data-chart=p99_ms]").wait_for()
    assert page.locator("#variants tr[data-variant=S]").count() == 1
    shot(page, "endpoint-with-shadow")

    # Experiment: the live report, then the shadow promoted from the page.
    page.goto(f"{server.url}/ui/#/experiments")
    page.locator("#experiments a").click()
    page.locator("#report").wait_for()
    assert "Shadow test tree-shadow" in (page.locator("#report").get_attribute("srcdoc") or "")
    shot(page, "experiment")
    page.select_option("#stop-form select[name=S]", "Promote")
    page.select_option("#stop-form select[name=A]", "Remove")
    page.click("#stop-form button")
    deadline = time.monotonic() + 60
    while json.loads(httpx.get(f"{server.url}/api/v1/experiments/tree-shadow").text)[
        "status"
    ] not in ("Completed",):
        assert time.monotonic() < deadline, "the experiment ended in the page never completed"
        time.sleep(0.5)

    # Jobs: the transform job with its progress.
    page.goto(f"{server.url}/ui/#/jobs")
    job = page.locator("#transforms tr[data-job=score-all]")
    job.wait_for()
    assert "Completed" in job.inner_text() and "50 of 50" in job.inner_text()
    shot(page, "jobs")


def test_pipeline_executions_and_jobs_pages(
    server: RunningServer,
    data: Path,  # noqa: F811
    page: Any,
) -> None:
    split, probe = (dict(step) for step in DEFINITION["Steps"][:2])
    with Client(server.url) as client:
        client.create_pipeline("nightly", {**DEFINITION, "Steps": [split, probe]})
        failed = client.wait_for_execution(
            client.start_pipeline("nightly", {"Pause": "0"}).id, timeout=60
        )
    assert failed.status.value == "Failed"  # the probe's flag says "bad"

    # The jobs page lists the pipeline with its execution, and the jobs it ran.
    page.goto(f"{server.url}/ui/#/jobs")
    page.locator(f"#pipelines a[data-execution='{failed.id}']").wait_for()
    assert page.locator("#jobs-table tbody tr").count() == 2
    shot(page, "pipelines")

    # The execution: its steps, then a retry from the page once the flag is right.
    page.click(f"#pipelines a[data-execution='{failed.id}']")
    page.locator("#steps tr[data-step=Probe] .badge.Failed").wait_for()
    assert "exited with code 3" in page.locator("#steps tr[data-step=Probe]").inner_text()
    (data / "flag" / "flag.txt").write_text("ok")
    page.click("#retry-execution")
    page.locator("h1 .badge.Succeeded").wait_for(timeout=60_000)
    assert "2" in page.locator("#steps tr[data-step=Probe]").inner_text()  # its attempts
    shot(page, "pipeline-execution")

    # A job's page: its log, from the step's link.
    page.click("#steps tr[data-step=Split] td a")
    page.locator("#job-log").wait_for()
    assert "split done" in page.locator("#job-log").inner_text()
    shot(page, "processing-job")
