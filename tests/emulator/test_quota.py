"""Generation time occupies the caller's concurrency slot; limits that test suites can lift.

A scope's quota binds as on the service only if the answer is generated while the slot is held:
too many requests in flight get 429, and a client that keeps to the quota is paced by it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from gigapy import AsyncGigaChat
from gigapy.emulator import (
    DEMO_CREDENTIALS,
    SCOPE_B2B,
    Emulator,
    EmulatorConfig,
    EmulatorProcess,
    config_from_args,
)
from gigapy.emulator._timing import PRESETS

from .conftest import Api, v1_chunks

GEN_SECONDS = 0.1
QUOTA = 10  # B2B's documented concurrency
CHAT = {"model": "GigaChat", "messages": [{"role": "user", "content": "Weather in Paris?"}]}


@pytest.fixture(scope="module")
def slow() -> Iterator[Emulator]:
    """Every answer takes 100 ms to generate; B2B keeps its 10-request quota."""
    with Emulator(ttft=GEN_SECONDS, oauth_rps_limit=None) as emu:
        yield emu


async def _flood(emu: Emulator, token: str, total: int, in_flight: int, stream: bool) -> Counter[int]:
    """``total`` requests from ``in_flight`` workers, no retries; counts the statuses."""
    statuses: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    body = {**CHAT, "stream": stream}
    sent = 0
    deadline = time.monotonic() + 30

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        while sent < total and time.monotonic() < deadline:
            sent += 1
            async with session.post(emu.base_url + "/chat/completions", json=body, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] += 1

    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(in_flight)))
    return statuses


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_generation_holds_the_slot(slow: Emulator, stream: bool) -> None:
    api = Api(slow, SCOPE_B2B)
    slow.reset_stats()
    statuses = asyncio.run(_flood(slow, api.token, 300, 64, stream))
    api.close()
    assert sum(statuses.values()) == 300
    assert set(statuses) == {200, 429}, statuses  # the rest get 429, like the service
    assert statuses[429] > statuses[200]  # 64 in flight against a quota of 10
    stats = slow.stats()
    assert stats["slots_peak"] == QUOTA  # never more than the quota generating at once, and it binds
    assert stats["slots_held"] == 0


def test_a_client_within_the_quota_is_paced_by_generation(slow: Emulator) -> None:
    async def run() -> float:
        async with AsyncGigaChat(
            credentials=DEMO_CREDENTIALS, scope=SCOPE_B2B, base_url=slow.base_url, auth_url=slow.auth_url, max_retries=0
        ) as client:
            await client.completion("warm up")
            queue = list(range(300))

            async def worker() -> None:
                while queue:
                    queue.pop()
                    assert (await client.completion("Weather in Paris?")).text

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(QUOTA)))
            return time.perf_counter() - start

    slow.reset_stats()
    elapsed = asyncio.run(run())
    expected = 300 * GEN_SECONDS / QUOTA  # 3 s of generation, 10 at a time
    assert expected * 0.97 <= elapsed <= expected * 1.2, elapsed
    assert "429" not in slow.stats()["responses"]


def test_latency_fault_holds_the_slot_too() -> None:
    with Emulator(faults="latency_ms:300") as emu:  # PERS: one request at a time
        api = Api(emu)
        pers = Api(emu, "GIGACHAT_API_PERS")

        async def two() -> list[int]:
            headers = {"Authorization": f"Bearer {pers.token}"}
            async with aiohttp.ClientSession() as session:

                async def one() -> int:
                    async with session.get(emu.base_url + "/models", headers=headers) as resp:
                        return resp.status

                return sorted(await asyncio.gather(one(), one()))

        assert asyncio.run(two()) == [200, 429]
        api.close()
        pers.close()


def test_stream_pace_follows_the_timing() -> None:
    with Emulator(limits=None, ttft=0.2, tokens_per_second=100) as emu:
        api = Api(emu)
        arrivals: list[float] = []

        async def read() -> None:
            headers = {
                "Authorization": f"Bearer {api.token}",
                "X-Emulator-Answer-Tokens": "40",
                "X-Emulator-Chunk-Tokens": "4",
            }
            async with aiohttp.ClientSession() as session:
                start = time.monotonic()
                async with session.post(
                    emu.base_url + "/chat/completions", json={**CHAT, "stream": True}, headers=headers
                ) as resp:
                    async for line in resp.content:
                        if line.startswith(b"data: "):
                            arrivals.append(time.monotonic() - start)

        asyncio.run(read())
        start = time.monotonic()
        assert api.chat("x", headers={"X-Emulator-Answer-Tokens": "40"}).status_code == 200
        whole = time.monotonic() - start
        api.close()
    # 10 content chunks + finish + [DONE]: first after the 0.2 s ttft, then 4 tokens / 100 per s apart
    assert len(arrivals) == 12
    assert 0.2 <= arrivals[0] <= 0.2 * 1.2 + 0.05
    assert 11 * 0.04 * 0.8 <= arrivals[-1] - arrivals[0] <= 11 * 0.04 * 1.2 + 0.05
    assert 0.2 + 0.4 <= whole <= (0.2 + 0.4) * 1.2 + 0.05  # ttft + 40 tokens at 100/s


def test_timing_profiles_and_overrides() -> None:
    assert EmulatorConfig().generation().instant  # tests and benchmarks: fast by default
    realistic = EmulatorConfig(timing="realistic").generation()
    assert realistic == PRESETS["realistic"] and realistic.ttft > 0 and realistic.tokens_per_second > 0
    assert EmulatorConfig(timing="realistic", ttft=0).generation().ttft == 0
    with pytest.raises(ValueError, match="unknown timing 'slow'"):
        Emulator(timing="slow")
    with pytest.raises(ValueError, match="ttft must be a finite number >= 0"):
        EmulatorConfig(ttft=-1).generation()
    args = config_from_args(["--timing", "realistic", "--tokens-per-second", "25", "--pack-stream"])
    assert (args.generation().ttft, args.generation().tokens_per_second, args.pack_stream) == (realistic.ttft, 25, True)
    for bad in (["--ttft", "-1"], ["--timing", "slow"], ["--oauth-rps", "x"]):
        with pytest.raises(SystemExit):
            config_from_args(bad)


def test_the_cli_demo_streams_at_a_visible_pace() -> None:
    from gigapy.cli._common import State

    state = State(emulator=True)
    emu = state.start_emulator()
    try:
        assert emu.config.generation() == PRESETS["realistic"]
        assert emu.config.limits is None
    finally:
        state.close()


def test_realistic_profile_spreads_a_stream_over_time() -> None:
    with Emulator(limits=None, timing="realistic") as emu:
        api = Api(emu)
        start = time.monotonic()
        chunks = v1_chunks(
            api.chat("Tell me about rivers", stream=True, headers={"X-Emulator-Answer-Tokens": "20"}).text
        )
        elapsed = time.monotonic() - start
        api.close()
    timing = PRESETS["realistic"]
    assert chunks[-1]["usage"]["completion_tokens"] == 20
    assert elapsed >= timing.answer_seconds(20) * 0.8


# --- limits a test suite can lift -------------------------------------------------------------


def _fresh_tokens(base: str, clients: int) -> tuple[Counter[int], float]:
    """What ``clients`` fresh clients do first: each asks OAuth for its own token, back to back.

    Returns the statuses and the seconds taken (far under a second: well over 10 per second).
    """
    statuses: Counter[int] = Counter()
    start = time.monotonic()
    with httpx.Client(base_url=base, timeout=10) as http:
        for _ in range(clients):
            headers = {"Authorization": f"Basic {DEMO_CREDENTIALS}", "RqUID": str(uuid.uuid4())}
            statuses[http.post("/api/v2/oauth", headers=headers, data={"scope": SCOPE_B2B}).status_code] += 1
    return statuses, time.monotonic() - start


def _serve(*flags: str) -> tuple[EmulatorProcess, str]:
    emu = EmulatorProcess(*flags, port=0).start()
    return emu, emu.url


@pytest.mark.parametrize(
    ("flags", "limited"),
    [((), True), (("--no-limits",), False), (("--no-limits", "--oauth-rps", "5"), True), (("--oauth-rps", "0"), False)],
    ids=["default", "no-limits", "oauth-rps-alone", "oauth-rps-0"],
)
def test_no_limits_lifts_the_oauth_limit(flags: tuple[str, ...], limited: bool) -> None:
    proc, base = _serve(*flags)
    try:
        pers = httpx.post(
            base + "/api/v2/oauth",
            data={"scope": "GIGACHAT_API_PERS"},
            headers={"Authorization": f"Basic {DEMO_CREDENTIALS}", "RqUID": str(uuid.uuid4())},
        ).json()["access_token"]
        statuses, seconds = _fresh_tokens(base, 25)
        assert seconds < 1.0  # 25 new tokens within a second: over any 10-per-second limit
        assert set(statuses) == ({200, 429} if limited else {200}), statuses
        # concurrency is lifted by --no-limits, even when --oauth-rps keeps an OAuth limit
        assert asyncio.run(_pers_pair(base, pers)) == ([200, 200] if "--no-limits" in flags else [200, 429])
    finally:
        proc.stop()


async def _pers_pair(base: str, token: str) -> list[int]:
    """Two overlapping streams on the PERS scope (quota 1 unless lifted)."""
    headers = {"Authorization": f"Bearer {token}", "X-Emulator-Answer-Tokens": "20"}
    body = {**CHAT, "stream": True, "update_interval": 0.02}
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.post(base + "/api/v1/chat/completions", json=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        return sorted(await asyncio.gather(one(), one()))


def test_a_suite_with_a_client_per_test_meets_no_oauth_429(tmp_path: Path) -> None:
    """The pytest plugin's emulator: 40 tests, each with a client of its own that gets its own token."""
    pytest.importorskip("gigachat")
    suite = tmp_path / "test_suite.py"
    suite.write_text(
        textwrap.dedent("""
        import json
        import urllib.request
        import uuid

        import gigachat
        import pytest
        from gigapy.emulator import DEMO_CREDENTIALS

        @pytest.mark.parametrize("n", range(5))
        def test_official_sdk_client(gigachat_emulator, n):
            emu = gigachat_emulator
            with gigachat.GigaChat(base_url=emu.base_url, auth_url=emu.auth_url, credentials=DEMO_CREDENTIALS,
                                   scope="GIGACHAT_API_PERS", model="GigaChat", timeout=10) as giga:
                assert giga.chat("Hello").choices[0].message.content

        @pytest.mark.parametrize("n", range(35))
        def test_bare_client(gigachat_emulator, n):  # a minimal client: urllib, its own token
            emu = gigachat_emulator
            headers = {"Authorization": f"Basic {DEMO_CREDENTIALS}", "RqUID": str(uuid.uuid4())}
            request = urllib.request.Request(emu.auth_url, data=b"scope=GIGACHAT_API_PERS", headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                token = json.load(response)["access_token"]
            request = urllib.request.Request(emu.base_url + "/models", headers={"Authorization": "Bearer " + token})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.load(response)["data"]

        def test_zz_no_429(gigachat_emulator):
            stats = gigachat_emulator.stats()
            assert stats["oauth_requests"] >= 40
            assert "429" not in stats["responses"]
            times = sorted(r.time for r in gigachat_emulator.requests if r.path.endswith("/oauth"))
            busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
            assert busiest > 10, busiest  # faster than the service's 10 per second, and no 429
    """)
    )
    # the last test reads what the whole suite did: keep the session emulator's state between tests
    (tmp_path / "pytest.ini").write_text("[pytest]\ngigachat_isolation = none\n")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "41 passed" in proc.stdout
    assert time.monotonic() - start < 30


def test_oauth_rate_is_per_second_per_key() -> None:
    with Emulator(oauth_rps_limit=None) as emu, httpx.Client(base_url=emu.url) as http:
        statuses = {
            http.post(
                "/api/v2/oauth",
                headers={"Authorization": f"Basic {DEMO_CREDENTIALS}", "RqUID": str(uuid.uuid4())},
                data={"scope": SCOPE_B2B},
            ).status_code
            for _ in range(30)
        }
        assert statuses == {200}
