"""The sans-IO core shared by the sync and async clients.

Everything that does not touch a socket lives here, written once: the request record,
the retry policy, mapping responses to models and errors, and :func:`send_flow`, the
generator that drives one logical request through token acquisition, retries and the
401-refresh. A flow *yields actions* (:class:`Send`, :class:`GetToken`, :class:`Sleep`,
...) and receives their results; the drivers in ``_sync.py`` (httpx) and ``_async.py``
(aiohttp) only execute actions. This is the shape of httpx's ``Auth.auth_flow``.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError

from .. import errors
from .._config import Timeout
from ..types._base import APIResponse, ResponseMeta
from . import wire as _wire
from .numbers import MAX_WAIT, server_number

log = logging.getLogger("gigapy")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: The gateway gave up waiting for the model, which may still be generating (and billing) the answer:
#: repeated only for requests that are safe to repeat, unless the caller opts in.
GATEWAY_STATUSES = errors.GATEWAY_STATUSES
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Clock:
    """The clocks the core reads, passed in (sans-IO) so that tests can skew them: ``wall`` is
    Unix time in seconds (only to read what servers say in wall-clock terms), ``monotonic``
    measures every duration, deadline and expiry."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


SYSTEM_CLOCK = Clock()

#: The core's own random source (jitter and request ids), passed in where it is used; reseeded in
#: a forked child so that two processes never draw the same request ids.
RNG = random.Random()
os.register_at_fork(after_in_child=RNG.seed)


@dataclass(slots=True)
class FilePart:
    """A file to upload: ``source`` is bytes, a filesystem path, or a binary file object."""

    field: str
    filename: str
    content_type: str
    source: Any
    size: int

    def __repr__(self) -> str:
        kind = "path" if isinstance(self.source, str) else type(self.source).__name__
        return (
            f"FilePart(field={self.field!r}, filename={self.filename!r}, content_type={self.content_type!r}, "
            f"source=<{kind}>, size={self.size})"
        )


@dataclass(slots=True, repr=False)
class Request:
    """One HTTP request as the core describes it; drivers turn it into httpx/aiohttp calls.

    ``authorization`` (the whole ``Authorization`` value) stays a SecretStr until the
    driver hands the headers to the HTTP library (:meth:`wire_headers`), so no repr,
    log line or traceback local of ours shows it.
    """

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None = None
    form: dict[str, str] | None = None
    file: FilePart | None = None
    params: dict[str, str] | None = None
    stream: bool = False
    idempotent: bool = False
    auth: bool = True
    timeout: Timeout = field(default_factory=Timeout)
    max_retries: int = 2
    download_to: str | None = None
    authorization: SecretStr | None = None
    #: The end of the call on the monotonic clock (``timeout.total`` after the first attempt began).
    deadline: float | None = None
    #: The API path (without the base URL) and the JSON body before encoding, as the op built
    #: them: what telemetry and the usage totals read (never sent as such).
    path: str = ""
    body: Any = None
    #: Seconds the request waited for a slot of the account's quota before it went out (the
    #: client's gate or a fleet lease; summed over retries), None when no quota gates it.
    queued: float | None = None

    def wire_headers(self) -> dict[str, str]:
        """The headers to send, Authorization included: pass the result straight to the HTTP
        library, never keep it in a variable (tracebacks with locals would show it)."""
        auth = self.authorization
        if auth is None:
            return self.headers
        return {**self.headers, "Authorization": auth.get_secret_value()}

    def info(self) -> errors.RequestInfo:
        """What an error keeps of this request: method, url and the headers, secrets masked."""
        return errors.RequestInfo(self.method, self.url, self.headers)

    def __repr__(self) -> str:
        body = "None" if self.content is None else f"<{len(self.content)} bytes>"
        auth = "None" if self.authorization is None else repr(_wire.MASK)
        return (
            f"Request(method={self.method!r}, url={self.url!r}, headers={_wire.masked(self.headers)!r}, "
            f"authorization={auth}, content={body}, file={self.file!r}, params={self.params!r}, "
            f"stream={self.stream}, idempotent={self.idempotent})"
        )


@dataclass(slots=True)
class Response:
    """What a driver got back. For an open stream, ``raw`` is the driver's response handle."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    method: str
    url: str
    raw: Any = None
    retries_taken: int = 0
    #: The request this answers (set by the core's send flow), so errors keep what was sent.
    request: Request | None = None
    #: What an open stream holds until it ends (a fleet's concurrency lease): ``close()``d once.
    hold: Any = None

    def __repr__(self) -> str:  # the body may be a token response: its size only
        return (
            f"Response(status={self.status}, method={self.method!r}, url={self.url!r}, "
            f"headers={_wire.masked(self.headers)!r}, content=<{len(self.content)} bytes>)"
        )

    def meta(self) -> ResponseMeta:
        """Request metadata to attach to the parsed model."""
        h = self.headers
        return ResponseMeta(
            request_id=h.get("x-request-id"),
            session_id=h.get("x-session-id"),
            client_id=h.get("x-client-id"),
            retries_taken=self.retries_taken,
            status_code=self.status,
            headers=h,
        )


class TransportFailure:
    """A normalized transport exception, so retry decisions live in one place.

    ``kind`` is one of: connect, connect_timeout, pool_timeout, disconnect, read_timeout,
    write_timeout, total_timeout, network, tls, client_cert. ``sent`` tells whether the server
    may have received the request.
    """

    __slots__ = ("exc", "host", "kind", "sent")

    def __init__(self, kind: str, exc: BaseException, *, sent: bool, host: str = "") -> None:
        self.kind = kind
        self.exc = scrub(exc)
        self.sent = sent
        self.host = host

    def __repr__(self) -> str:
        return f"TransportFailure(kind={self.kind!r}, sent={self.sent}, exc={type(self.exc).__name__})"

    def retryable(self, repeatable: bool) -> bool:
        """Whether another attempt is safe. Never after a TLS failure or once the call's total
        deadline passed. Always when the request never left (no connection). Once it was sent
        (a read or write timeout, a connection closed or reset before the answer), only when
        the request is ``repeatable`` (idempotent, or the caller opted in): the service may be
        generating, and billing, the answer already."""
        if self.kind in ("tls", "client_cert", "total_timeout"):
            return False
        if not self.sent:
            return True
        return repeatable

    def to_error(self, request: Request) -> errors.GigaChatError:
        """The public exception for this failure."""
        method, url = request.method, request.url
        info = request.info()
        detail = redact(str(self.exc)) or type(self.exc).__name__
        if self.kind == "tls":
            host = self.host or _host_of(url)
            return errors.TLSVerificationError(
                f"TLS certificate verification failed for {host}: {detail}. GigaChat hosts use the "
                "Russian Trusted Root CA: run `gigapy certs install`, or pass ca_bundle_file= "
                "(GIGACHAT_CA_BUNDLE_FILE) with that CA. Do not turn verification off.",
                method=method,
                url=url,
                host=host,
                request=info,
            )
        if self.kind == "client_cert":
            host = self.host or _host_of(url)
            reason = str(getattr(self.exc, "reason", "") or "")
            return errors.ClientCertificateError(
                f"{host} refused the client certificate during the TLS handshake: {detail}. Check cert_file "
                "and key_file (GIGACHAT_CERT_FILE, GIGACHAT_KEY_FILE): the server wants the certificate issued "
                "for this service, signed by a CA it trusts and not expired; `gigapy doctor` checks the pair.",
                method=method,
                url=url,
                host=host,
                reason=reason,
                request=info,
            )
        if self.kind.endswith("timeout"):
            phase = self.kind.removesuffix("_timeout")
            limit = getattr(request.timeout, phase, None)  # connect, read, write, pool or total
            return errors.APITimeoutError(
                f"{method} {url}: {phase} timeout after {limit} s",
                method=method,
                url=url,
                phase=phase,
                sent=self.sent,
                request=info,
            )
        if self.kind == "connect":
            return errors.APIConnectionError(
                f"{method} {url}: cannot connect: {detail}", method=method, url=url, sent=self.sent, request=info
            )
        return errors.APIConnectionError(
            f"{method} {url}: connection failed: {detail}", method=method, url=url, sent=self.sent, request=info
        )


#: TLS alerts a server sends when it refuses the client certificate (OpenSSL's reason names).
CLIENT_CERT_ALERTS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_ACCESS_DENIED",
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
    }
)


def client_cert_alert(exc: BaseException | None) -> BaseException | None:
    """The TLS error in ``exc``'s cause chain by which the server refused our client certificate
    (an alert such as ``certificate required`` or ``unknown ca``), or None."""
    seen = 0
    while exc is not None and seen < 16:
        if getattr(exc, "reason", None) in CLIENT_CERT_ALERTS:
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class AttemptDeadline:
    """The limits of one attempt of a plain call (monotonic seconds), sans-IO.

    The whole response must arrive within ``read`` seconds of the connection being ready
    (``write + read`` for a request with a file: sending it counts), and before the call's
    deadline. The driver calls :meth:`ready` once the connection is ready (and may call it
    again: only the first counts) and bounds every wait by the time it returns.
    """

    __slots__ = ("allowance", "monotonic", "read_at", "total_at")

    def __init__(self, request: Request, monotonic: Callable[[], float]) -> None:
        t = request.timeout
        allowance = t.read
        if allowance is not None and request.file is not None and t.write is not None:
            allowance += t.write
        self.allowance = allowance
        self.total_at = request.deadline
        self.monotonic = monotonic
        self.read_at: float | None = None

    def ready(self, extra: float = 0.0) -> float | None:
        """The connection is ready (``extra`` seconds are added to the read allowance, for a
        driver that cannot tell when it was); returns :meth:`until`."""
        if self.read_at is None and self.allowance is not None:
            self.read_at = self.monotonic() + extra + self.allowance
        return self.until()

    def until(self) -> float | None:
        """The end of the attempt; None: no limit."""
        read_at, total_at = self.read_at, self.total_at
        if read_at is None:
            return total_at
        return read_at if total_at is None or read_at < total_at else total_at

    def phase(self) -> str:
        """Which limit ended the attempt: ``total`` once the call's deadline passed, else ``read``."""
        total_at = self.total_at
        return "total" if total_at is not None and self.monotonic() >= total_at - 1e-3 else "read"


class StreamDeadline:
    """When the current wait of an open stream must end (monotonic seconds), sans-IO.

    A wait starts when the consumer asks for more and lasts until an *event* completes:
    bytes that complete none (a trickle, ``: ping`` comments, half an event) do not reset
    it. ``read`` is the idle limit per wait, ``total_at`` the call's deadline. The driver
    bounds every socket wait by :meth:`until`; the stream calls :meth:`event`.
    """

    __slots__ = ("monotonic", "read", "total_at", "wait_from")

    def __init__(self, read: float | None, total_at: float | None, monotonic: Callable[[], float]) -> None:
        self.read = read
        self.total_at = total_at
        self.monotonic = monotonic
        self.wait_from: float | None = None

    def until(self) -> float | None:
        """The end of the current wait (started now if none is under way); None: no limit."""
        total_at = self.total_at
        if self.read is None:
            return total_at
        start = self.wait_from
        if start is None:
            start = self.wait_from = self.monotonic()
        read_at = start + self.read
        return read_at if total_at is None or read_at < total_at else total_at

    def event(self) -> None:
        """An event completed: the next wait starts afresh."""
        self.wait_from = None

    def ready(self, extra: float = 0.0) -> float | None:
        """The same as :meth:`until` (the interface of :class:`AttemptDeadline`)."""
        return self.until()

    def phase(self) -> str:
        """Which limit ended the wait: ``total`` once the call's deadline passed, else ``read``."""
        total_at = self.total_at
        return "total" if total_at is not None and self.monotonic() >= total_at - 1e-3 else "read"


@dataclass(slots=True)
class Send:
    """Action: send ``request``; the driver answers with a Response or a TransportFailure."""

    request: Request


@dataclass(slots=True)
class GetToken:
    """Action: the driver answers with a bearer token (a SecretStr). ``stale`` is a token the
    server just rejected (invalidate it, compare-and-clear, before fetching a new one)."""

    stale: SecretStr | None = None


@dataclass(slots=True)
class Sleep:
    """Action: wait ``seconds`` (time.sleep or asyncio.sleep), always a finite number within
    0 .. 1 day: a NaN or infinite wait would make ``time.sleep`` raise and poison an event
    loop's timers, so every Sleep passes the number guard."""

    seconds: float

    def __post_init__(self) -> None:
        self.seconds = server_number(self.seconds, low=0.0, high=MAX_WAIT, default=0.0)


@dataclass(slots=True)
class Blocking:
    """Action: run ``fn`` (blocking work such as file I/O); async drivers use a worker thread."""

    fn: Callable[[], Any]


@dataclass(slots=True)
class Invoke:
    """Action: call user code ``fn(**kwargs)`` (a tool); sync or async, the driver adapts.

    The driver answers with the return value, or an :class:`InvokeFailed` holding the
    exception, so the flow decides what a failing tool means.
    """

    fn: Callable[..., Any]
    kwargs: dict[str, Any]


@dataclass(slots=True)
class InvokeFailed:
    """What a driver returns when the invoked user code raised."""

    exc: Exception


Action = Send | GetToken | Sleep | Blocking | Invoke
Flow = Generator[Any, Any, T]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before another attempt.

    Statuses 408, 429, 500, 502, 503 and 504 are retried, except that 502 and 504 (the
    gateway gave up while the model may still be generating) are retried only for
    requests that are safe to repeat, unless ``retry_non_idempotent`` is set. Backoff is
    ``initial * 2**n`` capped at ``max_delay``, times a random factor in (0.75, 1]. A
    Retry-After header (seconds or an HTTP date) replaces it when it is at most
    ``max_retry_after``; a longer one is not waited for (the error is raised at once).
    """

    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    statuses: frozenset[int] = RETRY_STATUSES
    retry_non_idempotent: bool = False
    clock: Clock = SYSTEM_CLOCK
    #: A random number in [0, 1) for the backoff's jitter (tests pass a fixed one).
    jitter: Callable[[], float] = RNG.random

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt + 1``."""
        return min(self.initial_delay * 2.0 ** min(attempt, 30), self.max_delay) * (1 - 0.25 * self.jitter())

    def repeatable(self, request: Request) -> bool:
        """Whether ``request`` may be sent again after it may have reached the service."""
        return request.idempotent or self.retry_non_idempotent

    def delay_for_status(self, response: Response, attempt: int, repeatable: bool = True) -> float | None:
        """Seconds to wait before retrying this response, or None when it must not be retried."""
        status = response.status
        if status not in self.statuses or (status in GATEWAY_STATUSES and not repeatable):
            return None
        hint = retry_after(response.headers, self.clock.wall())
        if hint is not None:
            return None if hint > self.max_retry_after else hint
        return self.backoff(attempt)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The server's wait hint in seconds, through the number guard: ``Retry-After-Ms`` first,
    then ``Retry-After`` as seconds or as an HTTP date. A date is measured against the
    response's own ``Date`` header when it has one (so a skewed local clock does not
    matter), else against ``now``. Negative becomes 0, beyond a day a day; NaN, junk or no
    header gives None (then the backoff applies)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        ms = server_number(raw_ms, low=0.0, high=MAX_WAIT * 1000)
        if ms is not None:
            return ms / 1000
    raw = headers.get("retry-after")
    if raw is None:
        return None
    value = server_number(raw, low=0.0, high=MAX_WAIT)
    if value is not None:
        return value
    when = http_date(raw)
    if when is None:
        return None
    ref = http_date(headers.get("date"))
    if ref is None:
        ref = time.time() if now is None else now
    return server_number(when - ref, low=0.0, high=MAX_WAIT)


def http_date(raw: str | None) -> float | None:
    """An HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``) as Unix seconds; None if it is not one."""
    if not raw or len(raw) > 64:
        return None
    try:
        parsed = email.utils.parsedate_tz(raw)
        return None if parsed is None else float(email.utils.mktime_tz(parsed))
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


def send_flow(
    request: Request, *, policy: RetryPolicy, can_refresh: bool, auth_hint: str | None = None
) -> Flow[Response]:
    """Drive one logical request: bearer token, attempts, backoff, one refresh on 401.

    Returns the successful (2xx/3xx) Response; raises the typed error otherwise. Streams
    are retried only until their response headers arrive: once the caller holds the
    stream, nothing is replayed. ``auth_hint`` replaces the advice of a 401 (mTLS-only
    clients have no token to blame).
    """
    attempt = 0
    refreshed = False
    stale: SecretStr | None = None
    repeatable = policy.repeatable(request)
    clock = policy.clock
    if request.timeout.total is not None and request.deadline is None:
        request.deadline = clock.monotonic() + request.timeout.total
    while True:
        token: SecretStr | None = None
        if request.auth:
            fresh: SecretStr = yield GetToken(stale)
            token, stale = fresh, None
            request.authorization = bearer(fresh)
        outcome = yield Send(request)
        if isinstance(outcome, TransportFailure):
            if attempt < request.max_retries and outcome.retryable(repeatable):
                delay = policy.backoff(attempt)
                if _in_time(request, delay, clock):
                    _log_retry(request, attempt, f"{outcome.kind} ({type(outcome.exc).__name__})", delay)
                    yield Sleep(delay)
                    attempt += 1
                    continue
            raise outcome.to_error(request) from outcome.exc
        response: Response = outcome
        response.retries_taken = attempt
        response.request = request
        status = response.status
        if status < 400:
            if log.isEnabledFor(logging.DEBUG):
                rid = response.headers.get("x-request-id") or request.headers.get("X-Request-ID")
                log.debug(
                    "%s %s -> %d (request_id=%s, retries=%d)",
                    request.method,
                    request.url,
                    status,
                    rid,
                    attempt,
                    extra={"request_id": rid},
                )
            return response
        if status == 401 and token is not None and can_refresh and not refreshed:
            refreshed = True
            stale = token
            log.debug("%s %s -> 401; refreshing the access token once", request.method, request.url)
            continue
        if attempt < request.max_retries:
            wait = policy.delay_for_status(response, attempt, repeatable)
            if wait is not None and _in_time(request, wait, clock):
                _log_retry(request, attempt, f"HTTP {status}", wait)
                yield Sleep(wait)
                attempt += 1
                continue
        raise status_error(response, can_refresh=can_refresh, auth_hint=auth_hint)


def _in_time(request: Request, delay: float, clock: Clock) -> bool:
    """Whether a retry after ``delay`` seconds would still start before the call's deadline
    (when it would not, the last error is raised now rather than a timeout later)."""
    return request.deadline is None or clock.monotonic() + delay < request.deadline


_BEARER: tuple[SecretStr | None, SecretStr | None] = (None, None)


def bearer(token: SecretStr) -> SecretStr:
    """``Bearer <token>`` as a SecretStr; the last one is reused (the cache hands out the same
    token object until it is refreshed)."""
    global _BEARER
    cached_token, header = _BEARER
    if cached_token is token and header is not None:
        return header
    header = SecretStr("Bearer " + token.get_secret_value())
    _BEARER = (token, header)
    return header


def _log_retry(request: Request, attempt: int, why: str, delay: float) -> None:
    rid = request.headers.get("X-Request-ID")
    log.info(
        "%s %s failed with %s; retry %d/%d in %.2f s (request_id=%s)",
        request.method,
        request.url,
        why,
        attempt + 1,
        request.max_retries,
        delay,
        rid,
        extra={"request_id": rid},
    )


# --- responses -> models and errors ---------------------------------------------------------

_TITLE_RE = re.compile(rb"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)

_OAUTH_HINTS = {
    1: "the scope is malformed; use GIGACHAT_API_PERS, GIGACHAT_API_B2B or GIGACHAT_API_CORP",
    4: "the authorization key cannot be decoded; use the 'Authorization key' from GigaChat Studio as is",
    5: "the scope is empty; set scope= (GIGACHAT_SCOPE)",
    6: "the authorization key is wrong or revoked; copy it again from GigaChat Studio",
    7: "this key is not enabled for that scope: individuals use GIGACHAT_API_PERS, companies "
    "GIGACHAT_API_B2B (prepaid) or GIGACHAT_API_CORP (pay-as-you-go)",
}


def status_error(
    response: Response, *, can_refresh: bool = True, auth_hint: str | None = None
) -> errors.APIStatusError:
    """Build the typed exception for an error response, keeping everything the server said
    (``auth_hint``, when given, is the advice for a 401)."""
    status = response.status
    body = response.content
    parsed: Any = None
    server_message: str | None = None
    code: int | None = None
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        match = _TITLE_RE.search(body)
        if match:
            server_message = match.group(1).decode("utf-8", "replace").strip()
        elif body:
            server_message = body[:200].decode("utf-8", "replace").strip()
    if isinstance(parsed, dict):
        msg = parsed.get("message") or parsed.get("error")
        if isinstance(msg, dict):
            msg = msg.get("message")
        if msg is not None:
            server_message = str(msg)
        raw_code = parsed.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
    headers = response.headers
    sent = response.request.info() if response.request is not None else None
    request_id = headers.get("x-request-id") or (sent.header("X-Request-ID") if sent is not None else None)
    text = f"{status} {_REASONS.get(status, 'Error')}"
    if server_message:
        text += f": {server_message}"
    hint = (
        auth_hint if status == 401 and auth_hint and code is None else _hint(status, code, server_message, can_refresh)
    )
    if hint:
        text += f" ({hint})"
    text += f" [{response.method} {response.url}"
    text += f", request_id={request_id}]" if request_id else "]"
    cls = errors.status_error_class(status)
    err = cls(
        text,
        status_code=status,
        method=response.method,
        url=response.url,
        body=body,
        json_body=parsed,
        headers=headers,
        server_message=server_message,
        code=code,
        request_id=request_id,
        session_id=headers.get("x-session-id") or (sent.header("X-Session-ID") if sent is not None else None),
        request=sent,
    )
    if isinstance(err, errors.RateLimitError):
        err.retry_after = retry_after(headers)
    return err


def missing_error(response: Response, message: str) -> errors.NotFoundError:
    """A NotFoundError for an answer that lacks the item asked for (a lookup served by a list
    endpoint): it keeps the status, body and headers the server really sent; nothing is made up."""
    sent = response.request.info() if response.request is not None else None
    headers = response.headers
    request_id = headers.get("x-request-id") or (sent.header("X-Request-ID") if sent is not None else None)
    try:
        parsed: Any = json.loads(response.content) if response.content else None
    except ValueError:
        parsed = None
    text = f"{message} (the server answered {response.status} without it) [{response.method} {response.url}"
    text += f", request_id={request_id}]" if request_id else "]"
    return errors.NotFoundError(
        text,
        status_code=response.status,
        method=response.method,
        url=response.url,
        body=response.content,
        json_body=parsed,
        headers=headers,
        request_id=request_id,
        session_id=headers.get("x-session-id") or (sent.header("X-Session-ID") if sent is not None else None),
        request=sent,
    )


def _hint(status: int, code: int | None, message: str | None, can_refresh: bool) -> str | None:
    if code in _OAUTH_HINTS:
        return _OAUTH_HINTS[code]
    if status == 400 and message:  # nginx (the service's gateway) checks client certificates this way
        low = message.lower()
        if "no required ssl certificate" in low:
            return (
                "this host wants a client certificate (mTLS): set cert_file= and key_file= "
                "(GIGACHAT_CERT_FILE, GIGACHAT_KEY_FILE)"
            )
        if "ssl certificate error" in low:
            return "the server did not accept the client certificate (cert_file): wrong CA, expired or revoked?"
    if status == 401:
        if message and "expired" in message.lower() and not can_refresh:
            return "the access token expired; pass credentials= so gigapy can refresh it"
        return "check the credentials and the scope" if can_refresh else "the access token was rejected"
    if status == 402:
        return "the token package for this model is exhausted; top up or pick another model"
    if status == 403:
        return "not available for this account or scope"
    if status == 413:
        return "the input is larger than the model context or the file limit; shorten it"
    if status == 429:
        return "too many concurrent requests for this scope; lower the concurrency"
    return None


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    423: "Locked",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def parse_model(model: type[M], response: Response) -> M:
    """Validate a JSON body into ``model`` and attach the response metadata."""
    try:
        obj: M = model.__pydantic_validator__.validate_json(response.content)  # = model_validate_json
    except ValidationError as exc:
        raise invalid_body(response, exc) from None
    if isinstance(obj, APIResponse):
        private = obj.__pydantic_private__
        if private is not None:  # what obj._meta = ... stores, without pydantic's __setattr__
            private["_meta"] = response.meta()
        else:
            obj._meta = response.meta()
    return obj


def parse_json_object(response: Response, list_field: str | None = None) -> dict[str, Any]:
    """The JSON body as a plain dict, without building a model (the OpenAI bridge renders it
    straight to another JSON shape). The shape is checked only as deep as its reader needs: a
    JSON object, whose ``list_field``, when there, is an array."""
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        raise invalid_body(response, exc) from None
    if not isinstance(data, dict):
        raise invalid_body(response, TypeError(f"expected a JSON object, got {type(data).__name__}"))
    if list_field is not None and list_field in data and not isinstance(data[list_field], list):
        raise invalid_body(response, TypeError(f"{list_field}: expected an array"))
    return data


def parse_model_list(model: type[M], response: Response) -> list[M]:
    """Validate a bare JSON array of objects (``/tokens/count``)."""
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        raise invalid_body(response, exc) from None
    if not isinstance(data, list):
        raise invalid_body(response, TypeError(f"expected a JSON array, got {type(data).__name__}"))
    meta = response.meta()
    out: list[M] = []
    for item in data:
        try:
            obj = model.model_validate(item)
        except ValidationError as exc:
            raise invalid_body(response, exc) from None
        if isinstance(obj, APIResponse):
            obj._meta = meta
        out.append(obj)
    return out


def invalid_body(
    response: Response, exc: BaseException, *, keep_body: bool = True
) -> errors.APIResponseValidationError:
    """The error for a body we cannot use; ``keep_body=False`` for bodies that hold a secret."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    request_id = response.headers.get("x-request-id")
    return errors.APIResponseValidationError(
        f"{response.method} {response.url}: unexpected response body ({first}); request_id={request_id}",
        status_code=response.status,
        body=response.content if keep_body else b"",
        request_id=request_id,
        url=response.url,
    )


# json.dumps would build one per call; allow_nan=False: NaN and Infinity are not JSON
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(body: Any, where: str = "") -> bytes:
    """Encode a JSON body: UTF-8, compact, non-ASCII kept as is.

    What JSON or UTF-8 cannot carry (NaN, infinity, a lone surrogate, an object json does
    not know) raises InvalidArgumentError naming its path (``messages[0].content``,
    prefixed by ``where``), before anything is sent.
    """
    try:
        return _ENCODER.encode(body).encode("utf-8")
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        pass
    raise _wire.json_error(body, where)  # outside the except: no chained json internals


# --- keeping secrets out of tracebacks ----------------------------------------------------

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # gigapy/
_GENERATOR_FLAGS = 0x20 | 0x80 | 0x200  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR
_CREDENTIAL_RE = re.compile(r"\b(Bearer|Basic)\s+[^\s'\"\\]+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with any ``Bearer <token>`` / ``Basic <key>`` replaced by ``[secure]``."""
    low = text.lower()
    if "bearer" not in low and "basic" not in low:
        return text
    return _CREDENTIAL_RE.sub(lambda m: f"{m.group(1)} {_wire.MASK}", text)


def scrub(exc: BaseException) -> BaseException:
    """Make an HTTP library's exception safe to keep as ``__cause__``, and return it.

    The frames of httpx, httpcore, h11, aiohttp, ssl and asyncio in its traceback (and in
    its ``__cause__``/``__context__`` chain) hold our request headers, Authorization
    included, as plain locals; Sentry, ``pytest -l`` and ``rich`` tracebacks record the
    locals of every frame. So those frames lose their locals (file and line stay); their
    generator and coroutine frames, whose locals cannot be dropped safely, are left out
    of the traceback. A ``Bearer``/``Basic`` value in an exception's arguments, and the
    secret headers an aiohttp error keeps in ``request_info``, are masked.
    gigapy's own frames keep their locals: they hold no secret in plain form.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = _scrub_tb(current.__traceback__)
        if any(isinstance(a, str) and a != redact(a) for a in current.args):
            try:
                current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
            except (AttributeError, TypeError):  # pragma: no cover - an exception type with fixed args
                pass
        _mask_request_info(current)
        todo += (current.__cause__, current.__context__, *getattr(current, "exceptions", ()))
    return exc


def _mask_request_info(exc: BaseException) -> None:
    """aiohttp's response errors keep the request headers (``request_info``) and show them in
    their repr: replace them with a masked copy."""
    info: Any = getattr(exc, "request_info", None)
    headers = getattr(info, "headers", None)
    if headers is None or not hasattr(info, "_replace"):
        return
    if any(str(name).lower() in _wire.SECRET_HEADERS for name in headers):
        with contextlib.suppress(Exception):  # a foreign exception with a read-only request_info
            masked = info._replace(headers=_wire.masked(headers))
            setattr(exc, "request_info", masked)  # noqa: B010
            exc.args = tuple(masked if arg is info else arg for arg in exc.args)  # it is in args too


def _scrub_tb(tb: TracebackType | None) -> TracebackType | None:
    head: TracebackType | None = None
    last: TracebackType | None = None
    while tb is not None:
        frame = tb.tb_frame
        keep = True
        if not frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            if frame.f_code.co_flags & _GENERATOR_FLAGS:
                keep = False
            else:
                try:
                    frame.clear()
                except RuntimeError:  # still executing (the frame that caught it, or another thread's)
                    pass
        nxt = tb.tb_next
        if keep:
            if last is None:
                head = tb
            else:
                last.tb_next = tb
            last = tb
        tb = nxt
    if last is not None:
        last.tb_next = None
    return head


_UUID4_MASK = ~(0xF000 << 64) & ~(0xC000 << 48) & ((1 << 128) - 1)
_UUID4_BITS = (0x4000 << 64) | (0x8000 << 48)
_getrandbits = RNG.getrandbits


def new_request_id() -> str:
    """A random UUID4 string for X-Request-ID (as ``str(uuid.uuid4())``, without the
    os.urandom system call and UUID object per request: ids need to be unique, not secret)."""
    h = "%032x" % (_getrandbits(128) & _UUID4_MASK | _UUID4_BITS)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def call(request: Request, parse: Callable[[Response], T], *, policy: RetryPolicy, can_refresh: bool) -> Flow[T]:
    """A flow for the common case: one request, one parsed result."""
    response = yield from send_flow(request, policy=policy, can_refresh=can_refresh)
    return parse(response)
