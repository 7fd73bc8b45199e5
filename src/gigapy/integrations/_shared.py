"""One pair of gigapy clients per settings identity, shared by every integration model.

Built on the public client API only: the settings of a given client are read back through
``client.settings`` to build its other half (sync or async), and clients are keyed by what
they were built from (the explicit settings plus the ``GIGACHAT_*`` environment, secrets only
as SHA-256 digests), so two models with the same settings get the very same clients.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

if TYPE_CHECKING:
    from gigapy import AsyncGigaChat, GigaChat

#: The constructor settings a framework model may carry (the client's names).
SETTING_NAMES = (
    "credentials",
    "scope",
    "model",
    "base_url",
    "auth_url",
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
    "default_headers",
    "retry_non_idempotent",
    "session_id",
    "schema_dialect",
)
SECRET_NAMES = frozenset({"credentials", "password", "access_token", "key_file_password"})

_LOCK = threading.Lock()
_PAIRS: dict[str, ClientPair] = {}
#: Pairs completed around a client the user gave (so a model per request reuses one twin).
_GIVEN: weakref.WeakKeyDictionary[Any, ClientPair] = weakref.WeakKeyDictionary()


class ClientPair:
    """A sync client and its async twin with the same settings (the async one made on first use)."""

    __slots__ = ("_async", "_lock", "_owns_async", "_owns_sync", "sync")

    def __init__(self, sync: GigaChat, async_client: AsyncGigaChat | None = None, *, owns_sync: bool = True) -> None:
        self.sync = sync
        self._async = async_client
        self._owns_sync = owns_sync
        self._owns_async = async_client is None  # a twin made here is closed here; a given client is not
        self._lock = threading.Lock()

    def close_owned(self) -> None:
        """Close the clients made here (at exit): the sync pool, the async sessions of every loop."""
        import asyncio

        if self._owns_sync:
            self.sync.close()
        if self._owns_async and self._async is not None:
            asyncio.run(self._async.aclose())

    @property
    def async_(self) -> AsyncGigaChat:
        """The async client (built from the sync client's settings when not given)."""
        if self._async is None:
            with self._lock:
                if self._async is None:
                    from gigapy import AsyncGigaChat

                    self._async = AsyncGigaChat(**settings_of(self.sync))
        return self._async


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def settings_of(client: GigaChat | AsyncGigaChat) -> dict[str, Any]:
    """Constructor arguments that rebuild ``client`` (read from its public ``settings``)."""
    s = client.settings
    out: dict[str, Any] = {}
    for name in SETTING_NAMES:
        value = _plain(getattr(s, name, None))
        if value is None:
            continue
        if name == "flags":
            value = list(value)
        elif name == "default_headers":
            value = dict(value)
        out[name] = value
    return out


def _key(settings: Mapping[str, Any]) -> str:
    """A digest of the explicit settings and the GIGACHAT_* environment (secrets never kept)."""
    items = sorted((k, repr(_plain(v))) for k, v in settings.items() if v is not None)
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("GIGACHAT_"))
    return hashlib.sha256(repr((items, env)).encode()).hexdigest()


def shared_pair(settings: Mapping[str, Any]) -> ClientPair:
    """The process-wide clients for these settings (made on first use, reused afterwards)."""
    key = _key(settings)
    pair = _PAIRS.get(key)
    if pair is not None:
        return pair
    with _LOCK:
        pair = _PAIRS.get(key)
        if pair is None:
            from gigapy import GigaChat

            pair = _PAIRS[key] = ClientPair(GigaChat(**{k: v for k, v in settings.items() if v is not None}))
    return pair


def pair_for(client: Any, async_client: Any, settings: Mapping[str, Any]) -> ClientPair:
    """The clients a model uses: the ones it was given (completed with a twin), or shared ones."""
    from gigapy import AsyncGigaChat, GigaChat, InvalidArgumentError

    if isinstance(client, AsyncGigaChat) and async_client is None:
        client, async_client = None, client
    if client is None and async_client is None:
        return shared_pair(settings)
    if client is not None and not isinstance(client, GigaChat):
        raise InvalidArgumentError(
            "client", f"expected a gigapy GigaChat or AsyncGigaChat, got {type(client).__name__}"
        )
    if async_client is not None and not isinstance(async_client, AsyncGigaChat):
        raise InvalidArgumentError(
            "async_client", f"expected a gigapy AsyncGigaChat, got {type(async_client).__name__}"
        )
    if client is not None and async_client is not None:
        return ClientPair(client, async_client, owns_sync=False)
    given: Any = client if client is not None else async_client
    with _LOCK:
        pair = _GIVEN.get(given)
        if pair is None:
            if client is None:
                assert async_client is not None
                pair = ClientPair(GigaChat(**settings_of(async_client)), async_client)
            else:
                pair = ClientPair(client, owns_sync=False)
            _GIVEN[given] = pair
    return pair


#: langchain-gigachat's settings gigapy has no use for, and why.
REFUSED = {
    "ssl_context": "gigapy builds its own TLS context: give ca_bundle_file= (or `gigapy certs install`), "
    "cert_file= and key_file=",
    "retry_backoff_factor": "gigapy's backoff is fixed (exponential with jitter); set max_retries=",
    "retry_on_status_codes": "gigapy retries 429, 500, 502, 503 and 504 by its safety rule; set max_retries=",
    "function_ranker": "not a v2 field: pass model_kwargs={'ranker_options': {...}} (ChatGigaChat)",
}
#: langchain-gigachat's settings accepted and not needed (what they switched on is always on).
ACCEPTED = frozenset({"allow_any_tool_choice_fallback", "use_api_v2"})


def _known(cls: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the accepted no-op names; an unknown or refused name raises, naming it."""
    import difflib

    from gigapy import InvalidArgumentError

    names = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
    out = {}
    for key, value in data.items():
        if key in names:
            out[key] = value
        elif key in ACCEPTED:
            if key == "use_api_v2" and value is False:
                raise InvalidArgumentError(key, "gigapy's integrations speak the v2 chat contract only")
        elif key in REFUSED:
            raise InvalidArgumentError(key, REFUSED[key])
        else:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidArgumentError(key, f"unknown setting of {cls.__name__}{hint}")
    return out


#: Settings sent with each call instead of shaping the shared client.
_PER_CALL = frozenset({"model", "session_id", "profanity_check", "flags", "schema_dialect"})


class Connection(BaseModel):
    """The gigapy client settings a model accepts (each also from its ``GIGACHAT_*`` variable)."""

    # hide_input_in_errors: a validation error must not print the credentials it was given
    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=(), hide_input_in_errors=True
    )

    client: Any = Field(default=None, exclude=True)
    """A ``GigaChat`` (or ``AsyncGigaChat``) to use; its settings win over the fields below."""
    async_client: Any = Field(default=None, exclude=True)
    """The ``AsyncGigaChat`` for async calls (built from ``client``'s settings when not given)."""
    credentials: SecretStr | None = Field(default=None, alias="api_key")
    """The authorization key (``GIGACHAT_CREDENTIALS``); ``api_key`` is accepted too."""
    scope: str | None = None
    base_url: str | None = None
    auth_url: str | None = None
    user: str | None = None
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    timeout: float | None = None
    """Seconds for one request (read timeout); ``None`` keeps gigapy's defaults."""
    max_retries: int | None = None
    verify_ssl_certs: bool | None = None
    ca_bundle_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_file_password: SecretStr | None = None
    max_connections: int | None = None
    session_id: str | None = None
    """``X-Session-ID`` for every request: the service reuses its prompt cache (cached tokens)."""

    _pair: ClientPair | None = PrivateAttr(default=None)

    #: Fields read from their ``GIGACHAT_*`` variable at construction when not given.
    _ENV_FIELDS: ClassVar[tuple[str, ...]] = (
        "credentials",
        "scope",
        "base_url",
        "auth_url",
        "user",
        "password",
        "access_token",
        "ca_bundle_file",
        "cert_file",
        "key_file",
        "key_file_password",
        "session_id",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_env(cls, data: Any) -> Any:
        """Refuse unknown settings by name, then fill the plain settings from the environment, as
        the client would (a given client wins)."""
        if not isinstance(data, dict):
            return data
        data = _known(cls, data)
        if data.get("client") is not None or data.get("async_client") is not None:
            return data
        aliases = {"credentials": "api_key", "model": "model_name"}
        for name in cls._ENV_FIELDS:
            if data.get(name) is None and data.get(aliases.get(name, "")) is None:
                value = os.environ.get(f"GIGACHAT_{name.upper()}")
                if value:
                    data[name] = value
        return data

    def _settings(self) -> dict[str, Any]:
        """The client settings (the model, session id and request defaults go with each call, so
        models that differ only in them share one client)."""
        out: dict[str, Any] = {}
        for name in SETTING_NAMES:
            if name in _PER_CALL:
                continue
            value = getattr(self, name, None)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is not None:
                out[name] = value
        return out

    def _clients(self) -> ClientPair:
        if self._pair is None:
            self._pair = pair_for(self.client, self.async_client, self._settings())
        return self._pair

    @property
    def sync_client(self) -> GigaChat:
        """The gigapy sync client this model uses (shared per settings)."""
        return self._clients().sync

    @property
    def aclient(self) -> AsyncGigaChat:
        """The gigapy async client this model uses (shared per settings)."""
        return self._clients().async_


def _close_all() -> None:  # pragma: no cover - runs at interpreter exit
    for pair in [*_PAIRS.values(), *_GIVEN.values()]:
        try:
            pair.close_owned()
        except Exception:  # noqa: S110 - nothing to report at exit
            pass


atexit.register(_close_all)
