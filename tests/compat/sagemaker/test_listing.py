"""List* filters, sort orders and tokens that survive changes between pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sluice.compat.sagemaker.listing import Fields, page
from sluice.compat.sagemaker.shapes import ValidationException

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Item:
    name: str
    created: datetime
    status: str


FIELDS: Fields[Item] = Fields(
    name=lambda i: i.name,
    created=lambda i: i.created,
    modified=lambda i: i.created,
    status=lambda i: i.status,
)
ITEMS = [Item(f"ep-{i}", T0 + timedelta(minutes=i), "InService" if i % 3 else "Failed")
         for i in range(12)]  # fmt: skip


def walk(items: list[Item], **params: Any) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        shown, token = page(items, {**params, **({"NextToken": token} if token else {})}, FIELDS)
        names += [i.name for i in shown]
        if token is None:
            return names


def test_defaults_newest_first_ten_per_page() -> None:
    shown, token = page(ITEMS, {}, FIELDS)
    assert [i.name for i in shown] == [f"ep-{i}" for i in range(11, 1, -1)] and token
    assert walk(ITEMS, MaxResults=5) == [f"ep-{i}" for i in range(11, -1, -1)]


def test_sorts_and_filters() -> None:
    assert walk(ITEMS, SortBy="Name", SortOrder="Ascending", MaxResults=4) == sorted(
        i.name for i in ITEMS
    )
    assert walk(ITEMS, SortBy="Status", SortOrder="Ascending")[:4] == [
        "ep-0", "ep-3", "ep-6", "ep-9"
    ]  # fmt: skip
    assert walk(ITEMS, StatusEquals="Failed") == ["ep-9", "ep-6", "ep-3", "ep-0"]
    assert walk(ITEMS, NameContains="EP-1") == ["ep-11", "ep-10", "ep-1"]
    after, before = T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)
    assert walk(ITEMS, CreationTimeAfter=after, CreationTimeBefore=before) == ["ep-5", "ep-4"]
    assert walk(ITEMS, LastModifiedTimeAfter=T0 + timedelta(minutes=10)) == ["ep-11"]


def test_a_token_names_the_last_item_so_deletions_shift_nothing() -> None:
    shown, token = page(ITEMS, {"MaxResults": 4}, FIELDS)
    remaining = [i for i in ITEMS if i.name not in ("ep-11", "ep-6")]  # deleted meanwhile
    rest, _ = page(remaining, {"MaxResults": 4, "NextToken": token}, FIELDS)
    assert [i.name for i in rest] == ["ep-7", "ep-5", "ep-4", "ep-3"]


def test_bad_tokens() -> None:
    _, token = page(ITEMS, {"MaxResults": 4}, FIELDS)
    with pytest.raises(ValidationException, match="another SortBy or SortOrder"):
        page(ITEMS, {"SortBy": "Name", "NextToken": token}, FIELDS)
    for bad in ("garbage", "e30=", "W10="):
        with pytest.raises(ValidationException, match="not a token this server gave"):
            page(ITEMS, {"NextToken": bad}, FIELDS)
