"""How a client uses its coordinator: token fetches and generation requests go through it.

The client's drivers call :meth:`FleetHook.send_sync` / :meth:`send_async` for every request
they send and :meth:`token_sync` / :meth:`token_async` when the process's token cache needs a
token. Generation requests (``POST .../chat/completions`` and ``.../embeddings``) hold a lease
of (account, model class) while they are sent; a streamed one holds it until its stream ends,
fails or is closed (or, abandoned, is garbage-collected). A 429 gives the lease back as
``throttled`` so the whole fleet backs off. Everything else passes straight through.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

from .._core.flow import bearer
from ..errors import ConfigurationError
from . import model_class, shared

if TYPE_CHECKING:
    from .._clients.tokens import TokenEntry
    from .._config import Settings
    from .._core.flow import Request
    from ..types.auth import AccessToken
    from ._coordinator import Lease

T = TypeVar("T")

#: Concurrent generation requests per account and model class, by scope (the service's limits).
DEFAULT_LIMITS = {"GIGACHAT_API_PERS": 1, "GIGACHAT_API_B2B": 10, "GIGACHAT_API_CORP": 10}
_LEASED = ("/chat/completions", "/embeddings")


def split_limit(url: str) -> tuple[str, int | None]:
    """The URL without its ``limit=`` query parameter, and that limit (None when absent)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    raw = query.get("limit", [None])[0]
    limit = None
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise ConfigurationError("coordinator", f"limit must be an integer, got {raw!r}") from None
        if limit < 1:
            raise ConfigurationError("coordinator", f"limit must be >= 1, got {limit}")
    kept = "&".join(p for p in parts.query.split("&") if p and not p.startswith("limit="))
    return parts._replace(query=kept).geturl(), limit


class FleetHook:
    """One client's view of its coordinator (the coordinator itself is shared per URL)."""

    __slots__ = ("_secret", "ceiling", "coordinator", "identity", "prefix")

    def __init__(self, settings: Settings) -> None:
        from .._core.tokens import identity

        assert settings.coordinator is not None
        url, limit = split_limit(settings.coordinator.get_secret_value())
        self.coordinator = shared(url)
        self.ceiling = limit if limit is not None else DEFAULT_LIMITS.get(settings.scope, 10)
        ident = identity(settings)
        if ident is None:  # a static token or mTLS: the account is who the certificate or token says
            basis = settings.cert_file or (settings.access_token.get_secret_value() if settings.access_token else "")
            ident = ("static", hashlib.sha256(basis.encode()).hexdigest())
        self.identity = hashlib.sha256("\x00".join(ident).encode()).hexdigest()[:32]
        self.prefix = self.identity[:16]
        if settings.credentials is not None:
            self._secret: SecretStr | None = settings.credentials
        elif settings.user is not None and settings.password is not None:
            self._secret = SecretStr(f"{settings.user}:{settings.password.get_secret_value()}")
        else:
            self._secret = None

    def __repr__(self) -> str:
        return f"FleetHook({self.coordinator!r}, ceiling={self.ceiling})"

    def lease_key(self, request: Request) -> str | None:
        """The lease a request needs (None: it passes straight through)."""
        if request.method != "POST":
            return None
        path = urlsplit(request.url).path
        if not path.endswith(_LEASED):
            return None
        return f"{self.prefix}:{'embeddings' if path.endswith('/embeddings') else model_class(None)}"

    def send_sync(
        self, send: Callable[[Request], Any], request: Request, token: Callable[[], SecretStr] | None = None
    ) -> Any:
        """Send ``request`` holding a lease when it needs one. The wait for a lease can be long, so
        once it is held the bearer is taken again from ``token`` (free while the cached one is fresh)."""
        key = self.lease_key(request)
        if key is None:
            return send(request)
        began = time.monotonic()
        lease = self.coordinator.acquire(key, self.ceiling)
        _queued(request, began)
        outcome: str | None = None
        held = False
        try:
            if token is not None and request.authorization is not None:
                request.authorization = bearer(token())
            result = send(request)
            outcome = _outcome(result)
            held = _hold(result, lease, sync=True)
            return result
        finally:
            if not held:
                lease.release(outcome)

    async def send_async(
        self,
        send: Callable[[Request], Awaitable[Any]],
        request: Request,
        token: Callable[[], Awaitable[SecretStr]] | None = None,
    ) -> Any:
        """Async :meth:`send_sync`."""
        key = self.lease_key(request)
        if key is None:
            return await send(request)
        began = time.monotonic()
        lease = await self.coordinator.aacquire(key, self.ceiling)
        _queued(request, began)
        outcome: str | None = None
        held = False
        try:
            if token is not None and request.authorization is not None:
                request.authorization = bearer(await token())
            result = await send(request)
            outcome = _outcome(result)
            held = _hold(result, lease, sync=False)
            return result
        finally:
            if not held:
                await lease.arelease(outcome)

    def token_sync(self, entry: TokenEntry, fetch: Callable[[], AccessToken], stale: SecretStr | None) -> SecretStr:
        """A token from the process cache, filled from the fleet's token."""
        secret = self._secret
        if secret is None or not self.coordinator.shared:
            return entry.get_sync(fetch, stale)
        if stale is not None:
            self.coordinator.invalidate_token(self.identity, secret.get_secret_value().encode(), stale)
        return entry.get_sync(
            lambda: self.coordinator.token(self.identity, secret.get_secret_value().encode(), fetch), stale
        )

    async def token_async(
        self, entry: TokenEntry, fetch: Callable[[], Awaitable[AccessToken]], stale: SecretStr | None
    ) -> SecretStr:
        """Async :meth:`token_sync`."""
        secret = self._secret
        if secret is None or not self.coordinator.shared:
            return await entry.get_async(fetch, stale)
        if stale is not None:
            await self.coordinator.ainvalidate_token(self.identity, secret.get_secret_value().encode(), stale)
        return await entry.get_async(
            lambda: self.coordinator.atoken(self.identity, secret.get_secret_value().encode(), fetch), stale
        )


def _queued(request: Request, began: float) -> None:
    """Add the wait for a lease to the request's quota wait (what telemetry reports)."""
    request.queued = (request.queued or 0.0) + (time.monotonic() - began)


class StreamHold:
    """The lease of an open stream: given back once, when the stream ends or is closed (or when
    an abandoned stream is garbage-collected)."""

    __slots__ = ("_sync", "lease")

    def __init__(self, lease: Lease, sync: bool) -> None:
        self.lease: Lease | None = lease
        self._sync = sync

    def __repr__(self) -> str:
        return f"StreamHold({self.lease!r})"

    def close(self, finished: bool = True) -> None:
        """Give the lease back: ``ok`` when the stream finished, no feedback when it broke or was cut."""
        lease, self.lease = self.lease, None
        if lease is None:
            return
        outcome = "ok" if finished else None
        if self._sync:
            lease.release(outcome)
        else:  # called from the event loop's sync close path: the backend call runs off the loop
            lease.release_soon(outcome)

    def __del__(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release_soon(None)


def _hold(result: Any, lease: Lease, *, sync: bool) -> bool:
    """Whether ``result`` is an open stream, which then holds ``lease`` until it ends."""
    if getattr(result, "raw", None) is None or not hasattr(result, "hold"):
        return False
    result.hold = StreamHold(lease, sync)
    return True


def _outcome(result: Any) -> str | None:
    status = getattr(result, "status", None)
    if status == 429:
        return "throttled"
    return "ok" if isinstance(status, int) and status < 500 else None


def fleet_for(settings: Settings) -> FleetHook | None:
    """The hook for a client with these settings (None without a coordinator)."""
    return None if settings.coordinator is None else FleetHook(settings)
