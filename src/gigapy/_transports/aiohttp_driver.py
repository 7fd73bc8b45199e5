"""The async driver: one aiohttp session per event loop, the core's requests sent through it,
streams read under the call's deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yarl
from aiohttp.helpers import get_env_proxy_for_url

from .._clients.streams import AsyncStream, TransportBroken
from .._config import Settings, Timeout
from .._core.flow import (
    AttemptDeadline,
    Request,
    Response,
    StreamDeadline,
    TransportFailure,
    client_cert_alert,
)
from .._ops.base import OpenStream, observe_async
from .._ops.files import Seekable
from ..errors import ClientClosedError, ConfigurationError
from .tls import client_ssl_context, tls_key


def _failure(exc: BaseException) -> TransportFailure:
    """Map an aiohttp (or asyncio timeout) exception to the core's transport failure."""
    refused = client_cert_alert(exc)
    if refused is not None:  # arrives on connect (TLS 1.2) or on the first read (TLS 1.3)
        host = getattr(exc, "host", "") or ""
        return TransportFailure(
            "client_cert", refused, sent=not isinstance(exc, aiohttp.ClientConnectorError), host=host
        )
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
        self.closed = False  #: set by close(): no new session is made after it

    def _entry(self) -> _LoopSession:
        """The running loop's session (created on first use in that loop)."""
        if self.closed:
            raise ClientClosedError()
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
                    "session",
                    "the aiohttp session given to this AsyncGigaChat belongs to another event loop; "
                    "create one client (or session) per event loop, or pass no session= and gigapy "
                    "keeps one session per loop",
                )
            return given
        ctx = client_ssl_context(self._settings)
        connector = _Connector(
            limit=self._settings.max_connections,
            limit_per_host=0,
            ssl=ctx if ctx is not None else True,
            ttl_dns_cache=300,
        )
        # trust_env=False: aiohttp would look up .netrc and the proxy variables in two worker-thread
        # round trips on every request; _proxy() looks the proxy up once per session and origin.
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )

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
            value = self._timeouts[t] = aiohttp.ClientTimeout(
                total=None, connect=connect, sock_connect=t.connect, sock_read=t.read
            )
        return value

    async def _body(self, req: Request) -> Any:
        if req.file is None:
            return req.content
        src = req.file.source
        if isinstance(src, Seekable):
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
            resp = await entry.session.request(
                req.method,
                req.url,
                data=data,
                headers=req.wire_headers(),
                params=req.params,
                timeout=self._timeout(req.timeout),
                allow_redirects=False,
                proxy=proxy,
                proxy_auth=proxy_auth,
            )
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
                opened.ended(opened.failure)

        source = chunks() if opened.telemetry is None else observe_async(chunks(), opened)
        return AsyncStream(state, source, close, deadline)

    async def close(self) -> None:
        """Close the sessions: this loop's now, those of loops that have ended at once (their
        sockets are shut directly), and that of another loop still running in its own thread
        from that loop, once its requests in flight have ended."""
        if self._given is not None:
            return
        self.closed = True
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
        self.closed = True
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


_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar("gigapy_attempt", default=None)
