"""Transform jobs in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from sluice.entities import TransformJob, TransformSpec, TransformStatus
from sluice.errors import AlreadyExists, NotFound
from sluice.store.repos import Repository
from sluice.store.tables import utcnow
from sluice.store.transform_repo import TransformRepository


def job(name: str) -> TransformJob:
    spec = TransformSpec("s3://b/in/", "s3://b/out/", split_type="Line", environment={"A": "1"})
    now = utcnow()
    return TransformJob(
        name, "digits", TransformStatus.IN_PROGRESS, spec, now, now, details={"k": 1}
    )


def test_jobs_are_kept_whole_and_named_regardless_of_case(repo: Repository) -> None:
    jobs = TransformRepository(repo.db)
    added = jobs.add(job("Nightly"))
    assert added.spec == job("x").spec and added.details == {"k": 1} and added.started_at
    assert jobs.get("nightly").name == "Nightly"
    with pytest.raises(AlreadyExists):
        jobs.add(job("NIGHTLY"))
    with pytest.raises(NotFound):
        jobs.get("other")


def test_a_finished_job_keeps_its_end(repo: Repository) -> None:
    jobs = TransformRepository(repo.db)
    jobs.add(job("a"))
    jobs.add(job("b"))
    jobs.set_status("b", TransformStatus.STOPPING)
    assert {j.name for j in jobs.unfinished()} == {"a", "b"}
    done = jobs.set_status("a", TransformStatus.FAILED, "s3://b/in/x.csv: line 3: bad")
    assert done.ended_at is not None and done.failure_reason.endswith("bad")
    again = jobs.set_status("a", TransformStatus.STOPPED)
    assert again.status is TransformStatus.FAILED and again.ended_at == done.ended_at
    assert [j.name for j in jobs.list_all(TransformStatus.FAILED)] == ["a"]
    assert [j.name for j in jobs.unfinished()] == ["b"]
