"""Reading pipeline definitions: dependencies, branches, selections, and the refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.errors import ValidationError
from sluice.pipelines.definition import parse


def document(*steps: dict[str, Any], parameters: list[dict[str, Any]] | None = None) -> str:
    return json.dumps(
        {"Version": "2020-12-01", "Parameters": parameters or [], "Steps": list(steps)}
    )


def processing(name: str, source: Any = "s3://b/in", **extra: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "Processing",
        "Arguments": {"ProcessingInputs": [{"S3Input": {"S3Uri": source}}]},
        **extra,
    }


def test_dependencies_come_from_references_depends_on_and_branches() -> None:
    reference = {"Get": "Steps.A.ProcessingOutputConfig.Outputs['x'].S3Output.S3Uri"}
    definition = parse(
        document(
            processing("A"),
            processing("B", reference),
            processing("C", DependsOn=["A"]),
            {
                "Name": "Check",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [],
                    "IfSteps": [processing("D")],
                    "ElseSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {}}],
                },
            },
        )
    )
    steps = definition.steps
    assert steps["A"].depends_on == frozenset()
    assert steps["B"].depends_on == {"A"}
    assert steps["C"].depends_on == {"A"}
    assert steps["D"].depends_on == {"Check"} and steps["D"].condition == "Check"
    assert definition.branch_of("Check", True) == ["D"]
    assert definition.branch_of("Check", False) == ["Stop"]


def test_parameters_take_their_types_and_defaults() -> None:
    definition = parse(
        document(
            processing("A"),
            parameters=[
                {"Name": "Rate", "Type": "Float", "DefaultValue": 0.5},
                {"Name": "Count", "Type": "Integer", "DefaultValue": 3},
                {"Name": "On", "Type": "Boolean", "DefaultValue": False},
                {"Name": "Where", "Type": "String"},
            ],
        )
    )
    values = definition.parameter_values({"Count": "7", "On": "true", "Where": "s3://b"})
    assert values == {"Rate": 0.5, "Count": 7, "On": True, "Where": "s3://b"}
    with pytest.raises(ValidationError, match="is Integer, not 'many'"):
        definition.parameter_values({"Count": "many", "Where": "x"})
    with pytest.raises(ValidationError, match="has no default"):
        definition.parameter_values({})
    with pytest.raises(ValidationError, match="has no parameter 'Nope'"):
        definition.parameter_values({"Where": "x", "Nope": "1"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        (json.dumps({"Version": "2019-01-01", "Steps": []}), "Version"),
        (document(), "no steps"),
        (document(processing("A"), processing("A")), "used twice"),
        (document(processing("../../etc")), "must be 1 to 64 letters"),
        (document({"Name": "T", "Type": "Tuning", "Arguments": {}}), "Tuning steps are not served"),
        (document({"Name": "T", "Type": "Teleport", "Arguments": {}}), "unknown step Type"),
        (document(processing("A", {"Get": "Steps.Z.X"})), "unknown step 'Z'"),
        (document(processing("A", {"Get": "Parameters.Z"})), "unknown Parameters.Z"),
        (
            document(processing("A", DependsOn=["B"]), processing("B", DependsOn=["A"])),
            "wait for each other",
        ),
        (
            document(
                {"Name": "F", "Type": "Fail", "Arguments": {}, "CacheConfig": {"Enabled": True}}
            ),
            "caching is for",
        ),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse(text)


def test_a_selection_names_what_it_takes_from_its_source_and_leaves_no_gap() -> None:
    def after(step: str) -> dict[str, str]:
        return {"Get": f"Steps.{step}.ProcessingOutputConfig.Outputs['x'].S3Output.S3Uri"}

    # A -> B -> C -> D, and E after A.
    definition = parse(
        document(
            processing("A"),
            processing("B", after("A")),
            processing("C", after("B")),
            processing("D", after("C")),
            processing("E", after("A")),
        )
    )
    assert definition.ancestors("D") == {"A", "B", "C"}
    assert definition.selection(["C", "D"]) == {"B"}
    assert definition.selection(["A", "E"]) == set()
    assert definition.selection(["B", "E"]) == {"A"}
    with pytest.raises(ValidationError, match="step 'C' lies between selected steps"):
        definition.selection(["B", "D"])
    with pytest.raises(ValidationError, match="no step 'Z'") as unknown:
        definition.selection(["Z"])
    assert unknown.value.field == "SelectiveExecutionConfig.SelectedSteps"
