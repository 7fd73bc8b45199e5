"""gigapy: a fast, correct Python client for the GigaChat API.

>>> from gigapy import GigaChat
>>> with GigaChat(credentials="...") as client:          # or GIGACHAT_CREDENTIALS
...     print(client.completion("Привет!").text)

Public names are loaded on first use, so ``import gigapy`` stays cheap: the sync client
pulls in httpx, the async client aiohttp, and the models pydantic, only when you ask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientCertificateError,
    ClientClosedError,
    ConfigurationError,
    GigaChatError,
    GigapyWarning,
    ImageGenerationError,
    InternalServerError,
    InvalidArgumentError,
    LengthFinishReasonError,
    LockedError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    StreamError,
    StreamTimeoutError,
    StructuredOutputError,
    TLSVerificationError,
    ToolLoopError,
    UnknownFieldWarning,
    UnprocessableEntityError,
)

if TYPE_CHECKING:
    from ._clients.async_client import AsyncAssistantsAPI, AsyncChatV2, AsyncGigaChat, AsyncThreadsAPI
    from ._clients.conversation import AsyncConversation, Conversation
    from ._clients.streams import AsyncStream, Stream
    from ._clients.sync_client import AssistantsAPI, ChatV2, GigaChat, ThreadsAPI
    from ._clients.tokens import clear_token_cache
    from ._config import Timeout
    from ._telemetry import instrument, is_instrumented, uninstrument

_LAZY = {
    "GigaChat": "._clients.sync_client",
    "AsyncGigaChat": "._clients.async_client",
    "ChatV2": "._clients.sync_client",
    "AsyncChatV2": "._clients.async_client",
    "AssistantsAPI": "._clients.sync_client",
    "AsyncAssistantsAPI": "._clients.async_client",
    "ThreadsAPI": "._clients.sync_client",
    "AsyncThreadsAPI": "._clients.async_client",
    "Conversation": "._clients.conversation",
    "AsyncConversation": "._clients.conversation",
    "Timeout": "._config",
    "Stream": "._clients.streams",
    "AsyncStream": "._clients.streams",
    "clear_token_cache": "._clients.tokens",
    "instrument": "._telemetry",
    "uninstrument": "._telemetry",
    "is_instrumented": "._telemetry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gigapy' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AssistantsAPI",
    "AsyncAssistantsAPI",
    "AsyncChatV2",
    "AsyncConversation",
    "AsyncGigaChat",
    "AsyncStream",
    "AsyncThreadsAPI",
    "AuthenticationError",
    "BadRequestError",
    "ChatV2",
    "ClientCertificateError",
    "ClientClosedError",
    "ConfigurationError",
    "Conversation",
    "GigaChat",
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
    "Stream",
    "StreamError",
    "StreamTimeoutError",
    "StructuredOutputError",
    "TLSVerificationError",
    "ThreadsAPI",
    "Timeout",
    "ToolLoopError",
    "UnknownFieldWarning",
    "UnprocessableEntityError",
    "clear_token_cache",
    "instrument",
    "is_instrumented",
    "uninstrument",
]
