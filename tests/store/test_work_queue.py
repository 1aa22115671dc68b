"""The durable work queue on SQLite and PostgreSQL: leases, idempotency, no double claims."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from sluice.entities import WorkStatus
from sluice.store.repos import Repository
from sluice.store.tables import utcnow
from sluice.store.work_queue import NewItem, Outcome, WorkQueue


@pytest.fixture
def queue(repo: Repository) -> WorkQueue:
    """The queue on each database the store supports (the `repo` fixture's)."""
    return WorkQueue(repo.db)


def test_a_key_is_enqueued_once(queue: WorkQueue) -> None:
    first, created = queue.enqueue("q", "id-1", {"n": 1})
    again, created_again = queue.enqueue("q", "id-1", {"n": 2})
    assert created and not created_again
    assert again.id == first.id and again.payload == {"n": 1}
    other, created_other = queue.enqueue("other", "id-1", {})
    assert created_other and other.id != first.id


def test_claims_go_by_priority_then_age_and_count_attempts(queue: WorkQueue) -> None:
    for key, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 5)]:
        queue.enqueue("q", key, {}, priority=priority)
    first = queue.claim("q", "runner", 30, limit=3)
    assert [item.key for item in first] == ["b", "d", "a"]
    assert all(item.status is WorkStatus.RUNNING and item.attempts == 1 for item in first)
    assert all(item.lease_owner == "runner" and item.started_at for item in first)
    assert [item.key for item in queue.claim("q", "runner", 30, limit=3)] == ["c"]
    assert queue.claim("q", "runner", 30) == []
    assert queue.claim("empty", "runner", 30) == []


def test_a_lapsed_lease_is_claimed_again_and_the_old_runner_cannot_finish(
    queue: WorkQueue,
) -> None:
    item, _ = queue.enqueue("q", "k", {})
    (claimed,) = queue.claim("q", "dead", 0.05)
    assert queue.claim("q", "other", 30) == []  # still leased
    time.sleep(0.1)
    (again,) = queue.claim("q", "other", 30)
    assert again.id == item.id and again.attempts == 2 and again.lease_owner == "other"
    assert not queue.finish(item.id, "dead", WorkStatus.SUCCEEDED, {"x": 1})
    assert queue.renew([item.id], "dead", 30) == set()
    assert queue.finish(item.id, "other", WorkStatus.SUCCEEDED, {"out": "s3://b/k.out"})
    done = queue.get("q", "k")
    assert done is not None and done.status is WorkStatus.SUCCEEDED
    assert done.result == {"out": "s3://b/k.out"} and done.finished_at is not None
    assert not queue.finish(item.id, "other", WorkStatus.FAILED)  # finished once only


def test_renewal_keeps_a_lease(queue: WorkQueue) -> None:
    item, _ = queue.enqueue("q", "k", {})
    queue.claim("q", "runner", 0.2)
    for _ in range(3):
        time.sleep(0.1)
        assert queue.renew([item.id], "runner", 0.2) == {item.id}
    assert queue.claim("q", "thief", 30) == []


def test_a_retry_waits_for_its_delay(queue: WorkQueue) -> None:
    item, _ = queue.enqueue("q", "k", {})
    queue.claim("q", "runner", 30)
    assert queue.retry(item.id, "runner", 0.2, "worker died")
    waiting = queue.get("q", "k")
    assert waiting is not None and waiting.status is WorkStatus.QUEUED
    assert waiting.failure_reason == "worker died"
    assert queue.claim("q", "runner", 30) == []
    time.sleep(0.25)
    (again,) = queue.claim("q", "runner", 30)
    assert again.attempts == 2


def test_only_a_queued_item_can_be_cancelled(queue: WorkQueue) -> None:
    queue.enqueue("q", "waiting", {})
    queue.enqueue("q", "busy", {}, priority=1)
    queue.claim("q", "runner", 30)
    cancelled = queue.cancel("q", "waiting")
    assert cancelled is not None and cancelled.status is WorkStatus.CANCELLED
    busy = queue.cancel("q", "busy")
    assert busy is not None and busy.status is WorkStatus.RUNNING
    assert queue.cancel("q", "unknown") is None
    assert queue.claim("q", "runner", 30) == []


def test_position_and_backlog(queue: WorkQueue) -> None:
    items = [queue.enqueue("q", f"k{i}", {})[0] for i in range(4)]
    urgent, _ = queue.enqueue("q", "urgent", {}, priority=9)
    assert queue.position(urgent) == 0
    assert [queue.position(item) for item in items] == [1, 2, 3, 4]
    queue.claim("q", "runner", 30, limit=2)
    queued, running, oldest = queue.backlog("q")
    assert (queued, running) == (3, 2)
    assert oldest is not None and utcnow() - oldest < timedelta(minutes=1)
    assert queue.position(queue.get("q", "urgent")) is None  # type: ignore[arg-type]
    assert queue.queues("q") == ["q"] and queue.queues("other") == []


def test_finished_items_are_pruned(queue: WorkQueue) -> None:
    item, _ = queue.enqueue("q", "k", {})
    queue.enqueue("q", "waiting", {})
    queue.claim("q", "runner", 30)
    queue.finish(item.id, "runner", WorkStatus.FAILED, reason="bad input")
    assert queue.prune("q", utcnow() - timedelta(hours=1)) == 0
    assert queue.prune("q", utcnow() + timedelta(seconds=1)) == 1
    assert queue.get("q", "k") is None and queue.get("q", "waiting") is not None


def test_concurrent_runners_never_claim_one_item_twice(queue: WorkQueue) -> None:
    for i in range(120):
        queue.enqueue("q", f"k{i}", {})
    claimed: list[int] = []
    lock = threading.Lock()

    def runner(name: str) -> None:
        while True:
            items = queue.claim("q", name, 30, limit=3)
            if not items:
                return
            with lock:
                claimed.extend(item.id for item in items)
            for item in items:
                assert queue.finish(item.id, name, WorkStatus.SUCCEEDED)

    threads = [threading.Thread(target=runner, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 120


def test_group_commits_enqueue_and_finish_many_at_once(queue: WorkQueue) -> None:
    queue.enqueue("q", "old", {"n": 0})
    entries = [
        NewItem("q", "old", {"n": 9}),
        NewItem("q", "a", {"n": 1}),
        NewItem("q", "a", {"n": 2}),
        NewItem("other", "a", {"n": 3}, priority=2),
    ]
    results = queue.enqueue_many(entries)
    assert [created for _, created in results] == [False, True, False, True]
    assert [item.payload["n"] for item, _ in results] == [0, 1, 1, 3]
    assert results[1][0].id == results[2][0].id and results[3][0].priority == 2
    assert queue.enqueue_many([]) == []
    claimed = queue.claim("q", "runner", 30, limit=5)
    outcomes = [
        Outcome(item.id, "runner", WorkStatus.SUCCEEDED, {"i": item.id}) for item in claimed
    ]
    outcomes[0] = Outcome(claimed[0].id, "thief", WorkStatus.FAILED)  # holds no lease
    assert queue.finish_many(outcomes) == [False, True]
    assert queue.finish_many([Outcome(claimed[0].id, "runner", WorkStatus.SUCCEEDED)]) == [True]
    done = queue.get("q", "a")
    assert done is not None and done.status is WorkStatus.SUCCEEDED and done.result["i"] == done.id


def test_a_dead_runners_items_are_taken_back_at_once(queue: WorkQueue) -> None:
    for key in "abc":
        queue.enqueue("transform:job", key, {})
    queue.enqueue("async:other", "x", {})
    held = queue.claim("transform:job", "dead-runner", 3600, limit=2)
    queue.claim("async:other", "live-runner", 3600)
    assert queue.runners("transform:") == {"dead-runner"}
    assert queue.runners("") == {"dead-runner", "live-runner"}
    assert queue.claim("transform:job", "me", 30, limit=5)[0].key == "c"  # leases still held
    assert queue.lapse("transform:", ["dead-runner", "live-runner"]) == 2
    taken = queue.claim("transform:job", "me", 30, limit=5)
    assert sorted(i.key for i in taken) == sorted(i.key for i in held)
    assert all(item.attempts == 2 for item in taken)
    assert queue.claim("async:other", "me", 30) == []  # another queue's lease is untouched


def test_items_and_cancel_all(queue: WorkQueue) -> None:
    for key in "abc":
        queue.enqueue("q", key, {"k": key})
    (running,) = queue.claim("q", "runner", 30)
    queue.finish(running.id, "runner", WorkStatus.SUCCEEDED)
    queue.claim("q", "runner", 30)
    assert queue.cancel_all("q") == 2
    items = queue.items("q")
    assert [(i.key, i.status) for i in items] == [
        ("a", WorkStatus.SUCCEEDED),
        ("b", WorkStatus.CANCELLED),
        ("c", WorkStatus.CANCELLED),
    ]
    assert not queue.finish(items[1].id, "runner", WorkStatus.SUCCEEDED)  # too late
    assert queue.items("none") == []


def test_a_new_item_is_handed_back_as_it_was_stored(queue: WorkQueue) -> None:
    expires = utcnow() + timedelta(minutes=5)
    item, created = queue.enqueue("q", "k", {"n": [1, 2]}, priority=3, expires_at=expires)
    assert created and item == queue.get("q", "k")
