"""Shared value types of the data plane."""

from __future__ import annotations

from dataclasses import dataclass, field

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
JSONLINES = "application/jsonlines"
PARQUET_TYPES = ("application/x-parquet", "application/vnd.apache.parquet")
"""Batch transform input only (sluice's extension): read by row group with Arrow."""


def media_type(header: str | None, default: str = JSON) -> str:
    """The bare media type of a Content-Type or Accept header ("*/*" and empty mean default)."""
    if not header:
        return default
    first = header.split(",", 1)[0]
    value = first.split(";", 1)[0].strip().lower()
    if value in ("", "*/*", "application/*"):
        return default
    if value in ("application/jsonl", "application/x-jsonlines", "application/json-lines"):
        return JSONLINES
    if value == "application/csv":
        return CSV
    return value


@dataclass(slots=True)
class InvokeRequest:
    """One inference request as the gateway sees it; the body stays bytes."""

    endpoint: str
    body: bytes
    content_type: str = JSON
    accept: str = JSON
    target_variant: str | None = None
    target_model: str | None = None
    """The model of a multi-model endpoint (its key under the endpoint's prefix)."""
    target_container: str | None = None
    """The container of a multi-container endpoint invoked directly."""
    inference_id: str | None = None
    custom_attributes: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Other request headers, lower-cased (a sticky-routing header among them)."""


@dataclass(slots=True)
class InvokeResult:
    """The production answer to one request."""

    variant: str
    body: bytes
    content_type: str
    inference_id: str
    endpoint_config: str = ""
    """The endpoint config of the fleet that answered (blue or green during an update)."""
    custom_attributes: str | None = None
