"""The HTML report: self-contained, and showing the report's own numbers."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner

from sluice.cli.main import cli
from sluice.reports import synthetic


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_cli_writes_a_self_contained_page_with_the_reports_numbers(tmp_path: Path) -> None:
    synthetic.write(
        synthetic.Scenario(requests=2000, candidate_accuracy=0.96, probabilities=True),
        tmp_path / "capture",
        tmp_path / "truth",
    )
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "shadow",
            "--endpoint",
            "ep",
            "--baseline",
            "A",
            "--candidate",
            "shadow",
            "--capture",
            str(tmp_path / "capture"),
            "--ground-truth",
            str(tmp_path / "truth"),
            "--json",
            str(tmp_path / "r.json"),
            "--html",
            str(tmp_path / "r.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "quality better" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    page = _Page()
    page.feed((tmp_path / "r.html").read_text())
    text = " ".join(page.text)
    c = report["comparisons"][0]
    assert f"{100 * c['agreement']['rate']['value']:.2f} %" in text
    for side in ("baseline", "candidate"):
        assert f"{c['quality'][side]['accuracy']['value']:.4g}" in text  # on the interval chart
    for row in c["agreement"]["confusion"]["counts"]:
        for n in row:
            assert str(n) in text
    assert "better" in text and c["verdict"]["summary"] in text
    tags = [t for t, _ in page.tags]
    assert tags.count("svg") == 2  # latency distributions, accuracy intervals
    assert "script" not in tags and "link" not in tags and "img" not in tags
    assert not any((a.get("src") or a.get("href") or "").startswith("http") for _, a in page.tags)


def test_cli_refuses_a_variant_without_capture(tmp_path: Path) -> None:
    (tmp_path / "capture" / "ep" / "A").mkdir(parents=True)
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "shadow",
            "--endpoint",
            "ep",
            "--baseline",
            "A",
            "--candidate",
            "B",
            "--capture",
            str(tmp_path / "capture"),
        ],
    )
    assert result.exit_code != 0 and "no capture for ep/B" in result.output
