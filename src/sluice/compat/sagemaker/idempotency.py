"""Requests that carry an idempotency token are done once per token.

botocore fills ClientRequestToken (StartPipelineExecution, CreatePipeline, ...) or
ClientToken (CreateModelPackage) with a fresh UUID when the caller gives none, and sends
the same one again when it retries a request whose answer it did not get (a timeout, a
dropped connection). The first answer is kept for a day; the same token with the same
request gets it again, with another request a ValidationException. A request that failed
is not kept: sent again, it is tried again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sluice.compat.sagemaker.shapes import ValidationException
from sluice.store.idempotency_repo import IdempotencyRepository


@dataclass
class _InFlight:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    requests: int = 0


class Idempotency:
    def __init__(self, answers: IdempotencyRepository) -> None:
        self.answers = answers
        self._in_flight: dict[tuple[str, str], _InFlight] = {}

    async def once(
        self,
        operation: str,
        member: str,
        request: dict[str, Any],
        run: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """`run()`'s answer (on the wire: JSON), or the answer kept for this token."""
        token = str(request[member])
        asked = _fingerprint({k: v for k, v in request.items() if k != member})
        key = (operation, token)
        in_flight = self._in_flight.setdefault(key, _InFlight())
        in_flight.requests += 1
        try:
            # The same token twice at once: the second waits for the first's answer.
            async with in_flight.lock:
                kept = await asyncio.to_thread(self.answers.get, operation, token)
                if kept is not None:
                    if kept.request_sha256 != asked:
                        raise ValidationException(
                            f"{member} {token!r} was used with another {operation} "
                            "request; a token stands for one request",
                            field=member,
                        )
                    return kept.response
                answer = await run()
                await asyncio.to_thread(self.answers.record, operation, token, asked, answer)
                return answer
        finally:
            in_flight.requests -= 1
            if not in_flight.requests:
                del self._in_flight[key]


def _fingerprint(request: dict[str, Any]) -> str:
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
