"""Timeouts within their bound (±20%) and cancellation that leaves nothing open."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gigapy import APITimeoutError, AsyncGigaChat, GigaChat, StreamError, Timeout
from gigapy.testing import client_settings


@pytest.fixture
def emu(module_emulator: Any) -> Any:
    """This module counts the emulator's open connections: a private emulator (see conftest),
    reset before each test as the session's one is."""
    module_emulator.reset()
    return module_emulator


LIMIT = 1.5


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never reads or answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1"
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    sock.close()


def timeout() -> Timeout:
    return Timeout(connect=5, read=LIMIT, write=5, pool=5)


def within(elapsed: float) -> bool:
    return 0.8 * LIMIT <= elapsed <= 1.2 * LIMIT


@pytest.mark.hostile("trickle")
def test_sync_silent_server(silent_server: str) -> None:
    with GigaChat(base_url=silent_server, access_token="t", timeout=timeout(), max_retries=0) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            client.completion("Привет")
        elapsed = time.monotonic() - start
    assert info.value.phase == "read"
    assert within(elapsed), elapsed


@pytest.mark.hostile("trickle")
def test_async_silent_server(silent_server: str) -> None:
    async def main() -> float:
        async with AsyncGigaChat(base_url=silent_server, access_token="t", timeout=timeout(), max_retries=0) as c:
            start = time.monotonic()
            with pytest.raises(APITimeoutError):
                await c.completion("Привет")
            return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert within(elapsed), elapsed


@pytest.mark.hostile("trickle")
def test_sync_stall_mid_stream(emu: Any) -> None:
    emu.faults.enqueue("stream_stall", routes=["chat"])
    with GigaChat(**client_settings(emu, timeout=timeout())) as client:
        last = time.monotonic()
        with (
            pytest.raises(StreamError, match="timed out") as info,
            client.completion_stream("Длинная история", max_tokens=300) as stream,
        ):
            for _ in stream:
                last = time.monotonic()
        idle = time.monotonic() - last
    assert info.value.chunks_received > 0
    assert within(idle), idle


@pytest.mark.hostile("trickle")
def test_async_stall_mid_stream(emu: Any) -> None:
    emu.faults.enqueue("stream_stall", routes=["chat"])

    async def main() -> float:
        async with AsyncGigaChat(**client_settings(emu, timeout=timeout())) as client:
            last = time.monotonic()
            with pytest.raises(StreamError, match="timed out"):
                async with client.completion_stream("Длинная история", max_tokens=300) as stream:
                    async for _ in stream:
                        last = time.monotonic()
            return time.monotonic() - last

    idle = asyncio.run(main())
    assert within(idle), idle


def settle(emu: Any, timeout_s: float = 3.0) -> int:
    deadline = time.monotonic() + timeout_s
    while emu.stats()["open_connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(emu.stats()["open_connections"])


def test_cancelling_an_async_call_leaves_no_connection_and_the_client_works(emu: Any) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            await client.count_tokens("warm up")
            emu.faults.enqueue("stall", routes=["chat"])
            task = asyncio.create_task(client.completion("Зависший запрос"))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.1)
            assert (await client.completion("После отмены")).text

    asyncio.run(main())
    assert settle(emu) == 0


def test_cancelling_mid_stream_closes_the_connection(emu: Any) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            emu.faults.set("chunk_delay_ms:50", routes=["chat"])
            got: list[Any] = []

            async def consume() -> None:
                async with client.completion_stream("Длинная история", max_tokens=500) as stream:
                    async for chunk in stream:
                        got.append(chunk)

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.4)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            emu.faults.clear()
            assert got
            assert (await client.completion("Дальше")).text

    asyncio.run(main())
    assert settle(emu) == 0


def test_closing_a_sync_stream_midway_closes_the_connection(emu: Any) -> None:
    with GigaChat(**client_settings(emu)) as client:
        stream = client.completion_stream("Длинная история", max_tokens=500)
        next(iter(stream))
        stream.close()
        assert stream.closed
        assert client.completion("Дальше").text
    assert settle(emu) == 0
