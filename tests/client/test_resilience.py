"""Retries, timeouts, typed errors and streams under injected faults (DESIGN "Behaviour that must be right")."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from gigapy import (
    APIConnectionError,
    APITimeoutError,
    AsyncGigaChat,
    InternalServerError,
    RateLimitError,
    StreamError,
    Timeout,
)
from gigapy.testing import client_settings


def chat_requests(emu: Any) -> int:
    return int(emu.stats()["api_requests"].get("chat", 0))


def test_429_with_retry_after_is_waited_out(emu: Any, make_client: Any) -> None:
    emu.faults.set("retry_after:1")
    emu.faults.enqueue("429", routes=["chat"])
    client = make_client()
    start = time.monotonic()
    result = client.completion("Привет")
    assert time.monotonic() - start >= 0.9
    assert result.retries_taken == 1
    assert chat_requests(emu) == 2


def test_retry_after_beyond_the_cap_is_not_waited(emu: Any, make_client: Any) -> None:
    emu.faults.set("retry_after:3600")
    emu.faults.enqueue("429", routes=["chat"])
    start = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        make_client().completion("Привет")
    assert time.monotonic() - start < 5
    assert info.value.retry_after == 3600
    assert chat_requests(emu) == 1


def test_5xx_is_retried_with_backoff(emu: Any, make_client: Any) -> None:
    emu.faults.enqueue("500", "503", routes=["chat"])
    start = time.monotonic()
    result = make_client().completion("Привет")
    assert result.retries_taken == 2
    assert chat_requests(emu) == 3
    assert time.monotonic() - start >= 0.375 + 0.75  # two backoff sleeps (0.5 s and 1 s, minus jitter)


def test_retries_are_bounded(emu: Any, make_client: Any) -> None:
    emu.faults.enqueue("503", "503", "503", routes=["chat"])
    with pytest.raises(InternalServerError) as info:
        make_client(max_retries=1).completion("Привет")
    assert info.value.status_code == 503
    assert chat_requests(emu) == 2


def test_nginx_html_500_is_a_typed_error(emu: Any, make_client: Any) -> None:
    emu.faults.enqueue("500html", routes=["chat"])
    with pytest.raises(InternalServerError) as info:
        make_client(max_retries=0).completion("Привет")
    err = info.value
    assert err.status_code == 500
    assert err.server_message == "500 Internal Server Error"
    assert err.body.startswith(b"<html>")
    assert err.request_id


def test_a_connection_dropped_after_sending_is_retried_only_when_safe(emu: Any, make_client: Any) -> None:
    client = make_client()
    emu.faults.enqueue("drop", routes=["models"])
    assert client.all_models().retries_taken == 1  # idempotent: repeated
    emu.faults.enqueue("drop", routes=["chat"])
    with pytest.raises(APIConnectionError, match="connection failed"):
        client.completion("Привет")  # the service may be generating it already: never sent twice
    assert chat_requests(emu) == 1


def test_mid_stream_drop_raises_after_the_chunks_received_and_is_never_replayed(emu: Any, make_client: Any) -> None:
    emu.faults.enqueue("stream_drop", routes=["chat"])
    received: list[str] = []
    with (
        pytest.raises(StreamError) as info,
        make_client().completion_stream("Расскажи длинную историю", max_tokens=300) as stream,
    ):
        for chunk in stream:
            received.append(chunk.text)
    assert received  # the chunks before the drop were delivered
    assert info.value.chunks_received == len(received)
    assert info.value.request_id
    assert chat_requests(emu) == 1  # not replayed


def test_stream_errors_before_the_first_event_are_retried(emu: Any, make_client: Any) -> None:
    emu.faults.enqueue("503", routes=["chat"])
    with make_client().completion_stream("Привет") as stream:
        final = stream.get_final_completion()
        assert stream.retries_taken == 1
    assert final.text
    assert final.finish_reason == "stop"


def test_expired_token_mid_stream_session_is_refreshed(emu: Any, make_client: Any) -> None:
    client = make_client()
    client.count_tokens("warm")
    emu.expire_tokens()
    with client.completion_stream("Привет") as stream:
        assert stream.get_final_completion().text
    assert emu.stats()["oauth_requests"] == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_is_an_api_connection_error(make_client: Any) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api/v1"
    client = make_client(base_url=url, auth_url=url + "/oauth", max_retries=1)
    with pytest.raises(APIConnectionError) as info:
        client.completion("Привет")
    assert not isinstance(info.value, APITimeoutError)
    assert "cannot connect" in str(info.value)


def test_stalled_server_times_out_within_the_bound_and_post_is_not_retried(emu: Any, make_client: Any) -> None:
    emu.faults.enqueue("stall", routes=["chat"])
    client = make_client(timeout=Timeout(connect=5, read=1.0, write=5, pool=5))
    start = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        client.completion("Привет")
    elapsed = time.monotonic() - start
    assert 0.8 <= elapsed <= 1.5
    assert info.value.phase == "read"
    assert chat_requests(emu) == 1  # a timed-out generation may be running: never re-sent


def test_read_timeout_is_retried_for_idempotent_requests(emu: Any, make_client: Any) -> None:
    emu.faults.enqueue("stall", routes=["models"])
    models = make_client(timeout=Timeout(connect=5, read=0.5, write=5, pool=5)).all_models()
    assert models.retries_taken == 1


def test_stream_stall_raises_a_stream_error_within_the_idle_bound(emu: Any, make_client: Any) -> None:
    emu.faults.enqueue("stream_stall", routes=["chat"])
    client = make_client(timeout=Timeout(connect=5, read=1.0, write=5, pool=5))
    start = time.monotonic()
    with pytest.raises(StreamError, match="timed out"), client.completion_stream("Привет", max_tokens=200) as s:
        for _ in s:
            pass
    assert time.monotonic() - start <= 2.5


def test_per_call_timeout_overrides_the_client_default(emu: Any, make_client: Any) -> None:
    emu.faults.enqueue("stall", routes=["chat"])
    start = time.monotonic()
    with pytest.raises(APITimeoutError):
        make_client().completion("Привет", timeout=0.5)
    assert time.monotonic() - start < 1.5


# --- async ------------------------------------------------------------------------------------


def test_async_faults(emu: Any) -> None:
    async def main() -> None:
        async with AsyncGigaChat(
            **client_settings(emu, timeout=Timeout(connect=5, read=1.0, write=5, pool=5))
        ) as client:
            emu.faults.enqueue("500", "429", routes=["chat"])
            assert (await client.completion("Привет")).retries_taken == 2

            emu.faults.enqueue("stream_drop", routes=["chat"])
            got: list[Any] = []
            with pytest.raises(StreamError):
                async with client.completion_stream("Длинная история", max_tokens=300) as stream:
                    async for chunk in stream:
                        got.append(chunk)
            assert got

            emu.faults.enqueue("stall", routes=["chat"])
            start = time.monotonic()
            with pytest.raises(APITimeoutError):
                await client.completion("Привет")
            assert 0.8 <= time.monotonic() - start <= 1.5

            emu.faults.enqueue("500html", routes=["chat"])
            with pytest.raises(InternalServerError):
                await client.with_options(max_retries=0).completion("Привет")

            assert (await client.completion("после сбоев")).text  # the client keeps working

    asyncio.run(main())


def test_async_refused_connection(make_async: Any) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api/v1"

    async def main() -> None:
        async with make_async(base_url=url, auth_url=url + "/oauth", max_retries=0) as client:
            await client.completion("Привет")

    with pytest.raises(APIConnectionError, match="cannot connect"):
        asyncio.run(main())
