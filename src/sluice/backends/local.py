"""The local backend: each instance is a worker process on this machine."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sluice.backends.base import Backend, VariantInstances, pool_settings
from sluice.entities import Model
from sluice.runtimes.registry import serving_environment
from sluice.settings import Settings
from sluice.workers.forking import Zygote
from sluice.workers.pool import PoolSettings, WorkerPool, WorkerSpec, worker_environment

SOCKET_DIR_NOTE = "worker-sockets.path"


class LocalBackend(Backend):
    def __init__(self, settings: Settings, note: Path | None = None) -> None:
        """`note`: a file naming the sockets' folder (a server's, in its home), through which
        a server killed before it could clean up has that folder removed at its next start."""
        if note is not None:
            remove_stale(note)
        self.settings = settings
        self.note = note
        self.socket_dir: Path | None = None
        """Made when the first worker starts: a server that serves nothing leaves nothing."""
        self.pool_settings: PoolSettings | None = None

    def _pool_settings(self) -> PoolSettings:
        if self.pool_settings is None:
            # Unix socket paths are limited to ~100 bytes, so they live in a short temp dir.
            self.socket_dir = Path(tempfile.mkdtemp(prefix="sluice-"))
            if self.note is not None:
                self.note.write_text(str(self.socket_dir))
            settings = self.settings
            zygote = None
            if settings.worker_preload and Zygote.supported():
                zygote = Zygote(
                    self.socket_dir,
                    worker_environment(os.environ, {}, tuple(settings.worker_environment)),
                    settings.model_load_timeout_s,
                )
            self.pool_settings = pool_settings(settings, self.socket_dir, zygote)
        return self.pool_settings

    async def start_variant(
        self,
        label: str,
        model: Model,
        instance_count: int,
        on_restart: Callable[[], None],
        nice: int = 0,
        memory_mb: int | None = None,
        instance_type: str | None = None,
    ) -> VariantInstances:
        environment = serving_environment(model.environment, model.image)
        spec = WorkerSpec(label, Path(model.model_dir), model.runtime, environment, nice, memory_mb)
        pool = WorkerPool(spec, self._pool_settings(), on_restart)
        await pool.start(instance_count)
        return pool

    def warm(self) -> None:
        """Start the worker template now, so that the first workers need not wait for it."""
        zygote = self._pool_settings().zygote
        if zygote is not None:
            zygote.start()

    async def close(self) -> None:
        if self.pool_settings is not None and self.pool_settings.zygote is not None:
            await self.pool_settings.zygote.close()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self.note is not None:
            self.note.unlink(missing_ok=True)


def remove_stale(note: Path) -> None:
    """Remove the socket folder a killed server left behind (only a folder of ours)."""
    try:
        stale = Path(note.read_text().strip())
    except FileNotFoundError:
        return
    temp = Path(tempfile.gettempdir())
    if stale.parent == temp and stale.name.startswith("sluice-") and stale.is_dir():
        shutil.rmtree(stale, ignore_errors=True)
    note.unlink(missing_ok=True)
