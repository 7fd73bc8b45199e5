"""One AsyncGigaChat, several event loops: each loop gets its own aiohttp session, no loop closes
another loop's session under its requests, and nothing is left open after ``aclose``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from gigapy import AsyncGigaChat, ConfigurationError
from gigapy.testing import client_settings

from ..conftest import async_wait_until


@pytest.fixture
def emu() -> Iterator[Any]:
    """These tests count the emulator's open connections: a private emulator for each test."""
    from gigapy.emulator import Emulator

    with Emulator(limits=None, oauth_rps_limit=None) as emulator:
        yield emulator


pytestmark = pytest.mark.hostile("event_loops")

N = 40  # concurrent requests per loop


def _settle(emu: Any, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while emu.stats()["open_connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(emu.stats()["open_connections"])


def _run_in_threads(client: AsyncGigaChat, threads: int, rounds: int = 2) -> list[BaseException | int]:
    """``threads`` threads, each running its own event loop with N concurrent requests per round."""
    barrier = threading.Barrier(threads)
    results: list[BaseException | int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        async def main() -> list[BaseException | int]:
            out: list[BaseException | int] = []
            barrier.wait()
            for r in range(rounds):
                got = await asyncio.gather(
                    *(client.count_tokens(f"поток {k} круг {r} запрос {i}") for i in range(N)), return_exceptions=True
                )
                out += [g if isinstance(g, BaseException) else g[0].tokens for g in got]
            return out

        got = asyncio.run(main())
        with lock:
            results.extend(got)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    return results


def test_two_threads_with_their_own_loops_share_one_client(emu: Any) -> None:
    client = AsyncGigaChat(**client_settings(emu))
    emu.faults.set("latency_ms:30", routes=["tokens/count"])  # requests in flight while the other loop calls
    results = _run_in_threads(client, threads=2)
    emu.faults.clear()
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []  # 100%: no "Connector is closed"
    assert len(results) == 2 * 2 * N
    asyncio.run(client.aclose())  # both loops have ended: their sockets are shut directly
    assert client._transport._sessions == {}
    assert _settle(emu) == 0


def test_closing_from_one_loop_never_closes_another_loops_session_under_its_requests(emu: Any) -> None:
    client = AsyncGigaChat(**client_settings(emu, max_connections=200))
    emu.faults.set("latency_ms:300", routes=["tokens/count"])
    started = threading.Event()
    outcome: list[Any] = []

    def busy_loop() -> None:
        async def main() -> None:
            calls = [asyncio.ensure_future(client.count_tokens(f"долгий {i}")) for i in range(N)]

            async def all_in_flight() -> bool:
                return int((await asyncio.to_thread(emu.stats))["inflight"]) >= N

            await async_wait_until(all_in_flight)
            started.set()  # N requests in flight on this loop
            outcome.extend(await asyncio.gather(*calls, return_exceptions=True))

        asyncio.run(main())

    other = threading.Thread(target=busy_loop)
    other.start()
    assert started.wait(10)

    async def close_here() -> None:
        await client.count_tokens("этот цикл тоже работал")
        await client.aclose()

    asyncio.run(close_here())
    other.join(30)
    emu.faults.clear()
    failures = [o for o in outcome if isinstance(o, BaseException)]
    assert failures == [] and len(outcome) == N
    assert _settle(emu) == 0  # the busy loop's session closed itself once its requests ended


def test_a_new_asyncio_run_after_the_last_one_ended_works(emu: Any) -> None:
    client = AsyncGigaChat(**client_settings(emu))

    async def use() -> int:
        return (await client.count_tokens("привет"))[0].tokens

    assert asyncio.run(use()) > 0
    assert asyncio.run(use()) > 0  # the first loop ended with its session open: replaced, not reused
    assert len(client._transport._sessions) == 1  # the dead loop's session was dropped
    asyncio.run(client.aclose())
    assert _settle(emu) == 0


def test_streams_on_two_loops_at_once(emu: Any) -> None:
    client = AsyncGigaChat(**client_settings(emu))
    texts: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        async def main() -> None:
            async def one(i: int) -> str:
                async with client.completion_stream(f"Расскажи историю {i}") as stream:
                    return (await stream.get_final_completion()).text

            texts.extend(await asyncio.gather(*(one(i) for i in range(10))))

        try:
            asyncio.run(main())
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(2)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert errors == []
    assert len(texts) == 20 and all(texts)
    client._transport.close_nowait()
    assert _settle(emu) == 0


def test_a_session_given_by_the_caller_refuses_another_loop_at_once(emu: Any) -> None:
    async def make() -> tuple[AsyncGigaChat, aiohttp.ClientSession]:
        session = aiohttp.ClientSession()
        client = AsyncGigaChat(session=session, **client_settings(emu))
        assert (await client.count_tokens("свой цикл"))[0].tokens > 0
        return client, session

    loop = asyncio.new_event_loop()
    try:
        client, session = loop.run_until_complete(make())

        async def elsewhere() -> None:
            await client.count_tokens("чужой цикл")

        with pytest.raises(ConfigurationError, match="another event loop"):
            asyncio.run(elsewhere())
        loop.run_until_complete(session.close())
    finally:
        loop.close()
