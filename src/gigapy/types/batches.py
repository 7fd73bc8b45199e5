"""Batches (``/batches``): bulk jobs the service runs on its own schedule."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import APIModel, APIResponse, Count, OptCount, Stamp


class BatchRequestCounts(APIModel):
    """How many requests a batch holds and how far it got."""

    total: Count = 0
    completed: OptCount = None
    failed: OptCount = None


class Batch(APIResponse):
    """A batch job; ``output_file_id`` is set once it is ``completed``."""

    id: str
    method: str | None = None
    request_counts: BatchRequestCounts = Field(default_factory=BatchRequestCounts)
    status: str | None = None
    output_file_id: str | None = None
    created_at: Stamp = None
    updated_at: Stamp = None

    @property
    def is_done(self) -> bool:
        """True when the service finished the batch (successfully or not)."""
        return self.status in ("completed", "failed", "cancelled", "expired")


class Batches(APIResponse):
    """The wire shape of ``GET /batches``."""

    batches: list[Batch] = Field(default_factory=list)


class BatchResult(APIModel):
    """One line of a finished batch: the response ``body`` or the ``error`` for one input id."""

    id: str
    status_code: int | None = None
    body: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when this request succeeded."""
        return self.error is None and self.body is not None
