"""The JSONPath subset batch transform's DataProcessing filters use.

`$` (the whole record), `.name` and `['a', 'b']` (object members; several names keep an
object of those members), `[2]`, `[-1]`, `[1:]`, `[0,3:5,-1]` (array elements; several
or a slice keep an array). A CSV record is an array of its column values. At most 63
characters, as SageMaker allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sluice.errors import ValidationError

MAX_LENGTH = 63
_NAME = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)")
_BRACKET = re.compile(r"\[([^\]]*)\]")
_INDEX = re.compile(r"^-?\d+$")
_SLICE = re.compile(r"^(-?\d*):(-?\d*)$")
_QUOTED = re.compile(r"""^\s*(?:'([^']*)'|"([^"]*)")\s*$""")


@dataclass(frozen=True)
class Step:
    names: tuple[str, ...] = ()
    """Object members (one: the value; several: an object of them)."""
    picks: tuple[int | slice, ...] = ()
    """Array elements (one index: the value; several or a slice: an array)."""


class Path:
    def __init__(self, expression: str, field: str, max_length: int = MAX_LENGTH) -> None:
        self.expression = expression
        self.field = field
        self.steps = _parse(expression, field, max_length)

    def __call__(self, value: Any) -> Any:
        for step in self.steps:
            value = self._apply(step, value)
        return value

    def _apply(self, step: Step, value: Any) -> Any:
        if step.names:
            if not isinstance(value, dict):
                raise ValidationError(
                    f"{self.field} {self.expression!r} names members of a non-object",
                    field=self.field,
                )
            missing = [n for n in step.names if n not in value]
            if missing:
                raise ValidationError(
                    f"{self.field} {self.expression!r}: the record has no {missing[0]!r}",
                    field=self.field,
                )
            if len(step.names) == 1:
                return value[step.names[0]]
            return {n: value[n] for n in step.names}
        if not isinstance(value, list):
            raise ValidationError(
                f"{self.field} {self.expression!r} picks elements of a non-array", field=self.field
            )
        if len(step.picks) == 1 and isinstance(step.picks[0], int):
            try:
                return value[step.picks[0]]
            except IndexError:
                raise ValidationError(
                    f"{self.field} {self.expression!r}: the record has {len(value)} elements",
                    field=self.field,
                ) from None
        out: list[Any] = []
        for pick in step.picks:
            if isinstance(pick, slice):
                out.extend(value[pick])
            else:
                try:
                    out.append(value[pick])
                except IndexError:
                    raise ValidationError(
                        f"{self.field} {self.expression!r}: the record has {len(value)} elements",
                        field=self.field,
                    ) from None
        return out

    @property
    def is_identity(self) -> bool:
        return not self.steps


def _parse(expression: str, field: str, max_length: int) -> list[Step]:
    text = expression.strip()
    if len(text) > max_length or not text.startswith("$"):
        raise ValidationError(
            f"{field} must be a JSONPath of at most {max_length} characters starting with '$'",
            field=field,
        )
    steps: list[Step] = []
    position = 1
    while position < len(text):
        name = _NAME.match(text, position)
        if name:
            steps.append(Step(names=(name.group(1),)))
            position = name.end()
            continue
        bracket = _BRACKET.match(text, position)
        if not bracket:
            raise ValidationError(
                f"{field} {expression!r}: cannot read it from {text[position:]!r} on "
                "(supported: .name, ['a','b'], [0], [-1], [1:], [0,2:4])",
                field=field,
            )
        steps.append(_step(bracket.group(1), expression, field))
        position = bracket.end()
    return steps


def _step(inside: str, expression: str, field: str) -> Step:
    parts = [p.strip() for p in inside.split(",")]
    quoted = [_QUOTED.match(p) for p in parts]
    if all(quoted):
        return Step(names=tuple(m.group(1) if m.group(1) is not None else m.group(2)
                                for m in quoted if m))  # fmt: skip
    picks: list[int | slice] = []
    for part in parts:
        if _INDEX.match(part):
            picks.append(int(part))
            continue
        cut = _SLICE.match(part)
        if cut is None:
            raise ValidationError(f"{field} {expression!r}: cannot read [{inside}]", field=field)
        start, stop = (int(v) if v else None for v in cut.groups())
        picks.append(slice(start, stop))
    return Step(picks=tuple(picks))
