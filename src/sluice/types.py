"""Shared value types of the data plane."""

from __future__ import annotations

from dataclasses import dataclass, field

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
JSONLINES = "application/jsonlines"


@dataclass(slots=True)
class InvokeRequest:
    """One inference request as the gateway sees it; the body stays bytes."""

    endpoint: str
    body: bytes
    content_type: str = JSON
    accept: str = JSON
    target_variant: str | None = None
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
    custom_attributes: str | None = None
