"""The token wire format, sans-IO: the OAuth (or user/password) request, parsing the answer, and
how long a token is believed. The cache that shares tokens lives in ``_clients.tokens``."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

from pydantic import SecretStr

from .._config import Settings
from ..types.auth import AccessToken
from . import wire as _wire
from .flow import Request, Response, http_date, invalid_body
from .numbers import server_number

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


def identity(settings: Settings) -> tuple[str, ...] | None:
    """The cache key: who we are to the token endpoint. Secrets enter it only hashed."""
    if settings.credentials is not None:
        digest = hashlib.sha256(settings.credentials.get_secret_value().encode()).hexdigest()
        return ("oauth", settings.auth_url, digest, settings.scope)
    if settings.user is not None and settings.password is not None:
        digest = hashlib.sha256(f"{settings.user}:{settings.password.get_secret_value()}".encode()).hexdigest()
        return ("password", settings.base_url, digest)
    return None


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
        authorization=SecretStr(
            "Basic " + base64.b64encode(f"{settings.user}:{settings.password.get_secret_value()}".encode()).decode()
        ),
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
        raise invalid_body(response, TypeError("expected a JSON object"), keep_body=False)
    name = "access_token" if "access_token" in data else "tok"
    token, problem = _take_token(data, name)
    if problem is not None:
        raise invalid_body(response, ValueError(f"{name} {problem}"), keep_body=False)
    expires = data.get("expires_at") if name == "access_token" else data.get("exp")
    unit_ms = name == "access_token"
    if token is None:
        raise invalid_body(response, TypeError("no token in the response"), keep_body=False)
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


_YEAR_2000 = 946_684_800.0


_YEAR_3000 = 32_503_680_000.0
