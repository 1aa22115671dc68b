"""A pipeline definition read and checked: parameters, steps (a condition's branch steps
among them) and what each step waits for.

A step waits for the steps its `DependsOn` names, the steps its arguments reference
(`{"Get": "Steps.<name>..."}`), and, for a step in a condition's `IfSteps` or `ElseSteps`,
that condition; it runs only if the condition chose its branch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import ValidationError
from sluice.pipelines.caching import expire_after_s

VERSION = "2020-12-01"
SERVED = ("Processing", "Training", "Transform", "Model", "RegisterModel", "Condition", "Fail")
NOT_SERVED = ("Tuning", "AutoML", "Lambda", "Callback", "ClarifyCheck", "QualityCheck", "EMR")
CACHEABLE = ("Processing", "Training", "Transform")
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
STEP_NAME = re.compile(r"[A-Za-z0-9\-_]{1,64}")
_STEP_REFERENCE = re.compile(r"^Steps\.([^.\[]+)")
FIELD = "PipelineDefinition"


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any = None

    def value(self, given: str | None) -> Any:
        """The parameter's value for an execution: `given` (as sent, a string) cast to
        the parameter's type, else its default."""
        if given is None:
            if self.default is None:
                raise ValidationError(
                    f"the pipeline parameter {self.name!r} has no default: give it a value",
                    field="PipelineParameters",
                )
            return self.default
        try:
            if self.type == "Integer":
                return int(given)
            if self.type == "Float":
                return float(given)
            if self.type == "Boolean":
                if given.lower() not in ("true", "false"):
                    raise ValueError(given)
                return given.lower() == "true"
        except ValueError:
            raise ValidationError(
                f"the pipeline parameter {self.name!r} is {self.type}, not {given!r}",
                field="PipelineParameters",
            ) from None
        return given


@dataclass(frozen=True)
class Step:
    name: str
    type: str
    arguments: dict[str, Any]
    depends_on: frozenset[str] = frozenset()
    """Every step this one waits for (explicit, referenced, and its condition)."""
    condition: str | None = None
    """The condition step whose branch holds this step."""
    cache_enabled: bool = False
    cache_expire_after: str | None = None
    retry_policies: tuple[dict[str, Any], ...] = ()
    property_files: tuple[dict[str, str], ...] = ()
    display_name: str | None = None
    description: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Definition:
    parameters: dict[str, Parameter]
    steps: dict[str, Step]
    experiment: dict[str, Any] | None = None

    def parameter_values(self, given: dict[str, str]) -> dict[str, Any]:
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            raise ValidationError(
                f"the pipeline has no parameter {unknown[0]!r} (it has: "
                f"{', '.join(self.parameters) or 'none'})",
                field="PipelineParameters",
            )
        return {name: p.value(given.get(name)) for name, p in self.parameters.items()}

    def branch_of(self, condition: str, outcome: bool) -> list[str]:
        key = "IfSteps" if outcome else "ElseSteps"
        return [s["Name"] for s in self.steps[condition].arguments.get(key, [])]

    def ancestors(self, name: str) -> set[str]:
        """Every step `name` waits for, directly or through others."""
        found: set[str] = set()
        waiting = list(self.steps[name].depends_on)
        while waiting:
            step = waiting.pop()
            if step not in found:
                found.add(step)
                waiting.extend(self.steps[step].depends_on)
        return found

    def selection(self, selected: list[str]) -> set[str]:
        """The steps outside `selected` whose results the selected ones take (a selective
        execution's needs from its source execution); refuses unknown steps and a
        selection that leaves out a step on a path between two selected ones."""
        where = "SelectiveExecutionConfig.SelectedSteps"
        unknown = [name for name in selected if name not in self.steps]
        if unknown:
            raise ValidationError(f"the pipeline has no step {unknown[0]!r}", field=where)
        chosen = set(selected)
        for name in self.steps:
            if name in chosen or not self.ancestors(name) & chosen:
                continue
            after = sorted(s for s in chosen if name in self.ancestors(s))
            if after:
                raise ValidationError(
                    f"step {name!r} lies between selected steps (before {after[0]!r}): "
                    "select it too",
                    field=where,
                )
        return {dep for name in chosen for dep in self.steps[name].depends_on} - chosen


def parse(text: str) -> Definition:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"the pipeline definition is not JSON: {exc}", field=FIELD) from None
    if not isinstance(document, dict):
        raise ValidationError("the pipeline definition must be a JSON object", field=FIELD)
    version = document.get("Version")
    if version != VERSION:
        raise ValidationError(
            f"pipeline definition Version {version!r} is not served ({VERSION} is)", field=FIELD
        )
    parameters: dict[str, Parameter] = {}
    for raw in document.get("Parameters") or []:
        kind = raw.get("Type", "String")
        if kind not in PARAMETER_TYPES:
            raise ValidationError(
                f"parameter {raw.get('Name')!r} has Type {kind!r} (one of "
                f"{', '.join(PARAMETER_TYPES)})",
                field=FIELD,
            )
        parameters[raw["Name"]] = Parameter(raw["Name"], kind, raw.get("DefaultValue"))
    raw_steps: list[tuple[dict[str, Any], str | None]] = []
    _collect(document.get("Steps") or [], None, raw_steps)
    if not raw_steps:
        raise ValidationError("the pipeline definition has no steps", field=FIELD)
    names = [s["Name"] for s, _ in raw_steps]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValidationError(f"step name {twice[0]!r} is used twice", field=FIELD)
    steps = {s["Name"]: _step(s, condition, set(names), parameters) for s, condition in raw_steps}
    _no_cycle(steps)
    return Definition(parameters, steps, document.get("PipelineExperimentConfig"))


def _collect(
    raw: list[dict[str, Any]], condition: str | None, out: list[tuple[dict[str, Any], str | None]]
) -> None:
    for step in raw:
        if not isinstance(step, dict) or not isinstance(step.get("Name"), str):
            raise ValidationError("each step needs a Name", field=FIELD)
        if not STEP_NAME.fullmatch(step["Name"]):
            raise ValidationError(
                f"step name {step['Name']!r} must be 1 to 64 letters, digits, - and _ "
                "(SageMaker's StepName)",
                field=FIELD,
            )
        out.append((step, condition))
        if step.get("Type") == "Condition":
            arguments = step.get("Arguments") or {}
            _collect(
                [*arguments.get("IfSteps", []), *arguments.get("ElseSteps", [])], step["Name"], out
            )


def _step(
    raw: dict[str, Any], condition: str | None, names: set[str], parameters: dict[str, Parameter]
) -> Step:
    name, kind = raw["Name"], raw.get("Type")
    where = f"step {name!r}"
    if kind in NOT_SERVED:
        raise ValidationError(
            f"{where}: {kind} steps are not served (served: {', '.join(SERVED)})", field=FIELD
        )
    if kind not in SERVED:
        raise ValidationError(f"{where}: unknown step Type {kind!r}", field=FIELD)
    arguments = raw.get("Arguments") or {}
    if not isinstance(arguments, dict):
        raise ValidationError(f"{where}: Arguments must be an object", field=FIELD)
    body = {k: v for k, v in arguments.items() if k not in ("IfSteps", "ElseSteps")}
    waits = set(raw.get("DependsOn") or [])
    for reference in references(body):
        if reference.startswith("Steps."):
            match = _STEP_REFERENCE.match(reference)
            waits.add(match.group(1) if match else reference)
        elif reference.startswith("Parameters.") and reference.split(".", 1)[1] not in parameters:
            raise ValidationError(f"{where} references unknown {reference}", field=FIELD)
    unknown = sorted(waits - names)
    if unknown:
        raise ValidationError(f"{where} depends on unknown step {unknown[0]!r}", field=FIELD)
    if name in waits:
        raise ValidationError(f"{where} depends on itself", field=FIELD)
    if condition is not None:
        waits.add(condition)
    cache = raw.get("CacheConfig") or {}
    expiry = cache.get("ExpireAfter")
    if expiry and expire_after_s(expiry) is None:
        raise ValidationError(
            f"{where}: CacheConfig.ExpireAfter {expiry!r} is not an ISO 8601 duration (P30D, "
            "PT12H, ...)",
            field=FIELD,
        )
    if cache.get("Enabled") and kind not in CACHEABLE:
        raise ValidationError(f"{where}: caching is for {', '.join(CACHEABLE)} steps", field=FIELD)
    return Step(
        name,
        kind,
        arguments,
        frozenset(waits),
        condition,
        bool(cache.get("Enabled")),
        cache.get("ExpireAfter"),
        tuple(raw.get("RetryPolicies") or ()),
        tuple(raw.get("PropertyFiles") or ()),
        raw.get("DisplayName"),
        raw.get("Description"),
        raw,
    )


def references(value: Any) -> list[str]:
    """Every `Get` target in `value`: Parameters.X, Execution.X, Steps.X..."""
    found: list[str] = []
    if isinstance(value, dict):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            return [value["Get"]]
        for inner in value.values():
            found += references(inner)
    elif isinstance(value, list):
        for inner in value:
            found += references(inner)
    return found


def _no_cycle(steps: dict[str, Step]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            loop = " -> ".join([*path[path.index(name) :], name])
            raise ValidationError(f"the steps wait for each other: {loop}", field=FIELD)
        state[name] = 1
        for before in sorted(steps[name].depends_on):
            visit(before, [*path, name])
        state[name] = 2

    for name in steps:
        visit(name, [])
