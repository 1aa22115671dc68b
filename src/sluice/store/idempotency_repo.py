"""The answers to requests that carried an idempotency token, kept for a day: a request
sent again with the same token gets the first answer instead of being done twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from sluice.store.db import Database
from sluice.store.tables import IdempotencyTokenRow, aware, utcnow

KEPT_FOR = timedelta(hours=24)
"""How long a token is remembered (as AWS keeps them: at least a day)."""


@dataclass(frozen=True)
class Answered:
    request_sha256: str
    """What the request that used the token asked for (its members but the token)."""
    response: dict[str, Any]
    """The answer it got, as sent."""


class IdempotencyRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    def get(self, operation: str, token: str) -> Answered | None:
        with self.db.session() as session:
            row = session.get(IdempotencyTokenRow, (operation, token))
            if row is None or aware(row.created_at) < utcnow() - KEPT_FOR:
                return None
            return Answered(row.request_sha256, dict(row.response))

    def record(
        self, operation: str, token: str, request_sha256: str, response: dict[str, Any]
    ) -> None:
        """Keep the answer (and forget tokens older than a day). A token another gateway
        recorded first keeps its answer."""
        now = utcnow()
        try:
            with self.db.session() as session:
                session.execute(
                    delete(IdempotencyTokenRow).where(
                        IdempotencyTokenRow.created_at < now - KEPT_FOR
                    )
                )
                session.add(
                    IdempotencyTokenRow(
                        operation=operation,
                        token=token,
                        request_sha256=request_sha256,
                        response=response,
                        created_at=now,
                    )
                )
        except IntegrityError:
            pass
