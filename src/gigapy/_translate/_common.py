"""Shared pieces of the translation: errors, the injected context (ids, clock), small checks.

Nothing here does I/O or reads a clock or a random source of its own: ids are derived from
a seed with an injectable :data:`IdFactory`, and time comes from ``TranslateContext.now``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError
from ..errors import UnsupportedParameterError as UnsupportedParameterError  # its old home

#: ``ids(prefix, seed) -> id``: makes every id the translation emits (completion ids, tool call
#: ids, item ids). It must be a pure function of its arguments for stream and non-stream
#: translations of one answer to agree.
IdFactory = Callable[[str, str], str]


def derived_id(prefix: str, seed: str) -> str:
    """The default id factory: ``prefix`` plus 24 hex digits of SHA-256 of the seed."""
    return prefix + hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass(frozen=True)
class TranslateContext:
    """What the caller injects: the request id (seeds every id), a clock, an id factory.

    ``request_id`` is the X-Request-ID of the GigaChat call; give it, so that two answers
    never share ids. ``now`` is only read when GigaChat sent no timestamp.
    """

    request_id: str | None = None
    now: Callable[[], float] | None = None
    ids: IdFactory = derived_id

    def timestamp(self, value: Any) -> int:
        """``value`` (seconds) if it is a number, else the injected clock, else 0."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return int(value)
        return int(self.now()) if self.now is not None else 0

    def seed(self, *parts: Any) -> str:
        """The seed of this answer's ids: the request id, or else the given parts."""
        if self.request_id:
            return self.request_id
        return json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)


def unsupported(name: str, why: str) -> UnsupportedParameterError:
    """The error for a parameter GigaChat has no equivalent of."""
    return UnsupportedParameterError(name, f"not supported by GigaChat: {why}")


def bad_value(name: str, why: str) -> UnsupportedParameterError:
    """The error for a value GigaChat cannot honour."""
    return UnsupportedParameterError(name, why, code="unsupported_value")


def fail(name: str, why: str) -> InvalidArgumentError:
    """The error for malformed input."""
    return InvalidArgumentError(name, why)


class JSONBody(dict[str, Any]):
    """A request body read by :func:`request_json`: strict JSON, so it holds no NaN or Infinity
    (the translations skip that walk for it)."""

    __slots__ = ()


def finite(value: Any, where: str) -> None:
    """Refuse NaN and Infinity anywhere in a request (Python's json reads them; JSON has no such numbers)."""
    if type(value) is JSONBody:
        return
    stack = [(value, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise fail(at, f"must be a finite number, got {node!r} (NaN and Infinity are not JSON)")
        if isinstance(node, Mapping):
            stack.extend((v, f"{at}.{k}" if at else str(k)) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node))


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an error naming ``where``."""
    if type(value) is dict or type(value) is JSONBody:  # the common case, without the ABC check
        return value
    if not isinstance(value, Mapping):
        raise fail(where, f"expected an object, got {_kind(value)}")
    return value


def items(value: Any, where: str) -> Sequence[Any]:
    """``value`` if it is a JSON array, else an error naming ``where``."""
    if type(value) is list:
        return value
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Sequence):
        raise fail(where, f"expected an array, got {_kind(value)}")
    return value


def string(value: Any, where: str, *, empty: bool = True) -> str:
    """``value`` if it is a string (non-empty unless ``empty``), else an error naming ``where``."""
    if not isinstance(value, str):
        raise fail(where, f"expected a string, got {_kind(value)}")
    if not empty and not value:
        raise fail(where, "must not be empty")
    return value


def number(
    value: Any, where: str, *, low: float | None = None, high: float | None = None, integer: bool = False
) -> float:
    """``value`` if it is a finite number within [low, high], else an error naming ``where``."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise fail(where, f"expected {'an integer' if integer else 'a number'}, got {value!r}")
    if low is not None and value < low:
        raise fail(where, f"must be >= {low:g}, got {value!r}")
    if high is not None and value > high:
        raise fail(where, f"must be <= {high:g}, got {value!r}")
    return float(value) if not integer else value


def boolean(value: Any, where: str) -> bool:
    """``value`` if it is true or false, else an error naming ``where``."""
    if not isinstance(value, bool):
        raise fail(where, f"expected true or false, got {value!r}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRICT = json.JSONDecoder(parse_constant=_no_constants)


def loads(text: str) -> Any:
    """Strict JSON: ``NaN`` and ``Infinity`` (which Python's json accepts) are not JSON."""
    return _STRICT.decode(text)


def request_json(raw: bytes | str) -> JSONBody:
    """An HTTP request body as a JSON object, strictly: invalid UTF-8, bad JSON, ``NaN``/``Infinity``
    and a non-object top level are refused (InvalidArgumentError naming ``body``, an OpenAI 400)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError:
        raise fail("body", "is not UTF-8 text") from None
    if not text.strip():
        raise fail("body", "is empty; expected a JSON object")
    try:
        value = loads(text)
    except RecursionError:
        raise fail("body", "is nested too deeply") from None
    except ValueError as exc:
        raise fail("body", f"is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise fail("body", f"expected a JSON object, got {_kind(value)}")
    return JSONBody(value)


def json_text(value: Any) -> str:
    """Compact JSON text, non-ASCII kept, as OpenAI sends tool-call arguments."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def parse_arguments(text: Any, where: str) -> dict[str, Any]:
    """Tool-call arguments (a JSON object in a string, as OpenAI sends them) as a dict."""
    if isinstance(text, Mapping):
        return dict(text)
    if text is None or (isinstance(text, str) and not text.strip()):
        return {}
    if not isinstance(text, str):
        raise fail(where, f"expected a JSON object in a string, got {_kind(text)}")
    try:
        value = loads(text)
    except ValueError:
        raise fail(where, "is not valid JSON (GigaChat takes function arguments as a JSON object)") from None
    if not isinstance(value, dict):
        raise fail(where, "must be a JSON object (GigaChat takes function arguments as an object)")
    return value


def result_json(content: Any) -> str:
    """A tool result as the JSON-object text GigaChat requires.

    A JSON object passes as is; any other JSON value or plain text is wrapped as
    ``{"result": ...}`` (GigaChat rejects a result that is not a JSON object).
    """
    if isinstance(content, Mapping):
        return json_text(dict(content))
    text = content if isinstance(content, str) else json_text(content)
    try:
        value = loads(text)
    except ValueError:
        return json_text({"result": text})
    if isinstance(value, dict):
        return text
    return json_text({"result": value})


def session_id(value: str) -> str:
    """A client's user or cache key as an X-Session-ID header value: as is when it is a plain token,
    else a stable hash of it (so a name in any script still buckets the prompt cache by user)."""
    if value.isascii() and value.isprintable() and " " not in value and len(value) <= 128:
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class Notes:
    """What a translation did that a reader may want to know (lossy mappings): for logs/headers."""

    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Record one note (once)."""
        if text not in self.lines:
            self.lines.append(text)
