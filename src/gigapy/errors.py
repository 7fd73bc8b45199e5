"""The gigapy exception hierarchy.

Every failure that leaves the public API is one of these; no httpx, aiohttp, json or
pydantic exception escapes raw (the original is kept as ``__cause__``)::

    GigaChatError
    ├── InvalidArgumentError (also a ValueError)   bad input, raised before anything is sent
    │   └── ConfigurationError                     bad or missing settings
    ├── APIError                                   a request was sent: ``request``, ``body``, ``request_id``
    │   ├── APIConnectionError                     the request got no HTTP response
    │   │   ├── APITimeoutError                    ... because a timeout expired
    │   │   ├── TLSVerificationError               ... because the server certificate failed
    │   │   └── ClientCertificateError             ... because the server refused our client certificate
    │   ├── APIStatusError                         the server answered 4xx/5xx (or lacked what was asked)
    │   │   ├── BadRequestError 400, AuthenticationError 401, PaymentRequiredError 402,
    │   │   ├── PermissionDeniedError 403, NotFoundError 404, RequestTimeoutError 408,
    │   │   ├── PayloadTooLargeError 413, UnprocessableEntityError 422, LockedError 423,
    │   │   └── RateLimitError 429, InternalServerError 5xx
    │   └── APIResponseValidationError             a 2xx body we could not understand
    ├── StreamError                                a stream failed after it started
    │   └── StreamTimeoutError                     ... waiting too long for an event (also an APITimeoutError)
    ├── StructuredOutputError                      parse() got no valid object (raw text kept)
    │   └── LengthFinishReasonError                ... because the answer was cut at max_tokens
    ├── ToolLoopError                              run_tools() reached its step limit
    ├── ImageGenerationError                       generate_image() got no image
    ├── CertificateMismatchError                   a downloaded CA is not the pinned one
    ├── BatchAborted                               the bulk runner stopped early (its summary kept)
    ├── BatchJobError                              a /batches job, or one of its lines, failed
    ├── ClientClosedError (also a RuntimeError)    the client was used after close()
    └── CoordinatorError                           the fleet coordinator failed
        └── LeaseTimeout                           ... no lease became free in time

Warnings (``warnings.warn``, never raised unless you ask for it with a warnings filter)::

    GigapyWarning (a UserWarning)
    └── UnknownFieldWarning                        a request field or value gigapy does not know
                                                   yet was sent as given
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch import BatchSummary

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchAborted",
    "BatchJobError",
    "BatchWriteError",
    "CertificateMismatchError",
    "ClientCertificateError",
    "ClientClosedError",
    "ConfigurationError",
    "CoordinatorError",
    "GigaChatError",
    "GigapyWarning",
    "ImageGenerationError",
    "InsecureTLSWarning",
    "InternalServerError",
    "InvalidArgumentError",
    "LeaseTimeout",
    "LengthFinishReasonError",
    "LockedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestInfo",
    "RequestTimeoutError",
    "StreamError",
    "StreamTimeoutError",
    "StructuredOutputError",
    "TLSVerificationError",
    "ToolLoopError",
    "UnknownFieldWarning",
    "UnprocessableEntityError",
    "UnsupportedParameterError",
    "may_have_reached_model",
]


class GigapyWarning(UserWarning):
    """Base class of every warning gigapy issues."""


class UnknownFieldWarning(GigapyWarning):
    """A request field, or a value of a known field, that gigapy does not know yet was sent as given.

    The service adds fields and values faster than clients ship, so these are passed through
    instead of refused; the warning comes once per field name per process. Turn it into an
    error with ``warnings.simplefilter("error", gigapy.UnknownFieldWarning)``.
    """


class InsecureTLSWarning(UserWarning):
    """TLS certificate verification is turned off."""


class GigaChatError(Exception):
    """Base class of every error raised by gigapy."""

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(GigaChatError, ValueError):
    """An argument is invalid; raised before any request is sent.

    ``field`` names the offending argument (``messages[2].role``, ``temperature``, ...).
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class ConfigurationError(InvalidArgumentError):
    """A client setting (constructor argument or GIGACHAT_* variable) is invalid or missing."""


class RequestInfo:
    """The request an error is about, as it was sent: ``method``, ``url`` and ``headers`` with the
    secret ones masked (the Authorization value is never kept)."""

    __slots__ = ("headers", "method", "url")

    def __init__(self, method: str, url: str, headers: Mapping[str, str] | None = None) -> None:
        from ._core.wire import masked

        self.method = method
        self.url = url
        self.headers: dict[str, str] = masked(headers or {})

    def header(self, name: str) -> str | None:
        """The value of a sent header (any case), or None."""
        lower = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lower), None)

    def __repr__(self) -> str:
        return f"RequestInfo(method={self.method!r}, url={self.url!r}, headers={self.headers!r})"


class APIError(GigaChatError):
    """A request was sent and failed: ``request`` (what was sent, secrets masked), ``body`` (what
    the server really sent, ``b""`` when nothing came), ``request_id`` and ``session_id`` (the
    X-Request-ID and X-Session-ID of the call), ``method`` and ``url``."""

    def __init__(
        self,
        message: str,
        *,
        request: RequestInfo | None = None,
        body: bytes = b"",
        request_id: str | None = None,
        session_id: str | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message)
        self.request = request
        self.method = method or (request.method if request is not None else "")
        self.url = url or (request.url if request is not None else "")
        self.body = body
        sent = request.header if request is not None else (lambda _name: None)
        self.request_id = request_id if request_id is not None else sent("X-Request-ID")
        self.session_id = session_id if session_id is not None else sent("X-Session-ID")


class APIConnectionError(APIError):
    """No HTTP response was received (connection refused, reset, DNS failure, ...). The request id
    and session id that were sent are kept (``request_id``, ``session_id``).

    ``sent`` tells whether the request may have reached the server before the failure (a read
    timeout, a connection closed before the answer); False when it never left (no connection)."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        sent: bool = False,
        request: RequestInfo | None = None,
        request_id: str | None = None,
        session_id: str | None = None,
    ) -> None:
        super().__init__(message, request=request, method=method, url=url, request_id=request_id, session_id=session_id)
        self.sent = sent


class APITimeoutError(APIConnectionError):
    """A connect, read, write or pool timeout expired (``phase`` tells which)."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        phase: str = "read",
        sent: bool | None = None,
        request: RequestInfo | None = None,
    ) -> None:
        super().__init__(
            message,
            method=method,
            url=url,
            sent=phase not in ("connect", "pool") if sent is None else sent,
            request=request,
        )
        self.phase = phase


class TLSVerificationError(APIConnectionError):
    """The server's TLS certificate could not be verified; ``host`` names the server."""

    def __init__(
        self, message: str, *, method: str = "", url: str = "", host: str = "", request: RequestInfo | None = None
    ) -> None:
        super().__init__(message, method=method, url=url, request=request)
        self.host = host


class ClientCertificateError(APIConnectionError):
    """The server refused the client certificate during the TLS handshake (mTLS): none was sent,
    its CA is not trusted there, or it expired. ``host`` names the server, ``reason`` the TLS alert."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        host: str = "",
        reason: str = "",
        request: RequestInfo | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url, request=request)
        self.host = host
        self.reason = reason


class APIStatusError(APIError):
    """The server answered with an error status.

    Carries everything the server said: ``status_code``, the server's ``server_message``
    and ``code`` (OAuth errors), the raw ``body`` and its parsed form ``json_body``,
    response ``headers``, and the ``request_id`` / ``session_id`` of the call (the answer's,
    else the ones sent), and ``request``, what was sent.
    """

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        method: str = "",
        url: str = "",
        body: bytes = b"",
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        server_message: str | None = None,
        code: int | None = None,
        request_id: str | None = None,
        session_id: str | None = None,
        request: RequestInfo | None = None,
    ) -> None:
        super().__init__(
            message, request=request, body=body, request_id=request_id, session_id=session_id, method=method, url=url
        )
        self.status_code = status_code
        self.json_body = json_body
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.server_message = server_message
        self.code = code


class BadRequestError(APIStatusError):
    """400: the request is malformed."""


class AuthenticationError(APIStatusError):
    """401: credentials or access token rejected (or an OAuth error)."""


class PaymentRequiredError(APIStatusError):
    """402: the token package for this model is exhausted."""


class PermissionDeniedError(APIStatusError):
    """403: the method is not available for this account or scope."""


class NotFoundError(APIStatusError):
    """404: no such model, file, batch or route. Also raised when a lookup answered 2xx without
    the item asked for; ``status_code`` and ``body`` are then what the server really sent."""


class RequestTimeoutError(APIStatusError):
    """408: the server gave up waiting."""


class PayloadTooLargeError(APIStatusError):
    """413: the input is bigger than the model context or the file limit."""


class UnprocessableEntityError(APIStatusError):
    """422: the request failed the service's validation (``Invalid params: ...``)."""


class LockedError(APIStatusError):
    """423: the model is temporarily unavailable."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` is the server's hint in seconds, if any."""

    retry_after: float | None = None


class InternalServerError(APIStatusError):
    """5xx: the service (or a gateway in front of it) failed."""


class APIResponseValidationError(APIError):
    """A successful response whose body is not what the API promises (bad JSON, wrong shape)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 200,
        body: bytes = b"",
        request_id: str | None = None,
        url: str = "",
        request: RequestInfo | None = None,
        session_id: str | None = None,
    ) -> None:
        super().__init__(message, request=request, body=body, request_id=request_id, session_id=session_id, url=url)
        self.status_code = status_code


class StreamError(GigaChatError):
    """A stream failed after it started: a dropped connection, an error event, a broken frame.

    The chunks delivered before the failure stay delivered; ``chunks_received`` counts
    them. ``status_code`` and ``server_message`` are set when the server sent an error
    inside the stream.
    """

    def __init__(
        self,
        message: str,
        *,
        chunks_received: int = 0,
        request_id: str | None = None,
        status_code: int | None = None,
        server_message: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.chunks_received = chunks_received
        self.request_id = request_id
        self.status_code = status_code
        self.server_message = server_message
        self.body = body


class StreamTimeoutError(StreamError, APITimeoutError):
    """A started stream waited longer than a limit: ``phase`` is ``read`` (no event within the
    idle limit; comments and partial events do not count) or ``total`` (the call's deadline).

    Both a :class:`StreamError` (``chunks_received``: what was delivered stays delivered) and
    an :class:`APITimeoutError`.
    """

    def __init__(
        self, message: str, *, chunks_received: int = 0, request_id: str | None = None, phase: str = "read"
    ) -> None:
        super().__init__(message, chunks_received=chunks_received, request_id=request_id)
        self.phase = phase


class StructuredOutputError(GigaChatError):
    """``parse()`` could not get a valid object, even after one repair round.

    ``raw_text`` is what the model said last, ``usage`` the tokens spent on the final
    attempt, ``errors`` why each attempt failed.
    """

    def __init__(
        self,
        message: str,
        *,
        raw_text: str = "",
        usage: Any = None,
        errors: list[str] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.usage = usage
        self.errors = errors or []
        self.request_id = request_id


class LengthFinishReasonError(StructuredOutputError):
    """The answer was cut at ``max_tokens`` (finish_reason ``length``), so it cannot be complete."""


class ToolLoopError(GigaChatError):
    """``run_tools()`` reached ``max_steps`` without a final answer; ``messages`` is the transcript."""

    def __init__(self, message: str, *, messages: list[Any] | None = None, calls: list[Any] | None = None) -> None:
        super().__init__(message)
        self.messages = messages or []
        self.calls = calls or []


class ImageGenerationError(GigaChatError):
    """The model answered without generating an image; ``text`` is what it said instead."""

    def __init__(self, message: str, *, text: str = "", request_id: str | None = None) -> None:
        super().__init__(message)
        self.text = text
        self.request_id = request_id


class UnsupportedParameterError(InvalidArgumentError):
    """A parameter (or a value of it) that GigaChat cannot honour; refused, never dropped.

    ``code`` is the OpenAI error code to report: ``unsupported_parameter`` for a parameter
    that cannot be used at all, ``unsupported_value`` for a value that cannot.
    """

    def __init__(self, field: str, reason: str, *, code: str = "unsupported_parameter") -> None:
        super().__init__(field, reason)
        self.code = code


class CertificateMismatchError(GigaChatError):
    """The downloaded certificate is not the pinned Russian Trusted Root CA; nothing was stored."""


class BatchAborted(GigaChatError):
    """The run stopped because every further request would fail too (bad credentials, no access,
    TLS failure, a service that keeps failing). Everything finished is saved; ``summary`` tells
    how far it got and ``__cause__`` is the error that stopped it."""

    def __init__(self, message: str, summary: BatchSummary) -> None:
        super().__init__(message)
        self.summary = summary


class BatchJobError(GigaChatError):
    """A ``/batches`` job ended without a result for a request, or the service failed that line."""


class BatchWriteError(GigaChatError):
    """OUTPUT, the errors file or a state file of the run could not be written (disk full, file too
    large, I/O error, no permission). The run stopped at once; every line before the failure is
    whole and kept, so a rerun after the cause is fixed resumes exactly once.

    ``path`` is the file, ``os_error`` (also ``__cause__``) the OSError, and ``summary`` the
    counts of the run (None when it failed before the first request)."""

    def __init__(
        self, path: str | os.PathLike[str], os_error: OSError, *, action: str = "write", note: str = ""
    ) -> None:
        code = errno.errorcode.get(os_error.errno or 0)
        what = os_error.strerror or str(os_error)
        super().__init__(f"cannot {action} {path}: {what}{f' ({code})' if code else ''}{note}")
        self.path = str(path)
        self.os_error = os_error
        self.summary: BatchSummary | None = None
        self.__cause__ = os_error


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    423: LockedError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """Return the exception class for an HTTP error status."""
    cls = STATUS_ERRORS.get(status)
    if cls is not None:
        return cls
    return InternalServerError if status >= 500 else APIStatusError


#: Statuses by which a gateway gave up waiting while the model may still be generating (and billing).
GATEWAY_STATUSES = frozenset({502, 504})


def may_have_reached_model(exc: BaseException) -> bool:
    """Whether the failed request may have reached the model, so that sending it again could run
    (and bill) it twice: a 502 or 504 (the gateway gave up, the model may still be generating),
    a connection lost or a timeout after the request was sent (``APIConnectionError.sent``), a
    stream that failed after it started, or a 2xx answer that could not be read.

    Every layer of gigapy that retries on its own (the client, ``embed_many``, bulk runs)
    repeats a request that is not safe to repeat after such an error only when the caller
    opted in (``retry_non_idempotent=True``)."""
    if isinstance(exc, APIStatusError):
        return exc.status_code in GATEWAY_STATUSES
    if isinstance(exc, (StreamError, APIResponseValidationError)):
        return True
    if isinstance(exc, APIConnectionError):
        return exc.sent
    return False


class CoordinatorError(GigaChatError):
    """The coordinator could not do what was asked (bad URL, no lease within the timeout)."""


class LeaseTimeout(CoordinatorError):
    """No lease became free within the timeout."""


class ClientClosedError(GigaChatError, RuntimeError):
    """The client was used after ``close()`` / ``aclose()`` (or after its ``with`` block)."""

    def __init__(
        self,
        message: str = "the client is closed: it was used after close(), aclose() or its "
        "`with` block; create a new GigaChat (or keep this one open)",
    ) -> None:
        super().__init__(message)
