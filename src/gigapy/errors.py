"""The gigapy exception hierarchy.

Every failure that leaves the public API is one of these; no httpx, aiohttp, json or
pydantic exception escapes raw (the original is kept as ``__cause__``)::

    GigaChatError
    ├── InvalidArgumentError (also a ValueError)   bad input, raised before anything is sent
    │   └── ConfigurationError                     bad or missing settings
    ├── APIConnectionError                         the request got no HTTP response
    │   ├── APITimeoutError                        ... because a timeout expired
    │   ├── TLSVerificationError                   ... because the server certificate failed
    │   └── ClientCertificateError                 ... because the server refused our client certificate
    ├── APIStatusError                             the server answered 4xx/5xx
    │   ├── BadRequestError 400, AuthenticationError 401, PaymentRequiredError 402,
    │   ├── PermissionDeniedError 403, NotFoundError 404, RequestTimeoutError 408,
    │   ├── PayloadTooLargeError 413, UnprocessableEntityError 422, LockedError 423,
    │   └── RateLimitError 429, InternalServerError 5xx
    ├── APIResponseValidationError                 a 2xx body we could not understand
    ├── StreamError                                a stream failed after it started
    │   └── StreamTimeoutError                     ... waiting too long for an event (also an APITimeoutError)
    ├── StructuredOutputError                      parse() got no valid object (raw text kept)
    │   └── LengthFinishReasonError                ... because the answer was cut at max_tokens
    ├── ToolLoopError                              run_tools() reached its step limit
    └── ImageGenerationError                       generate_image() got no image

Warnings (``warnings.warn``, never raised unless you ask for it with a warnings filter)::

    GigapyWarning (a UserWarning)
    └── UnknownFieldWarning                        a request field or value gigapy does not know
                                                   yet was sent as given
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientCertificateError",
    "ConfigurationError",
    "GigaChatError",
    "GigapyWarning",
    "ImageGenerationError",
    "InternalServerError",
    "InvalidArgumentError",
    "LengthFinishReasonError",
    "LockedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "StreamError",
    "StreamTimeoutError",
    "StructuredOutputError",
    "TLSVerificationError",
    "ToolLoopError",
    "UnknownFieldWarning",
    "UnprocessableEntityError",
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


class APIConnectionError(GigaChatError):
    """No HTTP response was received (connection refused, reset, DNS failure, ...).

    ``sent`` tells whether the request may have reached the server before the failure (a read
    timeout, a connection closed before the answer); False when it never left (no connection)."""

    def __init__(self, message: str, *, method: str = "", url: str = "", sent: bool = False) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.sent = sent


class APITimeoutError(APIConnectionError):
    """A connect, read, write or pool timeout expired (``phase`` tells which)."""

    def __init__(self, message: str, *, method: str = "", url: str = "", phase: str = "read",
                 sent: bool | None = None) -> None:
        super().__init__(message, method=method, url=url,
                         sent=phase not in ("connect", "pool") if sent is None else sent)
        self.phase = phase


class TLSVerificationError(APIConnectionError):
    """The server's TLS certificate could not be verified; ``host`` names the server."""

    def __init__(self, message: str, *, method: str = "", url: str = "", host: str = "") -> None:
        super().__init__(message, method=method, url=url)
        self.host = host


class ClientCertificateError(APIConnectionError):
    """The server refused the client certificate during the TLS handshake (mTLS): none was sent,
    its CA is not trusted there, or it expired. ``host`` names the server, ``reason`` the TLS alert."""

    def __init__(self, message: str, *, method: str = "", url: str = "", host: str = "", reason: str = "") -> None:
        super().__init__(message, method=method, url=url)
        self.host = host
        self.reason = reason


class APIStatusError(GigaChatError):
    """The server answered with an error status.

    Carries everything the server said: ``status_code``, the server's ``server_message``
    and ``code`` (OAuth errors), the raw ``body`` and its parsed form ``json_body``,
    response ``headers``, and the ``request_id`` / ``session_id`` of the call.
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
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.url = url
        self.body = body
        self.json_body = json_body
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.server_message = server_message
        self.code = code
        self.request_id = request_id
        self.session_id = session_id


class BadRequestError(APIStatusError):
    """400: the request is malformed."""


class AuthenticationError(APIStatusError):
    """401: credentials or access token rejected (or an OAuth error)."""


class PaymentRequiredError(APIStatusError):
    """402: the token package for this model is exhausted."""


class PermissionDeniedError(APIStatusError):
    """403: the method is not available for this account or scope."""


class NotFoundError(APIStatusError):
    """404: no such model, file, batch or route."""


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


class APIResponseValidationError(GigaChatError):
    """A successful response whose body is not what the API promises (bad JSON, wrong shape)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 200,
        body: bytes = b"",
        request_id: str | None = None,
        url: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.request_id = request_id
        self.url = url


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

    def __init__(self, message: str, *, chunks_received: int = 0, request_id: str | None = None,
                 phase: str = "read") -> None:
        super().__init__(message, chunks_received=chunks_received, request_id=request_id)
        self.phase = phase


class StructuredOutputError(GigaChatError):
    """``parse()`` could not get a valid object, even after one repair round.

    ``raw_text`` is what the model said last, ``usage`` the tokens spent on the final
    attempt, ``errors`` why each attempt failed.
    """

    def __init__(self, message: str, *, raw_text: str = "", usage: Any = None, errors: list[str] | None = None,
                 request_id: str | None = None) -> None:
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
