"""What a step's arguments hold, evaluated for one execution.

- `{"Get": "Parameters.<name>"}`: the execution's parameter value.
- `{"Get": "Execution.<variable>"}`: PipelineExecutionId, PipelineExecutionArn,
  PipelineName, PipelineArn, StartDateTime, CurrentDateTime.
- `{"Get": "Steps.<name>.<path>"}`: a property of an earlier step (its job's
  description), e.g. `ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri`; a
  `['key']` on a list picks the element whose `...Name` member is `key`.
- `{"Std:Join": {"On": ..., "Values": [...]}}`: the values as text, joined.
- `{"Std:JsonGet": {"PropertyFile": {"Get": "Steps.<name>.PropertyFiles.<file>"} or
  "S3Uri": ..., "Path": ...}}`: a value from a JSON file a step wrote.
- Conditions: Equals, GreaterThan(OrEqualTo), LessThan(OrEqualTo), In, Not, Or.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluice.errors import ValidationError
from sluice.jsonpath import Path as JsonPath

FIELD = "PipelineDefinition"
_TOKEN = re.compile(r"""\.?([A-Za-z0-9_:\-]+)|\[(?:'([^']*)'|"([^"]*)"|(-?\d+))\]""")


class StepNotRun(ValidationError):
    """A reference to a step that did not run in this execution (its branch was not taken)."""


@dataclass
class Context:
    parameters: dict[str, Any]
    execution: dict[str, Any]
    properties: dict[str, dict[str, Any]]
    """What each step that ran exposes, by step name."""
    read_property_file: Callable[[str, str], Any]
    """(step, property file name) -> the file's JSON."""
    read_json: Callable[[str], Any]
    """URI -> the JSON document there."""


def resolve(value: Any, context: Context) -> Any:
    if isinstance(value, list):
        return [resolve(v, context) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return get(value["Get"], context)
    if set(value) == {"Std:Join"}:
        spec = value["Std:Join"]
        return str(spec.get("On", "")).join(_text(resolve(v, context)) for v in spec["Values"])
    if set(value) == {"Std:JsonGet"}:
        return json_get(value["Std:JsonGet"], context)
    return {k: resolve(v, context) for k, v in value.items()}


def get(reference: str, context: Context) -> Any:
    head, _, rest = reference.partition(".")
    if head == "Parameters":
        if rest not in context.parameters:
            raise ValidationError(f"unknown parameter in {reference!r}", field=FIELD)
        return context.parameters[rest]
    if head == "Execution":
        if rest not in context.execution:
            raise ValidationError(f"unknown execution variable in {reference!r}", field=FIELD)
        return context.execution[rest]
    if head == "Steps":
        step, path = _split_step(rest)
        if step not in context.properties:
            raise StepNotRun(f"{reference!r}: step {step!r} did not run in this execution")
        return walk(context.properties[step], path, reference)
    raise ValidationError(f"cannot read {reference!r}", field=FIELD)


def _split_step(rest: str) -> tuple[str, str]:
    match = re.match(r"([^.\[]+)(.*)", rest)
    if match is None:
        raise ValidationError(f"cannot read Steps.{rest!r}", field=FIELD)
    return match.group(1), match.group(2)


def walk(document: Any, path: str, reference: str) -> Any:
    """Follow `path` (`.A.B['key'][0]`) into `document`."""
    value = document
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise ValidationError(
                f"cannot read {reference!r} from {path[position:]!r}", field=FIELD
            )
        position = match.end()
        name, quoted1, quoted2, index = match.groups()
        key = name if name is not None else quoted1 if quoted1 is not None else quoted2
        if index is not None and isinstance(value, list):
            try:
                value = value[int(index)]
            except IndexError:
                raise ValidationError(f"{reference!r}: no element {index}", field=FIELD) from None
        elif isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key is not None:
            value = _named(value, key, reference)
        else:
            raise ValidationError(f"{reference!r}: the step has no {key or index!r}", field=FIELD)
    return value


def _named(items: list[Any], key: str, reference: str) -> Any:
    for item in items:
        if isinstance(item, dict) and any(
            member.endswith("Name") and value == key for member, value in item.items()
        ):
            return item
    raise ValidationError(f"{reference!r}: no element named {key!r}", field=FIELD)


def json_get(spec: dict[str, Any], context: Context) -> Any:
    path = str(spec.get("Path", ""))
    if "PropertyFile" in spec:
        target = spec["PropertyFile"]
        reference = target.get("Get", "") if isinstance(target, dict) else ""
        match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", reference)
        if match is None:
            raise ValidationError(
                f"Std:JsonGet's PropertyFile must be a Get of Steps.<step>.PropertyFiles.<name>, "
                f"not {target!r}",
                field=FIELD,
            )
        if match.group(1) not in context.properties:
            raise StepNotRun(f"{reference!r}: step {match.group(1)!r} did not run")
        document = context.read_property_file(match.group(1), match.group(2))
    elif "S3Uri" in spec:
        document = context.read_json(_text(resolve(spec["S3Uri"], context)))
    else:
        raise ValidationError("Std:JsonGet needs a PropertyFile or an S3Uri", field=FIELD)
    expression = path if path.startswith("$") else "$." + path if path else "$"
    return JsonPath(expression, "Std:JsonGet.Path", max_length=1024)(document)


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def holds(condition: dict[str, Any], context: Context) -> bool:
    kind = condition.get("Type")
    if kind in COMPARISONS:
        left, right = _comparable(
            resolve(condition["LeftValue"], context), resolve(condition["RightValue"], context)
        )
        try:
            return COMPARISONS[kind](left, right)
        except TypeError:
            raise ValidationError(
                f"condition {kind}: cannot compare {left!r} with {right!r}", field=FIELD
            ) from None
    if kind == "In":
        query = resolve(condition["QueryValue"], context)
        return any(
            _comparable(query, resolve(v, context))[0] == _comparable(query, resolve(v, context))[1]
            for v in condition["Values"]
        )
    if kind == "Not":
        return not holds(condition["Expression"], context)
    if kind == "Or":
        return any(holds(c, context) for c in condition["Conditions"])
    raise ValidationError(f"condition Type {kind!r} is not known", field=FIELD)


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Numbers compare as numbers even when one side is text (a parameter, a file)."""
    if isinstance(left, int | float) != isinstance(right, int | float):
        try:
            return float(left), float(right)
        except (TypeError, ValueError):
            return left, right
    return left, right


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
