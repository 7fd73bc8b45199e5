"""Timeouts that a trickle cannot defeat, against a real server that trickles (±20% of each limit).

``read`` is the time a plain call's whole response may take once its connection is ready, and
on a stream the idle limit between *events*: bytes that complete nothing (one byte a second,
``: ping`` comments, half an event) do not reset it. ``total`` bounds the whole call. Both
clients, plain calls and streams; the error is APITimeoutError with the phase named (a stream
raises StreamTimeoutError, which is also a StreamError).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from gigapy import (
    APITimeoutError,
    AsyncGigaChat,
    GigaChat,
    InternalServerError,
    StreamError,
    StreamTimeoutError,
    Timeout,
)

from .rawserver import SSE_HEAD, RawRequest, RawServer, answer, completion_body, head, sse_event, trickle

pytestmark = pytest.mark.hostile("trickle")

LIMIT = 1.2


def within(elapsed: float, limit: float = LIMIT) -> bool:
    return 0.8 * limit <= elapsed <= 1.2 * limit


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    server = RawServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean(raw: RawServer) -> Iterator[None]:
    raw.requests.clear()
    yield
    raw.handler = None
    raw.drop_connections()


def serve(raw: RawServer, fn: Callable[[RawRequest, asyncio.StreamWriter], Awaitable[None]]) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        await fn(request, writer)
        return True

    raw.handler = handler


async def body_trickle(request: RawRequest, writer: asyncio.StreamWriter) -> None:
    body = completion_body().encode()
    writer.write(head(200, {"Content-Type": "application/json"}, length=len(body)))
    await trickle(writer, body, 0.05)


async def head_trickle(request: RawRequest, writer: asyncio.StreamWriter) -> None:
    await trickle(writer, answer(200, completion_body()), 0.05)


async def pings(request: RawRequest, writer: asyncio.StreamWriter) -> None:
    writer.write(SSE_HEAD)
    while True:
        writer.write(b": ping\n\n")
        await writer.drain()
        await asyncio.sleep(0.1)


async def two_events_then_pings(request: RawRequest, writer: asyncio.StreamWriter) -> None:
    writer.write(SSE_HEAD + sse_event("Привет") + sse_event(", мир"))
    await writer.drain()
    while True:
        await asyncio.sleep(0.1)
        writer.write(b": ping\n\n")
        await writer.drain()


async def half_event_trickle(request: RawRequest, writer: asyncio.StreamWriter) -> None:
    writer.write(SSE_HEAD)
    await trickle(writer, sse_event("x" * 400), 0.05)


async def endless_events(request: RawRequest, writer: asyncio.StreamWriter) -> None:
    writer.write(SSE_HEAD)
    n = 0
    while True:
        writer.write(sse_event(f"{n} "))
        await writer.drain()
        n += 1
        await asyncio.sleep(0.1)


async def silent(request: RawRequest, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


def settings(raw: RawServer, timeout: Timeout, **extra: Any) -> dict[str, Any]:
    return {"base_url": raw.base_url, "access_token": "t", "timeout": timeout, "max_retries": 0, **extra}


READ = Timeout(connect=5, read=LIMIT, write=5, pool=5)
TOTAL = Timeout(connect=5, read=30, write=5, pool=5, total=LIMIT)


# --- plain calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [body_trickle, head_trickle], ids=["body", "headers"])
def test_sync_plain_call_trickle_hits_the_read_limit(raw: RawServer, behaviour: Any) -> None:
    serve(raw, behaviour)
    with GigaChat(**settings(raw, READ)) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            client.completion("Привет")
        elapsed = time.monotonic() - start
    assert info.value.phase == "read"
    assert within(elapsed), elapsed


@pytest.mark.parametrize("behaviour", [body_trickle, head_trickle], ids=["body", "headers"])
def test_async_plain_call_trickle_hits_the_read_limit(raw: RawServer, behaviour: Any) -> None:
    serve(raw, behaviour)

    async def main() -> tuple[float, APITimeoutError]:
        async with AsyncGigaChat(**settings(raw, READ)) as client:
            start = time.monotonic()
            with pytest.raises(APITimeoutError) as info:
                await client.completion("Привет")
            return time.monotonic() - start, info.value

    elapsed, err = asyncio.run(main())
    assert err.phase == "read"
    assert within(elapsed), elapsed


@pytest.mark.parametrize("behaviour", [body_trickle, silent], ids=["trickle", "silent"])
def test_sync_total_deadline_of_a_plain_call(raw: RawServer, behaviour: Any) -> None:
    serve(raw, behaviour)
    with GigaChat(**settings(raw, TOTAL)) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            client.completion("Привет")
        elapsed = time.monotonic() - start
    assert info.value.phase == "total"
    assert "total timeout" in str(info.value)
    assert within(elapsed), elapsed


@pytest.mark.parametrize("behaviour", [body_trickle, silent], ids=["trickle", "silent"])
def test_async_total_deadline_of_a_plain_call(raw: RawServer, behaviour: Any) -> None:
    serve(raw, behaviour)

    async def main() -> tuple[float, APITimeoutError]:
        async with AsyncGigaChat(**settings(raw, TOTAL)) as client:
            start = time.monotonic()
            with pytest.raises(APITimeoutError) as info:
                await client.completion("Привет")
            return time.monotonic() - start, info.value

    elapsed, err = asyncio.run(main())
    assert err.phase == "total"
    assert within(elapsed), elapsed


def test_per_call_total_overrides_the_client_setting(raw: RawServer) -> None:
    serve(raw, silent)
    with GigaChat(**settings(raw, Timeout(read=30))) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            client.completion("Привет", timeout=Timeout(read=30, total=LIMIT))
        assert info.value.phase == "total"
        assert within(time.monotonic() - start)


def _always_503(raw: RawServer) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(503, {"status": 503, "message": "Service Unavailable"}))
        return True

    raw.handler = handler


def test_sync_total_deadline_stops_retries_that_could_not_start_in_time(raw: RawServer) -> None:
    _always_503(raw)
    with GigaChat(**settings(raw, Timeout(read=30, total=1.0), max_retries=10)) as client:
        start = time.monotonic()
        with pytest.raises(InternalServerError):  # the last real error, raised before the deadline
            client.completion("Привет")
        elapsed = time.monotonic() - start
    assert elapsed < 1.0
    assert raw.count("/chat/completions") == 2  # backoff 0.375-0.5 s, then 0.75-1 s would end after it


def test_async_total_deadline_stops_retries_that_could_not_start_in_time(raw: RawServer) -> None:
    _always_503(raw)

    async def main() -> float:
        async with AsyncGigaChat(**settings(raw, Timeout(read=30, total=1.0), max_retries=10)) as client:
            start = time.monotonic()
            with pytest.raises(InternalServerError):
                await client.completion("Привет")
            return time.monotonic() - start

    assert asyncio.run(main()) < 1.0
    assert raw.count("/chat/completions") == 2


# --- streams ---------------------------------------------------------------------------------------


STREAMS = [pings, half_event_trickle, two_events_then_pings]
STREAM_IDS = ["pings", "half-event", "events-then-pings"]


@pytest.mark.parametrize("behaviour", STREAMS, ids=STREAM_IDS)
def test_sync_stream_idle_limit_counts_events_not_bytes(raw: RawServer, behaviour: Any) -> None:
    serve(raw, behaviour)
    with GigaChat(**settings(raw, READ)) as client:
        got: list[str] = []
        with client.completion_stream("Привет") as stream:
            last = time.monotonic()
            with pytest.raises(StreamTimeoutError) as info:
                for chunk in stream:
                    got.append(chunk.text)
                    last = time.monotonic()
        idle = time.monotonic() - last
    err = info.value
    assert isinstance(err, StreamError) and isinstance(err, APITimeoutError)
    assert err.phase == "read"
    assert err.chunks_received == len(got)
    assert within(idle), idle


@pytest.mark.parametrize("behaviour", STREAMS, ids=STREAM_IDS)
def test_async_stream_idle_limit_counts_events_not_bytes(raw: RawServer, behaviour: Any) -> None:
    serve(raw, behaviour)

    async def main() -> tuple[float, StreamTimeoutError, int]:
        async with AsyncGigaChat(**settings(raw, READ)) as client:
            got = 0
            async with client.completion_stream("Привет") as stream:
                last = time.monotonic()
                with pytest.raises(StreamTimeoutError) as info:
                    async for _ in stream:
                        got += 1
                        last = time.monotonic()
            return time.monotonic() - last, info.value, got

    idle, err, got = asyncio.run(main())
    assert err.phase == "read"
    assert err.chunks_received == got
    assert within(idle), idle


def test_sync_total_deadline_ends_an_endless_stream(raw: RawServer) -> None:
    serve(raw, endless_events)
    with GigaChat(**settings(raw, TOTAL)) as client:
        start = time.monotonic()
        with pytest.raises(StreamTimeoutError) as info, client.completion_stream("Привет") as stream:
            for _ in stream:
                pass
        elapsed = time.monotonic() - start
    assert info.value.phase == "total"
    assert info.value.chunks_received > 3
    assert within(elapsed), elapsed


def test_async_total_deadline_ends_an_endless_stream(raw: RawServer) -> None:
    serve(raw, endless_events)

    async def main() -> tuple[float, StreamTimeoutError]:
        async with AsyncGigaChat(**settings(raw, TOTAL)) as client:
            start = time.monotonic()
            with pytest.raises(StreamTimeoutError) as info:
                async for _ in client.completion_stream("Привет"):
                    pass
            return time.monotonic() - start, info.value

    elapsed, err = asyncio.run(main())
    assert err.phase == "total"
    assert err.chunks_received > 3
    assert within(elapsed), elapsed


def test_a_steady_stream_within_the_idle_limit_is_not_cut(raw: RawServer) -> None:
    async def events(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(SSE_HEAD)
        for n in range(25):  # 2.5 s in all, each event 0.1 s after the last: far inside read=1.2
            writer.write(sse_event(f"{n} "))
            await writer.drain()
            await asyncio.sleep(0.1)
        writer.write(sse_event("end", finish="stop") + b"data: [DONE]\n\n")

    serve(raw, events)
    with GigaChat(**settings(raw, READ)) as client, client.completion_stream("Привет") as stream:
        final = stream.get_final_completion()
    assert final.text.endswith("24 end")
