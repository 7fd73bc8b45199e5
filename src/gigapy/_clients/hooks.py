"""The few places where the async and the sync clients really differ, as pairs of functions.

``async_client.py`` is the single source of both client faces: ``scripts/unasync.py`` writes
``sync_client.py`` from it, and a name ending in ``_async`` becomes the same name ending in
``_sync``. Each pair here does one thing both ways: sleeping, running blocking work, calling
user code, mapping over items with bounded concurrency, and handing out a stream.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

from .._core.flow import Invoke, InvokeFailed
from .streams import AsyncStream

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S", bound=AsyncStream[Any, Any])
SS = TypeVar("SS")


async def sleep_async(seconds: float) -> None:
    """Wait without blocking the event loop."""
    import asyncio  # here, not at the top: the sync client never loads it

    await asyncio.sleep(seconds)


def sleep_sync(seconds: float) -> None:
    """Wait in this thread."""
    time.sleep(seconds)


async def run_blocking_async(fn: Callable[[], T]) -> T:
    """Run blocking work (file I/O) in a worker thread, off the event loop."""
    import asyncio  # here, not at the top: the sync client never loads it

    return await asyncio.to_thread(fn)


def run_blocking_sync(fn: Callable[[], T]) -> T:
    """Run blocking work (file I/O) in this thread."""
    return fn()


async def invoke_async(action: Invoke) -> Any:
    """Call user code for a flow: coroutine functions are awaited, plain ones run in a thread."""
    import asyncio  # here, not at the top: the sync client never loads it

    try:
        if inspect.iscoroutinefunction(action.fn):
            return await action.fn(**action.kwargs)
        value = await asyncio.to_thread(action.fn, **action.kwargs)
        return await value if inspect.isawaitable(value) else value
    except Exception as exc:  # handed to the flow, which decides
        return InvokeFailed(exc)


async def _await(value: Awaitable[Any]) -> Any:
    return await value


def invoke_sync(action: Invoke) -> Any:
    """Call user code for a flow; an async function is run to completion in a fresh loop."""
    try:
        value = action.fn(**action.kwargs)
        if inspect.isawaitable(value):
            import asyncio  # only for async user code

            value = asyncio.run(_await(value))
        return value
    except Exception as exc:  # handed to the flow, which decides
        return InvokeFailed(exc)


async def map_bounded_async(fn: Callable[[T], Awaitable[R]], items: Sequence[T], limit: int) -> list[R]:
    """``fn`` over ``items``, at most ``limit`` at a time; results in input order, the first
    failure (in input order) raised once all have finished."""
    import asyncio

    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with gate:
            return await fn(item)

    results = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]  # no exception is left in it


def map_bounded_sync(fn: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
    """``fn`` over ``items`` in at most ``limit`` threads; results in input order, the first
    failure (in input order) raised once all have finished."""
    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(items)))) as pool:
        return list(pool.map(fn, items))


class StreamRequest(Generic[S]):
    """What the async ``completion_stream`` returns: await it, ``async with`` it, or ``async for`` it.

    The request is sent when you first await / enter / iterate it; leaving ``async with``
    (or finishing the iteration) closes the connection. (The sync methods return the open
    stream itself.)
    """

    def __init__(self, open_stream: Callable[[], Awaitable[S]]) -> None:
        self._open = open_stream
        self._stream: S | None = None

    async def _get(self) -> S:
        if self._stream is None:
            self._stream = await self._open()
        return self._stream

    def __await__(self) -> Generator[Any, None, S]:
        return self._get().__await__()

    async def __aenter__(self) -> S:
        return await self._get()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        stream = await self._get()
        async with stream:
            async for chunk in stream:
                yield chunk


def open_stream_async(open_stream: Callable[[], Awaitable[S]]) -> StreamRequest[S]:
    """A stream that opens when first awaited, entered or iterated."""
    return StreamRequest(open_stream)


def open_stream_sync(open_stream: Callable[[], SS]) -> SS:
    """The stream, opened now."""
    return open_stream()
