"""A pipeline's RegisterModel step started again under the same resource name (its server
died between registering the package and recording the step) gets the package it made
instead of registering a second one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sluice.compat.sagemaker.pipeline_steps import SageMakerSteps
from sluice.entities import StepStatus
from sluice.server import build_server
from sluice.settings import Settings
from tests import models

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"


def test_a_register_step_started_twice_registers_once(tmp_path: Path) -> None:
    models.write_sklearn(tmp_path / "home" / "s3" / "models" / "a", models.digits_logreg())
    server = build_server(Settings(home=tmp_path / "home", insecure_local=True))
    steps = server.pipelines.actions
    assert isinstance(steps, SageMakerSteps)
    arguments = {
        "ModelPackageGroupName": "digits",
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://models/a"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelApprovalStatus": "PendingManualApproval",
    }
    name = "pipelines-abc123-register-0a1b2c3d4e"
    folder = tmp_path / "step"

    async def run_twice() -> list[str]:
        arns = []
        for _ in range(2):
            steps.packages.clear()  # what a restarted server remembers of the first start
            await steps.start("RegisterModel", name, arguments, folder)
            outcome = await steps.wait("RegisterModel", name)
            assert outcome.status is StepStatus.SUCCEEDED, outcome.reason
            arns.append(outcome.metadata["RegisterModel"]["Arn"])
        # Another step (another name) with the same arguments is another version.
        await steps.start("RegisterModel", name + "x", arguments, folder)
        arns.append(
            (await steps.wait("RegisterModel", name + "x")).metadata["RegisterModel"]["Arn"]
        )
        return arns

    first, again, other = asyncio.run(run_twice())
    assert first == again and first.endswith("/digits/1") and other.endswith("/digits/2")
    assert [p.version for p in steps.s.registry.packages("digits")] == [1, 2]
