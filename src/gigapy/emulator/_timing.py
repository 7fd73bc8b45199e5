"""Generation time: the emulated model's time to first token and its speed, spent inside the quota.

Handlers sleep for it while they hold the caller's concurrency slot (see ``_pipeline``), so a
scope's limit binds the way the service's does: a slow answer keeps its slot until it ends.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TypeVar

#: Tokens per second that sizes ``update_interval`` chunks when generation is instant.
NOMINAL_TOKENS_PER_SECOND = 100.0


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds before the first token, then tokens per second (0: every token at once)."""

    ttft: float = 0.0
    tokens_per_second: float = 0.0

    def __post_init__(self) -> None:
        for name in ("ttft", "tokens_per_second"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    @property
    def instant(self) -> bool:
        """No generation time at all (the fast default of tests and benchmarks)."""
        return self.ttft == 0 and self.tokens_per_second == 0

    def tokens_seconds(self, tokens: int) -> float:
        """Seconds to generate ``tokens`` after the first one."""
        return tokens / self.tokens_per_second if self.tokens_per_second > 0 else 0.0

    def answer_seconds(self, tokens: int) -> float:
        """Seconds until a whole answer of ``tokens`` tokens is ready."""
        return self.ttft + self.tokens_seconds(tokens)

    def chunk_tokens(self, update_interval: float) -> int:
        """Tokens generated during ``update_interval`` seconds (at least 1)."""
        rate = self.tokens_per_second or NOMINAL_TOKENS_PER_SECOND
        return max(1, math.ceil(rate * update_interval))


#: Named timing profiles. ``realistic`` is sized from the recordings and live observations (see
#: docs/emulator.md, "Generation time"): answers start after about half a second and come at about
#: 40 tokens per second.
PRESETS: dict[str, Timing] = {
    "fast": Timing(),
    "realistic": Timing(ttft=0.5, tokens_per_second=40.0),
}


def resolve(preset: str, ttft: float | None, tokens_per_second: float | None) -> Timing:
    """A preset with explicit overrides (``ValueError`` for an unknown preset or a bad number)."""
    try:
        base = PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown timing {preset!r}; choose one of {', '.join(PRESETS)}") from None
    return Timing(
        base.ttft if ttft is None else float(ttft),
        base.tokens_per_second if tokens_per_second is None else float(tokens_per_second),
    )


@dataclass(frozen=True, slots=True)
class Pace:
    """When stream events go out: ``first`` seconds before the first, ``between`` between the others."""

    first: float = 0.0
    between: float = 0.0


async def generate_for(seconds: float) -> None:
    """Spend generation time (no-op when there is none)."""
    if seconds > 0:
        await asyncio.sleep(seconds)


_WHOLE_ANSWER = "__emulator_whole_answer__"
H = TypeVar("H")


def whole_answer(handler: H) -> H:
    """Mark a route's handler as one that never streams: under a ``latency_ms`` fault its answer is
    computed inside the generation time instead of after it (see ``_pipeline._within``)."""
    setattr(handler, _WHOLE_ANSWER, True)
    return handler


def is_whole_answer(handler: object) -> bool:
    """Whether ``handler`` was marked with :func:`whole_answer`."""
    return getattr(handler, _WHOLE_ANSWER, False) is True
