"""Embeddings at scale: split texts into batches by count and token budget, keep order.

The sync and async clients run the batches concurrently in their own way (threads,
tasks); planning, retry decisions and assembling the result live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _params as P
from .errors import (
    APIConnectionError,
    ConfigurationError,
    GigaChatError,
    InternalServerError,
    RateLimitError,
    may_have_reached_model,
)


def estimate_tokens(text: str) -> int:
    """A cheap upper estimate of a text's tokens (about 3 UTF-8 bytes per token, rounded up)."""
    return len(text.encode("utf-8")) // 3 + 1


def plan(texts: Any, batch_size: int, max_batch_tokens: int) -> tuple[list[str], list[tuple[int, int]]]:
    """Check the arguments; return (texts, [(start, end), ...]) covering every text in order."""
    items = P.strings(texts, "texts")
    P.number(batch_size, "batch_size", low=1, integer=True)
    P.number(max_batch_tokens, "max_batch_tokens", low=1, integer=True)
    ranges: list[tuple[int, int]] = []
    start = tokens = 0
    for i, text in enumerate(items):
        cost = estimate_tokens(text)
        if i > start and (i - start >= batch_size or tokens + cost > max_batch_tokens):
            ranges.append((start, i))
            start, tokens = i, 0
        tokens += cost
    ranges.append((start, len(items)))
    return items, ranges


def retryable(exc: GigaChatError, repeat: bool = False) -> bool:
    """Whether a failed batch is worth another try: transient failures only, and one that may
    have reached the model (:func:`~gigapy.errors.may_have_reached_model`) only when ``repeat``
    (the client's ``retry_non_idempotent``): embeddings are billed."""
    if not isinstance(exc, (APIConnectionError, RateLimitError, InternalServerError)):
        return False
    return repeat or not may_have_reached_model(exc)


def assemble(batches: Sequence[Any], as_numpy: bool) -> Any:
    """Vectors of all batches, in input order; a numpy array when asked."""
    vectors = [vector for batch in batches for vector in batch.vectors]
    if not as_numpy:
        return vectors
    try:
        import numpy
    except ImportError:
        raise ConfigurationError("as_numpy", "numpy is not installed: pip install 'gigapy[numpy]'") from None
    return numpy.asarray(vectors, dtype=numpy.float32)
