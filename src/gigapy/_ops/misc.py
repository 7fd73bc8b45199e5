"""The smaller endpoints: balance, AI-text check, function validation and conversion, the filter
check."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from .._core import params as P
from .._core import wire as _wire
from .._core.flow import (
    Blocking,
    Flow,
    dumps,
    parse_model,
)
from ..errors import InvalidArgumentError
from ..types.misc import AICheckResult, Balance, ConvertedFunctions, FilterCheckResult, FunctionValidationResult
from .base import ClientCore, RequestOptions


def get_balance(core: ClientCore, options: RequestOptions) -> Flow[Balance]:
    """``GET /balance`` (prepaid accounts; pay-as-you-go gets 403)."""
    return core.call(core.request("GET", "/balance", options, idempotent=True), lambda r: parse_model(Balance, r))


def check_ai(core: ClientCore, text: str, model: str, options: RequestOptions) -> Flow[AICheckResult]:
    """``POST /ai/check``."""
    body = {"input": P.text(text, "text"), "model": P.text(model, "model")}
    return core.call(core.request("POST", "/ai/check", options, body=body), lambda r: parse_model(AICheckResult, r))


def validate_function(core: ClientCore, function: Any, options: RequestOptions) -> Flow[FunctionValidationResult]:
    """``POST /functions/validate``: the service's verdict on a function definition."""
    body = P.plain(function, "function")
    if not isinstance(body.get("name"), str):
        raise InvalidArgumentError("function.name", "required: the function's name as a string")
    req = core.request("POST", "/functions/validate", options, body=body, idempotent=True)
    return core.call(req, lambda r: parse_model(FunctionValidationResult, r))


def openapi_text(spec: Any) -> bytes:
    """An OpenAPI document for ``/functions/convert`` as UTF-8 bytes: the text itself (JSON or
    YAML, ``str`` or ``bytes``), a path to it (``pathlib.Path`` / ``os.PathLike``), or the parsed
    document (a dict, sent as JSON)."""
    if isinstance(spec, Mapping):
        return dumps(spec, "openapi")
    if isinstance(spec, PathLike):
        path = Path(spec)
        if not path.is_file():
            raise InvalidArgumentError("openapi", f"file not found: {path}")
        spec = path.read_bytes()
    if isinstance(spec, (bytes, bytearray)):
        try:
            spec = bytes(spec).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgumentError("openapi", f"is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not isinstance(spec, str):
        raise InvalidArgumentError(
            "openapi", f"expected the OpenAPI document as text, bytes or a path, got {type(spec).__name__}"
        )
    if not spec.strip():
        raise InvalidArgumentError("openapi", "is empty: expected an OpenAPI 3 document (JSON or YAML)")
    return _wire.utf8_text(spec, "openapi").encode("utf-8")


def convert_functions(core: ClientCore, spec: Any, options: RequestOptions) -> Flow[ConvertedFunctions]:
    """``POST /functions/convert``: function definitions from an OpenAPI document (raw text body,
    as the official SDK sends it)."""
    body: bytes = yield Blocking(lambda: openapi_text(spec))
    req = core.request("POST", "/functions/convert", options, content=body, idempotent=True)
    return (yield from core.call(req, lambda r: parse_model(ConvertedFunctions, r)))


FILTER_SETTINGS = ("neuro", "blacklist", "whitelist")


def check_filter(
    core: ClientCore, messages: Any, model: str, settings: Mapping[str, Any] | None, options: RequestOptions
) -> Flow[FilterCheckResult]:
    """``POST /filter/check``: whether messages break the account's topic restrictions."""
    body: dict[str, Any] = {"model": P.text(model, "model"), "messages": P.messages_v1(messages)}
    if settings is not None:
        if not isinstance(settings, Mapping):
            raise InvalidArgumentError(
                "settings", f"expected a dict of {', '.join(FILTER_SETTINGS)} switches, got {type(settings).__name__}"
            )
        for key, value in settings.items():
            if key in FILTER_SETTINGS and not isinstance(value, bool):
                raise InvalidArgumentError(f"settings.{key}", f"expected True or False, got {value!r}")
        body["settings"] = dict(settings)
    req = core.request("POST", "/filter/check", options, body=body, idempotent=True)
    return core.call(req, lambda r: parse_model(FilterCheckResult, r))
