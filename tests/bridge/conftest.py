"""Fixtures of the OpenAI-compatible bridge tests: the real ``openai``/``anthropic`` clients on the
in-process transport, and ``gigapy serve``'s server on loopback, both in front of the emulator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gigapy import AsyncGigaChat, GigaChat
from gigapy.testing import client_settings


@pytest.fixture
def giga(emu: Any) -> Iterator[GigaChat]:
    """A sync gigapy client on the emulator (retries off: errors surface as they are)."""
    with GigaChat(**client_settings(emu, max_retries=0)) as client:
        yield client


@pytest.fixture
def oai(giga: GigaChat) -> Iterator[Any]:
    """The real ``openai.OpenAI`` client answered in process by gigapy."""
    import openai

    import gigapy.openai

    with openai.OpenAI(
        base_url=gigapy.openai.BASE_URL, api_key="unused", max_retries=0, http_client=gigapy.openai.http_client(giga)
    ) as client:
        yield client


class LiveServer:
    """``gigapy serve``'s server on a loopback port, on its own event loop thread."""

    def __init__(self, settings: dict[str, Any], **config: Any) -> None:
        from gigapy.openai._server import ServeConfig, Server

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.config = ServeConfig(port=0, **config)

        async def start() -> tuple[Any, int]:
            server = Server(AsyncGigaChat(**settings), self.config)
            return server, await server.start()

        self.server, self.port = self.call(start())
        self.url = f"http://127.0.0.1:{self.port}"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def drain(self) -> Any:
        """Start the graceful shutdown (returns a future)."""
        return asyncio.run_coroutine_threadsafe(self.server.drain(), self.loop)

    def close(self) -> None:
        if not self.server.draining:
            self.call(self.server.drain())
        self.call(self.server.client.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def live_server(emu: Any) -> Iterator[Callable[..., LiveServer]]:
    """Factory of servers in front of the emulator (keyword arguments: ServeConfig fields)."""
    made: list[LiveServer] = []

    def make(**config: Any) -> LiveServer:
        server = LiveServer(client_settings(emu, max_retries=0), **config)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()
