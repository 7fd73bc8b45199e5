"""A real HTTP/1.1 server on 127.0.0.1 whose answers the test writes byte by byte.

The emulator answers like the service; this one answers like a hostile network or a broken
gateway: any header value (``Retry-After-Ms: nan``, ``Content-Length: -1``), any JSON number,
any pace (one byte a second, only ``: ping`` comments). It runs its own event loop in a
thread and serves keep-alive connections; ``handler`` gets each parsed request and the
connection's writer and returns whether to keep the connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawRequest:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[RawRequest, asyncio.StreamWriter], Awaitable[bool]]


def head(status: int, headers: dict[str, str] | None = None, *, length: int | None = None, reason: str = "X") -> bytes:
    """A status line and headers (``length`` adds Content-Length)."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(status: int, body: bytes | str | Any, headers: dict[str, str] | None = None) -> bytes:
    """A whole response with a JSON (or given) body."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body
    return head(status, {"Content-Type": "application/json", **(headers or {})}, length=len(data)) + data


TOKEN = {"access_token": "raw-token", "expires_at": 4_102_444_800_000}


def completion_body(usage: Any = None) -> str:
    """A /chat/completions answer; ``usage`` is put in as raw JSON text when given."""
    usage_text = usage if usage is not None else '{"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}'
    return (
        '{"choices": [{"message": {"role": "assistant", "content": "ok"}, "index": 0, '
        '"finish_reason": "stop"}], "created": 1, "model": "GigaChat-2", "object": "chat.completion", '
        f'"usage": {usage_text}}}'
    )


def sse_event(text: str, finish: str | None = None) -> bytes:
    """One v1 stream event with ``text``."""
    choice: dict[str, Any] = {"delta": {"content": text}, "index": 0}
    if finish:
        choice["finish_reason"] = finish
    return b"data: " + json.dumps({"choices": [choice], "created": 1, "model": "GigaChat-2"}).encode() + b"\n\n"


SSE_HEAD = head(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})


@dataclass
class RawServer:
    """Serve ``handler`` on 127.0.0.1 (see the module docstring)."""

    handler: Handler | None = None
    requests: list[RawRequest] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.AbstractServer | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v2/oauth"

    def count(self, part: str) -> int:
        """Requests so far whose path contains ``part``."""
        return sum(1 for r in self.requests if part in r.path)

    def start(self) -> RawServer:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            for writer in list(self._writers):
                writer.transport.abort()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="raw-http-server")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def drop_connections(self) -> None:
        """Close every open client connection (between test cases)."""
        loop = self._loop
        if loop is not None:

            def close() -> None:
                for writer in list(self._writers):
                    writer.transport.abort()

            loop.call_soon_threadsafe(close)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                assert self.handler is not None, "no handler set"
                keep = await self.handler(request, writer)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


async def _read_request(reader: asyncio.StreamReader) -> RawRequest | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = raw.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return RawRequest(method, path.split("?", 1)[0], headers, body)


@contextlib.contextmanager
def raw_server(handler: Handler | None = None) -> Iterator[RawServer]:
    """A started RawServer, stopped afterwards."""
    server = RawServer(handler).start()
    try:
        yield server
    finally:
        server.stop()


async def trickle(writer: asyncio.StreamWriter, data: bytes, interval: float, step: int = 1) -> None:
    """Write ``data`` ``step`` bytes at a time, ``interval`` seconds apart."""
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
        await writer.drain()
        await asyncio.sleep(interval)
