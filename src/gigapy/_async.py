"""``AsyncGigaChat``: the asynchronous client (aiohttp driver).

Executes the same flows as the sync client: sends with aiohttp, sleeps with
``asyncio.sleep``, runs blocking work (file I/O) in worker threads so the event loop
never blocks, and fetches tokens through the process-wide single-flight cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Generic, Literal, TypeVar, overload

import aiohttp
import yarl
from aiohttp.helpers import get_env_proxy_for_url
from pydantic import BaseModel, SecretStr
from typing_extensions import Self, Unpack

from . import _api as api
from . import _embed
from . import _params as P
from . import _threads as TH
from ._api import ChatFields, ChatParams, ChatV2Base, ChatV2Params, ImageParams, OpenStream, RequestOptions
from ._client import BaseClient, ClientSettings
from ._config import Settings, Timeout, load_settings, secret_args
from ._conversation import AsyncConversation, ConversationState
from ._core import (
    AttemptDeadline,
    Blocking,
    Flow,
    GetToken,
    Invoke,
    InvokeFailed,
    Request,
    Response,
    Send,
    Sleep,
    StreamDeadline,
    TransportFailure,
    client_cert_alert,
)
from ._files import _Seekable
from ._logs import setup_logging
from ._media import attach_flow, generate_image_flow
from ._streaming import AsyncStream, TransportBroken
from ._structured import parse_flow
from ._tls import client_ssl_context, tls_key
from .errors import ConfigurationError, GigaChatError
from .tools import Tool, ToolRun, run_tools_flow
from .types import (
    AccessToken,
    AICheckResult,
    Assistant,
    Assistants,
    Balance,
    Batch,
    BatchResult,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionV2,
    ChatCompletionV2Chunk,
    ConvertedFunctions,
    CreatedAssistant,
    DeletedAssistant,
    DeletedAssistantFile,
    DeletedFile,
    Embeddings,
    File,
    FilterCheckResult,
    FunctionValidationResult,
    Message,
    Model,
    Models,
    Thread,
    ThreadCompletion,
    ThreadCompletionChunk,
    ThreadMessages,
    ThreadRunResponse,
    ThreadRunResult,
    Threads,
    TokensCount,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound=AsyncStream[Any, Any])

AsyncChatStream = AsyncStream[ChatCompletionChunk, ChatCompletion]
AsyncChatV2Stream = AsyncStream[ChatCompletionV2Chunk, ChatCompletionV2]
AsyncThreadStream = AsyncStream[ThreadCompletionChunk, ChatCompletion]


def _failure(exc: BaseException) -> TransportFailure:
    """Map an aiohttp (or asyncio timeout) exception to the core's transport failure."""
    refused = client_cert_alert(exc)
    if refused is not None:  # arrives on connect (TLS 1.2) or on the first read (TLS 1.3)
        host = getattr(exc, "host", "") or ""
        return TransportFailure("client_cert", refused, sent=not isinstance(exc, aiohttp.ClientConnectorError),
                                host=host)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TransportFailure("tls", exc, sent=False, host=exc.host)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TransportFailure("connect_timeout", exc, sent=False)
    if isinstance(exc, asyncio.TimeoutError):  # SocketTimeoutError and ServerTimeoutError included
        return TransportFailure("read_timeout", exc, sent=True)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportFailure("disconnect", exc, sent=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportFailure("connect", exc, sent=False)
    return TransportFailure("network", exc, sent=True)


_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def _env_proxy(origin: str) -> tuple[Any, Any]:
    """The proxy the environment sets for ``origin``, as aiohttp's ``trust_env`` would find it."""
    try:
        return get_env_proxy_for_url(yarl.URL(origin))
    except LookupError:  # no proxy variable for this scheme, or NO_PROXY matches
        return None, None


async def _invoke(action: Invoke) -> Any:
    """Call user code for a flow: coroutine functions are awaited, plain ones run in a thread."""
    try:
        if inspect.iscoroutinefunction(action.fn):
            return await action.fn(**action.kwargs)
        value = await asyncio.to_thread(action.fn, **action.kwargs)
        return await value if inspect.isawaitable(value) else value
    except Exception as exc:  # handed to the flow, which decides
        return InvokeFailed(exc)


class _LoopSession:
    """One event loop's aiohttp session, its proxy cache, and how many of its requests (and open
    streams) are in flight. Touched only from its loop's thread (others schedule callbacks)."""

    __slots__ = ("closer", "closing", "inflight", "loop", "proxies", "session")

    def __init__(self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession) -> None:
        self.loop = loop
        self.session = session
        self.proxies: dict[str, tuple[Any, Any]] = {}
        self.inflight = 0
        self.closing = False
        self.closer: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference

    def done(self) -> None:
        """A request or stream ended; a session asked to close goes once nothing is in flight."""
        self.inflight -= 1
        if self.closing and self.inflight == 0:
            self._close()

    def close_when_idle(self) -> None:
        """Close now if nothing is in flight, else when the last request ends (in this loop)."""
        self.closing = True
        if self.inflight == 0:
            self._close()

    def _close(self) -> None:
        if not self.session.closed and self.closer is None:
            self.closer = self.loop.create_task(self.session.close())


class _Connector(aiohttp.TCPConnector):
    """A TCPConnector that tells the attempt in progress when its connection is ready (the
    moment a plain call's ``read`` limit starts counting)."""

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        conn = await super().connect(req, traces, timeout)
        attempt = _ATTEMPT.get()
        if attempt is not None:
            attempt.connected()
        return conn


class _Watch:
    """Cancel the task that waits on the network once its deadline passes, and tell that
    cancellation apart from anyone else's (``owns``): ``asyncio.timeout_at``'s job, also on Python
    3.10, and cheap enough to run for every stream chunk. One timer handle, re-armed lazily:
    moving the deadline later costs an attribute store; the handle fires at the old moment,
    sees the new one and re-arms. Only a wait in progress is cancelled (between waits the
    consumer's own code runs)."""

    __slots__ = ("_armed", "_handle", "_loop", "_task", "expired", "until", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0
        self._task: asyncio.Task[Any] | None = None
        self.until: float | None = None
        self.waiting = False
        self.expired = False

    def wait(self, until: float | None) -> None:
        """A wait of the current task begins (or goes on) and must end by ``until`` (monotonic
        seconds); None: no limit."""
        self.until = until
        self.waiting = True
        self._task = asyncio.current_task()
        if until is not None:
            handle = self._handle
            if handle is None or self._armed > until:
                if handle is not None:
                    handle.cancel()
                self._arm(until)

    def done(self) -> None:
        """The wait ended."""
        self.waiting = False

    def _arm(self, until: float) -> None:
        self._armed = until
        self._handle = self._loop.call_at(self._loop.time() + (until - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self._handle = None
        until = self.until
        if not self.waiting or until is None:
            return
        if time.monotonic() < until - 1e-3:  # the deadline moved on: wait for the new one
            self._arm(until)
            return
        task = self._task
        if task is not None and not task.done():
            self.expired = True
            task.cancel()

    def owns(self) -> bool:
        """Whether the CancelledError being handled is this watch's doing (then it is a timeout)."""
        if not self.expired:
            return False
        self.expired = False
        uncancel = getattr(self._task, "uncancel", None)  # 3.11+: was the task cancelled by someone else too?
        return uncancel is None or uncancel() == 0

    def close(self) -> None:
        """No more waits."""
        self.waiting = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Attempt:
    """The deadline of one attempt, enforced by a :class:`_Watch` that is moved when the
    connection becomes ready."""

    __slots__ = ("deadline", "watch")

    def __init__(self, deadline: AttemptDeadline, watch: _Watch) -> None:
        self.deadline = deadline
        self.watch = watch

    def connected(self, extra: float = 0.0) -> None:
        if self.deadline.read_at is None:
            self.watch.wait(self.deadline.ready(extra))


_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar("gigapy_attempt", default=None)


class AiohttpTransport:
    """One aiohttp session (connection pool) per event loop, shared with ``with_options`` copies.

    A client may be used from several threads, each running its own event loop: every loop
    gets its own session, and no loop ever closes another loop's session under its requests.
    """

    def __init__(self, settings: Settings, session: aiohttp.ClientSession | None = None) -> None:
        self.tls_key = tls_key(settings)
        self._settings = settings
        self._given = session
        self._lock = threading.Lock()
        self._sessions: dict[asyncio.AbstractEventLoop, _LoopSession] = {}
        self._last: _LoopSession | None = None  # the fast path: one read of one attribute
        self._timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}

    def _entry(self) -> _LoopSession:
        """The running loop's session (created on first use in that loop)."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last.loop is loop and not last.closing:
            return last
        with self._lock:
            entry = self._sessions.get(loop)
            if entry is None or entry.closing or entry.session.closed:
                self._prune()
                entry = self._sessions[loop] = _LoopSession(loop, self._new_session(loop))
            self._last = entry
            return entry

    def session(self) -> aiohttp.ClientSession:
        """The session for the running loop (created on first use in that loop)."""
        return self._entry().session

    def _new_session(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        given = self._given
        if given is not None:
            owner = getattr(given, "_loop", loop)
            if owner is not loop:
                raise ConfigurationError(
                    "session", "the aiohttp session given to this AsyncGigaChat belongs to another event loop; "
                               "create one client (or session) per event loop, or pass no session= and gigapy "
                               "keeps one session per loop")
            return given
        ctx = client_ssl_context(self._settings)
        connector = _Connector(limit=self._settings.max_connections, limit_per_host=0,
                               ssl=ctx if ctx is not None else True, ttl_dns_cache=300)
        # trust_env=False: aiohttp would look up .netrc and the proxy variables in two worker-thread
        # round trips on every request; _proxy() looks the proxy up once per session and origin.
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     trust_env=False, timeout=aiohttp.ClientTimeout(total=None))

    def _prune(self) -> None:
        """Under the lock: forget the sessions of event loops that have ended (their sockets are
        shut directly: nothing can run on a closed loop)."""
        for loop, entry in list(self._sessions.items()):
            if loop.is_closed():
                del self._sessions[loop]
                if self._given is None:
                    self._close_foreign(entry.session)

    def _proxy(self, entry: _LoopSession, url: str) -> tuple[Any, Any]:
        """(proxy, proxy_auth) from the environment (HTTP(S)_PROXY, NO_PROXY, .netrc for the proxy)
        for the origin of ``url``, looked up once per session (as httpx does once per client);
        (None, None) for a session the caller gave us (its own ``trust_env`` decides)."""
        if self._given is not None:
            return None, None
        start = url.find("://") + 3
        end = url.find("/", start)
        origin = url if end < 0 else url[:end]
        found = entry.proxies.get(origin)
        if found is None:
            found = entry.proxies[origin] = _env_proxy(origin)
        return found

    def _timeout(self, t: Timeout) -> aiohttp.ClientTimeout:
        value = self._timeouts.get(t)
        if value is None:
            connect = None if t.connect is None and t.pool is None else (t.connect or 0) + (t.pool or 0)
            value = self._timeouts[t] = aiohttp.ClientTimeout(total=None, connect=connect,
                                                              sock_connect=t.connect, sock_read=t.read)
        return value

    async def _body(self, req: Request) -> Any:
        if req.file is None:
            return req.content
        src = req.file.source
        if isinstance(src, _Seekable):
            value: Any = await asyncio.to_thread(src.read_all)
        elif isinstance(src, str):
            value = await asyncio.to_thread(open, src, "rb")  # aiohttp reads it in a thread, then closes it
        else:
            value = src
        form = aiohttp.FormData()
        for key, item in (req.form or {}).items():
            form.add_field(key, item)
        form.add_field(req.file.field, value, filename=req.file.filename, content_type=req.file.content_type)
        return form

    async def send(self, req: Request) -> Response | TransportFailure:
        """Send one request; the body is read unless it is a stream or a download. The whole
        attempt is bounded by its deadline: the response within ``read`` seconds of the
        connection being ready (bytes that trickle in do not extend it), and the call's
        total deadline."""
        entry = self._entry()
        entry.inflight += 1
        kept = False
        try:
            outcome = await self._send(entry, req)
            kept = type(outcome) is Response and outcome.raw is not None
            return outcome
        finally:
            if not kept:  # an open stream counts until it is closed
                entry.done()

    async def _send(self, entry: _LoopSession, req: Request) -> Response | TransportFailure:
        try:
            data = await self._body(req)
        except OSError as exc:
            return TransportFailure("network", exc, sent=False)
        limit = AttemptDeadline(req, time.monotonic)
        watch = _Watch(entry.loop)
        attempt = _Attempt(limit, watch)
        token = _ATTEMPT.set(attempt)
        watch.wait(limit.until())
        resp: aiohttp.ClientResponse | None = None
        keep_open = False
        try:
            if self._given is not None:  # no connector of ours to tell when the connection is ready
                t = req.timeout
                attempt.connected((t.connect or 0.0) + (t.pool or 0.0))
            proxy, proxy_auth = self._proxy(entry, req.url)
            resp = await entry.session.request(req.method, req.url, data=data, headers=req.wire_headers(),
                                               params=req.params, timeout=self._timeout(req.timeout),
                                               allow_redirects=False, proxy=proxy, proxy_auth=proxy_auth)
            if resp.status < 400 and req.stream:
                keep_open = True
                return Response(resp.status, resp.headers, b"", req.method, req.url, raw=resp)
            if resp.status < 400 and req.download_to is not None:
                await self._download(resp, req.download_to)
                return Response(resp.status, resp.headers, b"", req.method, req.url)
            content = await resp.read()
            return Response(resp.status, resp.headers, content, req.method, req.url)
        except asyncio.CancelledError:
            if watch.owns():
                kind = "total_timeout" if limit.phase() == "total" else "read_timeout"
                return TransportFailure(kind, asyncio.TimeoutError("the attempt's deadline passed"), sent=True)
            raise
        except _ERRORS as exc:
            return _failure(exc)
        finally:
            watch.close()
            _ATTEMPT.reset(token)
            if resp is not None and not keep_open:
                resp.release()

    @staticmethod
    async def _download(resp: aiohttp.ClientResponse, target: str) -> None:
        part = f"{target}.part"
        fh = await asyncio.to_thread(open, part, "wb")
        try:
            async for chunk in resp.content.iter_chunked(1 << 16):
                await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(fh.close)
            await asyncio.to_thread(os.replace, part, target)
        except BaseException:
            fh.close()
            Path(part).unlink(missing_ok=True)
            raise

    def stream(self, opened: OpenStream) -> AsyncStream[Any, Any]:
        """Wrap an open streaming response into a typed AsyncStream. Each wait for data ends at
        the stream's deadline: ``read`` seconds for the next *event* (bytes that complete none,
        such as ``: ping`` comments, do not reset it), and the call's total deadline."""
        resp: aiohttp.ClientResponse = opened.response.raw
        state = opened.state
        deadline = StreamDeadline(opened.read, opened.deadline, time.monotonic)
        entry = self._entry()
        loop = entry.loop

        async def chunks() -> AsyncIterator[bytes]:
            read = resp.content.readany
            watch = _Watch(loop)
            try:
                while True:
                    watch.wait(deadline.until())
                    try:
                        data = await read()
                    except asyncio.CancelledError:
                        if watch.owns():
                            kind = "total_timeout" if deadline.phase() == "total" else "read_timeout"
                            timeout = asyncio.TimeoutError("no event in time")
                            raise TransportBroken(TransportFailure(kind, timeout, sent=True)) from None
                        raise
                    except _ERRORS as exc:
                        raise TransportBroken(_failure(exc)) from exc
                    finally:
                        watch.done()
                    if not data:
                        return
                    yield data
            finally:
                watch.close()

        async def close() -> None:
            try:
                if state.done:
                    resp.release()
                else:
                    resp.close()
            finally:
                entry.done()

        return AsyncStream(state, chunks(), close, deadline)

    async def close(self) -> None:
        """Close the sessions: this loop's now, those of loops that have ended at once (their
        sockets are shut directly), and that of another loop still running in its own thread
        from that loop, once its requests in flight have ended."""
        if self._given is not None:
            return
        with self._lock:
            entries = list(self._sessions.values())
            self._sessions.clear()
            self._last = None
        current = asyncio.get_running_loop()
        for entry in entries:
            if entry.loop is current:
                entry.closing = True
                if not entry.session.closed:
                    await entry.session.close()
            else:
                self._close_elsewhere(entry)

    def close_nowait(self) -> None:
        """Close from outside any event loop (fixture teardown): best effort, never raises."""
        if self._given is not None:
            return
        with self._lock:
            entries = list(self._sessions.values())
            self._sessions.clear()
            self._last = None
        for entry in entries:
            loop = entry.loop
            if not loop.is_closed() and not loop.is_running() and not entry.session.closed:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(entry.session.close())
                    continue
            self._close_elsewhere(entry)

    def _close_elsewhere(self, entry: _LoopSession) -> None:
        """Close a session of another event loop: in that loop once idle, or directly if it ended."""
        if entry.session.closed:
            return
        if not entry.loop.is_closed():
            try:
                entry.loop.call_soon_threadsafe(entry.close_when_idle)
                return
            except RuntimeError:  # the loop closed meanwhile
                pass
        self._close_foreign(entry.session)

    @staticmethod
    def _close_foreign(session: aiohttp.ClientSession) -> None:
        """Close a session whose event loop is gone: shut its sockets directly."""
        connector = session.connector
        if connector is not None:
            protocols = [proto for conns in list(getattr(connector, "_conns", {}).values()) for proto, _ in conns]
            protocols += list(getattr(connector, "_acquired", ()))
            for proto in protocols:
                transport = getattr(proto, "transport", None)
                sock = transport.get_extra_info("socket") if transport is not None else None
                if sock is not None:
                    with contextlib.suppress(Exception):
                        getattr(sock, "_sock", sock).close()
            with contextlib.suppress(Exception):
                connector._close()
        session._connector = None  # nothing left to close: no "unclosed session" warning at exit


class StreamRequest(Generic[S]):
    """What ``completion_stream`` returns: await it, ``async with`` it, or ``async for`` it.

    The request is sent when you first await / enter / iterate it; leaving ``async with``
    (or finishing the iteration) closes the connection.
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

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        stream = await self._get()
        async with stream:
            async for chunk in stream:
                yield chunk


class AsyncChatV2:
    """``client.v2``: the v2 chat contract, async."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncGigaChat) -> None:
        self._client = client

    async def completion(self, messages: str | Sequence[Any] | None = None, /,
                         **params: Unpack[ChatV2Params]) -> ChatCompletionV2:
        """``POST /v2/chat/completions``."""
        client = self._client
        return await client._run(api.v2_completion(client._core, messages, params))

    def completion_stream(self, messages: str | Sequence[Any] | None = None, /,
                          **params: Unpack[ChatV2Params]) -> StreamRequest[AsyncChatV2Stream]:
        """The v2 answer as a stream of named events (``async with`` / ``async for`` / ``await``)."""
        client = self._client
        flow = api.v2_completion_stream(client._core, messages, params)  # arguments are checked here

        async def open_stream() -> AsyncChatV2Stream:
            return client._transport.stream(await client._run(flow))

        return StreamRequest(open_stream)

    async def run_tools(self, messages: str | Sequence[Any], /, *, tools: Sequence[Callable[..., Any] | Tool],
                        max_steps: int = 5, **params: Unpack[ChatV2Base]) -> ToolRun:
        """Let the model call Python functions until it answers (see gigapy.tools)."""
        core = self._client._core

        def ask(history: list[Any], specs: list[dict[str, Any]]) -> Flow[Any]:
            return api.v2_completion(core, history, {**params, "functions": specs})

        return await self._client._run(run_tools_flow(ask, messages, tools, max_steps=max_steps, v2=True,
                                                   dialect=api.schema_dialect_of(core, params)))

    async def parse(self, messages: str | Sequence[Any], /, *, response_format: type[M], method: str = "auto",
                    **params: Unpack[ChatV2Base]) -> M:
        """Ask for a validated ``response_format`` object (see ``AsyncGigaChat.parse``)."""
        core = self._client._core

        def ask(history: list[Any], extra: dict[str, Any]) -> Flow[Any]:
            return api.v2_completion(core, history, {**params, **extra})

        return await self._client._run(parse_flow(ask, messages, response_format, method=method, v2=True,
                                                   dialect=api.schema_dialect_of(core, params)))


class AssistantsAPI:
    """``client.assistants``: a saved model, instructions, files and functions to run threads with."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncGigaChat) -> None:
        self._client = client

    async def list(self, **options: Unpack[RequestOptions]) -> Assistants:
        """Every assistant of the account."""
        return await self._client._run(TH.list_assistants(self._client._core, options))

    async def get(self, assistant_id: str, **options: Unpack[RequestOptions]) -> Assistant:
        """One assistant (NotFoundError if there is no such assistant)."""
        return await self._client._run(TH.get_assistant(self._client._core, assistant_id, options))

    async def create(self, *, name: str, model: str | None = None, instructions: str | None = None,
               description: str | None = None, file_ids: Sequence[str] | None = None,
               functions: Sequence[Any] | None = None, metadata: Mapping[str, Any] | None = None,
               **options: Unpack[RequestOptions]) -> CreatedAssistant:
        """Create an assistant (model defaults to the client's)."""
        fields = {"instructions": instructions, "description": description, "file_ids": file_ids,
                  "functions": functions, "metadata": metadata}
        return await self._client._run(TH.create_assistant(self._client._core, model, name, fields, options))

    async def update(self, assistant_id: str, *, name: str | None = None, instructions: str | None = None,
               description: str | None = None, file_ids: Sequence[str] | None = None,
               functions: Sequence[Any] | None = None, metadata: Mapping[str, Any] | None = None,
               **options: Unpack[RequestOptions]) -> Assistant:
        """Change the given fields of an assistant."""
        fields = {"name": name, "instructions": instructions, "description": description,
                  "file_ids": file_ids, "functions": functions, "metadata": metadata}
        return await self._client._run(TH.update_assistant(self._client._core, assistant_id, fields, options))

    async def delete(self, assistant_id: str, **options: Unpack[RequestOptions]) -> DeletedAssistant:
        """Delete an assistant."""
        return await self._client._run(TH.delete_assistant(self._client._core, assistant_id, options))

    async def delete_file(self, assistant_id: str, file_id: str,
                    **options: Unpack[RequestOptions]) -> DeletedAssistantFile:
        """Detach a file from an assistant."""
        core = self._client._core
        return await self._client._run(TH.delete_assistant_file(core, assistant_id, file_id, options))


class ThreadsAPI:
    """``client.threads``: conversations stored by the service, and runs over them."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncGigaChat) -> None:
        self._client = client

    async def list(self, *, assistants_ids: Sequence[str] | None = None, limit: int | None = None,
             before: int | None = None, **options: Unpack[RequestOptions]) -> Threads:
        """The account's threads (optionally of some assistants)."""
        core = self._client._core
        return await self._client._run(TH.list_threads(core, assistants_ids, limit, before, options))

    async def create(self, **options: Unpack[RequestOptions]) -> Thread:
        """An empty thread."""
        return await self._client._run(TH.create_thread(self._client._core, options))

    async def retrieve(self, threads_ids: Sequence[str], **options: Unpack[RequestOptions]) -> Threads:
        """Several threads by id."""
        return await self._client._run(TH.retrieve_threads(self._client._core, threads_ids, options))

    async def delete(self, thread_id: str, **options: Unpack[RequestOptions]) -> bool:
        """Delete a thread."""
        return await self._client._run(TH.delete_thread(self._client._core, thread_id, options))

    async def get_messages(self, thread_id: str, *, limit: int | None = None, before: int | None = None,
                     **options: Unpack[RequestOptions]) -> ThreadMessages:
        """A thread's messages."""
        return await self._client._run(TH.get_messages(self._client._core, thread_id, limit, before, options))

    async def add_messages(self, messages: str | Sequence[Any], *, thread_id: str | None = None,
                     assistant_id: str | None = None, model: str | None = None,
                     **options: Unpack[RequestOptions]) -> ThreadMessages:
        """Append messages to a thread (a new one when ``thread_id`` is not given)."""
        core = self._client._core
        return await self._client._run(TH.add_messages(core, messages, thread_id, assistant_id, model, options))

    async def run(self, thread_id: str, *, assistant_id: str | None = None,
            **params: Unpack[TH.RunOptions]) -> ThreadRunResponse:
        """Start a run over the thread in the background (see ``get_run``)."""
        return await self._client._run(TH.run_thread(self._client._core, thread_id, assistant_id, params))

    async def get_run(self, thread_id: str, **options: Unpack[RequestOptions]) -> ThreadRunResult:
        """The state of a thread's run and the messages it produced."""
        return await self._client._run(TH.get_run(self._client._core, thread_id, options))

    def run_stream(self, thread_id: str, *, assistant_id: str | None = None,
                         **params: Unpack[TH.RunOptions]) -> StreamRequest[AsyncThreadStream]:
        """Run the thread and stream the answer."""
        client = self._client
        flow = TH.run_stream(client._core, thread_id, assistant_id, params)  # arguments are checked here

        async def open_stream() -> AsyncThreadStream:
            return client._transport.stream(await client._run(flow))

        return StreamRequest(open_stream)

    async def run_messages(self, messages: str | Sequence[Any], *, thread_id: str | None = None,
                     assistant_id: str | None = None, model: str | None = None,
                     **params: Unpack[TH.RunOptions]) -> ThreadCompletion:
        """Add messages and answer them in one call (a new thread when ``thread_id`` is not given)."""
        core = self._client._core
        return await self._client._run(TH.run_messages(core, messages, thread_id, assistant_id, model, params))

    def run_messages_stream(self, messages: str | Sequence[Any], *, thread_id: str | None = None,
                                  assistant_id: str | None = None, model: str | None = None,
                                  **params: Unpack[TH.RunOptions]) -> StreamRequest[AsyncThreadStream]:
        """Add messages and stream the answer."""
        client = self._client
        flow = TH.run_messages_stream(client._core, messages, thread_id, assistant_id, model, params)

        async def open_stream() -> AsyncThreadStream:
            return client._transport.stream(await client._run(flow))

        return StreamRequest(open_stream)

    async def rerun_messages(self, thread_id: str, **params: Unpack[TH.RunOptions]) -> ThreadCompletion:
        """Regenerate the thread's last answer."""
        return await self._client._run(TH.rerun_messages(self._client._core, thread_id, params))

    def rerun_messages_stream(self, thread_id: str,
                              **params: Unpack[TH.RunOptions]) -> StreamRequest[AsyncThreadStream]:
        """Regenerate the thread's last answer as a stream."""
        client = self._client
        flow = TH.rerun_messages_stream(client._core, thread_id, params)  # arguments are checked here

        async def open_stream() -> AsyncThreadStream:
            return client._transport.stream(await client._run(flow))

        return StreamRequest(open_stream)


class AsyncGigaChat(BaseClient[AiohttpTransport]):
    """The asynchronous GigaChat client (aiohttp). Same settings and methods as ``GigaChat``.

    Use ``async with AsyncGigaChat() as client:`` or call :meth:`aclose`.
    """

    def __init__(self, *, session: aiohttp.ClientSession | None = None, **settings: Unpack[ClientSettings]) -> None:
        args = secret_args(settings)
        del settings  # the raw keyword arguments: no secret stays in a local of this frame
        setup_logging()
        resolved = load_settings(args)
        self._setup(resolved, AiohttpTransport(resolved, session), owns=session is None)

    def _new_transport(self, settings: Settings) -> AiohttpTransport:
        return AiohttpTransport(settings)

    # --- driver ------------------------------------------------------------------------

    async def _run(self, flow: Flow[T]) -> T:
        send = flow.send
        result: Any = None
        try:
            while True:
                action = send(result)
                kind = type(action)
                if kind is Send:
                    fleet = self._fleet
                    result = await (self._transport.send(action.request) if fleet is None
                                    else fleet.send_async(self._transport.send, action.request, self._bearer_now))
                elif kind is GetToken:
                    result = await self._token(action.stale)
                elif kind is Sleep:
                    await asyncio.sleep(action.seconds)
                    result = None
                elif kind is Blocking:
                    result = await asyncio.to_thread(action.fn)
                elif kind is Invoke:
                    result = await _invoke(action)
                else:  # pragma: no cover - a programming error in a flow
                    raise TypeError(f"unknown action {action!r}")
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _bearer_now(self) -> SecretStr:
        return await self._token(None)

    async def _token(self, stale: SecretStr | None) -> SecretStr:
        tokens = self._core.tokens
        token = tokens.without_io(stale)
        if token is not None:
            return token
        assert tokens.entry is not None
        if self._fleet is not None:
            return await self._fleet.token_async(tokens.entry, lambda: self._run(self._core.fetch_token()), stale)
        return await tokens.entry.get_async(lambda: self._run(self._core.fetch_token()), stale)

    # --- lifecycle -----------------------------------------------------------------------

    def with_options(self, **overrides: Unpack[ClientSettings]) -> AsyncGigaChat:
        """A client with some settings changed that shares this one's connection pool and
        token cache (a new pool only when TLS settings change)."""
        args = secret_args(overrides)
        del overrides  # no secret stays in a local of this frame
        return self._copy(args)

    async def aclose(self) -> None:
        """Close the connection pool (copies made by ``with_options`` leave it to the owner)."""
        if self._owns_transport:
            await self._transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    @property
    def assistants(self) -> AssistantsAPI:
        """Assistants: ``client.assistants.create(...)``, ``.list()``, ``.update(...)``, ..."""
        return AssistantsAPI(self)

    @property
    def threads(self) -> ThreadsAPI:
        """Threads: ``client.threads.run_messages(...)``, ``.get_messages(...)``, ..."""
        return ThreadsAPI(self)

    @property
    def v2(self) -> AsyncChatV2:
        """The v2 chat contract: ``await client.v2.completion(...)``."""
        return AsyncChatV2(self)

    # --- tokens --------------------------------------------------------------------------

    async def create_token(self) -> AccessToken:
        """Fetch a new access token now (it also goes into the shared cache)."""
        return await self._run(api.create_token(self._core))

    # --- API -----------------------------------------------------------------------------

    async def all_models(self, **options: Unpack[RequestOptions]) -> Models:
        """List the models available to the account."""
        return await self._run(api.all_models(self._core, options))

    async def get_model(self, name: str, **options: Unpack[RequestOptions]) -> Model:
        """Describe one model (NotFoundError for an unknown name)."""
        return await self._run(api.get_model(self._core, name, options))

    async def completion(self, messages: str | Sequence[Any] | None = None, /,
                         **params: Unpack[ChatParams]) -> ChatCompletion:
        """Generate an answer: ``await completion("Hi")`` or with messages and options."""
        return await self._run(api.completion(self._core, messages, params))

    def completion_stream(self, messages: str | Sequence[Any] | None = None, /,
                          **params: Unpack[ChatParams]) -> StreamRequest[AsyncChatStream]:
        """Generate an answer as a stream: ``async with client.completion_stream(...) as s``,
        ``async for chunk in client.completion_stream(...)`` or ``await`` it."""
        flow = api.completion_stream(self._core, messages, params)  # arguments are checked here

        async def open_stream() -> AsyncChatStream:
            return self._transport.stream(await self._run(flow))

        return StreamRequest(open_stream)

    async def embedding(self, input: str | Sequence[str], *, model: str = "Embeddings",
                        **options: Unpack[RequestOptions]) -> Embeddings:
        """Embed one text or a list of texts."""
        return await self._run(api.embedding(self._core, input, model, options))

    async def count_tokens(self, input: str | Sequence[str], *, model: str | None = None,
                           **options: Unpack[RequestOptions]) -> list[TokensCount]:
        """Count the tokens of each text for a model (default: the client's model)."""
        return await self._run(api.count_tokens(self._core, input, model, options))

    async def upload_file(self, file: str | os.PathLike[str] | bytes | IO[bytes], *, purpose: str = "general",
                          filename: str | None = None, content_type: str | None = None,
                          **options: Unpack[RequestOptions]) -> File:
        """Upload a file (path, bytes or binary file object); file I/O runs off the event loop."""
        return await self._run(api.upload_file(self._core, file, purpose, filename, content_type, options))

    async def get_all_files(self, **options: Unpack[RequestOptions]) -> list[File]:
        """List the account's files."""
        return await self._run(api.get_all_files(self._core, options))

    async def get_file_info(self, file_id: str, **options: Unpack[RequestOptions]) -> File:
        """Describe one file."""
        return await self._run(api.get_file_info(self._core, file_id, options))

    async def delete_file(self, file_id: str, **options: Unpack[RequestOptions]) -> DeletedFile:
        """Delete a file."""
        return await self._run(api.delete_file(self._core, file_id, options))

    @overload
    async def download_file(self, file_id: str, path: None = None, **options: Unpack[RequestOptions]) -> bytes: ...

    @overload
    async def download_file(self, file_id: str, path: str | os.PathLike[str],
                            **options: Unpack[RequestOptions]) -> Path: ...

    async def download_file(self, file_id: str, path: str | os.PathLike[str] | None = None,
                            **options: Unpack[RequestOptions]) -> bytes | Path:
        """A file's content as bytes, or streamed into ``path`` (written atomically)."""
        target = None if path is None else os.fspath(path)
        return await self._run(api.download_file(self._core, file_id, target, options))

    async def get_balance(self, **options: Unpack[RequestOptions]) -> Balance:
        """Remaining prepaid tokens (PermissionDeniedError on pay-as-you-go)."""
        return await self._run(api.get_balance(self._core, options))

    async def check_ai(self, text: str, *, model: str = "GigaCheckClassification",
                       **options: Unpack[RequestOptions]) -> AICheckResult:
        """Tell whether a text was written by AI."""
        return await self._run(api.check_ai(self._core, text, model, options))

    async def validate_function(self, function: Mapping[str, Any] | Any,
                                **options: Unpack[RequestOptions]) -> FunctionValidationResult:
        """Ask the service whether a function definition is valid."""
        return await self._run(api.validate_function(self._core, function, options))

    async def convert_functions(self, openapi: str | bytes | os.PathLike[str] | Mapping[str, Any],
                         **options: Unpack[RequestOptions]) -> ConvertedFunctions:
        """Function definitions from an OpenAPI document (its text, a path to it, or the parsed dict), one
        per operation."""
        return await self._run(api.convert_functions(self._core, openapi, options))

    async def check_filter(self, messages: str | Sequence[Message | Mapping[str, Any]], *, model: str = "GigaFilter",
                     settings: Mapping[str, bool] | None = None,
                     **options: Unpack[RequestOptions]) -> FilterCheckResult:
        """Check messages against the account's topic restrictions (``settings``: neuro, blacklist,
        whitelist switches, all on by default)."""
        return await self._run(api.check_filter(self._core, messages, model, settings, options))

    async def create_batch(self, requests: Any, *, method: str = "chat_completions",
                           **options: Unpack[RequestOptions]) -> Batch:
        """Submit a batch: a JSONL path or bytes, or a list of ``{"id", "request"}`` dicts."""
        return await self._run(api.create_batch(self._core, requests, method, options))

    async def get_batches(self, **options: Unpack[RequestOptions]) -> list[Batch]:
        """List the account's batches."""
        return await self._run(api.get_batches(self._core, options))

    async def get_batch(self, batch_id: str, **options: Unpack[RequestOptions]) -> Batch:
        """Describe one batch."""
        return await self._run(api.get_batch(self._core, batch_id, options))

    async def wait_for_batch(self, batch_id: str, *, poll_interval: float = 5.0, max_wait: float | None = None,
                             **options: Unpack[RequestOptions]) -> Batch:
        """Poll a batch until it is done (APITimeoutError after ``max_wait`` seconds)."""
        return await self._run(api.wait_for_batch(self._core, batch_id, poll_interval, max_wait, options))

    async def get_batch_results(self, batch: str | Batch, **options: Unpack[RequestOptions]) -> list[BatchResult]:
        """The per-request results of a finished batch."""
        return await self._run(api.get_batch_results(self._core, batch, options))

    # --- helpers -------------------------------------------------------------------------

    async def run_tools(self, messages: str | Sequence[Any], /, *, tools: Sequence[Callable[..., Any] | Tool],
                        max_steps: int = 5, **params: Unpack[ChatParams]) -> ToolRun:
        """Let the model call Python functions (async functions are awaited, plain ones run in
        a thread) until it answers; ToolLoopError after ``max_steps``."""
        core = self._core

        def ask(history: list[Any], specs: list[dict[str, Any]]) -> Flow[Any]:
            call = {**params, "functions": specs, "function_call": params.get("function_call", "auto")}
            return api.completion(core, history, call)

        return await self._run(run_tools_flow(ask, messages, tools, max_steps=max_steps, v2=False,
                                             dialect=api.schema_dialect_of(core, params)))

    async def parse(self, messages: str | Sequence[Any], /, *, response_format: type[M], method: str = "auto",
                    **params: Unpack[ChatFields]) -> M:
        """Ask for structured output; returns a validated ``response_format`` (see GigaChat.parse)."""
        core = self._core

        def ask(history: list[Any], extra: dict[str, Any]) -> Flow[Any]:
            return api.completion(core, history, {**params, **extra})

        return await self._run(parse_flow(ask, messages, response_format, method=method, v2=False,
                                             dialect=api.schema_dialect_of(core, params)))

    @overload
    async def generate_image(self, prompt: str, path: None = None, *, style: str | None = None,
                             **params: Unpack[ImageParams]) -> bytes: ...

    @overload
    async def generate_image(self, prompt: str, path: str | os.PathLike[str], *, style: str | None = None,
                             **params: Unpack[ImageParams]) -> Path: ...

    async def generate_image(self, prompt: str, path: str | os.PathLike[str] | None = None, *,
                             style: str | None = None, **params: Unpack[ImageParams]) -> bytes | Path:
        """Draw ``prompt``: the JPEG bytes, or the file written at ``path`` (see GigaChat.generate_image)."""
        target = None if path is None else os.fspath(path)
        return await self._run(generate_image_flow(self._core, prompt, target, style, params))

    async def attach(self, *sources: str | os.PathLike[str] | bytes | IO[bytes], purpose: str = "general",
                     **options: Unpack[RequestOptions]) -> list[str]:
        """Upload files for ``attachments=`` once per content; returns the file ids."""
        return await self._run(attach_flow(self._core, sources, purpose, options))

    @overload
    async def embed_many(self, texts: Sequence[str], *, model: str = ..., batch_size: int = ...,
                         max_batch_tokens: int = ..., concurrency: int = ..., batch_retries: int = ...,
                         as_numpy: Literal[False] = False, **options: Unpack[RequestOptions]) -> list[list[float]]: ...

    @overload
    async def embed_many(self, texts: Sequence[str], *, model: str = ..., batch_size: int = ...,
                         max_batch_tokens: int = ..., concurrency: int = ..., batch_retries: int = ...,
                         as_numpy: Literal[True], **options: Unpack[RequestOptions]) -> Any: ...

    async def embed_many(self, texts: Sequence[str], *, model: str = "Embeddings", batch_size: int = 100,
                         max_batch_tokens: int = 16_000, concurrency: int = 4, batch_retries: int = 2,
                         as_numpy: bool = False, **options: Unpack[RequestOptions]) -> Any:
        """Embed any number of texts concurrently (see GigaChat.embed_many)."""
        items, spans = _embed.plan(texts, batch_size, max_batch_tokens)
        gate = asyncio.Semaphore(int(P.number(concurrency, "concurrency", low=1, integer=True)))
        P.number(batch_retries, "batch_retries", low=0, integer=True)
        repeat = self._core.policy.retry_non_idempotent  # embeddings are billed: the client's rule

        async def one(span: tuple[int, int]) -> Embeddings:
            async with gate:
                for attempt in range(batch_retries + 1):
                    try:
                        return await self.embedding(items[span[0]:span[1]], model=model, **options)
                    except GigaChatError as exc:
                        if attempt == batch_retries or not _embed.retryable(exc, repeat):
                            raise
                        await asyncio.sleep(self._core.policy.backoff(attempt))
            raise AssertionError("unreachable")

        results = await asyncio.gather(*(one(span) for span in spans), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return _embed.assemble(results, as_numpy)

    def conversation(self, system: str | None = None, *, max_context_tokens: int | None = None,
                     **defaults: Unpack[ChatParams]) -> AsyncConversation:
        """A chat that keeps its history and one X-Session-ID (``await conv.say("...")``)."""
        return AsyncConversation(self, ConversationState(system, max_context_tokens, defaults))
