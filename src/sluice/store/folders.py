"""Folders written once and whole: filled under a staging name, then renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def publish(target: Path, fill: Callable[[Path], None]) -> Path:
    """`target`, filled by `fill(staging folder)` unless it exists already. A reader never
    sees it half-written, a failed fill leaves nothing behind, and when two writers race
    the first rename wins (their content is the same: folders are named by it)."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        fill(staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
