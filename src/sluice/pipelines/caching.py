"""A step's cache key: what it was asked to do and what it read, not when or as what.

The key hashes the step's type and its arguments once evaluated, with each input it reads
(the code among them) replaced by its content's digest (a file's SHA-256, a folder's of
its files) and the execution's own id by a placeholder (SDK-made output paths hold it). A rerun
with the same code, data and arguments hits; a changed byte misses. `parts` says what went
into the key, so a miss can be explained field by field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

PLACEHOLDER = "{execution}"
_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
_SECONDS = {
    "years": 365 * 86400,
    "months": 30 * 86400,
    "weeks": 7 * 86400,
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
}


def expire_after_s(duration: str | None) -> float | None:
    """An ISO 8601 duration (`P30D`, `PT1H`, ...) in seconds; None: no expiry."""
    if not duration:
        return None
    match = _DURATION.fullmatch(duration.strip())
    if match is None or duration.strip() in ("P", "PT"):
        return None
    return sum(float(v) * _SECONDS[k] for k, v in match.groupdict().items() if v)


def input_uris(step_type: str, arguments: dict[str, Any]) -> list[str]:
    """The URIs a step of `step_type` reads, in its evaluated arguments."""
    if step_type == "Processing":
        return [
            i["S3Input"]["S3Uri"] for i in arguments.get("ProcessingInputs", []) if "S3Input" in i
        ]
    if step_type == "Training":
        uris = [
            c["DataSource"]["S3DataSource"]["S3Uri"]
            for c in arguments.get("InputDataConfig", [])
            if "S3DataSource" in c.get("DataSource", {})
        ]
        submit = (arguments.get("HyperParameters") or {}).get("sagemaker_submit_directory")
        if submit:
            uris.append(str(submit).strip('"'))
        return uris
    if step_type == "Transform":
        source = arguments.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource")
        return [source["S3Uri"]] if source else []
    return []


def key(
    step_type: str,
    arguments: dict[str, Any],
    execution_id: str,
    digest: Callable[[str], str],
    models: dict[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The cache key and its parts: {"type", "arguments": digest, "inputs": {uri: digest},
    "normalized": the arguments hashed}. An input stands in the arguments as its content's
    digest, so an input read from another execution's output (a cache hit upstream) keys
    the same as the same bytes read from this one's. `models`: a model's name (a Transform
    step's ModelName) to what the model is (its content, runtime, image, environment), so
    a model an execution makes afresh (in a Model step) keys by what it is, not its name."""
    digests = {uri: digest(uri) for uri in input_uris(step_type, arguments)}

    def normal(text: str) -> str:
        bare = text.strip('"')
        if bare in digests:
            return f"sha256:{digests[bare]}"
        if models and text in models:
            return f"model:{models[text]}"
        return text.replace(execution_id, PLACEHOLDER) if execution_id else text

    normalized = _normalize(arguments, normal)
    inputs = dict(digests)
    parts = {"type": step_type, "arguments": _sha(normalized), "inputs": inputs}
    return _sha({"type": step_type, "arguments": normalized}), {**parts, "normalized": normalized}


def explain(now: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """What differs between two steps' key parts, one line each."""
    lines: list[str] = []
    if now.get("type") != before.get("type"):
        lines.append(f"step type: {before.get('type')} -> {now.get('type')}")
    where = {f"sha256:{d}": uri for uri, d in now.get("inputs", {}).items()}
    for path, old, new in _differences(before.get("normalized"), now.get("normalized"), ""):
        if str(new).startswith("sha256:") and str(old).startswith("sha256:"):
            lines.append(f"input {path} holds other bytes now ({where.get(new, new)})")
        else:
            lines.append(f"argument {path}: {old!r} -> {new!r}")
    return lines


def _differences(old: Any, new: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for name in sorted(set(old) | set(new)):
            out += _differences(old.get(name), new.get(name), f"{path}.{name}" if path else name)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += _differences(a, b, f"{path}[{i}]")
        return out
    return [] if old == new else [(path or "(all)", old, new)]


def _normalize(value: Any, normal: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return normal(value)
    if isinstance(value, list):
        return [_normalize(v, normal) for v in value]
    if isinstance(value, dict):
        return {k: _normalize(v, normal) for k, v in value.items()}
    return value


def _sha(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
