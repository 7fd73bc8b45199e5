"""The client's concurrency gate: plain ``asyncio.gather``, threads and ``embed_many`` keep an
account's quota full without a 429 reaching the caller (``max_retries=0``: any 429 the client
passed on would raise), against an emulator that enforces the CORP limit of 10."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from gigapy import AsyncGigaChat, GigaChat
from gigapy.emulator import DEMO_CREDENTIALS, Emulator

LIMIT = 10  # the emulator's (and the service's) concurrency for CORP


@pytest.fixture(scope="module")
def corp() -> Iterator[Emulator]:
    with Emulator(ttft=0.05, tokens_per_second=0) as emu:  # every answer holds its slot 50 ms
        yield emu


def _settings(emu: Emulator) -> dict[str, object]:
    return {
        "credentials": DEMO_CREDENTIALS,
        "scope": "GIGACHAT_API_CORP",
        "base_url": emu.base_url,
        "auth_url": emu.auth_url,
        "max_retries": 0,
    }


def test_gather_fills_the_quota_and_no_429_reaches_the_caller(corp: Emulator) -> None:
    async def run() -> tuple[list[str], object]:
        async with AsyncGigaChat(**_settings(corp)) as client:  # type: ignore[arg-type]
            await client.all_models()
            answers = await asyncio.gather(*(client.completion(f"q{i}") for i in range(60)))
            return [a.text for a in answers], client._gates["chat"]

    corp.reset_stats()
    texts, gate = asyncio.run(run())
    assert len(texts) == 60 and all(texts)
    stats = corp.stats()
    assert stats["slots_peak"] == LIMIT  # the quota was full, and never exceeded for long
    assert gate.limit in (LIMIT, LIMIT + 1)  # type: ignore[attr-defined]  # found (a probe may be out)
    # the gate's own probes above the limit are the only 429s the emulator sent, each sent again locally
    assert stats["responses"].get("429", 0) == gate.refused  # type: ignore[attr-defined]
    assert stats["responses"]["200"] >= 60


def test_threads_share_the_sync_gate(corp: Emulator) -> None:
    corp.reset_stats()
    with GigaChat(**_settings(corp)) as client, ThreadPoolExecutor(24) as pool:  # type: ignore[arg-type]
        texts = list(pool.map(lambda i: client.completion(f"q{i}").text, range(48)))
    assert len(texts) == 48 and all(texts)
    assert corp.stats()["slots_peak"] == LIMIT


def test_embed_many_default_uses_the_whole_quota(corp: Emulator) -> None:
    corp.faults.set("latency_ms:50", ["/embeddings"])
    try:

        async def run() -> list[list[float]]:
            async with AsyncGigaChat(**_settings(corp)) as client:  # type: ignore[arg-type]
                return await client.embed_many([f"text {i}" for i in range(40)], batch_size=1)

        corp.reset_stats()
        vectors = asyncio.run(run())
    finally:
        corp.faults.set("")
    assert len(vectors) == 40
    assert corp.stats()["slots_peak"] == LIMIT  # not the old default of 4 batches at a time


def test_one_async_client_on_two_event_loops_in_two_threads(corp: Emulator) -> None:
    """The gate is shared by every loop using the client: a slot freed on one loop wakes a waiter
    of the other loop (thread-safely), and the account's limit holds across both."""
    client = AsyncGigaChat(**{**_settings(corp), "scope": "GIGACHAT_API_PERS"})  # type: ignore[arg-type]
    corp.reset_stats()

    def on_own_loop(tag: str) -> list[str]:
        async def run() -> list[str]:
            answers = await asyncio.wait_for(
                asyncio.gather(*(client.completion(f"{tag}{i}") for i in range(6))), timeout=60
            )
            return [a.text for a in answers]

        return asyncio.run(run())

    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(on_own_loop, ["a", "b"]))
    finally:
        asyncio.run(client.aclose())
    assert [len(r) for r in results] == [6, 6] and all(all(results) for _ in results)
    assert corp.stats()["slots_peak"] <= 1  # PERS: one request at a time for the whole client
