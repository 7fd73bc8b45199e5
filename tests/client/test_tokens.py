"""Tokens: one process-wide cache, single-flight refresh, refresh ahead of expiry, 401 handling."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import threading
import time
from typing import Any

import pytest

from gigapy import APIStatusError, AsyncGigaChat, AuthenticationError, ConfigurationError, GigaChat, clear_token_cache
from gigapy._core.flow import Clock
from gigapy.emulator import DEMO_CREDENTIALS, DEMO_PASSWORD, DEMO_USER, Account, Emulator
from gigapy.testing import client_settings

from ..rawserver import RawRequest, answer, raw_server


def test_50_threads_starting_together_make_one_oauth_request(emu: Any) -> None:
    barrier = threading.Barrier(50)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with GigaChat(**client_settings(emu)) as client:  # one client per thread: the cache is shared
                barrier.wait()
                client.count_tokens("привет")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    stats = emu.stats()
    assert stats["oauth_requests"] == 1
    assert stats["api_requests"]["tokens_count"] == 50


def test_500_tasks_starting_together_make_one_oauth_request(emu: Any) -> None:
    async def main() -> None:
        clients = [AsyncGigaChat(**client_settings(emu)) for _ in range(5)]
        start = asyncio.Event()

        async def task(client: AsyncGigaChat) -> None:
            await start.wait()
            await client.count_tokens("привет")

        tasks = [asyncio.create_task(task(clients[i % 5])) for i in range(500)]
        await asyncio.sleep(0)
        start.set()
        await asyncio.gather(*tasks)
        for client in clients:
            await client.aclose()

    asyncio.run(main())
    stats = emu.stats()
    assert stats["oauth_requests"] == 1
    assert stats["api_requests"]["tokens_count"] == 500


def test_threads_and_event_loops_share_one_refresh(emu: Any) -> None:
    barrier = threading.Barrier(11)

    def sync_worker() -> None:
        with GigaChat(**client_settings(emu)) as client:
            barrier.wait()
            client.count_tokens("x")

    def async_worker() -> None:
        async def main() -> None:
            async with AsyncGigaChat(**client_settings(emu)) as client:
                barrier.wait()
                await asyncio.gather(*(client.count_tokens("y") for _ in range(20)))

        asyncio.run(main())

    threads = [threading.Thread(target=sync_worker) for _ in range(10)] + [threading.Thread(target=async_worker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert emu.stats()["oauth_requests"] == 1
    assert emu.stats()["api_requests"]["tokens_count"] == 30


def test_expired_token_is_refreshed_once_and_the_call_repeated(emu: Any, make_client: Any) -> None:
    client = make_client()
    client.count_tokens("a")
    old = client.authorization
    emu.expire_tokens()
    assert client.count_tokens("b")[0].tokens > 0  # transparently: 401 -> refresh -> repeat
    assert client.authorization != old
    stats = emu.stats()
    assert stats["oauth_requests"] == 2
    assert stats["responses"]["401"] == 1


def test_concurrent_401s_cause_one_refresh(emu: Any) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            await client.count_tokens("warm up")
            emu.expire_tokens()
            await asyncio.gather(*(client.count_tokens(f"t{i}") for i in range(50)))

    asyncio.run(main())
    assert emu.stats()["oauth_requests"] == 2


def test_refresh_happens_ahead_of_expiry() -> None:
    with Emulator(limits=None, token_ttl=4.0) as short, GigaChat(**client_settings(short)) as client:
        client.count_tokens("a")
        first = client.authorization
        time.sleep(2.3)  # past the half-life, before expiry
        client.count_tokens("b")
        assert client.authorization != first
        stats = short.stats()
        assert stats["oauth_requests"] == 2
        assert "401" not in stats["responses"]  # refreshed before the server had to refuse


def test_user_password_token_with_exp_in_seconds_is_reused(emu: Any, make_client: Any) -> None:
    client = make_client(credentials=None, user=DEMO_USER, password=DEMO_PASSWORD)
    for _ in range(3):
        client.count_tokens("x")
    stats = emu.stats()
    assert stats["token_requests"] == 1  # the seconds-vs-ms bug of the official SDK would make 3
    assert stats["oauth_requests"] == 0


def test_static_access_token(emu: Any, make_client: Any) -> None:
    token = make_client().create_token().access_token.get_secret_value()
    emu.reset_stats()
    clear_token_cache()
    client = make_client(credentials=None, access_token=token)
    assert client.authorization == token
    client.count_tokens("x")
    assert emu.stats()["oauth_requests"] == 0
    emu.expire_tokens()
    with pytest.raises(AuthenticationError) as info:  # nothing to refresh with
        client.count_tokens("y")
    assert "expired" in str(info.value)
    assert token not in str(info.value)
    both = make_client(access_token=token)  # a static token plus credentials: refreshed on 401
    both.count_tokens("z")
    assert both.authorization != token


def test_wrong_credentials_give_oauth_code_6_with_advice(make_client: Any) -> None:
    wrong = base64.b64encode(b"7f3e0c52-9b1d-4a6e-8c2f-3d5b6a7e8f90:wrong-secret").decode()
    client = make_client(credentials=wrong)
    with pytest.raises(AuthenticationError) as info:
        client.completion("hi")
    err = info.value
    assert (err.status_code, err.code) == (401, 6)
    assert "copy it again" in str(err)
    assert wrong not in str(err)


def test_scope_not_granted_gives_code_7_with_advice() -> None:
    account = Account("11111111-2222-4333-8444-555555555555", "secret-value", frozenset({"GIGACHAT_API_PERS"}))
    with (
        Emulator(limits=None, accounts=(account,)) as emu2,
        GigaChat(**client_settings(emu2, credentials=account.credentials, scope="GIGACHAT_API_CORP")) as client,
        pytest.raises(APIStatusError) as info,
    ):
        client.all_models()
    assert getattr(info.value, "code", None) == 7
    assert "GIGACHAT_API_B2B" in str(info.value)


def test_create_token_puts_the_token_in_the_shared_cache(emu: Any, make_client: Any) -> None:
    token = make_client().create_token()
    other = make_client()
    assert other.authorization == token.access_token.get_secret_value()
    other.count_tokens("x")
    assert emu.stats()["oauth_requests"] == 1


def test_create_token_without_credentials_is_a_clear_error(make_client: Any) -> None:
    client = make_client(credentials=None, access_token="abc")
    with pytest.raises(ConfigurationError, match="credentials"):
        client.create_token()


# --- clock skew: expiry is a lifetime measured from receipt on the monotonic clock ---------------

SKEW = 31 * 60.0  # a local clock 31 minutes off (the token lives 30 minutes)
CASES = ["clock_ahead", "clock_behind", "expired_expires_at"]


def _skew(client: Any, case: str) -> None:
    """Skew the client's wall clock (the one it reads expiry times against): the core takes its
    clock as an argument, so the test passes a skewed one instead of the system's."""
    offset = {"clock_ahead": SKEW, "clock_behind": -SKEW}.get(case)
    if offset is not None:
        core = client._core
        core.policy = dataclasses.replace(core.policy, clock=Clock(wall=lambda: time.time() + offset))


def _auth(mode: str) -> dict[str, Any]:
    return {} if mode == "oauth" else {"credentials": None, "user": DEMO_USER, "password": DEMO_PASSWORD}


def _fetches(emu: Any) -> int:
    stats = emu.stats()
    return int(stats["oauth_requests"]) + int(stats["token_requests"])


@pytest.mark.hostile("clock_skew")
@pytest.mark.parametrize("mode", ["oauth", "password"])  # expires_at in ms from OAuth, exp in s from /token
@pytest.mark.parametrize("case", CASES)
def test_sync_clock_skew_or_an_expired_expiry_costs_at_most_one_extra_fetch(
    emu: Any, make_client: Any, case: str, mode: str
) -> None:
    if case == "expired_expires_at":
        emu.faults.set("expires_at_shift:-3600")  # the server says the token expired an hour ago; it works
    client = make_client(**_auth(mode))
    _skew(client, case)
    for i in range(20):
        client.count_tokens(f"вызов {i}")
    assert _fetches(emu) <= 2
    assert "401" not in emu.stats()["responses"]


@pytest.mark.hostile("clock_skew")
@pytest.mark.parametrize("mode", ["oauth", "password"])
@pytest.mark.parametrize("case", CASES)
def test_async_clock_skew_or_an_expired_expiry_costs_at_most_one_extra_fetch(emu: Any, case: str, mode: str) -> None:
    if case == "expired_expires_at":
        emu.faults.set("expires_at_shift:-3600")

    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu, **_auth(mode))) as client:
            _skew(client, case)
            for i in range(10):
                await client.count_tokens(f"вызов {i}")
            await asyncio.gather(*(client.count_tokens(f"параллельно {i}") for i in range(10)))

    asyncio.run(main())
    assert _fetches(emu) <= 2
    assert "401" not in emu.stats()["responses"]


@pytest.mark.hostile("clock_skew")
@pytest.mark.parametrize("offset", [SKEW, -SKEW])
def test_skew_without_a_date_header_costs_at_most_one_extra_fetch(offset: float) -> None:
    """A server whose OAuth answer has no Date header (nothing to correct the local clock with)."""

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.path.endswith("/oauth"):
            expires = int((time.time() + 1800) * 1000)  # 30 minutes, by the server's (true) clock
            writer.write(answer(200, {"access_token": "raw-token", "expires_at": expires}))
        else:
            writer.write(answer(200, [{"object": "tokens", "tokens": 2, "characters": 5}]))
        return True

    with (
        raw_server(handler) as server,
        GigaChat(credentials=DEMO_CREDENTIALS, base_url=server.base_url, auth_url=server.auth_url) as client,
    ):
        core = client._core
        core.policy = dataclasses.replace(core.policy, clock=Clock(wall=lambda: time.time() + offset))
        for i in range(20):
            client.count_tokens(f"вызов {i}")
        assert server.count("/oauth") <= 2


@pytest.mark.hostile("clock_skew")
def test_a_token_that_only_looks_expired_is_still_replaced_on_a_401(emu: Any, make_client: Any) -> None:
    emu.faults.set("expires_at_shift:-3600")
    client = make_client()
    client.count_tokens("a")
    emu.expire_tokens()  # now it really is expired
    assert client.count_tokens("b")[0].tokens > 0  # 401 -> refresh -> repeat, as always
    assert emu.stats()["oauth_requests"] == 2
