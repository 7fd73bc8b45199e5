"""Fault injection: error rates per status, drops, stalls, latency; a seeded RNG and one-shot queue."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ._http import error_response

#: Faults decided before the handler runs.
PRE_KINDS = frozenset({"402", "413", "422", "429", "500", "500html", "502", "503", "504", "drop", "stall"})
#: Faults that hit a stream after some events.
STREAM_KINDS = frozenset({"stream_drop", "stream_stall"})
PARAMS = frozenset({"latency_ms", "chunk_delay_ms", "retry_after", "retry_after_ms", "expires_at_shift"})

_MESSAGES = {
    402: "Payment Required",
    413: "Payload too large",
    422: "Invalid params: emulated fault",
    429: "Too many requests",
    500: "Internal Server Error",
}
_NGINX_500 = (
    "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
    "<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def _is_kind(kind: str) -> bool:
    return kind in PRE_KINDS or kind in STREAM_KINDS or (kind.isdigit() and 400 <= int(kind) <= 599)


@dataclass
class FaultSpec:
    """A parsed fault spec: rates per kind plus latency, chunk delay and Retry-After.

    Two parameters make the server's numbers hostile, for client tests: ``retry_after_ms``
    adds a ``Retry-After-Ms`` header with that value to injected 429s (``nan`` and ``inf``
    included); ``expires_at_shift`` moves the expiry that OAuth and ``/token`` report by
    that many seconds (negative: an already-expired ``expires_at``) without changing how
    long the token really works.
    """

    rates: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    retry_after: int = 1
    retry_after_ms: float | None = None
    expires_at_shift: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> FaultSpec:
        """Parse ``"500:0.1,429:0.05,drop:0.02,latency_ms:50"`` (a bare kind means rate 1)."""
        result = cls()
        for raw in spec.replace(";", ",").split(","):
            item = raw.strip()
            if not item:
                continue
            name, _, value = item.partition(":")
            name = name.strip().lower()
            try:
                number = float(value) if value.strip() else 1.0
            except ValueError:
                raise ValueError(f"fault {name!r}: {value!r} is not a number") from None
            result._set(name, number)
        result._check()
        return result

    def _set(self, name: str, number: float) -> None:
        if name == "expires_at_shift":  # may be negative
            self.expires_at_shift = number
            return
        if name == "retry_after_ms":  # sent as is, NaN and inf included
            self.retry_after_ms = number
            return
        if number < 0:
            raise ValueError(f"fault {name!r}: value must be >= 0")
        if name == "latency_ms":
            self.latency_ms = number
        elif name == "chunk_delay_ms":
            self.chunk_delay_ms = number
        elif name == "retry_after":
            self.retry_after = int(number)
        elif _is_kind(name):
            if number > 1:
                raise ValueError(f"fault {name!r}: rate must be within [0, 1]")
            self.rates[name] = number
        else:
            raise ValueError(f"unknown fault kind {name!r}")

    def _check(self) -> None:
        for group in (PRE_KINDS, STREAM_KINDS):
            if sum(rate for kind, rate in self.rates.items() if _group(kind) is group) > 1.0 + 1e-9:
                raise ValueError("fault rates of one group add up to more than 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "rates": dict(self.rates),
            "latency_ms": self.latency_ms,
            "chunk_delay_ms": self.chunk_delay_ms,
            "retry_after": self.retry_after,
            "retry_after_ms": self.retry_after_ms,
            "expires_at_shift": self.expires_at_shift,
        }


def _group(kind: str) -> frozenset[str]:
    return STREAM_KINDS if kind in STREAM_KINDS else PRE_KINDS


def _route_matches(path: str, routes: list[str] | None, auth_route: bool) -> bool:
    if routes is None:
        return not auth_route
    if auth_route:
        return any(r in path and ("oauth" in r or "token" in r) for r in routes)
    return any(r in path for r in routes)


class FaultController:
    """Runtime-switchable faults. Thread-safe: tests call it while the server thread reads it."""

    def __init__(self, spec: str = "", seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(seed)
        self._spec = FaultSpec()
        self._routes: list[str] | None = None
        self._queue: list[tuple[str, list[str] | None]] = []
        self.active = False
        self.injected = 0
        if spec:
            self.set(spec)

    def set(self, spec: str, routes: list[str] | None = None) -> None:
        """Replace the rate-based faults; ``routes`` are path substrings they apply to."""
        parsed = FaultSpec.parse(spec)
        with self._lock:
            self._spec = parsed
            self._routes = list(routes) if routes is not None else None
            self._rng = random.Random(self._seed)
            self._refresh()

    def enqueue(self, *kinds: str, routes: list[str] | None = None) -> None:
        """One-shot faults for the next matching requests, in order (``enqueue("500", "500")``)."""
        for kind in kinds:
            if not _is_kind(kind):
                raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._queue.extend((kind, list(routes) if routes is not None else None) for kind in kinds)
            self._refresh()

    def clear(self) -> None:
        """Remove every fault, queued or rate-based."""
        with self._lock:
            self._spec = FaultSpec()
            self._routes = None
            self._queue.clear()
            self._refresh()

    def _refresh(self) -> None:
        spec = self._spec
        self.active = bool(self._queue or spec.rates or spec.latency_ms or spec.chunk_delay_ms)

    def snapshot(self) -> dict[str, Any]:
        """Current settings, for the admin route."""
        with self._lock:
            return {
                **self._spec.to_dict(),
                "routes": self._routes,
                "queue": [{"kind": k, "routes": r} for k, r in self._queue],
                "injected": self.injected,
            }

    @property
    def retry_after(self) -> int:
        """Retry-After seconds sent with injected 429s."""
        return self._spec.retry_after

    @property
    def retry_after_ms(self) -> float | None:
        """Retry-After-Ms sent with injected 429s, if set."""
        return self._spec.retry_after_ms

    @property
    def expires_at_shift(self) -> float:
        """Seconds added to the token expiry that OAuth and /token report."""
        return self._spec.expires_at_shift

    def latency(self, path: str, auth_route: bool = False) -> float:
        """Seconds to wait before answering."""
        spec = self._spec
        if spec.latency_ms and _route_matches(path, self._routes, auth_route):
            return spec.latency_ms / 1000.0
        return 0.0

    def chunk_delay(self, path: str) -> float:
        """Seconds between stream events."""
        spec = self._spec
        if spec.chunk_delay_ms and _route_matches(path, self._routes, False):
            return spec.chunk_delay_ms / 1000.0
        return 0.0

    def take(self, path: str, group: frozenset[str], auth_route: bool = False) -> str | None:
        """The fault to inject now for this request (queue first, then rates), or None."""
        with self._lock:
            for index, (kind, routes) in enumerate(self._queue):
                if _group(kind) is group and _route_matches(path, routes, auth_route):
                    del self._queue[index]
                    self._refresh()
                    self.injected += 1
                    return kind
            if not _route_matches(path, self._routes, auth_route):
                return None
            draw = self._rng.random()
            for kind, rate in self._spec.rates.items():
                if _group(kind) is not group:
                    continue
                if draw < rate:
                    self.injected += 1
                    return kind
                draw -= rate
        return None


def status_fault_response(
    kind: str, retry_after: int, headers: dict[str, str], retry_after_ms: float | None = None
) -> web.Response:
    """The response for a status fault (JSON, or nginx HTML for ``500html``)."""
    if kind == "500html":
        return web.Response(text=_NGINX_500, status=500, content_type="text/html", headers=headers)
    status = int(kind)
    extra = dict(headers)
    if status == 429:
        extra["Retry-After"] = str(retry_after)
        if retry_after_ms is not None:
            extra["Retry-After-Ms"] = str(retry_after_ms)
    return error_response(status, _MESSAGES.get(status) or _phrase(status), extra)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
