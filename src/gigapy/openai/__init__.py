"""OpenAI- and Anthropic-speaking tools on GigaChat, in the same process: no proxy.

::

    import openai
    import gigapy.openai

    client = openai.OpenAI(base_url=gigapy.openai.BASE_URL, api_key="unused",
                           http_client=gigapy.openai.http_client())
    client.chat.completions.create(model="GigaChat-2-Max", messages=[{"role": "user", "content": "Hi"}])

:func:`http_client` and :func:`async_http_client` give httpx clients whose transport
translates each OpenAI (``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``,
``/v1/responses``) or Anthropic (``/v1/messages``) request to GigaChat and the answer back,
through a gigapy client: its token cache, retries, TLS and settings (``GIGACHAT_*``) apply.
No request leaves the process except gigapy's own calls to GigaChat; ``api_key`` is not
used. ``gigapy serve`` runs the same translation as an HTTP server. See docs/openai.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._translate import MemoryResponseStore, ResponseStore, TranslateOptions
from ._transport import BASE_URL, library, transport_classes

if TYPE_CHECKING:
    from .. import AsyncGigaChat, GigaChat

__all__ = [
    "BASE_URL",
    "MemoryResponseStore",
    "ResponseStore",
    "TranslateOptions",
    "async_http_client",
    "async_transport",
    "http_client",
    "transport",
]


def _options(options: TranslateOptions | None, models: Mapping[str, str] | None) -> TranslateOptions:
    if options is not None and models is not None:
        raise TypeError("give options= or models=, not both (TranslateOptions has models)")
    return options if options is not None else TranslateOptions(models=dict(models or {}))


def transport(
    client: GigaChat | None = None,
    *,
    options: TranslateOptions | None = None,
    models: Mapping[str, str] | None = None,
    store: ResponseStore | None = None,
    lib: str = "auto",
    **settings: Any,
) -> Any:
    """An httpx (or httpx2) transport serving the OpenAI/Anthropic endpoints through ``client``.

    Without ``client`` a :class:`~gigapy.GigaChat` is made from ``settings`` (and the
    ``GIGACHAT_*`` variables) and closed with the transport. ``models`` maps model names a
    tool hard-codes to GigaChat's (``{"gpt-4o": "GigaChat-2-Max"}``); ``store`` keeps
    Responses conversations for ``previous_response_id`` (default: in memory, bounded).
    """
    from ._bridge import Bridge

    owns = client is None
    if client is None:
        from .. import GigaChat

        client = GigaChat(**settings)
    elif settings:
        raise TypeError(f"client settings ({', '.join(sorted(settings))}) go to the client you pass, not here")
    sync_cls, _ = transport_classes(library(lib))
    return sync_cls(Bridge(client, _options(options, models), store=store), owns_client=owns)


def async_transport(
    client: AsyncGigaChat | None = None,
    *,
    options: TranslateOptions | None = None,
    models: Mapping[str, str] | None = None,
    store: ResponseStore | None = None,
    lib: str = "auto",
    **settings: Any,
) -> Any:
    """The async counterpart of :func:`transport`, over an :class:`~gigapy.AsyncGigaChat`."""
    from ._bridge import AsyncBridge

    owns = client is None
    if client is None:
        from .. import AsyncGigaChat

        client = AsyncGigaChat(**settings)
    elif settings:
        raise TypeError(f"client settings ({', '.join(sorted(settings))}) go to the client you pass, not here")
    _, async_cls = transport_classes(library(lib))
    return async_cls(AsyncBridge(client, _options(options, models), store=store), owns_client=owns)


def http_client(
    client: GigaChat | None = None,
    *,
    options: TranslateOptions | None = None,
    models: Mapping[str, str] | None = None,
    store: ResponseStore | None = None,
    lib: str = "auto",
    **settings: Any,
) -> Any:
    """A sync httpx client for ``openai.OpenAI(http_client=...)`` / ``anthropic.Anthropic(...)``.

    ``lib="auto"`` gives an ``httpx2.Client`` when httpx2 is installed (current ``openai``
    and ``anthropic`` releases run on it; ``anthropic`` accepts nothing else), else an
    ``httpx.Client``; ``lib="httpx"`` forces httpx (older ``openai`` releases, other tools).
    Other arguments as in :func:`transport`.
    """
    lib_module = library(lib)
    return lib_module.Client(
        base_url=BASE_URL, transport=transport(client, options=options, models=models, store=store, lib=lib, **settings)
    )


def async_http_client(
    client: AsyncGigaChat | None = None,
    *,
    options: TranslateOptions | None = None,
    models: Mapping[str, str] | None = None,
    store: ResponseStore | None = None,
    lib: str = "auto",
    **settings: Any,
) -> Any:
    """An async httpx client for ``openai.AsyncOpenAI(http_client=...)`` (see :func:`http_client`)."""
    lib_module = library(lib)
    return lib_module.AsyncClient(
        base_url=BASE_URL,
        transport=async_transport(client, options=options, models=models, store=store, lib=lib, **settings),
    )
