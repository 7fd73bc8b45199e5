"""Never run a completion twice by surprise: the retry rule for requests that are not safe to repeat.

A request that may already have reached the model (completions v1 and v2, streams, embeddings,
uploads, ...) is not sent again after a 502 or a 504 (the gateway gave up; the model may still be
generating and billing), a read timeout, or a connection lost after sending, unless the client
opts in with ``retry_non_idempotent=True`` (``GIGACHAT_RETRY_NON_IDEMPOTENT``). 429, 500 and 503
are retried for every request; safe requests (GET, token counting) are retried after all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gigapy import AsyncGigaChat, GigaChat, InternalServerError, Timeout
from gigapy._config import load_settings
from gigapy.testing import client_settings

pytestmark = pytest.mark.hostile("no_double")


def _stream_text(client: GigaChat) -> str:
    with client.completion_stream("Привет") as stream:
        return stream.get_final_completion().text


#: name -> (fault route, emulator counter, sync call); each may reach a model, none is safe to repeat
UNSAFE: dict[str, tuple[str, str, Callable[[GigaChat], Any]]] = {
    "completion": ("chat", "chat", lambda c: c.completion("Привет")),
    "stream": ("chat", "chat", _stream_text),
    "v2": ("chat", "chat_v2", lambda c: c.v2.completion("Привет")),
    "embedding": ("embeddings", "embeddings", lambda c: c.embedding(["раз", "два"])),
    "upload": ("files", "files_upload", lambda c: c.upload_file(b"hello", filename="a.txt", content_type="text/plain")),
}


def _requests(emu: Any, route: str) -> int:
    return int(emu.stats()["api_requests"].get(route, 0))


@pytest.mark.parametrize("status", ["502", "504"])
@pytest.mark.parametrize("name", list(UNSAFE))
def test_a_gateway_error_is_not_retried_for_a_request_that_may_have_reached_the_model(
    emu: Any, make_client: Any, name: str, status: str
) -> None:
    route, counter, call = UNSAFE[name]
    emu.faults.enqueue(status, routes=[route])
    with pytest.raises(InternalServerError) as info:
        call(make_client())
    assert info.value.status_code == int(status)
    assert _requests(emu, counter) == 1  # exactly one request seen


@pytest.mark.parametrize("status", ["502", "504"])
@pytest.mark.parametrize("name", list(UNSAFE))
def test_opted_in_a_gateway_error_is_retried(emu: Any, make_client: Any, name: str, status: str) -> None:
    route, counter, call = UNSAFE[name]
    emu.faults.enqueue(status, routes=[route])
    assert call(make_client(retry_non_idempotent=True))
    assert _requests(emu, counter) == 2


@pytest.mark.parametrize("status", ["429", "500", "503"])
def test_429_500_and_503_are_still_retried_for_completions(emu: Any, make_client: Any, status: str) -> None:
    emu.faults.set("retry_after:0")
    emu.faults.enqueue(status, routes=["chat"])
    assert make_client().completion("Привет").retries_taken == 1
    assert _requests(emu, "chat") == 2


@pytest.mark.parametrize("status", ["502", "504"])
def test_safe_requests_are_retried_after_a_gateway_error(emu: Any, make_client: Any, status: str) -> None:
    emu.faults.enqueue(status, routes=["models"])
    emu.faults.enqueue(status, routes=["tokens/count"])
    client = make_client()
    assert client.all_models().retries_taken == 1
    assert client.count_tokens("раз")[0].tokens > 0
    assert _requests(emu, "models") == 2


def test_opted_in_a_completion_is_retried_after_a_dropped_connection_and_a_read_timeout(
    emu: Any, make_client: Any
) -> None:
    client = make_client(retry_non_idempotent=True, timeout=Timeout(connect=5, read=0.5, write=5, pool=5))
    emu.faults.enqueue("drop", routes=["chat"])
    assert client.completion("Привет").retries_taken == 1
    emu.faults.enqueue("stall", routes=["chat"])
    assert client.completion("Привет").retries_taken == 1
    assert _requests(emu, "chat") == 4


def test_with_options_switches_the_rule(emu: Any, make_client: Any) -> None:
    client = make_client()
    emu.faults.enqueue("504", routes=["chat"])
    assert client.with_options(retry_non_idempotent=True).completion("Привет").retries_taken == 1
    emu.faults.enqueue("504", routes=["chat"])
    with pytest.raises(InternalServerError):
        client.completion("Привет")


def test_the_setting_comes_from_the_environment() -> None:
    env = {"GIGACHAT_ACCESS_TOKEN": "t", "GIGACHAT_RETRY_NON_IDEMPOTENT": "true"}
    assert load_settings({}, env).retry_non_idempotent is True
    assert load_settings({}, {"GIGACHAT_ACCESS_TOKEN": "t"}).retry_non_idempotent is False


# --- async ---------------------------------------------------------------------------------------


async def _async_stream(client: AsyncGigaChat) -> str:
    async with client.completion_stream("Привет") as stream:
        return (await stream.get_final_completion()).text


ASYNC_UNSAFE: dict[str, tuple[str, str, Callable[[AsyncGigaChat], Awaitable[Any]]]] = {
    "completion": ("chat", "chat", lambda c: c.completion("Привет")),
    "stream": ("chat", "chat", _async_stream),
    "v2": ("chat", "chat_v2", lambda c: c.v2.completion("Привет")),
    "embedding": ("embeddings", "embeddings", lambda c: c.embedding(["раз", "два"])),
}


@pytest.mark.parametrize("name", list(ASYNC_UNSAFE))
def test_async_one_504_means_one_request_and_a_typed_error_unless_opted_in(emu: Any, name: str) -> None:
    route, counter, call = ASYNC_UNSAFE[name]

    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            emu.faults.enqueue("504", routes=[route])
            with pytest.raises(InternalServerError) as info:
                await call(client)
            assert info.value.status_code == 504
            assert _requests(emu, counter) == 1
            emu.faults.enqueue("504", routes=[route])
            assert await call(client.with_options(retry_non_idempotent=True))
            assert _requests(emu, counter) == 3

    asyncio.run(main())
