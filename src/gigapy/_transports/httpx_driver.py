"""The sync driver: one httpx connection pool per client (and its ``with_options`` copies),
the core's requests sent through it, streams read under the call's deadlines."""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

try:  # private to httpx: the fast path below is used only where it exists
    from httpx._transports.default import map_httpcore_exceptions
except ImportError:  # pragma: no cover - a future httpx: the public path only
    map_httpcore_exceptions = None  # type: ignore[assignment]

from .._clients.streams import Stream, TransportBroken
from .._config import Settings, Timeout
from .._core.flow import (
    AttemptDeadline,
    Request,
    Response,
    StreamDeadline,
    TransportFailure,
    client_cert_alert,
)
from .._ops.base import OpenStream, observe
from .._ops.files import Seekable
from ..errors import ClientClosedError
from . import fastpath_httpx as HD
from .tls import client_ssl_context, tls_key

if TYPE_CHECKING:
    import httpcore


def _failure(exc: Exception, url: str) -> TransportFailure:
    """Map an httpx exception to the core's transport failure."""
    refused = client_cert_alert(exc)
    if refused is not None:  # arrives on connect (TLS 1.2) or on the first read (TLS 1.3)
        return TransportFailure(
            "client_cert", refused, sent=not isinstance(exc, httpx.ConnectError), host=httpx.URL(url).host
        )
    if isinstance(exc, httpx.ConnectTimeout):
        return TransportFailure("connect_timeout", exc, sent=False)
    if isinstance(exc, httpx.PoolTimeout):
        return TransportFailure("pool_timeout", exc, sent=False)
    if isinstance(exc, httpx.ReadTimeout):
        return TransportFailure("read_timeout", exc, sent=True)
    if isinstance(exc, httpx.WriteTimeout):
        return TransportFailure("write_timeout", exc, sent=True)
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return TransportFailure("tls", cause, sent=False, host=httpx.URL(url).host)
            cause = cause.__cause__ or cause.__context__
        return TransportFailure("connect", exc, sent=False)
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransportFailure("disconnect", exc, sent=True)
    return TransportFailure("network", exc, sent=True)


_AUTO_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})


def _hc_headers(req: Request, host: bytes) -> list[tuple[bytes, bytes]]:
    """httpcore's header list for ``req``, as httpx would build it (the values were checked as
    ASCII when the request was built)."""
    headers = [(b"Host", host)]
    headers += [(key.encode("ascii"), value.encode("ascii")) for key, value in req.wire_headers().items()]
    content = req.content
    if content:
        headers.append((b"Content-Length", str(len(content)).encode()))
    elif req.method in ("POST", "PUT", "PATCH"):
        headers.append((b"Content-Length", b"0"))
    return headers


def _mapped_failure(exc: Exception, url: str) -> TransportFailure:
    """An httpcore exception as httpx.Client.send would have raised it, as a TransportFailure
    (anything else propagates unchanged)."""
    try:
        with map_httpcore_exceptions():
            raise exc
    except httpx.TransportError as mapped:
        return _failure(mapped, url)


_UNKNOWN = object()


class HttpxTransport:
    """One httpx connection pool, shared by a client and its ``with_options`` copies."""

    def __init__(self, settings: Settings, http_client: httpx.Client | None = None) -> None:
        self.tls_key = tls_key(settings)
        if http_client is not None:
            self.client = http_client
        else:
            ctx = client_ssl_context(settings)
            limits = httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            )
            self.client = httpx.Client(
                verify=ctx if ctx is not None else False, limits=limits, follow_redirects=False, trust_env=True
            )
            HD.install(self.client)  # deadlines a trickle cannot defeat (see fastpath_httpx)
        self._timeouts: dict[Timeout, dict[str, float | None]] = {}
        # Plain requests on our own client go straight to the httpcore pool httpx would use.
        # (httpx imports httpcore when it builds its transport; importing it at module level
        # would add it to `from gigapy import GigaChat`.)
        self._direct = http_client is None and map_httpcore_exceptions is not None and HD.enabled()
        if self._direct:
            import httpcore

            self._hc_url, self._hc_request = httpcore.URL, httpcore.Request
        self._routes: dict[str, tuple[Any, httpcore.URL, bytes] | None] = {}

    def _timeout(self, req: Request) -> dict[str, float | None]:
        t = req.timeout
        ext = self._timeouts.get(t)
        if ext is None:
            ext = self._timeouts[t] = {"connect": t.connect, "read": t.read, "write": t.write, "pool": t.pool}
        if req.deadline is not None:  # waiting for a pooled connection counts against the call's deadline
            left = max(req.deadline - time.monotonic(), 1e-3)
            ext = {**ext, "pool": left if t.pool is None else min(t.pool, left)}
        return ext

    def _build(self, req: Request) -> tuple[httpx.Request, IO[bytes] | None]:
        files = data = None
        opened: IO[bytes] | None = None
        if req.file is not None:
            src = req.file.source
            if isinstance(src, Seekable):
                body: Any = src.rewind()
            elif isinstance(src, str):
                body = opened = open(src, "rb")  # noqa: SIM115 - closed in send()
            else:
                body = src
            files = {req.file.field: (req.file.filename, body, req.file.content_type)}
            data = req.form
        hreq = httpx.Request(
            req.method,
            req.url,
            params=req.params,
            headers=req.wire_headers(),
            content=req.content,
            files=files,
            data=data,
            extensions={"timeout": self._timeout(req)},
        )
        return hreq, opened

    def _route(self, url: str) -> tuple[Any, httpcore.URL, bytes] | None:
        """(httpcore pool, URL, Host) that ``httpx.Client.send`` would use for ``url``; None when
        the request must go through httpx (a mounted or custom transport)."""
        found = self._routes.get(url, _UNKNOWN)
        if found is not _UNKNOWN:
            return found  # type: ignore[return-value]
        hurl = httpx.URL(url)
        finder = getattr(self.client, "_transport_for_url", None)
        if finder is None:  # pragma: no cover - a future httpx without this internal
            return None
        transport = finder(hurl)
        pool = getattr(transport, "_pool", None) if type(transport) is httpx.HTTPTransport else None
        route = None
        if pool is not None and hurl.host:
            route = (
                pool,
                self._hc_url(scheme=hurl.raw_scheme, host=hurl.raw_host, port=hurl.port, target=hurl.raw_path),
                hurl.netloc,
            )
        if len(self._routes) >= 256:
            self._routes.clear()
        self._routes[url] = route
        return route

    def _send_direct(self, req: Request) -> Response | TransportFailure | None:
        """A plain request (no stream, file, download or query) sent through the httpcore pool
        directly: the same connections, TLS, proxies, timeouts and exceptions as
        ``httpx.Client.send``, without httpx's request/response models, auth and redirect
        machinery and cookie jar (about 40% of the client's CPU per request). None when
        this request needs the general path."""
        route = self._route(req.url)
        if route is None or self.client.is_closed:
            return None
        pool, url, host = route
        content = req.content
        if not _AUTO_HEADERS.isdisjoint(key.lower() for key in req.headers):
            return None
        # the header list (Authorization included) goes straight into httpcore: no local holds it
        hreq = self._hc_request(
            req.method,
            url,
            headers=_hc_headers(req, host),
            content=content or b"",
            extensions={"timeout": self._timeout(req)},
        )
        try:
            hresp = pool.handle_request(hreq)
            try:
                body = hresp.read()
            finally:
                hresp.close()
        except Exception as exc:  # mapped to httpx's exception only when there is one
            return _mapped_failure(exc, req.url)
        resp_headers = httpx.Headers(hresp.headers)
        for name, _ in hresp.headers:
            if name.lower() == b"content-encoding":  # decoded as httpx would (we never ask for it)
                body = httpx.Response(hresp.status, headers=resp_headers, stream=httpx.ByteStream(body)).read()
                break
        return Response(hresp.status, resp_headers, body, req.method, req.url)

    def send(self, req: Request) -> Response | TransportFailure:
        """Send one request; the body is read unless it is a stream or a download. The whole
        attempt is bounded by its deadline (the response within ``read`` seconds of the
        connection being ready, and the call's total deadline)."""
        if self.client.is_closed:
            raise ClientClosedError()
        limit = AttemptDeadline(req, time.monotonic)
        previous = HD.enter(limit)
        try:
            outcome = self._send(req)
        finally:
            HD.leave(previous)
        if type(outcome) is TransportFailure and outcome.kind.endswith("timeout") and limit.phase() == "total":
            outcome.kind = "total_timeout"
        return outcome

    def _send(self, req: Request) -> Response | TransportFailure:
        if (
            self._direct
            and not req.stream
            and req.file is None
            and req.download_to is None
            and req.params is None
            and req.form is None
        ):
            direct = self._send_direct(req)
            if direct is not None:
                return direct
        try:
            hreq, opened = self._build(req)
        except OSError as exc:
            return TransportFailure("network", exc, sent=False)
        streaming = req.stream or req.download_to is not None
        try:
            resp = self.client.send(hreq, stream=streaming)
        except httpx.TransportError as exc:
            return _failure(exc, req.url)
        finally:
            if opened is not None:
                opened.close()
        try:
            if streaming and resp.status_code < 400:
                if req.download_to is None:
                    return Response(resp.status_code, resp.headers, b"", req.method, req.url, raw=resp)
                self._download(resp, req.download_to)
                return Response(resp.status_code, resp.headers, b"", req.method, req.url)
            if streaming:
                resp.read()
            return Response(resp.status_code, resp.headers, resp.content, req.method, req.url)
        except httpx.TransportError as exc:
            return _failure(exc, req.url)
        finally:
            if streaming and not (req.stream and resp.status_code < 400):
                resp.close()

    @staticmethod
    def _download(resp: httpx.Response, target: str) -> None:
        part = f"{target}.part"
        try:
            with open(part, "wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
            os.replace(part, target)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise

    def stream(self, opened: OpenStream) -> Stream[Any, Any]:
        """Wrap an open streaming response into a typed Stream. Every read waits at most until
        the stream's deadline: ``read`` seconds for the next *event* (bytes that complete none
        do not reset it), and the call's total deadline."""
        resp: httpx.Response = opened.response.raw
        url = opened.response.url
        deadline = StreamDeadline(opened.read, opened.deadline, time.monotonic)

        def broken(failure: TransportFailure) -> TransportBroken:
            if failure.kind.endswith("timeout") and deadline.phase() == "total":
                failure.kind = "total_timeout"
            return TransportBroken(failure)

        def chunks() -> Iterator[bytes]:
            raw = resp.iter_bytes()
            while True:
                until = deadline.until()
                if until is not None and time.monotonic() >= until:  # also where the bounded backend is missing
                    raise broken(TransportFailure("read_timeout", httpx.ReadTimeout("no event in time"), sent=True))
                previous = HD.enter(deadline)
                try:
                    data = next(raw, None)
                except httpx.TransportError as exc:
                    raise broken(_failure(exc, url)) from exc
                finally:
                    HD.leave(previous)
                if data is None:
                    return
                yield data

        def close() -> None:
            try:
                resp.close()
            finally:
                opened.ended(opened.failure)

        source = chunks() if opened.telemetry is None else observe(chunks(), opened)
        return Stream(opened.state, source, close, deadline)

    def close(self) -> None:
        """Close every pooled connection."""
        self.client.close()
