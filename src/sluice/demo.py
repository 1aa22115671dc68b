"""The whole story on bundled data: train two models, serve one, shadow the other, compare.

Steps: train a current model and a candidate on scikit-learn's digits; write each as a
model.tar.gz; start `sluice server` on a free port with a temporary home; create an
endpoint with the current model in production and the candidate as a 100 % shadow with
capture on; replay the held-out digits through the runtime API; stop the server (which
flushes capture); join the captured answers by inference id with the true labels and
print a side-by-side table.
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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from sluice.capture_files import by_inference_id, payload
from sluice.client import Client

ENDPOINT = "digits"
PRODUCTION, SHADOW = "current", "candidate"


@dataclass
class VariantReport:
    name: str
    role: str
    requests: int
    errors: int
    latency_ms: list[float]
    accuracy: float
    agreement: float | None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train(workdir: Path, console: Console) -> tuple[np.ndarray, np.ndarray]:
    """Train both models, write them as model.tar.gz; return the held-out rows and labels."""
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=7, stratify=y
    )
    models = {
        PRODUCTION: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        SHADOW: RandomForestClassifier(n_estimators=100, random_state=0),
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


async def replay(url: str, rows: np.ndarray, concurrency: int = 8) -> dict[str, str]:
    """Send every row as its own request; returns inference id -> production variant."""
    import httpx

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(rows)):
        queue.put_nowait(i)
    answered: dict[str, str] = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("replaying held-out digits", total=len(rows))
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    inference_id = f"digit-{i}"
                    response = await http.post(
                        f"/endpoints/{ENDPOINT}/invocations",
                        content=json.dumps([rows[i].tolist()]),
                        headers={
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


def report(capture: Path, labels: np.ndarray) -> list[VariantReport]:
    captured = {v: by_inference_id(capture, ENDPOINT, v) for v in (PRODUCTION, SHADOW)}
    predicted: dict[str, dict[str, int]] = {}
    reports = []
    for variant, role in ((PRODUCTION, "production"), (SHADOW, "shadow")):
        records = captured[variant]
        ok = {i: r for i, r in records.items() if r["eventMetadata"]["status"] == 200}
        predicted[variant] = {i: json.loads(payload(r))["predictions"][0] for i, r in ok.items()}
        correct = [predicted[variant][i] == labels[int(i.split("-")[1])] for i in ok]
        reports.append(
            VariantReport(
                variant,
                role,
                len(records),
                len(records) - len(ok),
                [r["eventMetadata"]["latencyMs"] for r in records.values()],
                float(np.mean(correct)) if correct else float("nan"),
                None,
            )
        )
    both = predicted[PRODUCTION].keys() & predicted[SHADOW].keys()
    agreement = (
        np.mean([predicted[PRODUCTION][i] == predicted[SHADOW][i] for i in both])
        if both
        else float("nan")
    )
    reports[1].agreement = float(agreement)
    return reports


def print_table(console: Console, reports: list[VariantReport], pairs: int) -> None:
    table = Table(title=f"endpoint {ENDPOINT!r}: current model vs. shadow candidate")
    for column in (
        "variant",
        "role",
        "requests",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "accuracy",
        "agreement",
    ):
        table.add_column(column, justify="left" if column in ("variant", "role") else "right")
    for r in reports:
        p50, p90, p99 = (
            np.percentile(r.latency_ms, [50, 90, 99]) if r.latency_ms else (float("nan"),) * 3
        )
        table.add_row(
            r.name,
            r.role,
            str(r.requests),
            str(r.errors),
            f"{p50:.2f}",
            f"{p90:.2f}",
            f"{p99:.2f}",
            f"{r.accuracy:.3f}",
            "-" if r.agreement is None else f"{r.agreement:.1%}",
        )
    console.print(table)
    console.print(
        f"{pairs} request pairs joined by inference id from the capture files. "
        "Latency: the gateway's round trip to each variant's worker. Accuracy: "
        "against the held-out labels. Agreement: same label as production."
    )


def run(keep_home: bool = False) -> int:
    console = Console(width=max(Console().width, 100))
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="sluice-demo-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server: subprocess.Popen[bytes] | None = None
    try:
        console.rule("[bold]sluice demo")
        console.print("1. training two classifiers on scikit-learn's digits")
        x_test, y_test = train(home, console)
        console.print(f"2. starting sluice server on {url} (home {home})")
        server = start_server(home, port)
        with Client(url) as client:
            wait_ready(client, server)
            console.print("3. registering models and creating the endpoint")
            for name in (PRODUCTION, SHADOW):
                client.create_model(name, str(home / f"{name}.tar.gz"))
            client.create_endpoint_config(
                f"{ENDPOINT}-shadow-test",
                variants=[{"name": PRODUCTION, "model": PRODUCTION, "weight": 1.0}],
                shadows=[{"name": SHADOW, "model": SHADOW, "sampling_percentage": 100}],
                data_capture={"sampling_percentage": 100},
            )
            client.create_endpoint(ENDPOINT, f"{ENDPOINT}-shadow-test", wait=True, timeout=120)
            console.print(
                f"4. replaying {len(x_test)} held-out digits through "
                f"POST /endpoints/{ENDPOINT}/invocations"
            )
            answered = asyncio.run(replay(url, x_test))
            served = set(answered.values())
            console.print(
                f"   {len(answered)} answered, all by production variant(s) {sorted(served)}"
            )
            wait_for_shadow(client, len(x_test))
        console.print("5. stopping the server (flushes capture, stops workers)")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        reports = report(home / "capture", y_test)
        pairs = len(by_inference_id(home / "capture", ENDPOINT, SHADOW))
        print_table(console, reports, pairs)
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
