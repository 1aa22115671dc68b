"""What a job does, from its request: a program, inputs to bring in, outputs to send out."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.jobs.launch import Program


@dataclass(frozen=True)
class Input:
    uri: str
    path: str
    """Where the program finds it (a folder under /opt/ml)."""
    data_type: str
    field: str
    unpack: bool = False
    """A .tar.gz is unpacked into the folder (a training job's source directory)."""


@dataclass(frozen=True)
class Output:
    path: str
    """What the program wrote (a folder under /opt/ml)."""
    uri: str
    field: str
    continuous: bool = False
    """Uploaded as its files change while the job runs (S3UploadMode Continuous), not
    only when it has ended well."""


@dataclass(frozen=True)
class Plan:
    program: Program
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    """Files written before the program starts: container path to text."""
    folders: list[str] = field(default_factory=list)
    """Folders made before the program starts (container paths)."""
    max_runtime_s: float | None = None
    instance_type: str | None = None
    """The instance type asked for (its memory, where setting instance_memory_mb has it,
    limits each of the job's processes)."""
