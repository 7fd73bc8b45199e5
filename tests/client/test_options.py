"""Per-call options, with_options, lifecycle, prompt caching and connection hygiene."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gigapy import AsyncGigaChat, GigaChat
from gigapy.testing import client_settings


@pytest.fixture
def emu(module_emulator: Any) -> Any:
    """This module counts the emulator's open connections: a private emulator (see conftest),
    reset before each test as the session's one is."""
    module_emulator.reset()
    return module_emulator


def last_chat(emu: Any) -> Any:
    return next(r for r in reversed(emu.requests) if r.path.endswith("/chat/completions"))


def wait_closed(emu: Any, timeout: float = 3.0) -> int:
    """Open server-side connections once they settle (the server notices a close asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        count = int(emu.stats()["open_connections"])
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.02)


def test_per_call_options_reach_the_wire_and_come_back(emu: Any, make_client: Any) -> None:
    result = make_client().completion(
        "Привет",
        session_id="sess-1",
        request_id="req-1",
        client_id="client-1",
        extra_headers={"X-Trace-ID": "trace-9"},
        extra_body={"custom_field": 42},
    )
    req = last_chat(emu)
    assert (req.headers["X-Session-ID"], req.headers["X-Request-ID"], req.headers["X-Client-ID"]) == (
        "sess-1",
        "req-1",
        "client-1",
    )
    assert req.headers["X-Trace-ID"] == "trace-9"
    assert req.json()["custom_field"] == 42
    assert (result.session_id, result.request_id, result.client_id) == ("sess-1", "req-1", "client-1")


def test_ids_are_generated_when_not_given(emu: Any, make_client: Any) -> None:
    result = make_client().completion("Привет")
    assert len(result.request_id or "") == 36
    assert len(result.session_id or "") == 36  # the server generates one
    assert last_chat(emu).headers["User-Agent"].startswith("gigapy/")


def test_a_stable_session_id_reuses_the_prompt_cache(make_client: Any) -> None:
    client = make_client()
    history = [{"role": "system", "content": "Ты помощник. " * 30}, {"role": "user", "content": "Первый вопрос"}]
    first = client.completion(history, session_id="cache-demo")
    second = client.completion(
        [*history, first.message, {"role": "user", "content": "Второй вопрос"}], session_id="cache-demo"
    )
    assert first.usage.precached_prompt_tokens == 0
    assert second.usage.precached_prompt_tokens > 0


def test_with_options_shares_the_pool_and_the_token(emu: Any, make_client: Any) -> None:
    base = make_client()
    base.count_tokens("warm")
    pro = base.with_options(model="GigaChat-2-Pro", max_retries=0)
    assert pro._transport is base._transport
    assert pro.completion("Привет").model.startswith("GigaChat-2-Pro:")
    assert last_chat(emu).json()["model"] == "GigaChat-2-Pro"
    assert emu.stats()["oauth_requests"] == 1
    pro.close()  # a copy does not close the shared pool
    assert base.completion("Ещё").text
    assert base.with_options(verify_ssl_certs=False)._transport is not base._transport  # TLS change: own pool
    assert base.with_options(timeout=5).settings.timeout.read == 5


def test_close_leaves_no_connection_open(emu: Any) -> None:
    with GigaChat(**client_settings(emu)) as client:
        client.completion("Привет")
        with client.completion_stream("Поток") as stream:
            next(iter(stream))  # closed early, mid-stream
        assert client.count_tokens("x")
    assert wait_closed(emu) == 0


def test_many_clients_created_used_and_closed_leave_nothing_open(emu: Any) -> None:
    for _ in range(30):
        with GigaChat(**client_settings(emu)) as client:
            client.count_tokens("x")
    assert wait_closed(emu) == 0
    assert emu.stats()["oauth_requests"] == 1


def test_async_lifecycle_and_early_stream_close(emu: Any) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            async with client.completion_stream("Поток", max_tokens=200) as stream:
                async for _ in stream:
                    break
            assert stream.closed
            text = "".join([t async for t in (await client.completion_stream("Ещё")).text_stream])
            assert text
            chunks = [c async for c in client.completion_stream("И ещё")]
            assert chunks
            copy = client.with_options(model="GigaChat-2-Max")
            assert (await copy.completion("Привет")).model.startswith("GigaChat-2-Max:")
            await copy.aclose()
            assert (await client.completion("после копии")).text

    asyncio.run(main())
    assert wait_closed(emu) == 0


def test_async_client_survives_a_new_event_loop(emu: Any) -> None:
    client = AsyncGigaChat(**client_settings(emu))
    assert asyncio.run(client.completion("первый цикл")).text
    assert asyncio.run(client.completion("второй цикл")).text  # a new loop gets its own session
    asyncio.run(client.aclose())
    assert wait_closed(emu) == 0


def test_stream_final_completion_accumulates_everything(make_client: Any) -> None:
    client = make_client()
    with client.completion_stream("Расскажи про реки России", max_tokens=40) as stream:
        texts = [chunk.text for chunk in stream]
        final = stream.get_final_completion()
    assert final.text == "".join(texts)
    assert final.finish_reason == "length"
    assert final.usage.completion_tokens == 40
    assert final.request_id == stream.request_id
    assert stream.chunks_received == len(texts)


def test_the_sync_fast_path_is_active_and_a_users_own_httpx_client_keeps_its_hooks(emu: Any) -> None:
    import httpx

    with GigaChat(**client_settings(emu)) as client:
        assert client._transport._direct  # the installed httpx still has what the fast path uses
        assert client._transport._route(emu.base_url + "/chat/completions") is not None
        assert client.completion("Привет").text
    seen: list[str] = []
    own = httpx.Client(event_hooks={"request": [lambda request: seen.append(request.url.path)]})
    with GigaChat(**client_settings(emu), http_client=own) as client:
        assert not client._transport._direct  # a caller's client goes through httpx, hooks and all
        assert client.completion("Привет").text
    assert any(path.endswith("/chat/completions") for path in seen)
    own.close()
