"""Shared value types of the data plane."""

from __future__ import annotations

from dataclasses import dataclass

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
    sticky_key: str | None = None


@dataclass(slots=True)
class InvokeResult:
    """The production answer to one request."""

    variant: str
    body: bytes
    content_type: str
    inference_id: str
    custom_attributes: str | None = None
