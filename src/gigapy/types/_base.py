"""Base classes of every gigapy model: unknown fields kept, wire names, lenient types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PrivateAttr

from .._core import numbers as _numbers

#: A count or size the server sent (tokens, bytes, batch counters), through the one number guard:
#: NaN, negative, infinite or absurd values are clamped, junk becomes 0 (see ``gigapy._core.numbers``);
#: never fatal to the answer that carries it.
Count = Annotated[int, BeforeValidator(_numbers.count)]
OptCount = Annotated[int | None, BeforeValidator(_numbers.opt_count)]
#: A Unix timestamp the server sent; NaN or junk becomes None.
Stamp = Annotated[int | None, BeforeValidator(_numbers.stamp)]
#: A duration in seconds the server sent (0 .. 1 day); NaN becomes None.
Seconds = Annotated[float | None, BeforeValidator(_numbers.seconds)]


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """What the transport knows about a response: ids echoed by the server, retries, status."""

    request_id: str | None = None
    session_id: str | None = None
    client_id: str | None = None
    retries_taken: int = 0
    status_code: int = 200
    headers: Mapping[str, str] | None = None


class APIModel(BaseModel):
    """A GigaChat object. Fields the server adds later are kept (``model_extra``)."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        protected_namespaces=(),
        defer_build=True,
        ser_json_inf_nan="constants",
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as the wire JSON (wire names, unset fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class APIResponse(APIModel):
    """A top-level response: also tells its ``request_id``, ``session_id`` and ``retries_taken``."""

    _meta: ResponseMeta | None = PrivateAttr(default=None)

    @property
    def request_id(self) -> str | None:
        """The X-Request-ID of the call that produced this object."""
        return self._meta.request_id if self._meta else None

    @property
    def session_id(self) -> str | None:
        """The X-Session-ID the server used (pass it back to reuse the prompt cache)."""
        return self._meta.session_id if self._meta else None

    @property
    def client_id(self) -> str | None:
        """The X-Client-ID echoed by the server."""
        return self._meta.client_id if self._meta else None

    @property
    def retries_taken(self) -> int:
        """How many times the request was retried before this answer (0 = first try)."""
        return self._meta.retries_taken if self._meta else 0

    @property
    def response_headers(self) -> Mapping[str, str]:
        """The HTTP headers of the response."""
        return (self._meta.headers or {}) if self._meta else {}
