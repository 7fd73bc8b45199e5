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

import asyncio
import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from .. import errors
from .._config import Settings
from .._core import wire as _wire
from .._core.flow import SYSTEM_CLOCK, Clock, Request, Response, _invalid_body, http_date
from .._core.numbers import server_number
from ..types.auth import AccessToken

REFRESH_AHEAD = 60.0  # seconds before expiry when a refresh starts (at most half the lifetime)
#: An expiry that leaves less than MIN_LIFETIME after receipt (already past, or a clock far off with
#: no Date header to correct it) is not believed: the token is used for FALLBACK_LIFETIME seconds
#: (refreshed after half of it), and replaced at once if the server rejects it with a 401.
MIN_LIFETIME = 1.0
FALLBACK_LIFETIME = 60.0
#: The longest lifetime believed (an absurd expiry, year 2100, a unit mix-up): one day.
MAX_LIFETIME = 86_400.0
#: When the local clock and the OAuth response's Date header differ by more than this, the local
#: clock is off and the lifetime is measured against the server's Date instead.
CLOCK_TOLERANCE = 5.0


def token_lifetime(expires_at: float | None, now: float, server_now: float | None) -> float:
    """Seconds a token received at ``now`` (local wall clock) may be used.

    ``expires_at`` is the server's expiry in Unix seconds (None when it sent none that is
    usable), ``server_now`` the response's ``Date`` header (None without one). The lifetime
    is ``expires_at`` minus the time at receipt: the local clock when it agrees with the
    server's Date within ``CLOCK_TOLERANCE`` (Date has whole seconds only), else the server's
    Date (the end of its second). It passes the number guard into
    [FALLBACK_LIFETIME if below MIN_LIFETIME, MAX_LIFETIME].
    """
    ref = now
    if server_now is not None and abs(now - server_now) > CLOCK_TOLERANCE:
        ref = server_now + 1.0
    life = None if expires_at is None else server_number(expires_at - ref, low=0.0, high=MAX_LIFETIME)
    if life is None or life < MIN_LIFETIME:
        return FALLBACK_LIFETIME
    return life


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

    async def get_async(self, fetch: Callable[[], Awaitable[AccessToken]],
                        stale: SecretStr | None = None) -> SecretStr:
        """Async twin of :meth:`get_sync`; waiters never block the event loop."""
        while True:
            valid, future, leader = self._claim(stale)
            stale = None
            if future is None:
                assert valid is not None
                return valid
            if not leader:
                try:
                    return (await asyncio.wrap_future(future)).token
                except _LeaderGone:
                    continue
            try:
                fetched: AccessToken | BaseException = await fetch()
            except BaseException as exc:  # handed to _finish, which re-raises
                fetched = exc
            return self._finish(future, valid, fetched)

    def _finish(self, future: Future[_Fresh], valid: SecretStr | None,
                fetched: AccessToken | BaseException) -> SecretStr:
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


def identity(settings: Settings) -> tuple[str, ...] | None:
    """The cache key: who we are to the token endpoint. Secrets enter it only hashed."""
    if settings.credentials is not None:
        digest = hashlib.sha256(settings.credentials.get_secret_value().encode()).hexdigest()
        return ("oauth", settings.auth_url, digest, settings.scope)
    if settings.user is not None and settings.password is not None:
        digest = hashlib.sha256(f"{settings.user}:{settings.password.get_secret_value()}".encode()).hexdigest()
        return ("password", settings.base_url, digest)
    return None


def clear_token_cache() -> None:
    """Forget every cached token in this process."""
    with _ENTRIES_LOCK:
        for entry in _ENTRIES.values():
            entry.clear()


def token_request(settings: Settings, user_agent: str) -> Request:
    """The request that fetches a token for these settings (OAuth or user/password)."""
    timeout = settings.timeout
    if settings.credentials is not None:
        return Request(
            "POST",
            settings.auth_url,
            {
                "RqUID": str(uuid.uuid4()),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": user_agent,
            },
            content=f"scope={settings.scope}".encode(),
            idempotent=True,
            auth=False,
            timeout=timeout,
            max_retries=settings.max_retries,
            authorization=SecretStr("Basic " + settings.credentials.get_secret_value()),
        )
    assert settings.user is not None
    assert settings.password is not None
    return Request(
        "POST",
        settings.base_url + "/token",
        {"Accept": "application/json", "User-Agent": user_agent},
        idempotent=True,
        auth=False,
        timeout=timeout,
        max_retries=settings.max_retries,
        authorization=SecretStr("Basic " + base64.b64encode(
            f"{settings.user}:{settings.password.get_secret_value()}".encode()).decode()),
    )


def parse_token(response: Response, now: float | None = None) -> AccessToken:
    """Read ``{access_token, expires_at(ms)}`` (OAuth) or ``{tok, exp(s)}`` (/token).

    The token never sits in a plain local here, and no error repeats it or keeps the body:
    a token that cannot be sent back as a header value is rejected naming only the field.
    ``now`` is the local wall clock at receipt. The expiry passes the number guard: a value
    that is no usable time (NaN, negative, absurd, text, missing) does not fail the token, it
    only gets the fallback lifetime (see :func:`token_lifetime`); ``expires_at`` then reports
    that estimate.
    """
    now = time.time() if now is None else now
    data = _json_object(response.content)
    if not isinstance(data, dict):
        raise _invalid_body(response, TypeError("expected a JSON object"), keep_body=False)
    name = "access_token" if "access_token" in data else "tok"
    token, problem = _take_token(data, name)
    if problem is not None:
        raise _invalid_body(response, ValueError(f"{name} {problem}"), keep_body=False)
    expires = data.get("expires_at") if name == "access_token" else data.get("exp")
    unit_ms = name == "access_token"
    if token is None:
        raise _invalid_body(response, TypeError("no token in the response"), keep_body=False)
    server_now = http_date(response.headers.get("date"))
    expires_s = _expiry_seconds(expires, unit_ms, now if server_now is None else server_now)
    lifetime = token_lifetime(expires_s, now, server_now)
    expires_ms = int((expires_s if expires_s is not None else now + lifetime) * 1000)
    result = AccessToken.model_validate({"access_token": token, "expires_at": expires_ms})
    result._meta = response.meta()
    result._lifetime = lifetime
    return result


def _json_object(content: bytes) -> Any:
    """The parsed body, or None when it is not JSON (decided here, so no JSON error with the
    body in its frames is chained to the error raised by the caller)."""
    try:
        return json.loads(content)
    except ValueError:
        return None


def _take_token(data: dict[str, Any], name: str) -> tuple[SecretStr | None, str | None]:
    """Pop the token out of the parsed body as a SecretStr; (None, why) when it cannot be sent
    back in the Authorization header (the reason never repeats the token)."""
    value = data.pop(name, None)
    if not isinstance(value, str) or not value:
        return None, None
    problem = _wire.header_value_problem(value)
    if problem is None and any(ch in value for ch in " \t"):
        problem = "contains whitespace"
    return SecretStr(value), (None if problem is None else f"from the token endpoint {problem}")


_YEAR_2000 = 946_684_800.0
_YEAR_3000 = 32_503_680_000.0


def _expiry_seconds(value: Any, unit_ms: bool, ref: float) -> float | None:
    """The server's expiry as Unix seconds, or None when it is no plausible time. OAuth sends
    ms and /token seconds; a value that is clearly in the other unit (more than ~30 years
    off) is converted, so a unit mix-up cannot make every call fetch a new token."""
    number = server_number(value, low=0.0, high=1e18)
    if not number:
        return None
    ms = number if unit_ms else number * 1000
    ref_ms = ref * 1000
    if ms > ref_ms * 100:  # milliseconds sent where seconds were expected
        ms /= 1000
    elif ms < ref_ms / 100:  # seconds sent where milliseconds were expected
        ms *= 1000
    seconds = ms / 1000
    return seconds if _YEAR_2000 <= seconds <= _YEAR_3000 else None


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
