"""The JSONPath subset of DataProcessing filters."""

from __future__ import annotations

import pytest

from sluice.errors import ValidationError
from sluice.jsonpath import Path

RECORD = {"id": 7, "features": [1, 2, 3, 4], "meta": {"src": "a"}}


@pytest.mark.parametrize(
    ("expression", "value", "expected"),
    [
        ("$", RECORD, RECORD),
        ("$.id", RECORD, 7),
        ("$.meta.src", RECORD, "a"),
        ("$['id','meta']", RECORD, {"id": 7, "meta": {"src": "a"}}),
        ('$["features"][1:]', RECORD, [2, 3, 4]),
        ("$.features[-1]", RECORD, 4),
        ("$[0,2:4,-1]", list("abcdef"), ["a", "c", "d", "f"]),
        ("$[1:]", ["id", "1", "2"], ["1", "2"]),
        ("$[:2]", ["a", "b", "c"], ["a", "b"]),
        ("$[0]", ["a", "b"], "a"),
    ],
)
def test_paths_pick_what_they_name(expression: str, value: object, expected: object) -> None:
    assert Path(expression, "f")(value) == expected


@pytest.mark.parametrize(
    "expression", ["", "id", "$.", "$[1:", "$[a]", "$..x", "$[*]", "$" + ".x" * 40]
)
def test_what_is_not_in_the_subset_is_refused_clearly(expression: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Path(expression, "DataProcessing.InputFilter")
    assert caught.value.field == "DataProcessing.InputFilter"


def test_a_record_without_what_the_path_names_is_a_bad_record() -> None:
    with pytest.raises(ValidationError, match="no 'nope'"):
        Path("$.nope", "f")(RECORD)
    with pytest.raises(ValidationError, match="3 elements"):
        Path("$[5]", "f")([1, 2, 3])
    with pytest.raises(ValidationError, match="non-array"):
        Path("$[0]", "f")({"a": 1})
