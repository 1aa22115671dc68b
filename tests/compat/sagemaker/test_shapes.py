"""Requests checked against botocore's service model, in AWS's words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sluice.compat.sagemaker.shapes import ServiceModel, ValidationException


@pytest.fixture(scope="module")
def model() -> ServiceModel:
    return ServiceModel(
        "sagemaker", ["CreateEndpointConfig", "ListEndpoints", "AddTags", "DescribeEndpoint"]
    )


def problem(model: ServiceModel, operation: str, members: object) -> ValidationException:
    with pytest.raises(ValidationException) as info:
        model.decode_input(operation, members)
    return info.value


def test_only_the_operations_served_and_their_shapes_are_kept(model: ServiceModel) -> None:
    assert set(model.operations) == {
        "CreateEndpointConfig", "ListEndpoints", "AddTags", "DescribeEndpoint"
    }  # fmt: skip
    assert "ProductionVariant" in model.shapes and "CreateTrainingJobRequest" not in model.shapes
    assert model.errors("CreateEndpointConfig") == {"ResourceLimitExceeded"}


def test_a_good_request_is_decoded(model: ServiceModel) -> None:
    members = model.decode_input(
        "ListEndpoints",
        {"CreationTimeAfter": 1700000000, "CreationTimeBefore": "2026-01-02T03:04:05Z",
         "MaxResults": 5, "Unknown": "ignored, as AWS does for newer clients"},
    )  # fmt: skip
    assert members == {
        "CreationTimeAfter": datetime.fromtimestamp(1700000000, UTC),
        "CreationTimeBefore": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "MaxResults": 5,
    }


def test_each_constraint_is_reported_with_the_member_path(model: ServiceModel) -> None:
    variant = {"VariantName": "A", "ModelName": "m", "InitialVariantWeight": True}
    exc = problem(
        model,
        "CreateEndpointConfig",
        {"EndpointConfigName": "x" * 64, "ProductionVariants": [variant, {"ModelName": "m"}]},
    )
    assert exc.message.startswith("4 validation errors detected: ")
    assert "at 'endpointConfigName' failed to satisfy constraint: Member must have length " \
        "less than or equal to 63" in exc.message  # fmt: skip
    assert "at 'productionVariants.1.member.initialVariantWeight' failed to satisfy " \
        "constraint: Member must be a number" in exc.message  # fmt: skip
    assert "Value null at 'productionVariants.2.member.variantName'" in exc.message
    assert exc.field == "endpointConfigName"
    assert problem(model, "ListEndpoints", {"StatusEquals": "Sleeping"}).message.endswith(
        "Member must satisfy enum value set: [OutOfService, Creating, Updating, SystemUpdating, "
        "RollingBack, InService, Deleting, Failed, UpdateRollbackFailed]"
    )
    assert (
        "be a timestamp" in problem(model, "ListEndpoints", {"CreationTimeAfter": "soon"}).message
    )
    assert "must be a JSON object" in problem(model, "ListEndpoints", [1]).message


def test_java_unicode_classes_in_patterns(model: ServiceModel) -> None:
    arn = "arn:aws:sagemaker:us-east-1:000000000000:model/m"
    tags = [{"Key": "équipe", "Value": "données d'été"}]
    with pytest.raises(ValidationException, match="tags.1.member.value"):
        model.decode_input("AddTags", {"ResourceArn": arn, "Tags": tags})  # "'" is not allowed
    tags = [{"Key": "équipe", "Value": "données été: 1/2 +@="}]
    assert model.decode_input("AddTags", {"ResourceArn": arn, "Tags": tags})["Tags"] == tags


def test_local_uris_are_taken_where_s3_uris_are(model: ServiceModel) -> None:
    def config(uri: str) -> dict[str, object]:
        capture = {"InitialSamplingPercentage": 10, "DestinationS3Uri": uri,
                   "CaptureOptions": [{"CaptureMode": "Input"}]}  # fmt: skip
        return {"EndpointConfigName": "c", "DataCaptureConfig": capture,
                "ProductionVariants": [{"VariantName": "A"}]}  # fmt: skip

    for uri in ("s3://bucket/prefix", "file:///srv/capture", "/srv/capture"):
        model.decode_input("CreateEndpointConfig", config(uri))
    with pytest.raises(ValidationException, match="dataCaptureConfig.destinationS3Uri"):
        model.decode_input("CreateEndpointConfig", config("ftp://host/x"))


def test_responses_are_checked_strictly(model: ServiceModel) -> None:
    arn = "arn:aws:sagemaker:us-east-1:000000000000:endpoint/ep"
    answer = {"EndpointName": "ep", "EndpointArn": arn, "EndpointStatus": "InService",
              "CreationTime": 1.0, "LastModifiedTime": 2.0, "Extra": 1}  # fmt: skip
    assert list(model.problems("DescribeEndpointOutput", answer)) == [
        "extra: not a member of DescribeEndpointOutput"
    ]
    answer = {**answer, "CreationTime": "2026-01-01"}
    answer.pop("Extra")
    assert list(model.problems("DescribeEndpointOutput", answer)) == [
        "creationTime: timestamps go out as epoch seconds, not '2026-01-01'"
    ]
