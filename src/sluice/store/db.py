"""Engine, sessions and migrations: SQLite under the home by default, or any SQLAlchemy URL."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class Database:
    """One engine and its session factory; `session()` is a unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(url, **kwargs)
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        """SQLite: the thread that checkpoints the write-ahead log, when not whichever
        commit fills it (see `checkpoint_apart`)."""
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", self._sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def checkpoint_apart(self, every_s: float = 1.0) -> None:
        """SQLite: copy the write-ahead log into the database from a thread of its own,
        every `every_s`, so that no commit waits for a checkpoint's disk flushes (with the
        default, the commit that fills the log does it, and a request waits behind it).
        A no-op on other databases."""
        if self.engine.dialect.name != "sqlite" or self._checkpointer is not None:
            return
        self._checkpointer = threading.Thread(
            target=self._checkpoint_every, args=(every_s,), name="wal-checkpoint", daemon=True
        )
        self.engine.dispose()  # the pool's connections: made again with autocheckpoint off
        self._checkpointer.start()

    def _checkpoint_every(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                with self.engine.connect() as connection:
                    # PASSIVE: copies what it can, waits for no reader or writer.
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:  # noqa: BLE001 - tried again at the next round
                log.exception("checkpoint of the write-ahead log failed")

    def _sqlite_pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if self._checkpointer is not None:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (creates it on a new database)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        if self._checkpointer is not None:
            self._stop.set()
            self._checkpointer.join()
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self.engine.dispose()


def open_database(url: str) -> Database:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    database = Database(url)
    database.migrate()
    return database
