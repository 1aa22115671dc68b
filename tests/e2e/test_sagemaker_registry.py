"""SageMaker's Model Registry through boto3, unchanged, against a running server: groups,
versioned packages, approval, a model made from a package, and the refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sluice.compat.sagemaker.shapes import ServiceModel
from tests.conftest import RunningServer
from tests.e2e.helpers import digit_rows
from tests.e2e.test_sagemaker_workflow import ROLE, clients, conforms, wait

pytestmark = pytest.mark.slow

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"
ARN = "arn:aws:sagemaker:us-east-1:000000000000"


@pytest.fixture(scope="module")
def shapes() -> ServiceModel:
    return ServiceModel(
        "sagemaker",
        ["DescribeModelPackageGroup", "ListModelPackageGroups", "DescribeModelPackage",
         "ListModelPackages"],
    )  # fmt: skip


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def _spec(artifact: Path) -> dict[str, object]:
    return {
        "Containers": [{"Image": IMAGE, "ModelDataUrl": artifact.as_uri()}],
        "SupportedContentTypes": ["application/json", "text/csv"],
        "SupportedResponseMIMETypes": ["application/json"],
    }


def test_registry_workflow_through_boto3(
    server: RunningServer, artifacts: dict[str, Path], shapes: ServiceModel
) -> None:
    sm, runtime = clients(server.url)
    group_arn = sm.create_model_package_group(
        ModelPackageGroupName="Churn",
        ModelPackageGroupDescription="churn classifiers",
        Tags=[{"Key": "team", "Value": "growth"}],
    )["ModelPackageGroupArn"]
    assert group_arn == f"{ARN}:model-package-group/churn"
    group = sm.describe_model_package_group(ModelPackageGroupName="Churn")
    conforms(shapes, "DescribeModelPackageGroup", group)
    assert group["ModelPackageGroupStatus"] == "Completed"
    with pytest.raises(ClientError, match="already exists"):
        sm.create_model_package_group(ModelPackageGroupName="churn")

    def candidate(i: int, name: str) -> dict[str, Any]:
        return {
            "ModelPackageGroupName": group_arn if i == 1 else "Churn",
            "ModelPackageDescription": f"candidate {i + 1}",
            "InferenceSpecification": _spec(artifacts[name]),
            "MetadataProperties": {"CommitId": f"abc{i}", "Repository": "git@example:ml"},
            "CustomerMetadataProperties": {"owner": "ml"},
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"s3://reports/eval-{i}.json",
                    }
                }
            },
            "ClientToken": f"build-{i}",
        }

    arns = []
    for i, name in enumerate(["logreg", "tree", "logreg"]):
        arns.append(sm.create_model_package(**candidate(i, name))["ModelPackageArn"])
    assert arns == [f"{ARN}:model-package/churn/{v}" for v in (1, 2, 3)]
    again = sm.create_model_package(**candidate(1, "tree"))
    assert again["ModelPackageArn"] == arns[1]  # the same request and token: the same package
    with pytest.raises(ClientError, match="ClientToken 'build-1' was used with another"):
        sm.create_model_package(
            ModelPackageGroupName="Churn",
            InferenceSpecification=_spec(artifacts["logreg"]),
            ClientToken="build-1",
        )

    described = sm.describe_model_package(ModelPackageName=arns[1])
    conforms(shapes, "DescribeModelPackage", described)
    assert (described["ModelPackageGroupName"], described["ModelPackageVersion"]) == ("Churn", 2)
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["MetadataProperties"]["CommitId"] == "abc1"
    assert described["CustomerMetadataProperties"] == {"owner": "ml"}
    assert described["CreatedBy"]["IamIdentity"]["PrincipalId"] == "AKIDEXAMPLE"
    assert sm.describe_model_package(ModelPackageName="Churn/3")["ModelPackageVersion"] == 3

    sm.update_model_package(
        ModelPackageArn=arns[1], ModelApprovalStatus="Approved", ApprovalDescription="AUC +2pt"
    )
    sm.update_model_package(
        ModelPackageArn=arns[2],
        ModelApprovalStatus="Rejected",
        CustomerMetadataProperties={"ticket": "ML-7"},
        CustomerMetadataPropertiesToRemove=["owner"],
    )
    approved = sm.describe_model_package(ModelPackageName=arns[1])
    assert approved["ModelApprovalStatus"] == "Approved"
    assert approved["ApprovalDescription"] == "AUC +2pt"
    assert approved["LastModifiedBy"]["IamIdentity"]["PrincipalId"] == "AKIDEXAMPLE"
    rejected = sm.describe_model_package(ModelPackageName=arns[2])
    assert rejected["CustomerMetadataProperties"] == {"ticket": "ML-7"}
    with pytest.raises(ClientError, match="immutable") as immutable:
        sm.update_model_package(
            ModelPackageArn=arns[0], InferenceSpecification=_spec(artifacts["tree"])
        )
    assert _code(immutable) == "ValidationException"

    listed = sm.list_model_packages(ModelPackageGroupName="Churn", ModelApprovalStatus="Approved")
    conforms(shapes, "ListModelPackages", listed)
    assert [p["ModelPackageArn"] for p in listed["ModelPackageSummaryList"]] == [arns[1]]
    pages = sm.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group_arn,
        SortBy="CreationTime",
        SortOrder="Ascending",
        PaginationConfig={"PageSize": 2},
    )
    assert [p["ModelPackageVersion"] for page in pages
            for p in page["ModelPackageSummaryList"]] == [1, 2, 3]  # fmt: skip
    groups = sm.list_model_package_groups(NameContains="chu")
    conforms(shapes, "ListModelPackageGroups", groups)
    assert [g["ModelPackageGroupName"] for g in groups["ModelPackageGroupSummaryList"]] == ["Churn"]
    tags = sm.list_tags(ResourceArn=group_arn)["Tags"]
    assert tags == [{"Key": "team", "Value": "growth"}]
    sm.add_tags(ResourceArn=arns[1], Tags=[{"Key": "stage", "Value": "prod"}])
    assert sm.list_tags(ResourceArn=arns[1])["Tags"] == [{"Key": "stage", "Value": "prod"}]

    # Deploy from the registry: CreateModel with ModelPackageName.
    sm.create_model(
        ModelName="churn-v2",
        PrimaryContainer={"ModelPackageName": arns[1]},
        ExecutionRoleArn=ROLE,
    )
    with pytest.raises(ClientError, match="takes it from the package"):
        sm.create_model(
            ModelName="bad",
            PrimaryContainer={"ModelPackageName": arns[1], "Image": IMAGE},
            ExecutionRoleArn=ROLE,
        )
    sm.create_endpoint_config(
        EndpointConfigName="churn",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "churn-v2",
                             "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
    )  # fmt: skip
    sm.create_endpoint(EndpointName="churn", EndpointConfigName="churn")
    wait(sm, "endpoint_in_service", "churn")
    answer = runtime.invoke_endpoint(
        EndpointName="churn", ContentType="application/json", Body=digit_rows(1)[0]
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200

    with pytest.raises(ClientError, match="in use by model") as in_use:
        sm.delete_model_package(ModelPackageName=arns[1])
    assert _code(in_use) == "ConflictException"
    with pytest.raises(ClientError, match="still holds") as holds:
        sm.delete_model_package_group(ModelPackageGroupName="Churn")
    assert _code(holds) == "ConflictException"
    sm.delete_model_package(ModelPackageName=arns[0])
    with pytest.raises(ClientError, match="does not exist"):
        sm.describe_model_package(ModelPackageName=arns[0])
    with pytest.raises(ClientError, match="ModelPackageGroupName is required"):
        sm.create_model_package(
            ModelPackageName="loose", InferenceSpecification=_spec(artifacts["logreg"])
        )
    with pytest.raises(ClientError, match="does not exist"):
        sm.describe_model_package_group(ModelPackageGroupName="ghost")
    sm.close()
    runtime.close()
