from __future__ import annotations

import pytest

from sluice.errors import ValidationError
from sluice.monitor.times import duration, iso, moment


def test_durations_and_moments() -> None:
    assert duration("-PT1H") == -3600
    assert duration("P1DT2H30M") == 86_400 + 2 * 3600 + 30 * 60
    assert duration("PT0.5S") == 0.5
    assert duration("-P0D") == 0
    assert duration("PT") is None and duration("1h") is None
    assert moment("-PT1H", 10_000.0, "start") == 6_400.0
    assert moment("2026-09-21T14:13:20Z", 0.0, "start") == 1_790_000_000.0
    assert moment("2026-09-21T14:13:20", 0.0, "start") == 1_790_000_000.0  # UTC if unsaid
    assert iso(1_790_000_000.25) == "2026-09-21T14:13:20.250Z"
    with pytest.raises(ValidationError, match="ISO-8601"):
        moment("yesterday", 0.0, "start")
