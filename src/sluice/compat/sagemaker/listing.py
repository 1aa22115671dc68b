"""The List* operations' filters, sort and pages, as the service model defines them.

A NextToken names the last item handed out (its sort key), not a position, so that pages
stay right while other clients create and delete resources between two calls.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sluice.compat.sagemaker.shapes import ValidationException

T = TypeVar("T")
DEFAULT_MAX_RESULTS = 10
"""SageMaker's page size when MaxResults is not given."""


@dataclass(frozen=True)
class Fields(Generic[T]):
    """How to read the fields the filters and sort keys need from an item."""

    name: Callable[[T], str]
    created: Callable[[T], datetime]
    modified: Callable[[T], datetime] | None = None
    status: Callable[[T], str] | None = None


def page(
    items: Sequence[T], params: dict[str, Any], fields: Fields[T]
) -> tuple[list[T], str | None]:
    """Filter, sort and cut `items` by the request's members; the page and the next token."""
    chosen = [item for item in items if _keep(item, params, fields)]
    sort_by = params.get("SortBy", "CreationTime")
    descending = params.get("SortOrder", "Descending") == "Descending"

    def key(item: T) -> tuple[Any, str]:
        name = fields.name(item)
        if sort_by == "Name":
            return (name, name)
        if sort_by == "Status" and fields.status is not None:
            return (fields.status(item), name)
        return (fields.created(item).timestamp(), name)

    chosen.sort(key=key, reverse=descending)
    query = [sort_by, descending]
    token = params.get("NextToken")
    if token:
        after = _read_token(token, query)
        chosen = [i for i in chosen if (key(i) < after if descending else key(i) > after)]
    size = params.get("MaxResults", DEFAULT_MAX_RESULTS)
    if len(chosen) <= size:
        return chosen, None
    shown = chosen[:size]
    return shown, _write_token(query, key(shown[-1]))


def _keep(item: T, params: dict[str, Any], fields: Fields[T]) -> bool:
    contains = params.get("NameContains")
    if contains and contains.lower() not in fields.name(item).lower():
        return False
    created = fields.created(item)
    if "CreationTimeBefore" in params and not created < params["CreationTimeBefore"]:
        return False
    if "CreationTimeAfter" in params and not created > params["CreationTimeAfter"]:
        return False
    if fields.modified is not None:
        modified = fields.modified(item)
        if "LastModifiedTimeBefore" in params and not modified < params["LastModifiedTimeBefore"]:
            return False
        if "LastModifiedTimeAfter" in params and not modified > params["LastModifiedTimeAfter"]:
            return False
    return not (
        "StatusEquals" in params
        and fields.status is not None
        and fields.status(item) != params["StatusEquals"]
    )


def _write_token(query: list[Any], last: tuple[Any, str]) -> str:
    raw = json.dumps({"query": query, "after": list(last)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _read_token(token: str, query: list[Any]) -> tuple[Any, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = data["after"]
        if data["query"] != query:
            raise ValidationException(
                "NextToken comes from a listing with another SortBy or SortOrder",
                field="NextToken",
            )
        return (after[0], str(after[1]))
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError):
        raise ValidationException(
            "NextToken is not a token this server gave", field="NextToken"
        ) from None
