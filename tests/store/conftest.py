from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.store.db import open_database
from sluice.store.repos import Repository


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'sluice.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    repo = Repository(open_database(url))
    yield repo
    repo.db.close()
