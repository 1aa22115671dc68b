"""Which local program stands for a job's container: images map to Python environments.

A job names an image (`AppSpecification.ImageUri`, `AlgorithmSpecification.TrainingImage`).
With no container engine, the image stands for a Python environment: the operator maps
image URIs (glob patterns) to interpreters with the setting `job_images`; an image no
pattern matches runs on the server's own interpreter. The program a job starts must be a
Python interpreter (`python`, `python3`, `python3.11`, ..., which run the mapped one) or
one of the programs the operator allows (setting `job_programs`, by default `bash` and
`sh`, for scripts such as the SDK's framework processors' `runproc.sh`).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from sluice.errors import ValidationError

PYTHON_NAME = re.compile(r"python(3(\.\d+)?)?")
INHERITED = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass(frozen=True)
class Environment:
    interpreter: str
    """The Python that `python`, `python3`, ... run in this job."""
    programs: tuple[str, ...]
    """Other programs the job may start."""

    def program(self, argv0: str, field: str) -> str:
        """The local program for a container's `argv0`, or a clear refusal."""
        name = Path(argv0).name
        if PYTHON_NAME.fullmatch(name):
            return self.interpreter
        if name in self.programs or argv0 in self.programs:
            found = shutil.which(argv0)
            if found:
                return found
            raise ValidationError(
                f"{argv0!r} is allowed but not found on this machine", field=field
            )
        allowed = ", ".join(["python", "python3", *self.programs])
        raise ValidationError(
            f"a job may start {allowed} (setting job_programs), not {argv0!r}", field=field
        )

    def base(self, region: str) -> dict[str, str]:
        """A job's environment before its own settings: a few of the server's variables
        (no credentials, no SLUICE_ setting), PATH with the interpreter's folder first (so
        `pip` and `python` in a shell script are its own), unbuffered output, the region."""
        env = {key: os.environ[key] for key in INHERITED if key in os.environ}
        path = [str(Path(self.interpreter).parent), os.environ.get("PATH", "/usr/bin:/bin")]
        env.update(
            {
                "PATH": os.pathsep.join(path),
                "PYTHONUNBUFFERED": "1",
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
            }
        )
        return env


def environment_for(image: str, images: dict[str, str], programs: list[str]) -> Environment:
    for pattern, interpreter in images.items():
        if fnmatch.fnmatchcase(image, pattern):
            return Environment(interpreter, tuple(programs))
    return Environment(sys.executable, tuple(programs))
