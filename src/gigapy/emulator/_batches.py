"""``/batches``: JSONL tasks that go created → in_progress → completed and yield an output file."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._chat import completion_json, parse_request, run
from ._embeddings import embeddings_result
from ._http import ApiError, dumps, has_lone_surrogate, new_uuid4
from ._misc import require_corp

if TYPE_CHECKING:
    from ._pipeline import Ctx

log = logging.getLogger("gigapy.emulator")
METHODS = ("chat_completions", "embedder")


@dataclass
class Batch:
    """One batch task."""

    id: str
    owner: str
    method: str
    lines: list[tuple[str, dict[str, Any]]]
    created_at: int
    updated_at: int
    status: str = "created"
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def to_json(self, full: bool = True) -> dict[str, Any]:
        """The batch object (``full``: with completed/failed counts and the output file)."""
        counts: dict[str, int] = {"total": len(self.lines)}
        body: dict[str, Any] = {
            "id": self.id,
            "method": self.method,
            "request_counts": counts,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if full:
            counts.update(completed=self.completed, failed=self.failed)
            if self.output_file_id:
                body["output_file_id"] = self.output_file_id
        return body


class BatchStore:
    """Batches, capped: the oldest are dropped (and their work cancelled) over capacity."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._batches: OrderedDict[str, Batch] = OrderedDict()

    def add(self, batch: Batch) -> None:
        """Store a batch."""
        self._batches[batch.id] = batch
        while len(self._batches) > self.capacity:
            _, old = self._batches.popitem(last=False)
            if old.task is not None:
                old.task.cancel()

    def get(self, batch_id: str, owner: str) -> Batch | None:
        """The owner's batch."""
        batch = self._batches.get(batch_id)
        return batch if batch is not None and batch.owner == owner else None

    def of_owner(self, owner: str) -> list[Batch]:
        """Every batch of an owner, oldest first."""
        return [b for b in self._batches.values() if b.owner == owner]

    def cancel_all(self) -> None:
        """Stop background work (server shutdown)."""
        for batch in self._batches.values():
            if batch.task is not None and not batch.task.done():
                batch.task.cancel()

    def __len__(self) -> int:
        return len(self._batches)


_BROKEN = object()


def _parse_lines(body: bytes, limit: int) -> list[tuple[str, dict[str, Any]]]:
    lines: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for number, raw in enumerate(body.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            item = _BROKEN  # answered below, outside the except
        if item is _BROKEN or has_lone_surrogate(raw.encode("utf-8", "surrogatepass"), item):
            raise ApiError(400, f"Invalid batch file: line {number} is not valid JSON")
        if not (isinstance(item, dict) and isinstance(item.get("id"), str) and isinstance(item.get("request"), dict)):
            raise ApiError(400, f'Invalid batch file: line {number} must be {{"id": str, "request": object}}')
        if item["id"] in seen:
            raise ApiError(400, f"Invalid batch file: duplicate id {item['id']}")
        seen.add(item["id"])
        lines.append((item["id"], item["request"]))
        if len(lines) > limit:
            raise ApiError(413, "Payload too large")
    if not lines:
        raise ApiError(400, "Invalid batch file: no requests")
    return lines


def _answer(ctx: Ctx, method: str, request: dict[str, Any]) -> dict[str, Any]:
    if method == "embedder":
        return embeddings_result(ctx, request)
    chat = parse_request(ctx, {**request, "stream": False})
    return completion_json(chat, run(ctx, chat))


def _line_result(ctx: Ctx, batch: Batch, line_id: str, request: dict[str, Any]) -> dict[str, Any]:
    try:
        body = _answer(ctx, batch.method, request)
    except ApiError as exc:
        batch.failed += 1
        return {"id": line_id, "error": {"status": exc.status, "message": exc.message}}
    except Exception:
        log.exception("emulator bug in batch %s line %s", batch.id, line_id)
        batch.failed += 1
        return {"id": line_id, "error": {"status": 500, "message": "Internal Server Error"}}
    batch.completed += 1
    return {"id": line_id, "response": {"status_code": 200, "body": body}}


async def _process(ctx: Ctx, batch: Batch) -> None:
    await asyncio.sleep(ctx.state.config.batch_delay)
    batch.status, batch.updated_at = "in_progress", int(time.time())
    output = []
    for line_id, request in batch.lines:
        item = _line_result(ctx, batch, line_id, request)
        output.append(dumps(item))
        await asyncio.sleep(0)
    data = ("\n".join(output) + "\n").encode()
    record = ctx.state.files.create(batch.owner, f"batch_{batch.id}_output.jsonl", data, "application/jsonl", "text")
    batch.output_file_id = record.id
    batch.status, batch.updated_at = "completed", int(time.time())


async def create_batch(ctx: Ctx) -> dict[str, Any]:
    """``POST /batches?method=chat_completions|embedder`` with a JSONL body."""
    require_corp(ctx)
    method = ctx.request.query.get("method", "")
    if method not in METHODS:
        raise ApiError(400, "method must be one of chat_completions, embedder")
    lines = _parse_lines(ctx.body, ctx.state.config.max_batch_lines)
    now = int(time.time())
    batch = Batch(new_uuid4(), ctx.auth.account.client_id, method, lines, now, now)
    ctx.state.batches.add(batch)
    batch.task = asyncio.get_running_loop().create_task(_process(ctx, batch))
    return batch.to_json(full=False)


async def get_batches(ctx: Ctx) -> dict[str, Any]:
    """``GET /batches[?batch_id=]``: ``{"batches": [...]}``; 404 for an unknown id."""
    require_corp(ctx)
    owner = ctx.auth.account.client_id
    batch_id = ctx.request.query.get("batch_id")
    if batch_id is None:
        return {"batches": [b.to_json() for b in ctx.state.batches.of_owner(owner)]}
    batch = ctx.state.batches.get(batch_id, owner)
    if batch is None:
        raise ApiError(404, "Batch task not found")
    return {"batches": [batch.to_json()]}
