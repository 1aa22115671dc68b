"""Requests with an idempotency token are done once per token: the same request sent
again (at once, or later, or to a restarted server) gets the first answer; the token with
another request is refused; a failed request is not remembered; a day-old token is
forgotten. On SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from sluice.compat.sagemaker.idempotency import Idempotency
from sluice.compat.sagemaker.shapes import ServiceModel, ValidationException
from sluice.errors import InvalidState
from sluice.store.db import Database
from sluice.store.idempotency_repo import KEPT_FOR, IdempotencyRepository
from sluice.store.tables import IdempotencyTokenRow, utcnow

START = "StartPipelineExecution"


class Starts:
    """Starts executions: each call a new one."""

    def __init__(self) -> None:
        self.started = 0

    async def __call__(self) -> dict[str, Any]:
        self.started += 1
        await asyncio.sleep(0.01)  # long enough for a second request to arrive meanwhile
        return {"PipelineExecutionArn": f"execution/{self.started}"}


def request(token: str, **more: Any) -> dict[str, Any]:
    return {"PipelineName": "scoring", "ClientRequestToken": token, **more}


def test_the_same_request_twice_at_once_or_later_is_done_once(database: Database) -> None:
    starts = Starts()

    async def main() -> list[dict[str, Any]]:
        once = Idempotency(IdempotencyRepository(database))
        first = await asyncio.gather(
            *(once.once(START, "ClientRequestToken", request("a" * 32), starts) for _ in range(3))
        )
        other = await once.once(START, "ClientRequestToken", request("b" * 32), starts)
        restarted = Idempotency(IdempotencyRepository(database))  # a new server, same store
        later = await restarted.once(START, "ClientRequestToken", request("a" * 32), starts)
        assert not once._in_flight  # nothing is kept in memory once answered
        return [*first, other, later]

    answers = asyncio.run(main())
    assert [a["PipelineExecutionArn"] for a in answers] == [
        "execution/1",
        "execution/1",
        "execution/1",
        "execution/2",
        "execution/1",
    ]
    assert starts.started == 2


def test_a_token_stands_for_one_request(database: Database) -> None:
    starts = Starts()
    once = Idempotency(IdempotencyRepository(database))
    asyncio.run(once.once(START, "ClientRequestToken", request("a" * 32), starts))
    changed = request("a" * 32, PipelineParameters=[{"Name": "Pause", "Value": "1"}])
    with pytest.raises(ValidationException, match="was used with another") as refused:
        asyncio.run(once.once(START, "ClientRequestToken", changed, starts))
    assert refused.value.field == "ClientRequestToken" and starts.started == 1
    # The same token for another operation is another request.
    asyncio.run(once.once("StopPipelineExecution", "ClientRequestToken", changed, starts))
    assert starts.started == 2


def test_a_failed_request_is_tried_again_and_an_old_token_is_forgotten(
    database: Database,
) -> None:
    starts = Starts()

    async def refuses() -> dict[str, Any]:
        raise InvalidState("the pipeline is being deleted")

    once = Idempotency(IdempotencyRepository(database))
    with pytest.raises(InvalidState):
        asyncio.run(once.once(START, "ClientRequestToken", request("a" * 32), refuses))
    first = asyncio.run(once.once(START, "ClientRequestToken", request("a" * 32), starts))
    assert first == {"PipelineExecutionArn": "execution/1"}
    with database.session() as session:
        session.execute(
            update(IdempotencyTokenRow).values(created_at=utcnow() - KEPT_FOR - timedelta(1))
        )
    again = asyncio.run(once.once(START, "ClientRequestToken", request("a" * 32), starts))
    assert again == {"PipelineExecutionArn": "execution/2"}


def test_the_operations_that_take_a_token_are_read_from_the_service_model() -> None:
    model = ServiceModel(
        "sagemaker", [START, "CreateModelPackage", "CreatePipeline", "DescribePipeline"]
    )
    assert model.idempotency_token(START) == "ClientRequestToken"
    assert model.idempotency_token("CreatePipeline") == "ClientRequestToken"
    assert model.idempotency_token("CreateModelPackage") == "ClientToken"
    assert model.idempotency_token("DescribePipeline") is None
