"""Client settings: constructor arguments, then ``GIGACHAT_*`` variables, then defaults.

The variable names are the official SDK's, so an existing deployment switches without
edits. Secrets are kept as :class:`pydantic.SecretStr` and never appear in a repr, a log
line or an exception.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, NoReturn

from pydantic import SecretStr

from ._core import wire as _wire
from .errors import ConfigurationError, InvalidArgumentError

DEFAULT_BASE_URL = "https://api.giga.chat/v1"
DEFAULT_AUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
DEFAULT_SCOPE = "GIGACHAT_API_PERS"
DEFAULT_MODEL = "GigaChat-2"
DEFAULT_MAX_RETRIES = 2
SCOPES = ("GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP")

_JWT_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*){2,4}$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


@dataclass(frozen=True, slots=True)
class Timeout:
    """Time limits in seconds; ``None`` disables one. GigaChat answers can take minutes, hence
    the generous defaults.

    - ``connect``: opening a connection (TCP and TLS); ``pool``: waiting for a free one.
    - ``write``: each wait to send request bytes.
    - ``read``: a plain call's whole response must arrive within ``read`` seconds once its
      connection is ready (an upload gets ``write + read``, sending the file included). On a
      stream, the response headers get the same limit, and then ``read`` is the idle limit
      between events: the longest wait for the next event once you ask for it. Bytes that
      complete no response or event (a trickle, ``: ping`` comments) do not reset it.
    - ``total``: the whole call: every attempt, the waits between retries and, for a stream,
      everything until its last event. No limit by default. A retry that could not start
      before it is not made (the last error is raised).

    A timeout raises ``APITimeoutError`` whose ``phase`` names the limit (a stream that
    already delivered chunks raises ``StreamTimeoutError``, both a StreamError and an
    APITimeoutError).
    """

    connect: float | None = 10.0
    read: float | None = 300.0
    write: float | None = 60.0
    pool: float | None = 60.0
    total: float | None = None

    @classmethod
    def coerce(cls, value: float | Timeout | None, name: str = "timeout") -> Timeout:
        """Turn a number (every phase but ``total``), a Timeout or None (no limits) into a Timeout."""
        if isinstance(value, Timeout):
            for f in fields(value):
                _check_positive(getattr(value, f.name), f"{name}.{f.name}")
            return value
        if value is None:
            return cls(None, None, None, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(name, f"expected seconds as a number or gigapy.Timeout, got {value!r}")
        _check_positive(value, name)
        return cls(float(value), float(value), float(value), float(value))

    @classmethod
    def parse(cls, raw: str, name: str = "GIGACHAT_TIMEOUT") -> Timeout:
        """Read a variable's value: seconds for every phase (``30``), or phases by name
        (``read=120,total=600``; the phases not named keep their defaults)."""
        raw = raw.strip()
        if "=" not in raw:
            try:
                return cls.coerce(float(raw), name)
            except ValueError:
                raise ConfigurationError(
                    name, f"expected seconds as a number or phase=seconds pairs, got {raw!r}"
                ) from None
        names = {f.name for f in fields(cls)}
        values: dict[str, float | None] = {}
        for part in raw.replace(";", ",").split(","):
            key, sep, text = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in names:
                raise ConfigurationError(
                    name, f"expected phase=seconds with a phase of {', '.join(sorted(names))}, got {part.strip()!r}"
                )
            text = text.strip().lower()
            try:
                values[key] = None if text in ("", "none", "off") else float(text)
            except ValueError:
                raise ConfigurationError(f"{name} {key}", f"expected seconds as a number, got {text!r}") from None
        return cls.coerce(cls(**values), name)


def _check_positive(value: float | None, name: str) -> None:
    if value is not None and not value > 0:
        raise ConfigurationError(name, f"must be > 0 seconds (or None for no limit), got {value!r}")
    if value is not None and value == float("inf"):
        raise ConfigurationError(name, "must be a finite number of seconds (or None for no limit)")


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved, validated settings of one client. Immutable; ``replace()`` for variants."""

    base_url: str = DEFAULT_BASE_URL
    auth_url: str = DEFAULT_AUTH_URL
    credentials: SecretStr | None = None
    scope: str = DEFAULT_SCOPE
    model: str = DEFAULT_MODEL
    user: str | None = None
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    timeout: Timeout = field(default_factory=Timeout)
    max_retries: int = DEFAULT_MAX_RETRIES
    verify_ssl_certs: bool = True
    ca_bundle_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_file_password: SecretStr | None = None
    profanity_check: bool | None = None
    flags: tuple[str, ...] | None = None
    max_connections: int = 100
    default_headers: tuple[tuple[str, str], ...] = ()
    retry_non_idempotent: bool = False
    #: X-Session-ID of every API request (a per-call ``session_id`` overrides it).
    session_id: str | None = None
    #: How function schemas built from Python types are sent: "reduced" or "full" (see gigapy.schema).
    schema_dialect: Literal["reduced", "full"] = "reduced"
    #: Where the fleet shares tokens and concurrency: ``memory://``, ``file:///dir``, ``redis://...``
    #: (a secret: a Redis URL may carry a password). None: this process only, no leases.
    coordinator: SecretStr | None = None
    #: OpenTelemetry spans and metrics: None follows ``gigapy.instrument()``, True/False force them.
    telemetry: bool | None = None
    #: Message content in spans: None follows ``instrument(capture_content=...)``.
    telemetry_content: bool | None = None

    @property
    def auth_mode(self) -> Literal["oauth", "password", "token", "mtls"]:
        """How this client authenticates, by the first rule that applies:

        1. ``credentials`` given: ``"oauth"`` (with a client certificate too, OAuth over mTLS);
        2. ``user`` and ``password``: ``"password"`` (the ``/token`` endpoint);
        3. ``access_token``: ``"token"`` (a fixed bearer token);
        4. only ``cert_file`` (+ ``key_file``): ``"mtls"``, the certificate alone identifies the
           account and no Authorization header is sent (the GigaChat API for banks).
        """
        if self.credentials is not None:
            return "oauth"
        if self.user is not None and self.password is not None:
            return "password"
        if self.access_token is not None or self.cert_file is None:
            return "token"
        return "mtls"

    @property
    def can_refresh(self) -> bool:
        """True when a rejected token can be replaced by fetching a new one."""
        return self.credentials is not None or (self.user is not None and self.password is not None)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={_shown(f.name, getattr(self, f.name))!r}"
            for f in fields(self)
            if getattr(self, f.name) is not None
        )
        return f"Settings({shown})"


def _shown(name: str, value: Any) -> Any:
    return tuple(_wire.masked(value).items()) if name == "default_headers" else value


class SecretArgs(dict[str, Any]):
    """Keyword arguments of a client constructor: the secret ones masked in the repr, so the
    constructor's frame shows no secret in a traceback with locals."""

    def __repr__(self) -> str:
        return repr(
            {
                k: _wire.MASK
                if k in _SECRET_FIELDS and v is not None
                else _wire.masked(v)
                if k == "default_headers" and isinstance(v, Mapping)
                else v
                for k, v in self.items()
            }
        )


def secret_args(kwargs: Mapping[str, Any]) -> SecretArgs:
    """Wrap a client's keyword arguments (rebind the ``**settings`` local to the result)."""
    return SecretArgs(kwargs)


# name -> parser of the GIGACHAT_<NAME> variable
_ENV_FIELDS = (
    "base_url",
    "auth_url",
    "credentials",
    "scope",
    "model",
    "user",
    "password",
    "access_token",
    "timeout",
    "max_retries",
    "verify_ssl_certs",
    "ca_bundle_file",
    "cert_file",
    "key_file",
    "key_file_password",
    "profanity_check",
    "flags",
    "max_connections",
    "retry_non_idempotent",
    "session_id",
    "schema_dialect",
    "coordinator",
    "telemetry",
    "telemetry_content",
)
_SECRET_FIELDS = frozenset({"credentials", "password", "access_token", "key_file_password", "coordinator"})


_KNOWN_ARGS = frozenset({*_ENV_FIELDS, "default_headers"})
#: Per-call parameters people pass to the constructor by mistake.
_CALL_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "repetition_penalty",
    "stream",
    "messages",
    "functions",
    "function_call",
    "update_interval",
    "reasoning_effort",
    "response_format",
)


def _unknown_setting(name: str) -> NoReturn:
    """Raise the error for a client keyword argument that is not a setting, with a suggestion."""
    close = difflib.get_close_matches(name, sorted(_KNOWN_ARGS), n=1, cutoff=0.75)
    if close:
        raise ConfigurationError(name, f"unknown setting; did you mean {close[0]!r}?")
    call = difflib.get_close_matches(name, _CALL_PARAMETERS, n=1, cutoff=0.75)
    if call:
        raise ConfigurationError(
            name,
            f"not a client setting: {call[0]!r} is a request parameter; pass it to "
            f"each call (completion(..., {call[0]}=...)), not to the client",
        )
    raise ConfigurationError(name, f"unknown setting; expected one of {', '.join(sorted(_KNOWN_ARGS))}")


def load_settings(overrides: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from keyword arguments (``None`` = not given), then env, then defaults.

    Raises ConfigurationError naming the argument (or variable) that is wrong.
    """
    env = os.environ if env is None else env
    for name in overrides:
        if name not in _KNOWN_ARGS:
            _unknown_setting(name)
    values: dict[str, Any] = {}
    for name in _ENV_FIELDS:
        secret = name in _SECRET_FIELDS  # secrets are wrapped before any local of ours holds them
        given = _as_secret(overrides.get(name)) if secret else overrides.get(name)
        if given is not None:
            values[name] = normalize(name, given, name)
            continue
        var = f"GIGACHAT_{name.upper()}"
        raw = _as_secret(env.get(var)) if secret else env.get(var)
        if isinstance(raw, SecretStr):
            if raw.get_secret_value().strip() != "":
                values[name] = normalize(name, raw, var)
        elif raw is not None and raw.strip() != "":
            values[name] = normalize(name, _parse_env(name, raw), var)
    headers = overrides.get("default_headers")
    if headers:
        values["default_headers"] = _default_headers(headers, {})
    settings = Settings(**values)
    _check_auth(settings)
    return settings


def derive(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """Return ``settings`` with some fields replaced (for ``with_options``), validated."""
    changes: dict[str, Any] = {}
    for name in overrides:
        given = _as_secret(overrides[name]) if name in _SECRET_FIELDS else overrides[name]
        if given is None:
            continue
        if name == "default_headers":
            changes[name] = _default_headers(given, dict(settings.default_headers))
        elif name in _ENV_FIELDS:
            changes[name] = normalize(name, given, name)
        else:
            _unknown_setting(name)
    updated = replace(settings, **changes)
    _check_auth(updated)
    return updated


def _as_secret(value: Any) -> Any:
    """A given secret as a SecretStr (anything else unchanged, for normalize to reject)."""
    return SecretStr(value) if isinstance(value, str) else value


def _default_headers(given: Any, base: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Checked ``default_headers`` merged over ``base``."""
    if not isinstance(given, Mapping):
        raise ConfigurationError("default_headers", "expected a dict of header names to values")
    try:
        base.update(_wire.headers(given.items(), "default_headers"))
    except InvalidArgumentError as exc:
        raise ConfigurationError(exc.field, exc.reason) from None
    return tuple(base.items())


def _parse_env(name: str, raw: str) -> Any:
    var = f"GIGACHAT_{name.upper()}"
    raw = raw.strip()
    if name in ("verify_ssl_certs", "profanity_check", "retry_non_idempotent", "telemetry", "telemetry_content"):
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigurationError(var, f"expected true or false, got {raw!r}")
    if name in ("max_retries", "max_connections"):
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(var, f"expected an integer, got {raw!r}") from None
    if name == "timeout":
        return Timeout.parse(raw, var)
    if name == "flags":
        if raw.startswith("["):
            try:
                parsed = json.loads(raw)
            except ValueError:
                raise ConfigurationError(var, "expected a JSON list of strings or a comma-separated list") from None
            return parsed
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def normalize(name: str, value: Any, label: str) -> Any:
    """Validate one setting; ``label`` is what the error names (argument or variable)."""
    if name in _SECRET_FIELDS:
        if not isinstance(value, SecretStr):
            raise ConfigurationError(label, f"expected a string, got {type(value).__name__}")
        normalized, problem = _secret_problem(name, value)
        if problem is not None:
            raise ConfigurationError(label, problem)
        return normalized
    if name in ("base_url", "auth_url"):
        return _check_url(value, label)
    if name == "scope":
        return check_scope(value, label)
    if name in ("model", "user", "ca_bundle_file", "cert_file", "key_file"):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(label, f"expected a non-empty string, got {value!r}")
        value = value.strip()
        if name in ("ca_bundle_file", "cert_file", "key_file"):
            if not os.path.isfile(value):
                raise ConfigurationError(label, f"file not found: {value}")
            return value  # a path may hold surrogate-escaped bytes: the OS takes it as is
        index = _wire.surrogate_at(value)
        if index is not None:
            raise ConfigurationError(
                label, f"contains a lone surrogate at index {index}; it cannot be encoded as UTF-8"
            )
        if name == "user" and ":" in value:
            raise ConfigurationError(
                label, "must not contain ':' (it separates user and password in the Basic authorization header)"
            )
        return value
    if name == "timeout":
        return Timeout.coerce(value, label)
    if name in ("max_retries", "max_connections"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(label, f"expected an integer, got {value!r}")
        low = 0 if name == "max_retries" else 1
        if value < low:
            raise ConfigurationError(label, f"must be >= {low}, got {value}")
        return value
    if name in ("verify_ssl_certs", "profanity_check", "retry_non_idempotent", "telemetry", "telemetry_content"):
        if not isinstance(value, bool):
            raise ConfigurationError(label, f"expected True or False, got {value!r}")
        return value
    if name == "flags":
        if isinstance(value, str) or not all(isinstance(item, str) for item in value):
            raise ConfigurationError(label, "expected a list of strings")
        return tuple(value)
    if name == "session_id":
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(label, f"expected a non-empty string, got {value!r}")
        try:
            return _wire.header_value(value.strip(), label)
        except InvalidArgumentError as exc:
            raise ConfigurationError(label, exc.reason) from None
    if name == "schema_dialect":
        if value not in ("reduced", "full"):
            raise ConfigurationError(label, f"expected 'reduced' or 'full', got {value!r}")
        return value
    return value


def _check_url(value: Any, label: str) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value.strip()):
        raise ConfigurationError(label, f"expected an http:// or https:// URL, got {value!r}")
    url = value.strip().rstrip("/")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ConfigurationError(label, "must not contain spaces, line breaks or control characters")
    index = _wire.surrogate_at(url)
    if index is not None:
        raise ConfigurationError(label, f"contains a lone surrogate at index {index}; it cannot be encoded as UTF-8")
    return url


def check_scope(value: Any, label: str = "scope") -> str:
    """Validate a scope name; the error suggests the closest known scope."""
    if not isinstance(value, str):
        raise ConfigurationError(label, f"expected a string, got {type(value).__name__}")
    scope = value.strip()
    if scope in SCOPES:
        return scope
    hint = ""
    if scope.upper() in SCOPES:
        hint = f"; scopes are upper case: {scope.upper()}"
    else:
        close = difflib.get_close_matches(scope.upper(), SCOPES, n=1, cutoff=0.6)
        if not close and len(scope) >= 2:  # a short form: "pers", "corp", "b2b"
            close = [s for s in SCOPES if s.rsplit("_", 1)[-1].startswith(scope.upper())][:1]
        if close:
            hint = f"; did you mean {close[0]}?"
    raise ConfigurationError(label, f"unknown scope {scope!r}, expected one of {', '.join(SCOPES)}{hint}")


def check_credentials(value: str, label: str = "credentials") -> str:
    """Check an authorization key: base64 of ``client_id:client_secret``.

    Spots the usual mistakes (a pasted access token, a bare client id or secret) and says
    what to use instead. The value itself never appears in the error.
    """
    normalized, problem = _secret_problem("credentials", SecretStr(value))
    if problem is not None:
        raise ConfigurationError(label, problem)
    return normalized.get_secret_value()


def _secret_problem(name: str, value: SecretStr) -> tuple[SecretStr, str | None]:
    """(normalized secret, why it is unusable or None). Returns instead of raising, so the plain
    text lives only in this frame, which is gone before the caller raises."""
    secret = value.get_secret_value().strip()
    if not secret:
        return value, "is empty"
    index = _wire.surrogate_at(secret)
    if index is not None:
        return value, f"contains a lone surrogate at index {index}; it cannot be encoded as UTF-8"
    if name == "credentials":
        return _credentials_problem(secret)
    if name == "coordinator":
        return SecretStr(secret), _coordinator_problem(secret)
    if name == "access_token":
        problem = _wire.header_value_problem(secret)
        if problem is None and any(ch in secret for ch in " \t"):
            problem = "contains whitespace"
        if problem is not None:
            return value, f"cannot be sent in the Authorization header: it {problem}"
    return SecretStr(secret), None


def _coordinator_problem(url: str) -> str | None:
    """Why a coordinator URL is unusable (its scheme; the URL itself is never repeated)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("memory", "file", "redis", "rediss", "unix"):
        return "expected memory://, file:///path, redis://host:port/db or rediss://... (the URL is not shown)"
    return None


def _credentials_problem(key: str) -> tuple[SecretStr, str | None]:
    if key[:6].lower() == "basic ":
        key = key[6:].strip()
    if _JWT_RE.match(key) and key.count(".") in (2, 4):
        return SecretStr(key), (
            "this looks like an access token (JWT/JWE), not an authorization key; pass it as "
            "access_token= (GIGACHAT_ACCESS_TOKEN), or use the 'Authorization key' from GigaChat Studio"
        )
    if _UUID_RE.match(key):
        return SecretStr(key), (
            "this looks like a bare Client ID or Client Secret; credentials is the 'Authorization key' "
            "from GigaChat Studio: base64 of 'client_id:client_secret'"
        )
    try:
        decoded = base64.b64decode(key + "=" * (-len(key) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return SecretStr(key), (
            "is not valid base64; expected the 'Authorization key' from GigaChat Studio "
            "(base64 of 'client_id:client_secret')"
        )
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id or not secret:
        return SecretStr(key), "decodes to something other than 'client_id:client_secret'; check the authorization key"
    return SecretStr(key), None


def _check_auth(settings: Settings) -> None:
    if (settings.user is None) != (settings.password is None) and settings.credentials is None:
        missing = "password" if settings.password is None else "user"
        raise ConfigurationError(missing, "user and password must be given together (or GIGACHAT_USER/PASSWORD)")
    if (settings.cert_file is None) != (settings.key_file is None) and settings.cert_file is None:
        raise ConfigurationError("cert_file", "key_file was given without cert_file")
    if (
        settings.credentials is None
        and settings.access_token is None
        and settings.password is None
        and settings.cert_file is None
    ):
        raise ConfigurationError(
            "credentials",
            "no way to authenticate: pass credentials= (the authorization key from GigaChat Studio), "
            "user= and password=, access_token=, or cert_file= and key_file= for mTLS-only access "
            "(or set GIGACHAT_CREDENTIALS)",
        )
    if settings.auth_mode == "mtls" and not settings.base_url.startswith("https:"):
        raise ConfigurationError(
            "base_url",
            f"mTLS-only authentication (cert_file without credentials) needs an https:// base_url, got "
            f"{settings.base_url}: over plain HTTP no certificate is sent, so nothing identifies the account",
        )
