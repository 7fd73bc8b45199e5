"""Base classes of every gigapy model: unknown fields kept, wire names, lenient types."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler, PrivateAttr
from pydantic_core import core_schema

from .._core import numbers as _numbers


@dataclass(frozen=True, slots=True)
class _Guarded:
    """A number field through the number guard, with the common wire value (a plain int in
    0 .. 2**53) validated in pydantic-core: the Python guard runs only for anything else
    (a float, a string, NaN, null, junk), so a stream chunk's ``created`` costs no Python call."""

    guard: Callable[[Any], Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        plain = core_schema.int_schema(strict=True, ge=0, le=2**53)
        return core_schema.union_schema(
            [plain, core_schema.no_info_before_validator_function(self.guard, handler(source))],
            mode="left_to_right",
        )

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        # the JSON schema of the field's own type (as before the fast branch), not a union of two integers
        return handler(schema["choices"][1])


#: A count or size the server sent (tokens, bytes, batch counters), through the one number guard:
#: NaN, negative, infinite or absurd values are clamped, junk becomes 0 (see ``gigapy._core.numbers``);
#: never fatal to the answer that carries it.
Count = Annotated[int, _Guarded(_numbers.count)]
OptCount = Annotated[int | None, _Guarded(_numbers.opt_count)]
#: A Unix timestamp the server sent; NaN or junk becomes None.
Stamp = Annotated[int | None, _Guarded(_numbers.stamp)]
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
