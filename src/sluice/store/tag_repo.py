"""Tags on resources. A resource's tags go with it: its repository calls `drop_tags`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import LimitExceeded
from sluice.store.db import Database
from sluice.store.tables import TagRow


def drop_tags(session: Session, kind: e.ResourceKind, name: str) -> None:
    """Delete a resource's tags inside the transaction that deletes the resource."""
    session.execute(delete(TagRow).where(TagRow.kind == kind.value, TagRow.resource == name))


class TagRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    def put(
        self, kind: e.ResourceKind, name: str, tags: Sequence[e.Tag], limit: int
    ) -> list[e.Tag]:
        """Add tags, replacing the value of keys already there; returns all the tags.

        Refused (nothing added) when the resource would have more than `limit` tags."""
        with self.db.session() as session:
            existing = {row.key: row for row in self._rows(session, kind, name)}
            total = len(existing.keys() | {t.key for t in tags})
            if total > limit:
                raise LimitExceeded(
                    f"a resource has at most {limit} tags; this would make {total}", field="Tags"
                )
            last = session.scalar(
                select(func.max(TagRow.position)).where(
                    TagRow.kind == kind.value, TagRow.resource == name
                )
            )
            position = -1 if last is None else last
            for tag in tags:
                row = existing.get(tag.key)
                if row is None:
                    position += 1
                    row = TagRow(kind=kind.value, resource=name, key=tag.key, position=position)
                    session.add(row)
                    existing[tag.key] = row
                row.value = tag.value
            session.flush()
            return [e.Tag(r.key, r.value) for r in self._rows(session, kind, name)]

    def get(self, kind: e.ResourceKind, name: str) -> list[e.Tag]:
        with self.db.session() as session:
            return [e.Tag(r.key, r.value) for r in self._rows(session, kind, name)]

    def delete(self, kind: e.ResourceKind, name: str, keys: Iterable[str]) -> None:
        with self.db.session() as session:
            session.execute(
                delete(TagRow).where(
                    TagRow.kind == kind.value, TagRow.resource == name, TagRow.key.in_(list(keys))
                )
            )

    def _rows(self, session: Session, kind: e.ResourceKind, name: str) -> list[TagRow]:
        stmt = (
            select(TagRow)
            .where(TagRow.kind == kind.value, TagRow.resource == name)
            .order_by(TagRow.position)
        )
        return list(session.scalars(stmt))
