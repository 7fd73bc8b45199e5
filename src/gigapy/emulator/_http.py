"""Wire helpers: error types, fast JSON, response builders, ids, body parsing."""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

from aiohttp import web

JSON_CT = "application/json; charset=utf-8"
SSE_CT = "text/event-stream"
INVALID_JSON = "Your request contains invalid JSON syntax."

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
encode_str = json.encoder.encode_basestring
_ids = random.SystemRandom()
_fast = random.Random()
_UUID4_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}")


class ApiError(Exception):
    """An API error answered as ``{"status": int, "message": str}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class OAuthError(Exception):
    """An OAuth error answered as ``{"code": int, "message": str}``."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def invalid_params(detail: str) -> ApiError:
    """422 ``Invalid params: <detail>`` as the service words it."""
    return ApiError(422, f"Invalid params: {detail}")


def dumps(payload: Any) -> str:
    """Compact JSON text, UTF-8 kept as is."""
    return _ENCODER.encode(payload)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with the service's content type."""
    hdrs = {"Content-Type": JSON_CT}
    if headers:
        hdrs.update(headers)
    return web.Response(body=_ENCODER.encode(payload).encode(), status=status, headers=hdrs)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The API error shape ``{"status", "message"}``."""
    return json_response({"status": status, "message": message}, status, headers)


def new_uuid4() -> str:
    """A random UUIDv4 string (fast, not for secrets)."""
    value = (_fast.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def secure_bytes(size: int) -> bytes:
    """Unpredictable bytes for tokens."""
    return _ids.getrandbits(size * 8).to_bytes(size, "big")


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON."""
    raise ValueError(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value


# A lone surrogate enters parsed JSON only through a \uD800-\uDFFF escape, or as raw
# surrogate bytes (json.loads decodes bytes with "surrogatepass").
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def has_lone_surrogate(raw: bytes, data: Any) -> bool:
    """True when ``data`` (parsed from ``raw``) holds text UTF-8 cannot encode: the service
    cannot take such text, and the emulator must not crash on it."""
    if _SURROGATE_HINT.search(raw) is None:
        return False
    try:
        _ENCODER.encode(data).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object (400 / 422 otherwise)."""
    try:
        data = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, INVALID_JSON) from None
    if has_lone_surrogate(body, data):
        raise ApiError(400, INVALID_JSON)
    if not isinstance(data, dict):
        raise invalid_params("request body must be a JSON object")
    return data


def is_uuid4(value: str) -> bool:
    """True for a canonical 8-4-4-4-12 hex UUID of version 4."""
    return _UUID4_RE.fullmatch(value) is not None
