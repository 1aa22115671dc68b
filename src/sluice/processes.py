"""Child processes that never outlive the process that started them."""

from __future__ import annotations

import os
import signal
import sys


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel kill this process when its parent dies, even by kill -9 (Linux's
    parent-death signal). If the parent is gone already (`parent` is no longer our parent,
    or we were handed to init), exit now. Call it first thing in a child."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    current = os.getppid()
    if current == 1 or (parent and current != parent):
        os._exit(1)
