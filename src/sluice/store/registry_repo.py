"""The model registry's store: package groups, numbered packages and their history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import AlreadyExists, InvalidState, NotFound
from sluice.store.db import Database
from sluice.store.tables import (
    ModelPackageRow,
    ModelRow,
    PackageEventRow,
    PackageGroupRow,
    utcnow,
)
from sluice.store.tag_repo import drop_tags


class RegistryRepository:
    """Every method is one transaction."""

    def __init__(self, database: Database) -> None:
        self.db = database

    # -- groups

    def add_group(self, group: e.PackageGroup) -> e.PackageGroup:
        row = PackageGroupRow(
            name=group.name,
            description=group.description,
            requires_approval=group.requires_approval,
            latest_version=0,
            created_at=utcnow(),
            details=dict(group.details),
        )
        try:
            with self.db.session() as session:
                session.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(
                f"model package group {group.name!r} already exists",
                field="ModelPackageGroupName",
                resource=("model package group", group.name),
            ) from exc
        return self.get_group(group.name)

    def get_group(self, name: str) -> e.PackageGroup:
        with self.db.session() as session:
            return _group(session, name).to_entity()

    def list_groups(self) -> list[e.PackageGroup]:
        with self.db.session() as session:
            rows = session.scalars(select(PackageGroupRow).order_by(PackageGroupRow.created_at))
            return [r.to_entity() for r in rows]

    def delete_group(self, name: str) -> None:
        with self.db.session() as session:
            row = _group(session, name)
            count = session.scalar(
                select(func.count()).where(ModelPackageRow.group_name == row.name)
            )
            if count:
                raise InvalidState(
                    f"model package group {name!r} still holds {count} model package(s); "
                    "delete them first",
                    field="ModelPackageGroupName",
                )
            session.delete(row)
            drop_tags(session, e.ResourceKind.MODEL_PACKAGE_GROUP, name)

    # -- packages

    def add_package(self, package: e.ModelPackage, event: e.PackageEvent) -> e.ModelPackage:
        """Store `package` under the next version of its group (its own version is ignored).

        The number comes from the group row's counter, incremented under the row's lock in
        the same transaction, so concurrent registrations get distinct, gapless numbers.
        """
        with self.db.session() as session:
            version = session.scalar(
                update(PackageGroupRow)
                .where(PackageGroupRow.name == package.group)
                .values(latest_version=PackageGroupRow.latest_version + 1)
                .returning(PackageGroupRow.latest_version)
            )
            if version is None:
                raise _group_missing(package.group)
            now = utcnow()
            session.add(
                ModelPackageRow(
                    group_name=package.group,
                    version=version,
                    description=package.description,
                    containers=[asdict(c) for c in package.containers],
                    content_types=list(package.content_types),
                    response_types=list(package.response_types),
                    approval=package.approval.value,
                    approval_by=package.approval_by,
                    approval_reason=package.approval_reason,
                    metrics=dict(package.metrics),
                    reports=[asdict(r) for r in package.reports],
                    package_metadata=dict(package.metadata),
                    lineage=package.lineage.to_dict(),
                    created_by=package.created_by,
                    created_at=now,
                    updated_at=now,
                    details=dict(package.details),
                    history=[_event_row(event)],
                )
            )
        return self.get_package(package.group, version)

    def get_package(self, group: str, version: int) -> e.ModelPackage:
        with self.db.session() as session:
            return _package(session, group, version).to_entity()

    def list_packages(self, group: str | None = None) -> list[e.ModelPackage]:
        with self.db.session() as session:
            query = select(ModelPackageRow).order_by(
                ModelPackageRow.created_at, ModelPackageRow.version
            )
            if group is not None:
                query = query.where(ModelPackageRow.group_name == _group(session, group).name)
            return [r.to_entity() for r in session.scalars(query)]

    def latest_approved(self, group: str) -> e.ModelPackage:
        with self.db.session() as session:
            name = _group(session, group).name
            row = session.scalars(
                select(ModelPackageRow)
                .where(
                    ModelPackageRow.group_name == name,
                    ModelPackageRow.approval == e.ApprovalStatus.APPROVED.value,
                )
                .order_by(ModelPackageRow.version.desc())
                .limit(1)
            ).first()
            if row is None:
                raise NotFound(
                    f"model package group {group!r} has no Approved package",
                    field="ModelPackageName",
                )
            return row.to_entity()

    def change(
        self,
        group: str,
        version: int,
        event: e.PackageEvent | None,
        **changes: Any,
    ) -> e.ModelPackage:
        """Set the mutable members given (approval, approval_by, approval_reason,
        description, package_metadata, metrics, reports) and append `event`."""
        allowed = {
            "approval", "approval_by", "approval_reason", "description",
            "package_metadata", "metrics", "reports",
        }  # fmt: skip
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"a model package cannot change {sorted(unknown)}")
        with self.db.session() as session:
            row = _package(session, group, version)
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            if event is not None:
                row.history.append(_event_row(event))
        return self.get_package(group, version)

    def add_event(self, group: str, version: int, event: e.PackageEvent) -> None:
        with self.db.session() as session:
            row = _package(session, group, version)  # held: the append needs its parent alive
            row.history.append(_event_row(event))

    def delete_package(self, group: str, version: int) -> None:
        with self.db.session() as session:
            row = _package(session, group, version)
            ref = f"{row.group_name}/{row.version}"
            models = session.scalars(select(ModelRow.name).where(ModelRow.package == ref)).all()
            if models:
                raise InvalidState(
                    f"model package {ref} is in use by model(s) {', '.join(sorted(models))}; "
                    "delete them first",
                    field="ModelPackageName",
                )
            session.delete(row)
            drop_tags(session, e.ResourceKind.MODEL_PACKAGE, ref)

    def models_of(self, refs: Sequence[str]) -> Mapping[str, str]:
        """Model name to package ref, for models made from any of `refs`."""
        with self.db.session() as session:
            rows = session.execute(
                select(ModelRow.name, ModelRow.package).where(ModelRow.package.in_(refs))
            )
            return {name: package for name, package in rows if package}


def _group(session: Session, name: str) -> PackageGroupRow:
    row = session.get(PackageGroupRow, name)
    if row is None:
        raise _group_missing(name)
    return row


def _group_missing(name: str) -> NotFound:
    return NotFound(
        f"model package group {name!r} does not exist",
        field="ModelPackageGroupName",
        resource=("model package group", name),
    )


def _package(session: Session, group: str, version: int) -> ModelPackageRow:
    row = session.get(ModelPackageRow, (group, version))
    if row is None:
        raise NotFound(
            f"model package {group}/{version} does not exist",
            field="ModelPackageName",
            resource=("model package", f"{group}/{version}"),
        )
    return row


def _event_row(event: e.PackageEvent) -> PackageEventRow:
    return PackageEventRow(
        at=event.at,
        kind=event.kind,
        message=event.message,
        actor=event.actor,
        status=event.status,
        details=dict(event.details),
    )
