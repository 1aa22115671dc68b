"""When a monitoring schedule runs: a cron expression, a rate, or once, now.

Accepted forms:

- SageMaker's `cron(Minutes Hours Day-of-month Month Day-of-week Year)`, e.g.
  `cron(0 * ? * * *)` for hourly; `?` means any, days of the week are 1-7 from Sunday
  (or SUN-SAT), the year must be `*`;
- a plain five-field cron expression, e.g. `*/15 * * * *` (UTC);
- `rate(N minutes|hours|days)`;
- `NOW`: a single run as soon as the schedule is created (SageMaker's one-time schedule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from sluice.errors import ValidationError

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$", re.I)
_AWS_CRON = re.compile(r"^cron\((.*)\)$", re.I)
_UNITS = {"minute": 60, "hour": 3600, "day": 86_400}
MIN_INTERVAL_S = 60


@dataclass(frozen=True)
class Cadence:
    expression: str
    cron: str | None = None
    """Five-field cron (UTC), or None for a rate or a one-time run."""
    every_s: int | None = None
    once: bool = False

    def times(self, after: float, until: float) -> list[float]:
        """Run times t with after < t <= until, oldest first."""
        if self.once:
            return []
        if self.every_s is not None:
            first = (int(after) // self.every_s + 1) * self.every_s
            return [float(t) for t in range(first, int(until) + 1, self.every_s)]
        assert self.cron is not None
        found = []
        runs = croniter(self.cron, datetime.fromtimestamp(after, UTC))
        while (t := runs.get_next(float)) <= until:
            found.append(t)
        return found

    def period_before(self, at: float) -> float:
        """Seconds from the run before `at` to `at`: a run's default window."""
        if self.every_s is not None:
            return float(self.every_s)
        if self.cron is None:
            return 3600.0
        previous: float = croniter(self.cron, datetime.fromtimestamp(at, UTC)).get_prev(float)
        return at - previous


def parse(expression: str) -> Cadence:
    text = expression.strip()
    if text.upper() == "NOW":
        return Cadence("NOW", once=True)
    rate = _RATE.match(text)
    if rate:
        unit = rate.group(2).lower().rstrip("s")
        every = int(rate.group(1)) * _UNITS[unit]
        if every < MIN_INTERVAL_S:
            raise ValidationError("a rate must be at least 1 minute", field="ScheduleExpression")
        return Cadence(text, every_s=every)
    aws = _AWS_CRON.match(text)
    cron = _from_aws(aws.group(1)) if aws else text
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ValidationError(
            f"ScheduleExpression {expression!r} is not cron(...) of six fields, a five-field "
            "cron expression, rate(N minutes|hours|days) or NOW",
            field="ScheduleExpression",
        )
    runs = croniter(cron, datetime(2026, 1, 1, tzinfo=UTC))
    first, second = runs.get_next(float), runs.get_next(float)
    if second - first < MIN_INTERVAL_S:
        raise ValidationError("runs must be at least 1 minute apart", field="ScheduleExpression")
    return Cadence(text, cron=cron)


_DAYS = {"SUN": "0", "MON": "1", "TUE": "2", "WED": "3", "THU": "4", "FRI": "5", "SAT": "6"}


def _from_aws(body: str) -> str:
    fields = body.split()
    if len(fields) != 6:
        raise ValidationError(
            "cron(...) takes six fields: minutes hours day-of-month month day-of-week year",
            field="ScheduleExpression",
        )
    minute, hour, day, month, weekday, year = fields
    if year not in ("*", "?"):
        raise ValidationError("the year field of cron(...) must be *", field="ScheduleExpression")
    return " ".join(
        [minute, hour, day.replace("?", "*"), month, _weekdays(weekday.replace("?", "*"))]
    )


def _weekdays(field: str) -> str:
    """AWS counts days 1-7 from Sunday; cron 0-6."""

    def one(token: str) -> str:
        upper = token.upper()
        if upper in _DAYS:
            return _DAYS[upper]
        if token.isdigit() and 1 <= int(token) <= 7:
            return str(int(token) - 1)
        return token

    return re.sub(r"(?<!/)(?:[A-Za-z]{3}|\d+)", lambda m: one(m.group(0)), field)
