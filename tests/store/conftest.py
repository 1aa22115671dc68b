from __future__ import annotations

import pytest

from sluice.store.db import Database
from sluice.store.repos import Repository


@pytest.fixture
def repo(database: Database) -> Repository:
    """The repository over `database` (SQLite, then PostgreSQL)."""
    return Repository(database)
