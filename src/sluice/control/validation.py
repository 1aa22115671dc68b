"""Checks shared by every control service (names, numbers), raising ValidationError."""

from __future__ import annotations

import functools
import re

from sluice.errors import ValidationError

_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")


@functools.cache
def _name_pattern(max_length: int) -> re.Pattern[str]:
    return re.compile(rf"^[a-zA-Z0-9](-*[a-zA-Z0-9]){{0,{max_length - 1}}}$")


def check_name(value: str, field: str, max_length: int = 63) -> str:
    """SageMaker's resource names: letters, digits and hyphens, at most `max_length`."""
    pattern = _name_pattern(max_length)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(
            f"{field} {value!r} must match {pattern.pattern} "
            f"(letters, digits and single hyphens, 1 to {max_length} characters)",
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
