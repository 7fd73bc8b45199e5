"""Streams of typed chunks.

:class:`StreamState` is sans-IO: bytes in, typed chunks out, plus the accumulated final
message. :class:`Stream` and :class:`AsyncStream` only pull bytes from the driver and
close the connection; they never replay anything. A failure after the stream started
raises :class:`~gigapy.errors.StreamError` once the chunks already received have been
delivered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from .._core.flow import StreamDeadline, TransportFailure
from .._core.stream_state import StreamState
from ..errors import StreamError

T = TypeVar("T")
F = TypeVar("F")


class TransportBroken(Exception):
    """Raised by a driver's byte iterator when the connection fails mid-stream."""

    def __init__(self, failure: TransportFailure) -> None:
        super().__init__(failure.kind)
        self.failure = failure


class _StreamBase(Generic[T, F]):
    """What sync and async streams share: ids, state, and the end-of-stream verdict."""

    def __init__(self, state: StreamState[T, F], deadline: StreamDeadline | None = None) -> None:
        self._state = state
        self._deadline = deadline
        self.closed = False

    @property
    def request_id(self) -> str | None:
        """X-Request-ID of the stream's request."""
        return self._state.meta.request_id

    @property
    def session_id(self) -> str | None:
        """X-Session-ID of the stream's request."""
        return self._state.meta.session_id

    @property
    def retries_taken(self) -> int:
        """Retries before the stream started (a started stream is never retried)."""
        return self._state.meta.retries_taken

    @property
    def response_headers(self) -> Any:
        """The HTTP response headers."""
        return self._state.meta.headers or {}

    @property
    def chunks_received(self) -> int:
        """How many chunks were delivered so far."""
        return self._state.count

    def _broken(self, exc: TransportBroken) -> StreamError:
        failure = exc.failure
        if failure.kind.endswith("timeout"):
            deadline = self._deadline
            phase = "total" if failure.kind == "total_timeout" else "read"
            if deadline is not None and phase == "read":
                phase = deadline.phase()
            if phase == "total":
                return self._state.timeout_error("stream timed out: the call's total timeout passed", "total")
            idle = f" within {deadline.read} s" if deadline is not None and deadline.read is not None else ""
            return self._state.timeout_error(f"stream timed out waiting for data: no event{idle}", "read")
        detail = str(failure.exc) or type(failure.exc).__name__
        return self._state.error(f"stream connection lost: {detail}")

    def _check_end(self) -> None:
        if not self._state.complete():
            partial = " mid-event" if self._state.decoder.has_partial() else ""
            raise self._state.error(f"the stream ended{partial} before the server finished the answer")


class Stream(_StreamBase[T, F]):
    """A streamed answer: iterate it (``for``) for typed chunks; close it (``close()``, or use
    ``with``) when done early.

    ``text_stream`` yields only the text; ``get_final_completion()`` reads the rest and
    returns the whole answer (content, function_call, usage, finish_reason).
    """

    def __init__(
        self,
        state: StreamState[T, F],
        chunks: Iterator[bytes],
        close: Callable[[], None],
        deadline: StreamDeadline | None = None,
    ) -> None:
        super().__init__(state, deadline)
        self._chunks = chunks
        self._close = close
        self._iterator = self._iterate()

    def _iterate(self) -> Generator[T, None, None]:
        state = self._state
        feed = state.iter_feed
        deadline = self._deadline
        seen = 0
        try:
            for data in self._chunks:
                items = feed(data)
                if deadline is not None and state.events != seen:
                    seen = state.events
                    deadline.event()
                yield from items
                if state.done:
                    break
            else:
                yield from state.feed_eof()
                self._check_end()
        except TransportBroken as exc:
            raise self._broken(exc) from exc.failure.exc
        finally:
            self._release()

    def _release(self) -> None:
        if not self.closed:
            self.closed = True
            self._close()

    def __iter__(self) -> Iterator[T]:
        return self._iterator

    def __next__(self) -> T:
        return next(self._iterator)

    @property
    def text_stream(self) -> Iterator[str]:
        """Only the text of each chunk, skipping empty ones (``for t in s.text_stream``)."""
        text_of = self._state.text_of
        for chunk in self._iterator:
            piece = text_of(chunk)
            if piece:
                yield piece

    def get_final_completion(self) -> F:
        """Read what is left and return the accumulated answer."""
        for _ in self._iterator:
            pass
        return self._state.final()

    def close(self) -> None:
        """Close the connection (idempotent). Unread chunks are dropped."""
        self._release()
        try:
            self._iterator.close()
        except ValueError:  # called from inside the iteration itself
            pass

    def __enter__(self) -> Stream[T, F]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncStream(_StreamBase[T, F]):
    """A streamed answer: iterate it (``async for``) for typed chunks; close it (``aclose()``, or use
    ``async with``) when done early.

    ``text_stream`` yields only the text; ``get_final_completion()`` reads the rest and
    returns the whole answer (content, function_call, usage, finish_reason).
    """

    def __init__(
        self,
        state: StreamState[T, F],
        chunks: AsyncIterator[bytes],
        close: Callable[[], Awaitable[None]],
        deadline: StreamDeadline | None = None,
    ) -> None:
        super().__init__(state, deadline)
        self._chunks = chunks
        self._close = close
        self._iterator = self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        state = self._state
        feed = state.iter_feed
        deadline = self._deadline
        seen = 0
        try:
            async for data in self._chunks:
                items = feed(data)
                if deadline is not None and state.events != seen:
                    seen = state.events
                    deadline.event()
                for item in items:
                    yield item
                if state.done:
                    break
            else:
                for item in state.feed_eof():
                    yield item
                self._check_end()
        except TransportBroken as exc:
            raise self._broken(exc) from exc.failure.exc
        finally:
            await self._release()

    async def _release(self) -> None:
        if not self.closed:
            self.closed = True
            await self._close()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterator

    async def __anext__(self) -> T:
        return await self._iterator.__anext__()

    @property
    def text_stream(self) -> AsyncIterator[str]:
        """Only the text of each chunk, skipping empty ones (``async for t in s.text_stream``)."""
        return self._texts()

    async def _texts(self) -> AsyncIterator[str]:
        text_of = self._state.text_of
        async for chunk in self._iterator:
            piece = text_of(chunk)
            if piece:
                yield piece

    async def get_final_completion(self) -> F:
        """Read what is left and return the accumulated answer."""
        async for _ in self._iterator:
            pass
        return self._state.final()

    async def aclose(self) -> None:
        """Close the connection (idempotent). Unread chunks are dropped."""
        await self._release()
        try:
            await self._iterator.aclose()  # type: ignore[attr-defined]
        except RuntimeError:  # called from inside the iteration itself
            pass

    async def __aenter__(self) -> AsyncStream[T, F]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


__all__ = ["AsyncStream", "Stream", "TransportBroken"]
