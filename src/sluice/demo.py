"""The whole story on bundled data, as a shadow test that ends in a canary promotion.

Steps: train the current model and a candidate on scikit-learn's digits and write each as
a model.tar.gz; start `sluice server` on a free port with a temporary home; serve the
current model on an endpoint; start an inference experiment with the candidate in shadow;
send the held-out digits through the runtime API; post their true labels as ground truth;
print the experiment's comparison report and write its HTML page; if the candidate is
significantly more accurate and within the latency budget, stop the experiment promoting
it through a canary deployment guarded by an alarm, under live traffic; stop the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

from sluice.client import Client

ENDPOINT = "digits"
VARIANT = "current"
"""The endpoint's production variant: it serves the current model, then the promoted one."""
CURRENT, CANDIDATE = "digits-nb", "digits-logreg"
SHADOW = "candidate"
EXPERIMENT = "logreg-shadow-test"
LATENCY_BUDGET_MS = 100.0
"""The candidate's p99 must stay under this to be promoted."""
REPORT_PAGE = Path(tempfile.gettempdir()) / "sluice-demo-report.html"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train(workdir: Path, console: Console) -> tuple[np.ndarray, np.ndarray]:
    """Train both models, write them as model.tar.gz; return the held-out rows and labels."""
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=7, stratify=y
    )
    models = {
        CURRENT: GaussianNB(),
        CANDIDATE: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    }
    for name, model in models.items():
        model.fit(x_train, y_train)
        folder = workdir / name
        folder.mkdir()
        joblib.dump(model, folder / "model.joblib")
        with tarfile.open(workdir / f"{name}.tar.gz", "w:gz") as tar:
            tar.add(folder / "model.joblib", arcname="model.joblib")
        console.print(
            f"  trained [bold]{name}[/]: {type(model).__name__}"
            + (f" ({type(model[-1]).__name__})" if hasattr(model, "steps") else "")
        )
    return x_test, y_test


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    log = (home / "server.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sluice.cli.main",
            "server",
            "--port",
            str(port),
            "--home",
            str(home),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "SLUICE_CAPTURE_FLUSH_INTERVAL_S": "0.5"},
    )


def wait_ready(client: Client, server: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            client.health()
            return
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.1)
    raise RuntimeError(f"the server was not ready within {timeout:g} s")


def write_credentials(home: Path) -> tuple[str, str]:
    """The demo server's principals: an admin (this script's control calls) and an
    application that may only invoke. Returns their bearer tokens."""
    from sluice.security.credentials import FILE_NAME, Role, new_principal, write_file

    admin, app = new_principal("demo-admin", Role.ADMIN), new_principal("demo-app", Role.INVOKE)
    write_file(home / FILE_NAME, [admin, app])
    assert admin.token is not None and app.token is not None
    return admin.token, app.token


async def send(url: str, token: str, rows: np.ndarray, concurrency: int = 8) -> dict[str, str]:
    """Send every row as its own request; returns inference id -> production variant."""
    import httpx

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(rows)):
        queue.put_nowait(i)
    answered: dict[str, str] = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("sending held-out digits", total=len(rows))
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    inference_id = f"digit-{i}"
                    response = await http.post(
                        f"/endpoints/{ENDPOINT}/invocations",
                        content=json.dumps([rows[i].tolist()]),
                        headers={
                            "Authorization": f"Bearer {token}",
                            "Content-Type": "application/json",
                            "X-Amzn-SageMaker-Inference-Id": inference_id,
                        },
                    )
                    if response.status_code == 200:
                        answered[inference_id] = response.headers[
                            "x-amzn-invoked-production-variant"
                        ]
                    progress.advance(task)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered


class Traffic:
    """Requests in a background thread while the promotion runs; counts the answers."""

    def __init__(self, url: str, token: str, rows: np.ndarray) -> None:
        self.url, self.token, self.rows = url, token, rows
        self.statuses: dict[int, int] = {}
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.running = False
        self.thread.join(30)

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=30) as http:
            i = 0
            while self.running:
                response = http.post(
                    f"/endpoints/{ENDPOINT}/invocations",
                    content=json.dumps([self.rows[i % len(self.rows)].tolist()]),
                    headers={
                        "Authorization": f"Bearer {self.token}",
                        "Content-Type": "application/json",
                    },
                )
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                i += 1
                time.sleep(0.005)


def wait_for_shadow(client: Client, expected: int, timeout: float = 60) -> None:
    """Wait until the shadow has handled (or shed) a copy of every production request."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sum(
            sample.value
            for family in text_string_to_metric_families(client.metrics())
            if family.name == "sluice_shadow_copies"
            for sample in family.samples
            if sample.labels.get("variant") == SHADOW and sample.name.endswith("_total")
        )
        if done >= expected:
            return
        time.sleep(0.1)


def wait_for_report(client: Client, rows: int, timeout: float = 30) -> dict[str, Any]:
    """The experiment's report once the capture of every pair has been written."""
    deadline = time.monotonic() + timeout
    while True:
        report = client.experiment_report(EXPERIMENT, refresh=True)
        if report["comparisons"][0]["paired_rows"] >= rows or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


def decide(report: dict[str, Any]) -> tuple[bool, str]:
    """Promote when the candidate is significantly more accurate and fast enough."""
    comparison = report["comparisons"][0]
    quality = comparison["verdict"]["quality"]
    p99 = report["variants"][SHADOW]["latency_ms"]["p99"]
    if quality != "better":
        return False, f"quality is {quality}: the current model stays"
    if p99 is None or p99 > LATENCY_BUDGET_MS:
        return False, f"p99 {p99} ms is over the {LATENCY_BUDGET_MS:g} ms budget"
    return True, (
        f"significantly more accurate and p99 {p99:.2f} ms is within the "
        f"{LATENCY_BUDGET_MS:g} ms budget"
    )


def promote(client: Client, console: Console, url: str, token: str, rows: np.ndarray) -> bool:
    """Stop the experiment promoting the shadow through a canary guarded by a 5xx alarm."""
    client.put_alarm(
        f"{ENDPOINT}-5xx",
        metric="Invocation5XXErrors",
        statistic="Sum",
        comparison="GreaterThanThreshold",
        threshold=0,
        period_s=1,
        endpoint=ENDPOINT,
    )
    canary = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 2,
            },
            "TerminationWaitInSeconds": 1,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": f"{ENDPOINT}-5xx"}]},
    }
    with Traffic(url, token, rows) as traffic:
        done = client.stop_experiment(
            EXPERIMENT,
            {SHADOW: "Promote"},
            reason="the candidate won the shadow test",
            deployment_config=canary,
            wait=True,
            timeout=300,
        )
    deployment = client.get_deployment(int(done.stop["deployment_id"]))
    for step in deployment.steps:
        shares = ", ".join(f"{share:.0%}" for share in step.green_shares.values())
        console.print(f"   step {step.index + 1}: {step.label} ({shares} on the candidate) "
                      f"-> {step.decision}")  # fmt: skip
    served = sum(traffic.statuses.values())
    failed = served - traffic.statuses.get(200, 0)
    console.print(
        f"   {served} requests answered during the canary, {failed} failed; "
        f"experiment {done.status}: {done.status_reason}"
    )
    return done.status == "Completed"


def run(keep_home: bool = False) -> int:
    from sluice.cli.report import print_report

    console = Console(width=max(Console().width, 100))
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="sluice-demo-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server: subprocess.Popen[bytes] | None = None
    try:
        console.rule("[bold]sluice demo")
        console.print("1. training the current model and a candidate on scikit-learn's digits")
        x_test, y_test = train(home, console)
        console.print(f"2. starting sluice server on {url} (home {home})")
        admin_token, app_token = write_credentials(home)
        server = start_server(home, port)
        with Client(url, token=admin_token) as client:
            wait_ready(client, server)
            console.print(f"3. serving {CURRENT} on endpoint {ENDPOINT!r}")
            for name in (CURRENT, CANDIDATE):
                client.create_model(name, str(home / f"{name}.tar.gz"))
            client.create_endpoint_config(
                f"{ENDPOINT}-v1",
                variants=[{"name": VARIANT, "model": CURRENT}],
                data_capture={"sampling_percentage": 100},
            )
            client.create_endpoint(ENDPOINT, f"{ENDPOINT}-v1", wait=True, timeout=120)
            console.print(
                f"4. shadow test {EXPERIMENT!r}: {CANDIDATE} gets a copy of every request"
            )
            client.create_experiment(
                EXPERIMENT,
                ENDPOINT,
                VARIANT,
                [{"name": SHADOW, "model": CANDIDATE, "sampling_percentage": 100}],
                description="logistic regression against naive Bayes",
            )
            running = client.wait_for_experiment(EXPERIMENT, ("Running",), 120)
            if running.status != "Running":
                raise RuntimeError(f"the experiment is {running.status}: {running.status_reason}")
            console.print(f"5. sending {len(x_test)} held-out digits; the current model answers")
            answered = asyncio.run(send(url, app_token, x_test))
            console.print(f"   {len(answered)} answered by {sorted(set(answered.values()))}")
            wait_for_shadow(client, len(x_test))
            labels = "".join(
                json.dumps({"inference_id": f"digit-{i}", "label": int(label)}) + "\n"
                for i, label in enumerate(y_test)
            )
            accepted = client.put_ground_truth(ENDPOINT, labels.encode(), "application/jsonlines")
            console.print(f"6. {accepted} true labels posted as ground truth")
            report = wait_for_report(client, len(x_test))
            print_report(report, console)
            REPORT_PAGE.write_text(client.experiment_report_html(EXPERIMENT, refresh=False))
            console.print(f"   report page: {REPORT_PAGE}")
            promoted, why = decide(report)
            if promoted:
                console.print(f"7. promoting {CANDIDATE} through a canary: {why}")
                promoted = promote(client, console, url, app_token, x_test)
            else:
                console.print(f"7. not promoting: {why}")
                client.stop_experiment(EXPERIMENT, reason=why, wait=True)
            endpoint = client.get_endpoint(ENDPOINT)
            serving = {v.name: v.model for v in endpoint.variants}
            console.print(f"   endpoint {ENDPOINT!r} now serves {serving} ({endpoint.status})")
        console.print("8. stopping the server")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        console.print(f"done in {time.monotonic() - started:.1f} s")
        return 0
    except Exception as exc:  # noqa: BLE001 - the demo reports, then cleans up
        console.print(f"[red]demo failed: {type(exc).__name__}: {exc}")
        log = home / "server.log"
        if log.exists():
            console.print(
                "server log (last lines):\n" + "\n".join(log.read_text().splitlines()[-30:])
            )
        return 1
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        if keep_home:
            console.print(f"home kept at {home}")
        else:
            import shutil

            shutil.rmtree(home, ignore_errors=True)
