"""GigaChat errors (and ours) as OpenAI's and Anthropic's error JSON and status codes.

OpenAI's body is ``{"error": {"message", "type", "param", "code"}}``; Anthropic's is
``{"type": "error", "error": {"type", "message"}}``. The status codes are chosen so that
each official client raises its matching exception and retries only what is worth retrying:

=========================  ======  ==========================  ======  ======================
GigaChat                   OpenAI  type / code                 Anthr.  type
=========================  ======  ==========================  ======  ======================
400, 422                   400     invalid_request_error       400     invalid_request_error
413, context too long      400     ... / context_length_...    400     invalid_request_error
401                        401     authentication_error        401     authentication_error
402 (package exhausted)    402     insufficient_quota          402     billing_error
403                        403     permission_error            403     permission_error
404 ``No such model``      404     ... / model_not_found       404     not_found_error
408                        408     timeout                     408     timeout_error
423 (model unavailable)    503     server_error / overloaded   529     overloaded_error
429                        429     rate_limit_error / ..._...  429     rate_limit_error
5xx                        same    server_error                same    api_error
=========================  ======  ==========================  ======  ======================

402 stays 402 (OpenAI itself sends quota exhaustion as 429, which its client retries in
vain). ``Retry-After`` from GigaChat is passed on. A bad argument caught before sending
(:class:`~gigapy.errors.InvalidArgumentError`) is a 400 with ``param`` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    GigaChatError,
    InvalidArgumentError,
    StreamError,
)
from ._answer import StreamPayloadError
from ._common import UnsupportedParameterError


@dataclass(frozen=True)
class ErrorReply:
    """An error answer: HTTP status, JSON body, headers to pass on (``Retry-After``)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


_CONTEXT_WORDS = ("payload too large", "context", "too many tokens")


def server_message(body: Any) -> str:
    """GigaChat's ``message`` from an error body (bytes, text, or parsed JSON); text as is otherwise."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            text = body.strip()
            return "the server sent an HTML error page" if text.startswith("<") else text[:500]
        body = parsed
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str):
            return message
        inner = body.get("error")
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return ""


def _kind(status: int, message: str) -> tuple[int, str, str | None, int, str]:
    """(OpenAI status, OpenAI type, OpenAI code, Anthropic status, Anthropic type) for a GigaChat error."""
    lowered = message.lower()
    if status == 413 or (status in (400, 422) and any(w in lowered for w in _CONTEXT_WORDS)):
        return 400, "invalid_request_error", "context_length_exceeded", 400, "invalid_request_error"
    table: dict[int, tuple[int, str, str | None, int, str]] = {
        400: (400, "invalid_request_error", None, 400, "invalid_request_error"),
        422: (400, "invalid_request_error", None, 400, "invalid_request_error"),
        401: (401, "authentication_error", "invalid_api_key", 401, "authentication_error"),
        402: (402, "insufficient_quota", "insufficient_quota", 402, "billing_error"),
        403: (403, "permission_error", None, 403, "permission_error"),
        404: (
            404,
            "invalid_request_error",
            "model_not_found" if "model" in lowered else "not_found",
            404,
            "not_found_error",
        ),
        408: (408, "timeout", "timeout", 408, "timeout_error"),
        423: (503, "server_error", "overloaded", 529, "overloaded_error"),
        429: (429, "rate_limit_error", "rate_limit_exceeded", 429, "rate_limit_error"),
    }
    if status in table:
        return table[status]
    if status >= 500:
        return status, "server_error", None, status, "api_error"
    return 400, "invalid_request_error", None, 400, "invalid_request_error"


def _retry_after(headers: Mapping[str, str] | None) -> dict[str, str]:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            return {"Retry-After": value}
    return {}


def openai_error(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> ErrorReply:
    """A GigaChat error answer (status, body, headers) as OpenAI's error reply."""
    message = server_message(body) or f"GigaChat answered HTTP {status}"
    out_status, kind, code, _, _ = _kind(status, message)
    text = f"GigaChat: {message}" if not message.startswith("GigaChat") else message
    param = "messages" if code == "context_length_exceeded" else None
    return ErrorReply(
        out_status, {"error": {"message": text, "type": kind, "param": param, "code": code}}, _retry_after(headers)
    )


def anthropic_error(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> ErrorReply:
    """A GigaChat error answer as Anthropic's error reply."""
    message = server_message(body) or f"GigaChat answered HTTP {status}"
    _, _, code, out_status, kind = _kind(status, message)
    if code == "context_length_exceeded":
        message = f"prompt is too long: {message}"
    return ErrorReply(
        out_status, {"type": "error", "error": {"type": kind, "message": f"GigaChat: {message}"}}, _retry_after(headers)
    )


def _from_exception(exc: BaseException) -> tuple[int, Any, Mapping[str, str] | None] | ErrorReply | None:
    if isinstance(exc, APIStatusError):
        return (
            exc.status_code,
            exc.json_body if exc.json_body is not None else (exc.server_message or exc.body),
            exc.headers,
        )
    if isinstance(exc, StreamPayloadError):
        return exc.status, exc.message, None
    if isinstance(exc, StreamError):
        return exc.status_code or 502, exc.server_message or exc.message, None
    return None


def openai_error_from_exception(exc: BaseException) -> ErrorReply:
    """Any gigapy error (or a stream's error payload) as OpenAI's error reply."""
    if isinstance(exc, InvalidArgumentError):
        code = exc.code if isinstance(exc, UnsupportedParameterError) else "invalid_value"
        return ErrorReply(
            400, {"error": {"message": exc.message, "type": "invalid_request_error", "param": exc.field, "code": code}}
        )
    found = _from_exception(exc)
    if isinstance(found, tuple):
        return openai_error(*found)
    if isinstance(exc, APITimeoutError):
        return ErrorReply(
            504,
            {
                "error": {
                    "message": f"GigaChat did not answer in time: {exc}",
                    "type": "timeout",
                    "param": None,
                    "code": "timeout",
                }
            },
        )
    if isinstance(exc, APIConnectionError):
        return ErrorReply(
            502,
            {
                "error": {
                    "message": f"GigaChat is unreachable: {exc}",
                    "type": "server_error",
                    "param": None,
                    "code": "upstream_unreachable",
                }
            },
        )
    message = exc.message if isinstance(exc, GigaChatError) else type(exc).__name__
    return ErrorReply(500, {"error": {"message": message, "type": "server_error", "param": None, "code": None}})


def anthropic_error_from_exception(exc: BaseException) -> ErrorReply:
    """Any gigapy error (or a stream's error payload) as Anthropic's error reply."""
    if isinstance(exc, InvalidArgumentError):
        return ErrorReply(400, {"type": "error", "error": {"type": "invalid_request_error", "message": exc.message}})
    found = _from_exception(exc)
    if isinstance(found, tuple):
        return anthropic_error(*found)
    if isinstance(exc, APITimeoutError):
        return ErrorReply(
            504,
            {"type": "error", "error": {"type": "timeout_error", "message": f"GigaChat did not answer in time: {exc}"}},
        )
    if isinstance(exc, APIConnectionError):
        return ErrorReply(
            502, {"type": "error", "error": {"type": "api_error", "message": f"GigaChat is unreachable: {exc}"}}
        )
    message = exc.message if isinstance(exc, GigaChatError) else type(exc).__name__
    return ErrorReply(500, {"type": "error", "error": {"type": "api_error", "message": message}})
