"""Moments for windows: ISO-8601 timestamps, or ISO-8601 durations taken from a moment
(SageMaker's offsets, such as -PT1H or -P1D)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sluice.errors import ValidationError

_DURATION = re.compile(
    r"^(?P<sign>[-+]?)P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def duration(text: str) -> float | None:
    """Seconds of an ISO-8601 duration (days and time parts), or None if it is not one."""
    match = _DURATION.match(text.strip().upper())
    if match is None or text.strip().upper() in ("P", "PT", "-P", "-PT"):
        return None
    parts = match.groupdict()
    seconds = (
        int(parts["days"] or 0) * 86_400
        + int(parts["hours"] or 0) * 3_600
        + int(parts["minutes"] or 0) * 60
        + float(parts["seconds"] or 0)
    )
    return -seconds if parts["sign"] == "-" else seconds


def moment(text: str, now: float, field: str) -> float:
    """Epoch seconds of an ISO-8601 timestamp (UTC unless it says) or of `now` plus an
    ISO-8601 duration."""
    offset = duration(text)
    if offset is not None:
        return now + offset
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{field} must be an ISO-8601 time or duration such as -PT1H, not {text!r}",
            field=field,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
