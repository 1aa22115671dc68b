"""The verdict for people and CI systems: a table, JUnit XML and a Markdown summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from sluice.gate.check import Check, Verdict

if TYPE_CHECKING:
    from rich.table import Table


def _value(check: Check, value: float) -> str:
    return f"{value:.2f} ms" if check.unit == "ms" else f"{value:.4f}"


def _drop(check: Check) -> str:
    if check.unit == "ms":
        return f"{check.drop:+.1%} [{check.drop_low:+.1%}, {check.drop_high:+.1%}]"
    return f"{check.drop:+.4f} [{check.drop_low:+.4f}, {check.drop_high:+.4f}]"


def _limit(check: Check) -> str:
    if check.limit is None:
        return "-"
    return f"{check.limit:.1%}" if check.unit == "ms" else f"{check.limit:.4f}"


def _outcome(check: Check) -> str:
    if check.limit is None:
        return "info"
    return "pass" if check.passed else "FAIL"


def rows(verdict: Verdict) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (c.name, _value(c, c.baseline), _value(c, c.candidate), _drop(c), _limit(c), _outcome(c))
        for c in verdict.checks
    ]


HEADER = ("check", "baseline", "candidate", "worse by [CI]", "allowed", "result")


def table(verdict: Verdict) -> Table:
    from rich.table import Table

    confidence = f"{verdict.limits.confidence:.0%}"
    shown = Table(
        title=f"{verdict.candidate} vs {verdict.baseline} on {verdict.rows} rows "
        f"({verdict.problem}; intervals at {confidence})"
    )
    for name in HEADER:
        shown.add_column(name, justify="left" if name == "check" else "right")
    for row in rows(verdict):
        style = "red" if row[-1] == "FAIL" else None
        shown.add_row(*row, style=style)
    return shown


def junit_xml(verdict: Verdict, seconds: float) -> str:
    """One test case per gated check (the rest as passing informational cases)."""
    suite = ET.Element(
        "testsuite",
        name=f"sluice validate {verdict.candidate}",
        tests=str(len(verdict.checks)),
        failures=str(len(verdict.failures)),
        errors="0",
        skipped="0",
        time=f"{seconds:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (("candidate", verdict.candidate), ("baseline", verdict.baseline),
                        ("rows", str(verdict.rows)), ("problem", verdict.problem)):  # fmt: skip
        ET.SubElement(properties, "property", name=name, value=value)
    for check, row in zip(verdict.checks, rows(verdict), strict=True):
        case = ET.SubElement(
            suite, "testcase", classname="sluice.validate", name=check.name, time="0"
        )
        text = f"baseline {row[1]}, candidate {row[2]}, worse by {row[3]}, allowed {row[4]}"
        if not check.passed:
            failure = ET.SubElement(case, "failure", message=f"{check.name}: {text}")
            failure.text = text
        else:
            ET.SubElement(case, "system-out").text = text
    root = ET.Element(
        "testsuites", tests=suite.get("tests", "0"), failures=suite.get("failures", "0")
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def markdown(verdict: Verdict) -> str:
    outcome = "passed" if verdict.passed else "**failed**"
    mode = (
        "fails only when the drop is significant"
        if verdict.limits.significant_only
        else "fails when the measured drop exceeds the limit"
    )
    lines = [
        f"### Validation gate {outcome}: `{verdict.candidate}` vs `{verdict.baseline}`",
        "",
        f"{verdict.rows} rows, {verdict.problem}; {verdict.limits.confidence:.0%} intervals "
        f"by paired bootstrap; the gate {mode}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(verdict)]
    return "\n".join(lines) + "\n"
