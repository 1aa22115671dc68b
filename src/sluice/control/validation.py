"""Checks shared by every control service (names, numbers), raising ValidationError."""

from __future__ import annotations

import re

from sluice.errors import ValidationError

NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
_NAME = re.compile(NAME_PATTERN)
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")


def check_name(value: str, field: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(
            f"{field} {value!r} must match {NAME_PATTERN} "
            "(letters, digits and single hyphens, 1 to 63 characters)",
            field=field,
        )
    return value


def check_range(value: float, field: str, low: float, high: float | None = None) -> None:
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ValidationError(f"{field} must be {bound}, got {value:g}", field=field)


def check_header_name(value: str, field: str) -> str:
    if not _HEADER.fullmatch(value):
        raise ValidationError(f"{field} {value!r} is not a valid HTTP header name", field=field)
    return value.lower()
