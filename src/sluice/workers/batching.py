"""Dynamic batching inside a worker: requests waiting together go to the model together.

Work-conserving by default: a worker takes every REQUEST frame already queued on its
socket (up to a cap) into one `Runtime.invoke_many` call, and never waits for more, so an
idle worker answers a lone request at once and a busy one answers the queue that built
up while it worked. Set by the model's environment:

- `SLUICE_BATCH_MAX_SIZE`: most requests in one call (default 32; 1 turns batching off).
- `SLUICE_BATCH_MAX_DELAY_MS`: wait up to this long for a batch to fill (default 0). Waiting
  trades latency at low load for bigger batches; only worth it for models whose call
  overhead dwarfs a row's cost.
- `SLUICE_BATCH_LATENCY_SLO_MS`: adaptive cap: grows by one after a full batch that took
  less than this, shrinks by a tenth after one that took more (AIMD, as Clipper does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from sluice.errors import ValidationError
from sluice.workers import protocol
from sluice.workers.protocol import Frame

DEFAULT_MAX_SIZE = 32
N = TypeVar("N", int, float)
ADAPTIVE_START = 8


@dataclass
class CacheOutcome:
    """How one target model was found: what the worker says back with the answer."""

    hit: bool
    load_s: float = 0.0
    unload_s: float = 0.0
    loaded: int = 0
    accounted: bool = True
    """This answer accounts for the load and unloads (the first of its batch's answers)."""


def take_head(frames: list[Frame], limit: int, joins: Callable[[Frame], bool]) -> list[Frame]:
    """The frames at the head of `frames` that `joins` accepts (at most `limit`, stopping
    at the first it refuses), removed from it."""
    count = 0
    limit = min(len(frames), limit)
    while count < limit and joins(frames[count]):
        count += 1
    taken = frames[:count]
    del frames[:count]
    return taken


@dataclass
class Batching:
    max_size: int = DEFAULT_MAX_SIZE
    max_delay_s: float = 0.0
    latency_slo_s: float | None = None
    cap: int = DEFAULT_MAX_SIZE
    """The largest batch taken now: max_size, or the adaptive cap under a latency SLO."""

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Batching:
        max_size = _number(environment, "SLUICE_BATCH_MAX_SIZE", DEFAULT_MAX_SIZE, int)
        delay_ms = _number(environment, "SLUICE_BATCH_MAX_DELAY_MS", 0.0, float)
        slo_ms = _number(environment, "SLUICE_BATCH_LATENCY_SLO_MS", 0.0, float)
        if max_size < 1:
            raise ValidationError(
                "SLUICE_BATCH_MAX_SIZE must be at least 1",
                field="Environment.SLUICE_BATCH_MAX_SIZE",
            )
        slo = slo_ms / 1000 if slo_ms > 0 else None
        cap = min(max_size, ADAPTIVE_START) if slo is not None else max_size
        return cls(max_size, max(delay_ms, 0.0) / 1000, slo, cap)

    def take(self, frames: list[Frame], room: int | None = None) -> list[Frame]:
        """The REQUEST frames at the head of `frames` (up to the cap, or `room`), removed."""
        limit = self.cap if room is None else room
        return take_head(frames, limit, lambda f: f.kind == protocol.REQUEST)

    def take_same_model(self, frames: list[Frame]) -> list[Frame]:
        """The MODEL_REQUEST frames at the head of `frames` for the same model as the
        first (up to the cap), removed."""
        first = frames[0].body
        prefix = first[: first.find(b"\0", first.find(b"\0") + 1) + 1]
        return take_head(
            frames,
            self.cap,
            lambda f: f.kind == protocol.MODEL_REQUEST and f.body.startswith(prefix),
        )

    def wants_more(self, taken: int) -> bool:
        return self.max_delay_s > 0 and taken < self.cap

    def record(self, size: int, seconds: float) -> None:
        """Adapt the cap to how long a batch of `size` requests took (AIMD under an SLO)."""
        if self.latency_slo_s is None:
            return
        if seconds > self.latency_slo_s:
            self.cap = max(1, min(self.cap - 1, int(self.cap * 0.9)))
        elif size >= self.cap and self.cap < self.max_size:
            self.cap += 1


def answer_stats(
    size: int,
    queued_s: float,
    model: CacheOutcome | None = None,
    steps: list[float] | None = None,
) -> str:
    """What a RESPONSE frame's text2 says of how it was answered: batch size and the
    microseconds it waited in the worker before its batch started; for a multi-model
    worker also whether its model was loaded already (1/0), the load's and unloads'
    microseconds, how many models are loaded now, and whether this answer accounts for
    the load; for an inference pipeline `steps` and each step's microseconds."""
    text = f"{size} {int(queued_s * 1_000_000)}"
    if model is not None:
        text += (
            f" {int(model.hit)} {int(model.load_s * 1_000_000)} "
            f"{int(model.unload_s * 1_000_000)} {model.loaded} {int(model.accounted)}"
        )
    elif steps is not None:
        text += " steps " + ",".join(str(int(s * 1_000_000)) for s in steps)
    return text


def parse_stats(text: str) -> tuple[int, float, CacheOutcome | None, tuple[float, ...] | None]:
    """(batch size, seconds queued in the worker, model cache outcome, pipeline step
    seconds) from `answer_stats`; (1, 0, None, None) if absent."""
    if not text:
        return 1, 0.0, None, None
    parts = text.split(" ")
    model = steps = None
    if len(parts) == 7:
        hit, load_us, unload_us, loaded, accounted = parts[2:]
        model = CacheOutcome(
            hit == "1", int(load_us) / 1e6, int(unload_us) / 1e6, int(loaded), accounted == "1"
        )
    elif len(parts) == 4 and parts[2] == "steps":
        steps = tuple(int(us) / 1_000_000 for us in parts[3].split(","))
    return int(parts[0]), int(parts[1]) / 1_000_000, model, steps


def _number(environment: Mapping[str, str], name: str, default: N, kind: type[N]) -> N:
    raw = environment.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValidationError(
            f"{name} must be a number, got {raw!r}", field=f"Environment.{name}"
        ) from None
