"""What the sync and async clients share: settings, token access, copies, repr."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypedDict, TypeVar

from typing_extensions import Self

from .._config import Settings, Timeout, derive
from .._ops.base import ClientCore, same_identity
from .._transports.tls import tls_key
from ..usage import UsageTotals

if TYPE_CHECKING:
    from ..coordinator._hook import FleetHook


def _fleet_for(settings: Settings) -> FleetHook | None:
    """The coordinator hook (imported only when a coordinator is configured)."""
    if settings.coordinator is None:
        return None
    from ..coordinator._hook import fleet_for

    return fleet_for(settings)


class ClientSettings(TypedDict, total=False):
    """Every client setting; each also comes from the ``GIGACHAT_*`` variable of the same name."""

    credentials: str | None
    scope: str | None
    model: str | None
    base_url: str | None
    auth_url: str | None
    user: str | None
    password: str | None
    access_token: str | None
    timeout: float | Timeout | None
    max_retries: int | None
    verify_ssl_certs: bool | None
    ca_bundle_file: str | None
    cert_file: str | None
    key_file: str | None
    key_file_password: str | None
    profanity_check: bool | None
    flags: Sequence[str] | None
    max_connections: int | None
    default_headers: Mapping[str, str] | None
    retry_non_idempotent: bool | None
    session_id: str | None
    schema_dialect: Literal["reduced", "full"] | None
    coordinator: str | None
    telemetry: bool | None
    telemetry_content: bool | None


class Transport(Protocol):
    """A driver's connection pool; clients with equal ``tls_key`` may share one."""

    tls_key: tuple[object, ...]


TransportT = TypeVar("TransportT", bound=Transport)


class BaseClient(Generic[TransportT]):
    """Settings, the token source and the connection pool of one client."""

    _core: ClientCore
    _transport: TransportT
    _owns_transport: bool
    _fleet: FleetHook | None = None
    #: The client's concurrency gates per request class (see ``gate.py``); copies with the same
    #: identity share them, as they share the token.
    _gates: dict[str, Any]

    def _setup(self, settings: Settings, transport: TransportT, owns: bool) -> None:
        self._core = ClientCore(settings)
        self._transport = transport
        self._owns_transport = owns
        self._fleet = _fleet_for(settings)
        self._gates = {}

    def _new_transport(self, settings: Settings) -> TransportT:
        raise NotImplementedError

    def _copy(self, overrides: Mapping[str, Any]) -> Self:
        """A client with some settings changed, sharing the token source (same identity) and
        the connection pool (same TLS settings)."""
        settings = derive(self._core.settings, overrides)
        clone = object.__new__(type(self))
        shared = same_identity(settings, self._core.settings)
        clone._core = ClientCore(settings, self._core.tokens if shared else None, self._core.usage)
        clone._fleet = _fleet_for(settings)
        clone._gates = self._gates if shared and settings.scope == self._core.settings.scope else {}
        if tls_key(settings) == self._transport.tls_key:
            clone._transport = self._transport
            clone._owns_transport = False
        else:
            clone._transport = self._new_transport(settings)
            clone._owns_transport = True
        return clone

    @property
    def settings(self) -> Settings:
        """The resolved settings (secrets masked in their repr)."""
        return self._core.settings

    @property
    def usage(self) -> UsageTotals:
        """Running token totals per model of this client and its ``with_options`` copies
        (``gigapy.usage.estimate_cost(client.usage)`` for an estimate in roubles)."""
        return self._core.usage

    @property
    def authorization(self) -> str | None:
        """The access token requests use now, or None before the first one is fetched."""
        return self._core.tokens.current

    def __repr__(self) -> str:
        core: ClientCore | None = getattr(self, "_core", None)
        if core is None:  # the constructor failed (a traceback with locals shows this object)
            return f"{type(self).__name__}(<not configured>)"
        s = core.settings
        mode = s.auth_mode
        who = f"cert_file={s.cert_file!r}" if mode == "mtls" else f"scope={s.scope!r}"
        return f"{type(self).__name__}(base_url={s.base_url!r}, {who}, model={s.model!r}, auth={mode!r})"
