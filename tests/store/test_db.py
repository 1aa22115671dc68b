"""The SQLite store checkpoints its write-ahead log from a thread of its own."""

from __future__ import annotations

import time
from pathlib import Path

from sluice.store.db import open_database
from sluice.store.work_queue import NewItem, WorkQueue


def test_the_log_is_checkpointed_apart_from_commits_and_emptied_at_close(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'sluice.db'}")
    database.checkpoint_apart(every_s=0.05)
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    queue = WorkQueue(database)
    for batch in range(20):  # enough pages that a commit would have checkpointed
        queue.enqueue_many([NewItem("q", f"{batch}-{i}", {"pad": "x" * 500}) for i in range(100)])
    # The rows reach the database file itself only by a checkpoint: the thread's.
    main = tmp_path / "sluice.db"
    deadline = time.monotonic() + 10
    while main.stat().st_size < 1_000_000:
        assert time.monotonic() < deadline, main.stat().st_size
        time.sleep(0.05)
    database.close()
    wal = tmp_path / "sluice.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert len(WorkQueue(open_database(f"sqlite:///{tmp_path / 'sluice.db'}")).items("q")) == 2000
