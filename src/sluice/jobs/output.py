"""A job's log: `output.log` (what its program printed, line by line, every attempt) and
`output.times` (when each line came, in milliseconds since the epoch, one per line), so
the log reads as plain text and serves as CloudWatch Logs events too."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

LOG_NAME = "output.log"
TIMES_NAME = "output.times"
TAIL_BYTES = 16384


class JobLog:
    """Appends lines to a job's log (open while a run writes)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.lines = (folder / LOG_NAME).open("ab")
        self.times = (folder / TIMES_NAME).open("ab")

    def write(self, raw: bytes) -> None:
        """One line (a newline is added when it has none; any inside are its own)."""
        text = raw if raw.endswith(b"\n") else raw + b"\n"
        stamp = str(int(time.time() * 1000)).encode()
        count = text.count(b"\n")
        self.lines.write(text)
        self.times.write((stamp + b"\n") * count)
        self.lines.flush()
        self.times.flush()

    def close(self) -> None:
        self.lines.close()
        self.times.close()

    def __enter__(self) -> JobLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass(frozen=True)
class Event:
    timestamp: int
    message: str


def events(folder: Path) -> list[Event]:
    """Every line of the log with its time (a line with no time recorded takes the
    previous one's)."""
    path = folder / LOG_NAME
    if not path.exists():
        return []
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    times_path = folder / TIMES_NAME
    stamps = times_path.read_text().split() if times_path.exists() else []
    out: list[Event] = []
    last = int(path.stat().st_mtime * 1000)
    for index, line in enumerate(lines):
        if index < len(stamps) and stamps[index].isdigit():
            last = int(stamps[index])
        out.append(Event(last, line))
    return out


def tail(folder: Path, lines: int = 20) -> list[str]:
    """The last lines of a job's log."""
    path = folder / LOG_NAME
    if not path.exists():
        return []
    with path.open("rb") as log:
        log.seek(max(0, path.stat().st_size - TAIL_BYTES * max(1, lines // 100)))
        return [line.decode("utf-8", "replace") for line in log.read().splitlines()[-lines:]]
