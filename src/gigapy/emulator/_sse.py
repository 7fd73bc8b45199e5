"""Writing Server-Sent Events: batched when no pacing is asked, paced otherwise; stream faults."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from ._faults import STREAM_KINDS
from ._http import SSE_CT
from ._pipeline import close_connection

if TYPE_CHECKING:
    from ._pipeline import Ctx

_BATCH_CHARS = 64 * 1024


async def send_events(ctx: Ctx, events: Sequence[str], interval: float = 0.0) -> web.StreamResponse:
    """Stream pre-framed events; ``interval`` seconds apart when positive.

    A ``stream_drop`` / ``stream_stall`` fault cuts the stream after about half of the events.
    """
    faults, path = ctx.state.faults, ctx.request.path
    fault = None
    if faults.active:
        fault = faults.take(path, STREAM_KINDS)
        interval += faults.chunk_delay(path)
    limit = max(1, len(events) // 2) if fault else len(events)
    response = web.StreamResponse(headers={**ctx.id_headers, "Content-Type": SSE_CT})
    await response.prepare(ctx.request)
    try:
        if interval > 0:
            await _paced(response, events[:limit], interval)
        else:
            await _batched(response, events[:limit])
        if fault == "stream_stall":
            await asyncio.sleep(ctx.state.config.stall_seconds)
        if fault:
            close_connection(ctx.request)
            return response
        await response.write_eof()
    except ConnectionError:
        close_connection(ctx.request)
    return response


async def _paced(response: web.StreamResponse, events: Sequence[str], interval: float) -> None:
    for index, event in enumerate(events):
        if index:
            await asyncio.sleep(interval)
        await response.write(event.encode())


async def _batched(response: web.StreamResponse, events: Sequence[str]) -> None:
    """Many events per transport write: the fast path when no pacing is asked."""
    buffer: list[str] = []
    size = 0
    for event in events:
        buffer.append(event)
        size += len(event)
        if size >= _BATCH_CHARS:
            await response.write("".join(buffer).encode())
            buffer.clear()
            size = 0
    if buffer:
        await response.write("".join(buffer).encode())
