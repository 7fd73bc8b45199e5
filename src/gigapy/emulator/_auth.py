"""OAuth (``POST /api/v2/oauth``), user/password tokens (``POST /api/v1/token``), bearer checks and,
in mTLS-only mode, the account a client certificate names."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import time
from itertools import islice
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from aiohttp import web

from ._config import ALL_SCOPES, SCOPE_B2B, SCOPE_CORP, SCOPE_PERS, Account, CertAccount
from ._http import ApiError, OAuthError, is_uuid4, json_response, secure_bytes

if TYPE_CHECKING:
    from aiohttp.web import Request

    from ._pipeline import Ctx
    from ._state import State

# Header of the real service's JWE tokens: {"cty":"jwt","enc":"A256CBC-HS512","alg":"RSA-OAEP-256"}.
_JWE_HEADER = base64.urlsafe_b64encode(b'{"cty":"jwt","enc":"A256CBC-HS512","alg":"RSA-OAEP-256"}').rstrip(b"=")
_TOKEN_PARTS = (256, 16, 640, 32)  # encrypted key, IV, ciphertext, tag (bytes)
_USER_TOKEN_SCOPES = (SCOPE_B2B, SCOPE_CORP, SCOPE_PERS)
_OAUTH_CT = "application/json"
_RATE_KEYS_CAP = 10_000


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def new_access_token() -> str:
    """An opaque token shaped like the service's 5-part JWE compact string."""
    parts = [_JWE_HEADER] + [_b64url(secure_bytes(size)) for size in _TOKEN_PARTS]
    return b".".join(parts).decode("ascii")


class TokenRecord:
    """What a token grants: account, scope and expiry (Unix seconds)."""

    __slots__ = ("account", "expires_at", "scope")

    def __init__(self, account: Account, scope: str, expires_at: float) -> None:
        self.account = account
        self.scope = scope
        self.expires_at = expires_at


class TokenStore:
    """Issued tokens, capped: expired ones are kept (to answer "Token has expired") until evicted."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._tokens: dict[str, TokenRecord] = {}

    def issue(self, account: Account, scope: str, ttl: float) -> tuple[str, float]:
        """A new token and its expiry (Unix seconds)."""
        token = new_access_token()
        expires_at = time.time() + ttl
        self._tokens[token] = TokenRecord(account, scope, expires_at)
        if len(self._tokens) > self.capacity:
            self._evict()
        return token, expires_at

    def _evict(self) -> None:
        now = time.time()
        expired = [t for t, rec in self._tokens.items() if rec.expires_at <= now]
        for token in expired:
            del self._tokens[token]
        overflow = len(self._tokens) - self.capacity
        if overflow > 0:
            for token in list(islice(self._tokens, overflow + self.capacity // 10)):
                del self._tokens[token]

    def get(self, token: str) -> TokenRecord | None:
        """The record for a token, expired or not."""
        return self._tokens.get(token)

    def expire_all(self) -> None:
        """Make every issued token expired now."""
        now = time.time()
        for record in self._tokens.values():
            record.expires_at = min(record.expires_at, now)

    def __len__(self) -> int:
        return len(self._tokens)


class RateWindow:
    """Requests per key in the current one-second window."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    def allow(self, key: str, limit: int) -> bool:
        """Count a request; False when the key is over ``limit`` this second."""
        second = int(time.monotonic())
        window, count = self._windows.get(key, (second, 0))
        if window != second:
            window, count = second, 0
        if len(self._windows) > _RATE_KEYS_CAP:
            self._windows.clear()
        self._windows[key] = (window, count + 1)
        return count < limit


def authenticate(state: State, header: str | None) -> TokenRecord:
    """Check ``Authorization: Bearer <token>``: 401 Unauthorized or 401 Token has expired."""
    if not header or header[:7].lower() != "bearer ":
        raise ApiError(401, "Unauthorized")
    record = state.tokens.get(header[7:].strip())
    if record is None:
        raise ApiError(401, "Unauthorized")
    if record.expires_at <= time.time():
        raise ApiError(401, "Token has expired")
    return record


class GatewayError(Exception):
    """An error the service's gateway (nginx) answers itself, as an HTML page."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.html = (
            f"<html>\r\n<head><title>{status} {message}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n<center>{message}</center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )


def peer_certificate(request: Request) -> tuple[bytes, str | None] | None:
    """The verified client certificate of a request's TLS connection: (DER, subject CN), or None."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    common_name = None
    for rdn in (ssl_object.getpeercert() or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                common_name = value
    return der, common_name


def certificate_record(state: State, request: Request) -> TokenRecord:
    """mTLS-only: the account the client certificate names. No certificate: nginx's 400 page; one that
    client_ca signed but no ``cert_accounts`` entry names: 401 Unauthorized."""
    peer = peer_certificate(request)
    if peer is None:
        raise GatewayError(400, "Bad Request", "No required SSL certificate was sent")
    der, common_name = peer
    fingerprint = "sha256:" + hashlib.sha256(der).hexdigest()
    record = state.cert_records.get(fingerprint)
    if record is not None:
        return record
    mapping = state.cert_accounts
    if mapping:
        entry = mapping.get(fingerprint) or (mapping.get("cn:" + common_name) if common_name else None)
        if entry is None:
            raise ApiError(401, "Unauthorized")
    else:
        entry = CertAccount("", common_name or fingerprint[:23], SCOPE_CORP)
    account = state.account(entry.client_id) or Account(entry.client_id, "", frozenset({entry.scope}))
    record = TokenRecord(account, entry.scope, math.inf)
    if len(state.cert_records) < 10_000:
        state.cert_records[fingerprint] = record
    return record


def _b64decode(raw: str) -> str:
    padded = raw + "=" * (-len(raw) % 4)
    try:
        return base64.b64decode(padded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return base64.urlsafe_b64decode(padded).decode("utf-8")


def _decode_key(header: str) -> tuple[str, str]:
    """Client id and secret from ``Basic <key>`` (or ``Bearer <key>``, as gigachat-node sends)."""
    scheme, _, key = header.strip().partition(" ")
    try:
        if scheme.lower() not in ("basic", "bearer"):
            raise ValueError(scheme)
        client_id, sep, secret = _b64decode(key.strip()).partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise OAuthError(400, 4, "Can't decode 'Authorization' header") from None
    if not sep or not client_id:
        raise OAuthError(400, 4, "Can't decode 'Authorization' header")
    return client_id, secret


def _scope_from_form(body: bytes) -> str:
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        form = {}
    scope = (form.get("scope") or [""])[0].strip()
    if not scope:
        raise OAuthError(400, 5, "scope is empty")
    if scope not in ALL_SCOPES:
        raise OAuthError(400, 1, "scope data format invalid")
    return scope


async def oauth(ctx: Ctx) -> web.StreamResponse:
    """``POST /api/v2/oauth``: authorization key + scope → ``{access_token, expires_at}`` (ms)."""
    state, headers = ctx.state, ctx.request.headers
    auth = headers.get("Authorization", "")
    limit = state.config.oauth_rps_limit
    if limit is not None and not state.oauth_rate.allow(auth, limit):
        raise OAuthError(429, 429, "Too many requests", {"Retry-After": "1"})
    if not is_uuid4(headers.get("RqUID", "")):
        raise OAuthError(400, 400, "RqUID header must be a UUID4")
    client_id, secret = _decode_key(auth)
    scope = _scope_from_form(ctx.body)
    account = state.account(client_id)
    if account is None or account.client_secret != secret:
        raise OAuthError(401, 6, "credentials doesn't match db data")
    if scope not in account.scopes:
        raise OAuthError(400, 7, "scope from db not fully includes consumed scope")
    token, expires_at = state.tokens.issue(account, scope, state.config.token_ttl)
    body = {"access_token": token, "expires_at": int((expires_at + state.faults.expires_at_shift) * 1000)}
    return json_response(body, headers={"Content-Type": _OAUTH_CT})


def _user_account(state: State, header: str) -> Account:
    scheme, _, key = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise ApiError(401, "Unauthorized")
    try:
        user, sep, password = _b64decode(key.strip()).partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError(401, "Unauthorized") from None
    account = state.by_user.get(user)
    if not sep or account is None or account.password != password:
        raise ApiError(401, "Unauthorized")
    return account


async def user_token(ctx: Ctx) -> web.StreamResponse:
    """``POST /api/v1/token``: Basic user:password → ``{tok, exp}`` (exp in Unix seconds)."""
    state = ctx.state
    account = _user_account(state, ctx.request.headers.get("Authorization", ""))
    scopes = [s for s in (*_USER_TOKEN_SCOPES, *sorted(account.scopes)) if s in account.scopes]
    if not scopes:
        raise ApiError(401, "Unauthorized")
    scope = scopes[0]
    token, expires_at = state.tokens.issue(account, scope, state.config.token_ttl)
    return json_response({"tok": token, "exp": int(expires_at + state.faults.expires_at_shift)}, headers=ctx.id_headers)
