"""Writing Server-Sent Events as the service does: each event its own flushed write; stream faults.

By default every event (``data: [DONE]`` included) goes out in a write of its own, flushed before
the next one: TCP_NODELAY is on and the transport's write buffer limit is zero while the stream
runs, so ``drain()`` waits until the kernel has taken the event. Clients that split events on
network reads (gigachat-node) rely on this. ``pack_stream`` (benchmarks) packs ~64 KiB of events
per write instead, when no pacing is asked.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from ._faults import STREAM_KINDS
from ._http import SSE_CT
from ._pipeline import close_connection
from ._timing import Pace

if TYPE_CHECKING:
    from ._pipeline import Ctx

_PACK_CHARS = 64 * 1024


async def send_events(ctx: Ctx, events: Sequence[str], pace: Pace | None = None) -> web.StreamResponse:
    """Stream pre-framed events: ``pace.first`` seconds before the first, ``pace.between`` apart.

    A ``stream_drop`` / ``stream_stall`` fault cuts the stream after about half of the events.
    """
    pace = pace or Pace()
    faults, path = ctx.state.faults, ctx.request.path
    fault = None
    between = pace.between
    if faults.active:
        fault = faults.take(path, STREAM_KINDS)
        between += faults.chunk_delay(path)
    limit = max(1, len(events) // 2) if fault else len(events)
    response = web.StreamResponse(headers={**ctx.id_headers, "Content-Type": SSE_CT})
    await response.prepare(ctx.request)
    packed = ctx.state.config.pack_stream and between <= 0 and pace.first <= 0
    transport = ctx.request.transport
    limited = not packed and transport is not None and _flush_each_write(transport)
    try:
        if packed:
            await _packed(response, events[:limit])
        else:
            await _one_per_write(ctx, response, events[:limit], pace.first, between)
        if fault == "stream_stall":
            await asyncio.sleep(ctx.state.config.stall_seconds)
        if fault:
            close_connection(ctx.request)
            return response
        await response.write_eof()
    except ConnectionError:
        close_connection(ctx.request)
    finally:
        if limited and isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.set_write_buffer_limits()  # back to the defaults for the next request
    return response


def _flush_each_write(transport: asyncio.BaseTransport) -> bool:
    """No Nagle delay; on plain TCP a zero write-buffer limit, so ``drain()`` waits for every event.

    Returns whether the limit was changed. TLS transports keep theirs: asyncio's SSL protocol
    pauses at ``size >= high`` and resumes only on its own schedule, so a zero limit would stall
    the stream; each event still goes out as its own write, hence its own TLS record.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - a socket that is closing
            pass
    if transport.get_extra_info("sslcontext") is None and isinstance(transport, asyncio.WriteTransport):
        transport.set_write_buffer_limits(high=0)
        return True
    return False


async def _one_per_write(
    ctx: Ctx, response: web.StreamResponse, events: Sequence[str], first: float, between: float
) -> None:
    writer = ctx.request.writer
    for index, event in enumerate(events):
        delay = first if index == 0 else between
        if delay > 0:
            await asyncio.sleep(delay)
        await response.write(event.encode())
        await writer.drain()


async def _packed(response: web.StreamResponse, events: Sequence[str]) -> None:
    """Many events per transport write: the benchmarks' fast path."""
    buffer: list[str] = []
    size = 0
    for event in events:
        buffer.append(event)
        size += len(event)
        if size >= _PACK_CHARS:
            await response.write("".join(buffer).encode())
            buffer.clear()
            size = 0
    if buffer:
        await response.write("".join(buffer).encode())
