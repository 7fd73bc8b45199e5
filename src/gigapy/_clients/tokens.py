"""Access tokens: the OAuth and user/password token requests, and the process-wide cache.

One :class:`TokenEntry` exists per (auth URL, credentials, scope) in the whole process and
every client with those settings shares it, sync and async alike. Refresh is
single-flight: the first caller that needs a token becomes the leader and fetches it;
everyone else (other threads, other tasks, other event loops) waits on the same
``concurrent.futures.Future``, so N concurrent first calls make exactly one token
request and nobody waits longer than one token round trip. A token is refreshed ahead
of its expiry; during that early window the others keep using the still-valid token.

Expiry is a *lifetime measured from receipt on the monotonic clock*, so neither a local
clock that is off (ahead or behind, by minutes or years) nor a server whose ``expires_at``
is already past makes every call fetch a new token. See :func:`token_lifetime`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass

from pydantic import SecretStr

from .. import errors
from .._config import Settings
from .._core.flow import SYSTEM_CLOCK, Clock
from .._core.tokens import REFRESH_AHEAD, identity, token_lifetime
from ..types.auth import AccessToken


@dataclass(frozen=True, slots=True)
class _Fresh:
    token: SecretStr  # a SecretStr everywhere inside gigapy: never a plain str in a traceback local
    expires: float  # monotonic seconds
    refresh_at: float  # monotonic seconds


class _LeaderGone(Exception):
    """The refreshing caller was cancelled; a waiter should try to lead instead."""


class TokenEntry:
    """The shared token state for one identity. All fields are guarded by ``_lock``."""

    __slots__ = ("_current", "_inflight", "_lock", "_refresh_at", "clock")

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._lock = threading.Lock()
        self._current: _Fresh | None = None
        self._refresh_at = 0.0
        self._inflight: Future[_Fresh] | None = None
        self.clock = clock  # only its monotonic clock: expiry is a lifetime measured from receipt

    @property
    def token(self) -> str | None:
        """The current token, if it has not expired."""
        cur = self._current
        return cur.token.get_secret_value() if cur is not None and cur.expires > self.clock.monotonic() else None

    def fresh(self) -> SecretStr | None:
        """The fast path, without the lock: the current token while it is valid and not yet
        due for refresh (exactly when :meth:`_claim` would return it with nothing to do);
        None when the locked path must decide."""
        cur = self._current
        if cur is None:
            return None
        now = self.clock.monotonic()
        return cur.token if now < self._refresh_at and cur.expires > now + 1.0 else None

    def _claim(self, stale: SecretStr | None) -> tuple[SecretStr | None, Future[_Fresh] | None, bool]:
        """Under the lock: return (usable token, future to wait on, am I the leader)."""
        with self._lock:
            cur = self._current
            if stale is not None and cur is not None and cur.token == stale:
                self._current = cur = None
            now = self.clock.monotonic()
            valid = cur.token if cur is not None and cur.expires > now + 1.0 else None
            if valid is not None and now < self._refresh_at:
                return valid, None, False
            if self._inflight is not None:
                return valid, (None if valid is not None else self._inflight), False
            self._inflight = Future()
            return valid, self._inflight, True

    def _publish(self, future: Future[_Fresh], fresh: _Fresh | BaseException) -> None:
        with self._lock:
            if isinstance(fresh, _Fresh):
                self._current = fresh
                self._refresh_at = fresh.refresh_at
            self._inflight = None
        if isinstance(fresh, _Fresh):
            future.set_result(fresh)
        else:
            future.set_exception(fresh)

    def get_sync(self, fetch: Callable[[], AccessToken], stale: SecretStr | None = None) -> SecretStr:
        """Return a valid token, fetching it (once, for everyone) when needed."""
        while True:
            valid, future, leader = self._claim(stale)
            stale = None
            if future is None:
                assert valid is not None
                return valid
            if not leader:
                try:
                    return future.result().token
                except _LeaderGone:
                    continue
            try:
                fetched: AccessToken | BaseException = fetch()
            except BaseException as exc:  # handed to _finish, which re-raises
                fetched = exc
            return self._finish(future, valid, fetched)

    async def get_async(self, fetch: Callable[[], Awaitable[AccessToken]], stale: SecretStr | None = None) -> SecretStr:
        """Async twin of :meth:`get_sync`; waiters never block the event loop."""
        while True:
            valid, future, leader = self._claim(stale)
            stale = None
            if future is None:
                assert valid is not None
                return valid
            if not leader:
                import asyncio  # here, not at the top: the sync client never needs it

                try:
                    return (await asyncio.wrap_future(future)).token
                except _LeaderGone:
                    continue
            try:
                fetched: AccessToken | BaseException = await fetch()
            except BaseException as exc:  # handed to _finish, which re-raises
                fetched = exc
            return self._finish(future, valid, fetched)

    def _finish(
        self, future: Future[_Fresh], valid: SecretStr | None, fetched: AccessToken | BaseException
    ) -> SecretStr:
        """The leader's last step: publish the result to the waiters and return (or raise)."""
        if isinstance(fetched, AccessToken):
            fresh = self._fresh(fetched)
            self._publish(future, fresh)
            return fresh.token
        if not isinstance(fetched, Exception):  # cancelled or interrupted: let a waiter lead
            self._publish(future, _LeaderGone())
            raise fetched
        self._publish(future, fetched)
        if valid is not None:  # an early refresh failed; the current token still works
            with self._lock:
                self._refresh_at = self.clock.monotonic() + 5.0
            return valid
        raise fetched

    def store(self, token: AccessToken) -> None:
        """Put a token obtained outside the cache (``create_token``) into it."""
        fresh = self._fresh(token)
        with self._lock:
            self._current = fresh
            self._refresh_at = fresh.refresh_at

    def clear(self) -> None:
        """Forget the token (tests, logout)."""
        with self._lock:
            self._current = None
            self._refresh_at = 0.0

    def _fresh(self, token: AccessToken) -> _Fresh:
        """The token with its expiry and refresh moment on the monotonic clock, from now."""
        life = token._lifetime
        if life is None:  # not read by parse_token: its expires_at against the local clock
            life = token_lifetime(token.expires_at / 1000, time.time(), None)
        now = self.clock.monotonic()
        return _Fresh(token.access_token, now + life, now + life - min(REFRESH_AHEAD, life / 2))


_ENTRIES: dict[tuple[str, ...], TokenEntry] = {}
_ENTRIES_LOCK = threading.Lock()


def token_entry(settings: Settings) -> TokenEntry | None:
    """The process-wide entry for these settings' identity (None for a static token)."""
    key = identity(settings)
    if key is None:
        return None
    entry = _ENTRIES.get(key)
    if entry is None:
        with _ENTRIES_LOCK:
            entry = _ENTRIES.setdefault(key, TokenEntry())
    return entry


def clear_token_cache() -> None:
    """Forget every cached token in this process."""
    with _ENTRIES_LOCK:
        for entry in _ENTRIES.values():
            entry.clear()


class TokenSource:
    """Where one client gets its bearer: a static token first (if given), then the cache."""

    __slots__ = ("entry", "static", "static_rejected")

    def __init__(self, settings: Settings) -> None:
        self.entry = token_entry(settings)
        self.static: SecretStr | None = settings.access_token
        self.static_rejected = False

    def __repr__(self) -> str:
        return f"TokenSource(static={self.static!r}, cached={self.entry is not None})"

    def without_io(self, stale: SecretStr | None) -> SecretStr | None:
        """The static token when it is still in use, else the cached token while it is fresh
        (and not the one just rejected); None when the cache must be asked."""
        if self.static is not None and not self.static_rejected:
            if stale is None or stale != self.static or self.entry is None:
                return self.static
            self.static_rejected = True
        if self.entry is None:
            raise errors.ConfigurationError("credentials", "no credentials to fetch an access token with")
        return self.entry.fresh() if stale is None else None

    @property
    def current(self) -> str | None:
        """The token a request would use now, if one is known."""
        if self.static is not None and not self.static_rejected:
            return self.static.get_secret_value()
        return self.entry.token if self.entry is not None else None
