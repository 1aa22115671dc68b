"""Start a job's program with this job's folder at `/opt/ml`: `python -m sluice.jobs.sandbox
SPEC.json`.

On Linux, the launcher enters new mount and PID namespaces (in a user namespace of its
own unless it runs as root), binds the job's folder at `/opt/ml`, and runs the program
as the namespace's first process's child: scripts find their inputs and outputs at the
paths they were written for, nothing else on the machine moves, and when the launcher
dies (the server was killed) every process the job started dies with it. Where the OS
refuses namespaces, the launcher falls back to rewritten paths: every argument and
environment value that starts with `/opt/ml` is rewritten to the job's folder, and the
program runs in a session of its own. The first line of the log says which it was.

The spec (JSON): `argv`, `env`, `cwd` (container paths), `root` (the job's folder),
`parent` (the server's pid, so the launcher dies with it), `isolate` (false: rewritten
paths, without trying namespaces), `memory_mb` (the address space each of the program's
processes may map; beyond it allocations fail: MemoryError in Python).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import resource
import signal
import sys
from pathlib import Path
from typing import Any

CONTAINER_ROOT = "/opt/ml"
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
PR_SET_PDEATHSIG = 1


class NoNamespace(OSError):
    """The OS would not give this job namespaces of its own."""


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    from sluice.processes import die_with_parent

    die_with_parent(spec.get("parent"))
    root = Path(spec["root"])
    try:
        if not spec.get("isolate", True):
            raise NoNamespace("turned off (setting job_mount_namespace)")
        _isolate(root)
    except NoNamespace as exc:
        return _run_rewritten(spec, root, str(exc))
    print(f"[sluice] {CONTAINER_ROOT} is this job's folder (mount namespace)", flush=True)
    return _run_as_init(spec)


def _isolate(root: Path) -> None:
    """New mount and PID namespaces with `root` bound at /opt/ml (the PID namespace takes
    effect for this process's children)."""
    if not sys.platform.startswith("linux"):
        raise NoNamespace("namespaces are Linux's")
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWNS | CLONE_NEWPID | (0 if uid == 0 else CLONE_NEWUSER)
    if libc.unshare(flags) != 0:
        raise NoNamespace(f"unshare: {os.strerror(ctypes.get_errno())}")
    if uid != 0:
        # Map our own ids, so what the job writes is ours on the disk.
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")

    def mount(
        source: str | None, target: str, kind: str | None, flags: int, data: str = ""
    ) -> None:
        if (
            libc.mount(
                source.encode() if source else None,
                target.encode(),
                kind.encode() if kind else None,
                flags,
                data.encode() if data else None,
            )
            != 0
        ):
            raise NoNamespace(f"mount {target}: {os.strerror(ctypes.get_errno())}")

    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks out
    target = Path(CONTAINER_ROOT)
    if not target.is_dir():
        opt = target.parent
        if not opt.is_dir():
            raise NoNamespace(f"{opt} does not exist to hold {CONTAINER_ROOT}")
        # A fresh /opt holding what /opt held (each entry bound back) and an empty ml/.
        saved = root.parent / f".{root.name}.opt"
        saved.mkdir(exist_ok=True)
        mount(str(opt), str(saved), None, MS_BIND | MS_REC)
        mount("tmpfs", str(opt), "tmpfs", 0, "mode=755")
        for entry in saved.iterdir():
            place = opt / entry.name
            if entry.is_symlink():
                place.symlink_to(os.readlink(entry))
                continue
            if entry.is_dir():
                place.mkdir()
            else:
                place.touch()
            mount(str(entry), str(place), None, MS_BIND | MS_REC)
        target.mkdir()
    mount(str(root), str(target), None, MS_BIND | MS_REC)


def _run_as_init(spec: dict[str, Any]) -> int:
    """Fork the namespace's first process, which runs the program and passes signals on;
    when it ends, the kernel ends whatever the job left running."""
    parent = os.getpid()
    first = os.fork()
    if first == 0:
        # Our parent lies outside the new PID namespace (getppid() says 0 here): the
        # death signal is set without die_with_parent's check.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if not _alive(parent):
            os._exit(1)
        _mount_proc()
        os._exit(_supervise(spec))
    return _wait_forwarding(first)


def _mount_proc() -> None:
    """A /proc of the new PID namespace, so the job's processes find themselves in it
    (os.getpid() is 2 there; the machine's /proc would show another process as 2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if libc.mount(b"proc", b"/proc", b"proc", flags, None) != 0:
        error = os.strerror(ctypes.get_errno())
        print(f"[sluice] /proc is the machine's (mount proc: {error})", flush=True)


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() if pid else True


def _supervise(spec: dict[str, Any]) -> int:
    child = os.fork()
    if child == 0:
        _exec(spec["argv"], spec["env"], spec["cwd"], spec.get("memory_mb"))
    return _wait_forwarding(child)


def _wait_forwarding(child: int) -> int:
    def forward(number: int, _: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, number)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, forward)
    while True:
        try:
            _, status = os.waitpid(child, 0)
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return (
                os.waitstatus_to_exitcode(status)
                if os.WIFEXITED(status)
                else 128 + (os.WTERMSIG(status))
            )


def _run_rewritten(spec: dict[str, Any], root: Path, why: str) -> int:
    print(
        f"[sluice] no mount namespace ({why}): paths under {CONTAINER_ROOT} in the "
        f"arguments and environment are rewritten to {root}",
        flush=True,
    )
    # The server started the launcher in a session of its own: a stop ends the group.
    argv = [rewrite(a, root) for a in spec["argv"]]
    env = {k: rewrite(v, root) for k, v in spec["env"].items()}
    _exec(argv, env, rewrite(spec["cwd"], root), spec.get("memory_mb"))
    return 1  # not reached


def rewrite(value: str, root: Path) -> str:
    """`value` with every path under /opt/ml in it (alone, or in JSON or a list of
    arguments) pointing into `root` instead."""
    return _CONTAINER_PATH.sub(str(root).replace("\\", "\\\\"), value)


_CONTAINER_PATH = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[\"':,;\s])")


def _exec(argv: list[str], env: dict[str, str], cwd: str, memory_mb: int | None) -> None:
    try:
        if memory_mb:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.chdir(cwd)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print(f"[sluice] cannot run {argv[0]!r}: {exc}", file=sys.stderr, flush=True)
    os._exit(127)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
