"""Streamed completions in a fleet: each holds a concurrency lease until its stream ends, fails,
is closed or cancelled, or is dropped and garbage-collected (a real redis-server and a state
file, against the emulator's own count of requests in flight)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from gigapy import AsyncGigaChat, GigaChat
from gigapy.emulator import Emulator
from gigapy.testing import client_settings

from .redis_server import RedisServer

K = 2  # the fleet's limit
N = 6  # concurrent streams


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["redis", "file"])
def fleet_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'fleet'}?limit={K}&lease_ttl=2"
    server: RedisServer = request.getfixturevalue("redis_server")
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.close()
    return f"{server.url}?limit={K}&lease_ttl=2"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(ttft=0.25, tokens_per_second=0) as emulator:
        yield emulator


def _settings(emu: Emulator, url: str) -> dict[str, Any]:
    return client_settings(emu, scope="GIGACHAT_API_CORP", coordinator=url)


def _held(client: GigaChat | AsyncGigaChat) -> int:
    hook = client._fleet
    assert hook is not None
    return hook.coordinator.held(f"{hook.prefix}:chat")


def _until_free(client: GigaChat | AsyncGigaChat, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while _held(client) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _held(client)


def test_sync_streams_hold_a_lease_for_their_whole_duration(emu: Emulator, fleet_url: str) -> None:
    with GigaChat(**_settings(emu, fleet_url)) as client:
        client.completion("warm up")  # token and connection, outside the measured part
        emu.reset_stats()
        chunks: list[int] = []

        def one(i: int) -> None:
            if i % 2:
                with client.completion_stream(f"q{i}") as stream:
                    chunks.append(sum(1 for _ in stream))
            else:
                with client.v2.completion_stream(f"q{i}") as events:
                    chunks.append(sum(1 for _ in events))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stats = emu.stats()
        assert len(chunks) == N and min(chunks) > 0
        assert stats["slots_peak"] == K  # never more than the fleet's limit in flight, and all of it used
        assert stats["responses"].get("429", 0) == 0
        assert _held(client) == 0


def test_sync_stream_closed_or_dropped_early_frees_its_lease(emu: Emulator, fleet_url: str) -> None:
    with GigaChat(**_settings(emu, fleet_url)) as client:
        stream = client.completion_stream("closed early")
        next(iter(stream))
        assert _held(client) == 1
        stream.close()
        assert _held(client) == 0  # at once: the sync close gives it back itself
        dropped = client.completion_stream("never read")
        assert _held(client) == 1
        del dropped
        gc.collect()
        assert _until_free(client) == 0
        with pytest.raises(ZeroDivisionError), client.completion_stream("fails in the caller") as failing:
            next(iter(failing))
            raise ZeroDivisionError
        assert _held(client) == 0


def test_async_streams_hold_a_lease_and_free_it_on_cancel_and_drop(emu: Emulator, fleet_url: str) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**_settings(emu, fleet_url)) as client:
            await client.completion("warm up")
            emu.reset_stats()

            async def one(i: int) -> int:
                if i % 2:
                    async with client.completion_stream(f"q{i}") as stream:
                        return sum([1 async for _ in stream])
                async with client.v2.completion_stream(f"q{i}") as events:
                    return sum([1 async for _ in events])

            counts = await asyncio.gather(*(one(i) for i in range(N)))
            stats = emu.stats()
            assert min(counts) > 0
            assert stats["slots_peak"] == K
            assert stats["responses"].get("429", 0) == 0
            assert await asyncio.to_thread(_until_free, client) == 0

            started = asyncio.Event()

            async def reader() -> None:
                async with client.completion_stream("cancelled") as stream:
                    async for _ in stream:
                        started.set()
                        await asyncio.sleep(30)

            task = asyncio.ensure_future(reader())
            await asyncio.wait_for(started.wait(), 10)
            assert await asyncio.to_thread(_held, client) == 1
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert await asyncio.to_thread(_until_free, client) == 0

            dropped = await client.completion_stream("dropped")
            await dropped.__anext__()
            assert await asyncio.to_thread(_held, client) == 1
            del dropped
            gc.collect()
            assert await asyncio.to_thread(_until_free, client) == 0

    asyncio.run(main())
