"""Deadlines that a trickle cannot defeat, for the sync (httpx) driver.

httpx bounds each socket operation, so a server that sends one byte a second (headers,
body or ``: ping`` comments) never trips its read timeout. gigapy's own connection pool
therefore gets a network backend (httpcore's public ``NetworkBackend`` interface) that
bounds every connect, read and write by the deadline of the call the current thread is
running: :func:`enter` sets it (an ``AttemptDeadline`` or a ``StreamDeadline`` of the
sans-IO core) around each attempt and each stream read. Installing it touches one private
attribute of httpcore's pools (``_network_backend``); where that is missing (a future
httpcore, or an ``http_client`` the caller gave us) :func:`install` reports False and only
the checks between stream chunks remain.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

import httpcore
import httpx


class Limit(Protocol):
    """What bounds the waits of the current thread (see ``_core.AttemptDeadline``)."""

    def ready(self, extra: float = 0.0) -> float | None: ...


_local = threading.local()


def enter(limit: Limit | None) -> Limit | None:
    """Bound every socket wait of this thread by ``limit`` from now on; returns the previous
    limit, to hand to :func:`leave` (a plain pair rather than a context manager: this runs
    for every request)."""
    previous: Limit | None = getattr(_local, "limit", None)
    _local.limit = limit
    return previous


def leave(previous: Limit | None) -> None:
    """Restore the limit :func:`enter` returned."""
    _local.limit = previous


def _timeout(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the current thread's deadline."""
    limit: Limit | None = getattr(_local, "limit", None)
    if limit is None:
        return timeout
    until = limit.ready()
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise error("the call's deadline passed")
    return left if timeout is None or left < timeout else timeout


class _Stream(httpcore.NetworkStream):
    """A connection whose every read and write is bounded by the current thread's deadline."""

    __slots__ = ("_inner",)

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _timeout(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _timeout(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _timeout(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's backend, with connections that honour the current thread's deadline."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _timeout(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        timeout = _timeout(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


#: The httpx and httpcore versions these fast paths were written and tested against (the suite
#: checks they are active there); elsewhere they still switch themselves off when an internal
#: they use is missing.
KNOWN_VERSIONS = {"httpx": ("0.27", "0.28", "0.29"), "httpcore": ("1.0",)}


def enabled() -> bool:
    """Whether the fast paths that use httpx/httpcore internals may be used: not when the
    environment sets ``GIGAPY_FASTPATH=0`` (then only public httpx APIs are used; the direct
    send path and the bounded backend are off, deadlines hold between stream chunks)."""
    return os.environ.get("GIGAPY_FASTPATH", "1").strip().lower() not in ("0", "false", "no", "off")


def install(client: httpx.Client) -> bool:
    """Give every connection pool of ``client`` (its own, and one per proxy) the bounded
    backend. False when some pool could not get it (the deadlines then hold only between
    stream chunks), or when the fast paths are switched off (:func:`enabled`)."""
    if not enabled():
        return False
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    ok = True
    for transport in transports:
        if transport is None:
            continue
        pool = getattr(transport, "_pool", None) if isinstance(transport, httpx.HTTPTransport) else None
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            ok = False
        elif not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
    return ok
