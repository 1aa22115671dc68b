"""Replay: captured requests through a candidate model in real worker processes, then the
shadow report on the window, checked against the models' own answers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sluice.cli.main import cli
from sluice.gateway.capture import CaptureEvent, CaptureTarget, to_record
from sluice.gateway.metrics import Metrics
from sluice.reports.compare import Source
from sluice.reports.replay import replay, replay_report
from tests import models

pytestmark = pytest.mark.slow

ROWS = 300
START = 1_780_000_000.0  # a fixed hour, so the window is known


def _seed(root: Path, with_input: bool = True) -> None:
    """Captured requests of variant "seed" (inputs only matter), one per 10 ms from START."""
    x, _ = models.digits()
    target = CaptureTarget(root, 100, with_input, True)
    metrics = Metrics().for_variant("ep", "seed")
    folder = root / "ep" / "seed" / time.strftime("%Y/%m/%d/%H", time.gmtime(START))
    folder.mkdir(parents=True)
    lines = [
        to_record(
            CaptureEvent(
                target,
                "ep",
                "seed",
                f"req-{i}",
                START + i * 0.01,
                "application/json",
                json.dumps([x[i].tolist()]).encode(),
                "application/json",
                b"{}",
                1.0,
                200,
                metrics,
            )
        )
        for i in range(ROWS)
    ]
    (folder / "00-00-000-seed.jsonl").write_text("\n".join(lines) + "\n")


def _truth(root: Path) -> None:
    _, y = models.digits()
    folder = root / "ep" / time.strftime("%Y/%m/%d/%H", time.gmtime(START))
    folder.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "groundTruthData": {"data": str(int(y[i])), "encoding": "CSV"},
                "eventMetadata": {"eventId": f"req-{i}"},
                "eventVersion": "0",
            }
        )
        for i in range(ROWS)
    ]
    (folder / "labels.jsonl").write_text("\n".join(lines) + "\n")


def test_replay_answers_like_the_candidate_and_the_report_pairs_every_request(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    capture, truth, out = tmp_path / "capture", tmp_path / "truth", tmp_path / "out"
    _seed(capture)
    _truth(truth)
    # The production variant "A" is itself made by replaying the seed through logreg.
    window = Source("ep", capture, truth, None, START, START + 3600)
    made = asyncio.run(replay(window, "seed", str(artifacts["logreg_tar"]), capture, "A"))
    assert (made.requests, made.errors, made.skipped) == (ROWS, 0, 0)
    assert made.folder == capture / "ep" / "A"

    # Only the first 200 requests lie in this window.
    report = replay_report(
        Source("ep", capture, truth, None, START, START + 2.0),
        "A",
        str(artifacts["tree"]),
        out,
        "tree",
        instances=2,
    )
    x, y = models.digits()
    a = models.digits_logreg().predict(x[:200])
    b = models.digits_tree().predict(x[:200])
    assert report["replay"]["requests"] == 200 and report["replay"]["errors"] == 0
    assert report["variants"]["tree"]["role"] == "replay"
    assert report["variants"]["tree"]["cpu_seconds"] > 0
    c = report["comparisons"][0]
    assert c["paired_rows"] == 200
    assert c["agreement"]["rate"]["value"] == pytest.approx(float(np.mean(a == b)), abs=1e-9)
    quality = c["quality"]
    assert quality["labelled_rows"] == 200
    assert quality["candidate"]["accuracy"]["value"] == pytest.approx(
        float(np.mean(b == y[:200])), abs=1e-9
    )
    assert report["title"] == "Replay of ep/A through tree"


def test_records_without_input_are_skipped_and_the_cli_writes_the_report(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    capture = tmp_path / "capture"
    _seed(capture, with_input=False)
    made = asyncio.run(
        replay(Source("ep", capture), "seed", str(artifacts["logreg"]), tmp_path / "o1")
    )
    assert (made.requests, made.skipped) == (0, ROWS)

    full = tmp_path / "full"
    _seed(full)
    html = tmp_path / "replay.html"
    result = CliRunner().invoke(
        cli,
        ["report", "replay", "--endpoint", "ep", "--baseline", "seed", "--capture", str(full)]
        + ["--model", str(artifacts["tree"]), "--out", str(tmp_path / "o2"), "--html", str(html)],
    )
    assert result.exit_code == 0, result.output
    assert f"replayed {ROWS} requests (0 errors)" in result.output
    assert "replay against seed" in result.output
    assert html.read_text().startswith("<!doctype html>")
    missing = CliRunner().invoke(
        cli,
        ["report", "replay", "--endpoint", "ep", "--baseline", "nope", "--capture", str(full)]
        + ["--model", str(artifacts["tree"])],
    )
    assert missing.exit_code == 2 and "no capture for ep/nope" in missing.output
