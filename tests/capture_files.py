"""Reading data-capture files back: records per variant, payloads decoded, pairs by inference id."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def records(root: Path, endpoint: str, variant: str) -> Iterator[dict[str, Any]]:
    """Every capture record of one variant, oldest file first."""
    base = root / endpoint / variant
    for path in sorted(base.rglob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def payload(record: dict[str, Any], mode: str = "endpointOutput") -> bytes:
    """The raw bytes of a record's input ("endpointInput") or output ("endpointOutput")."""
    part = record["captureData"][mode]
    data: str = part["data"]
    return base64.b64decode(data) if part["encoding"] == "BASE64" else data.encode()


def by_inference_id(root: Path, endpoint: str, variant: str) -> dict[str, dict[str, Any]]:
    return {r["eventMetadata"]["inferenceId"]: r for r in records(root, endpoint, variant)}
