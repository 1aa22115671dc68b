"""Child processes that never outlive the process that started them."""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid


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


def set_process_name(name: str) -> None:
    """The name `ps -o comm`, top and psutil show (Linux; 15 characters at most): a forked
    process keeps its parent's command line, so its name tells what it is."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_name = 15
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_name, name.encode()[:15], 0, 0, 0)


def unix_listener(path: str, backlog: int) -> socket.socket:
    """A Unix socket listening at `path` (whatever was there is replaced)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    listener.bind(path)
    listener.listen(backlog)
    return listener


def process_usage(pid: int) -> tuple[float, float] | None:
    """CPU seconds (user + system) and resident bytes of a live process; None if gone."""
    import psutil

    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        return times.user + times.system, float(process.memory_info().rss)
    except psutil.Error:
        return None


def tcp_listener(host: str, backlog: int) -> socket.socket:
    """A TCP socket listening on a free port of `host`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(backlog)
    return listener


def runner_id() -> str:
    """Who holds a lease in the work queue: `host:pid:nonce` (see `runner_is_gone`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def runner_is_gone(runner: str, me: str, alone: bool = False) -> bool:
    """True when `runner` (a `runner_id`) was a process on this host that no longer runs:
    its work can be taken at once rather than after its lease. A pid reused since (a
    restarted server in a container is often pid 1 again) counts as gone too. `alone`:
    no other gateway shares the database, so a runner on another host was this server
    in an earlier life (a container made again under a new host name)."""
    host, _, rest = runner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if runner == me or not pid_text.isdigit():
        return False
    if host != socket.gethostname():
        return alone
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # this process, but not this runner: an earlier life under the same pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
