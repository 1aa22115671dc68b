"""Evaluating step arguments: references, functions and conditions."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.errors import ValidationError
from sluice.pipelines.expressions import Context, StepNotRun, holds, resolve

PROPERTIES = {
    "Prep": {
        "ProcessingOutputConfig": {
            "Outputs": [
                {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/e1/train"}},
                {"OutputName": "eval", "S3Output": {"S3Uri": "s3://b/e1/eval"}},
            ]
        }
    },
    "Train": {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/m/model.tar.gz"}},
}


def context(files: dict[tuple[str, str], Any] | None = None) -> Context:
    return Context(
        parameters={"Threshold": 0.8, "Name": "digits", "Count": 3},
        execution={"PipelineExecutionId": "abc123"},
        properties=PROPERTIES,
        read_property_file=lambda step, name: (files or {})[(step, name)],
        read_json=lambda uri: {"uri": uri, "score": 0.9},
    )


def test_references_reach_parameters_execution_and_step_properties() -> None:
    value = resolve(
        {
            "Out": {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"},
            "First": {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs[1].OutputName"},
            "Model": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"},
            "Path": {
                "Std:Join": {
                    "On": "/",
                    "Values": [
                        "s3:/",
                        {"Get": "Parameters.Name"},
                        {"Get": "Execution.PipelineExecutionId"},
                    ],
                }
            },
            "List": [{"Get": "Parameters.Count"}, "x"],
        },
        context(),
    )
    assert value == {
        "Out": "s3://b/e1/train",
        "First": "eval",
        "Model": "s3://b/m/model.tar.gz",
        "Path": "s3://digits/abc123",
        "List": [3, "x"],
    }


def test_json_get_reads_property_files_and_uris() -> None:
    files = {("Eval", "Report"): {"metrics": {"accuracy": {"value": 0.93}}, "list": [1, 2]}}
    ctx = context(files)
    ctx.properties = {**PROPERTIES, "Eval": {}}
    get = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"},
            "Path": "metrics.accuracy.value",
        }
    }
    assert resolve(get, ctx) == 0.93
    indexed = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Eval.PropertyFiles.Report"},
            "Path": "list[1]",
        }
    }
    assert resolve(indexed, ctx) == 2
    by_uri = {"Std:JsonGet": {"S3Uri": "s3://b/r.json", "Path": "score"}}
    assert resolve(by_uri, ctx) == 0.9


def test_conditions_compare_numbers_across_types() -> None:
    ctx = context()
    ge = {
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": "0.85",
        "RightValue": {"Get": "Parameters.Threshold"},
    }
    assert holds(ge, ctx)
    assert not holds({"Type": "Not", "Expression": ge}, ctx)
    assert holds(
        {"Type": "In", "QueryValue": {"Get": "Parameters.Name"}, "Values": ["a", "digits"]}, ctx
    )
    assert holds(
        {"Type": "Or", "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 2}, ge]}, ctx
    )
    assert holds({"Type": "LessThan", "LeftValue": 1, "RightValue": 2}, ctx)
    with pytest.raises(ValidationError, match="cannot compare"):
        holds({"Type": "GreaterThan", "LeftValue": "a", "RightValue": [1]}, ctx)


def test_missing_things_are_named() -> None:
    ctx = context()
    with pytest.raises(StepNotRun, match="did not run"):
        resolve({"Get": "Steps.Later.ModelArtifacts.S3ModelArtifacts"}, ctx)
    with pytest.raises(ValidationError, match="no element named 'nope'"):
        resolve({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['nope'].S3Output"}, ctx)
    with pytest.raises(ValidationError, match="has no 'Missing'"):
        resolve({"Get": "Steps.Train.Missing"}, ctx)
