"""Multi-container models: their definition, and the manifest their worker reads.

The manifest (`containers.json`, see `sluice.runtimes.containers`) lives in the artifact
store beside the unpacked models, under `containers/<digest>/`, written once per distinct
content and atomically (a staging folder renamed into place).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from sluice.errors import ValidationError
from sluice.store.folders import publish

MANIFEST = "containers.json"
SERIAL, DIRECT = "Serial", "Direct"
MAX_CONTAINERS = 15


@dataclass(frozen=True)
class ContainerDef:
    """One container of a multi-container model, as its definition gives it."""

    hostname: str
    artifact: str
    image: str | None = None
    environment: dict[str, str] = field(default_factory=dict)


def check_containers(containers: list[ContainerDef], mode: str) -> None:
    if mode not in (SERIAL, DIRECT):
        raise ValidationError(
            f"InferenceExecutionConfig.Mode must be Serial or Direct, not {mode!r}",
            field="InferenceExecutionConfig.Mode",
        )
    if not 2 <= len(containers) <= MAX_CONTAINERS:
        raise ValidationError(
            f"Containers holds 2 to {MAX_CONTAINERS} containers, not {len(containers)}",
            field="Containers",
        )
    hostnames = [c.hostname for c in containers]
    if len(set(hostnames)) != len(hostnames):
        raise ValidationError("ContainerHostname is used twice", field="ContainerHostname")


def write_manifest(root: Path, mode: str, entries: list[dict[str, object]]) -> Path:
    """The folder holding the manifest of `entries` (written if it is new)."""
    text = json.dumps({"mode": mode, "containers": entries}, sort_keys=True, indent=1)
    folder = root / "containers" / hashlib.sha256(text.encode()).hexdigest()[:32]

    def fill(staging: Path) -> None:
        (staging / MANIFEST).write_text(text)

    return publish(folder, fill)


def read_manifest(folder: Path) -> tuple[str, list[str]]:
    """(execution mode, container hostnames in order) of a multi-container model."""
    manifest = json.loads((folder / MANIFEST).read_text())
    return manifest["mode"], [c["hostname"] for c in manifest["containers"]]
