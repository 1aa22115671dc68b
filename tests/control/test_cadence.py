"""Schedule expressions: SageMaker's cron(...), plain cron, rate(...) and NOW."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sluice.control.cadence import parse
from sluice.errors import ValidationError

H = datetime(2026, 11, 24, 10, 0, tzinfo=UTC).timestamp()


def test_sagemaker_hourly_and_daily() -> None:
    hourly = parse("cron(0 * ? * * *)")
    assert hourly.cron == "0 * * * *"
    assert hourly.times(H - 1, H + 3 * 3600) == [H, H + 3600, H + 7200, H + 3 * 3600]
    assert hourly.times(H, H + 3599) == []  # `after` is excluded
    assert hourly.period_before(H) == 3600
    daily = parse("cron(30 2 * * ? *)")
    assert daily.period_before(datetime(2026, 11, 25, 2, 30, tzinfo=UTC).timestamp()) == 86_400


def test_aws_weekdays_count_from_sunday() -> None:
    assert parse("cron(0 9 ? * 2-6 *)").cron == "0 9 * * 1-5"  # Monday to Friday
    assert parse("cron(0 9 ? * MON,FRI *)").cron == "0 9 * * 1,5"
    assert parse("cron(0 9 ? * */2 *)").cron == "0 9 * * */2"


def test_plain_cron_rate_and_now() -> None:
    quarter = parse("*/15 * * * *")
    assert len(quarter.times(H, H + 3600)) == 4
    rate = parse("rate(10 minutes)")
    assert rate.every_s == 600
    assert rate.times(H + 1, H + 1800) == [H + 600, H + 1200, H + 1800]
    assert parse("rate(1 day)").period_before(H) == 86_400
    once = parse("now")
    assert once.once and once.times(0, H) == []


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 * ? * *)", "six fields"),
        ("cron(0 * ? * * 2027)", "year field"),
        ("every hour", "is not cron"),
        ("* * * * * *", "is not cron"),
        ("rate(0 minutes)", "at least 1 minute"),
        ("rate(5 seconds)", "is not cron"),
        ("61 * * * *", "is not cron"),
    ],
)
def test_bad_expressions(expression: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        parse(expression)
    assert caught.value.field == "ScheduleExpression"
