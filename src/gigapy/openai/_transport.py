"""httpx transports (sync and async) that answer OpenAI/Anthropic requests in process.

The official ``openai`` client takes an ``httpx.Client`` or an ``httpx2.Client`` (releases
from 2.x on run on httpx2 and still accept httpx); ``anthropic`` takes only ``httpx2``. Both
libraries have the same transport interface, so one pair of classes is made per library.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from functools import cache
from typing import Any

from ._bridge import AsyncBridge, Bridge, Reply

#: The host in-process clients use: a name, never resolved (no socket is opened for it).
BASE_URL = "http://gigapy.openai/v1"


def library(name: str = "auto") -> Any:
    """The httpx library to build on: ``httpx``, ``httpx2``, or ``auto`` (httpx2 when installed:
    both official clients accept it)."""
    if name == "auto":
        try:
            return importlib.import_module("httpx2")
        except ImportError:
            return importlib.import_module("httpx")
    if name not in ("httpx", "httpx2"):
        raise ValueError(f"lib must be 'auto', 'httpx' or 'httpx2', got {name!r}")
    return importlib.import_module(name)


@cache
def transport_classes(lib: Any) -> tuple[type[Any], type[Any]]:
    """The (sync, async) transport classes for one httpx library module."""

    class _Frames(lib.SyncByteStream):  # type: ignore[misc]
        def __init__(self, frames: Iterator[bytes], close: Any) -> None:
            self._frames = frames
            self._close = close

        def __iter__(self) -> Iterator[bytes]:
            yield from self._frames

        def close(self) -> None:
            close_frames = getattr(self._frames, "close", None)
            if close_frames is not None:
                close_frames()
            self._close()

    class _AsyncFrames(lib.AsyncByteStream):  # type: ignore[misc]
        def __init__(self, frames: AsyncIterator[bytes], close: Any) -> None:
            self._frames = frames
            self._close = close

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for frame in self._frames:
                yield frame

        async def aclose(self) -> None:
            close_frames = getattr(self._frames, "aclose", None)
            if close_frames is not None:
                await close_frames()
            await self._close()

    class GigaChatTransport(lib.BaseTransport):  # type: ignore[misc]
        """Answers OpenAI/Anthropic requests through a sync gigapy client, in process."""

        def __init__(self, bridge: Bridge, owns_client: bool = False) -> None:
            self.bridge = bridge
            self._owns = owns_client

        def handle_request(self, request: Any) -> Any:
            reply = self.bridge.handle(request.method, request.url.path, request.headers, request.read())
            if isinstance(reply, Reply):
                return lib.Response(reply.status, headers=reply.headers, content=reply.body, request=request)
            return lib.Response(
                reply.status, headers=reply.headers, stream=_Frames(reply.frames, reply.close), request=request
            )

        def close(self) -> None:
            if self._owns:
                self.bridge.client.close()

    class AsyncGigaChatTransport(lib.AsyncBaseTransport):  # type: ignore[misc]
        """Answers OpenAI/Anthropic requests through an async gigapy client, in process."""

        def __init__(self, bridge: AsyncBridge, owns_client: bool = False) -> None:
            self.bridge = bridge
            self._owns = owns_client

        async def handle_async_request(self, request: Any) -> Any:
            reply = await self.bridge.handle(request.method, request.url.path, request.headers, await request.aread())
            if isinstance(reply, Reply):
                return lib.Response(reply.status, headers=reply.headers, content=reply.body, request=request)
            return lib.Response(
                reply.status, headers=reply.headers, stream=_AsyncFrames(reply.frames, reply.close), request=request
            )

        async def aclose(self) -> None:
            if self._owns:
                await self.bridge.client.aclose()

    return GigaChatTransport, AsyncGigaChatTransport
