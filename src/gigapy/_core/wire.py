"""What may go on the wire: header names and values, UTF-8 text, JSON values.

Checked once, before anything is sent, so the sync client (httpx) and the async client
(aiohttp) reject the same input with the same :class:`~gigapy.errors.InvalidArgumentError`
naming the field, instead of failing differently inside the HTTP library, or after the
request (and the token request) went out. No message here repeats a rejected value:
it may be a secret.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InvalidArgumentError

# RFC 9110: a header name is a token; a value is visible ASCII with inner spaces or tabs.
_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?")

#: Header names whose values are secrets: shown as ``[secure]`` in every repr (as httpx does).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
MASK = "[secure]"


def surrogate_at(value: str) -> int | None:
    """Index of the first character UTF-8 cannot encode (a lone surrogate), or None."""
    if value.isascii():  # O(1) in CPython
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _surrogate_reason(index: int) -> str:
    return (
        f"contains a lone surrogate at index {index} (text cut in the middle of a UTF-16 pair?), "
        "which cannot be encoded as UTF-8; remove it or repair the text"
    )


def utf8_text(value: str, field: str) -> str:
    """``value`` if UTF-8 can encode it; InvalidArgumentError naming ``field`` otherwise."""
    index = surrogate_at(value)
    if index is not None:
        raise InvalidArgumentError(field, _surrogate_reason(index))
    return value


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as a header value (without repeating it), or None."""
    if value.isascii() and value.isprintable() and value[:1] != " " and value[-1:] != " ":
        return None  # the common case, in C: printable ASCII is 0x20-0x7E
    if not value or _VALUE_RE.fullmatch(value):
        return None
    for i, ch in enumerate(value):
        if ch in "\r\n":
            return f"contains a line break (CR or LF) at index {i}; header values are one line"
        if ord(ch) > 0x7E:
            return (
                f"contains a non-ASCII character at index {i}; header values must be ASCII "
                "(percent-encode or base64 the value)"
            )
        if ord(ch) < 0x20 and ch != "\t":
            return f"contains a control character at index {i}"
    return "starts or ends with whitespace"


def header_value(value: Any, field: str) -> str:
    """Check one header value: a one-line ASCII string."""
    if not isinstance(value, str):
        raise InvalidArgumentError(field, f"a header value must be a string, got {type(value).__name__}")
    problem = header_value_problem(value)
    if problem is not None:
        raise InvalidArgumentError(field, problem)
    return value


def header_name(name: Any, field: str) -> str:
    """Check one header name: an RFC 9110 token (letters, digits and ``!#$%&'*+-.^_`|~``)."""
    if not isinstance(name, str):
        raise InvalidArgumentError(field, f"a header name must be a string, got {type(name).__name__}")
    if not _NAME_RE.fullmatch(name):
        raise InvalidArgumentError(
            field,
            "is not a valid header name: letters, digits and !#$%&'*+-.^_`|~ only, no spaces, colons or line breaks",
        )
    return name


def headers(items: Iterable[tuple[Any, Any]], field: str) -> dict[str, str]:
    """Check (name, value) pairs; the error names ``field['Name']``."""
    out: dict[str, str] = {}
    for name, value in items:
        header_name(name, f"{field}[{name!r}]" if isinstance(name, str) and name.isprintable() else field)
        out[name] = header_value(value, f"{field}[{name!r}]")
    return out


def masked(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """A copy fit for a repr: secret headers (Authorization, Cookie, ...) shown as ``[secure]``."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {k: MASK if k.lower() in SECRET_HEADERS else v for k, v in pairs}


class Headers(dict[str, str]):
    """A request's header dict; its repr masks secret headers (a caller may put an
    Authorization or Cookie header in ``extra_headers``), so a traceback local shows none."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Headers({masked(self)!r})"


# --- JSON --------------------------------------------------------------------------------------


def json_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """(path, reason) of the first part of ``value`` that is not valid JSON on the wire, or None.

    Finds what ``json`` refuses or would encode wrongly: NaN and infinities, text UTF-8
    cannot encode, keys that are not strings, objects ``json`` cannot serialize, and
    containers that contain themselves. ``path`` reads like ``messages[0].content``.
    """
    stack: list[tuple[Any, str, tuple[int, ...]]] = [(value, path, ())]
    while stack:
        item, where, parents = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            index = surrogate_at(item)
            if index is not None:
                return where, _surrogate_reason(index)
        elif isinstance(item, int):
            try:
                int.__repr__(item)
            except ValueError:
                return where, "is an integer too large to write as JSON"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, f"{item!r} is not a JSON number (JSON has no NaN or infinity); send null or a number"
        elif isinstance(item, (dict, list, tuple)):
            if id(item) in parents:
                return where, "contains itself (a circular reference)"
            inner = (*parents, id(item))
            children: list[tuple[Any, str, tuple[int, ...]]] = []
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        if isinstance(key, float) and not math.isfinite(key):
                            return where, f"has the key {key!r}; JSON has no NaN or infinity"
                        if key is None or isinstance(key, (int, float)):
                            key = str(key)
                        else:
                            return where, f"has a key of type {type(key).__name__}; JSON object keys are strings"
                    name = f"{where}.{key}" if where else key
                    index = surrogate_at(key)
                    if index is not None:
                        return name, "the key " + _surrogate_reason(index)
                    children.append((child, name, inner))
            else:
                children = [(child, f"{where}[{i}]", inner) for i, child in enumerate(item)]
            stack.extend(reversed(children))
        else:
            return (
                where,
                f"a {type(item).__name__} is not JSON-serializable; pass plain dicts, lists, strings and numbers",
            )
    return None


def json_error(value: Any, where: str) -> InvalidArgumentError:
    """The InvalidArgumentError for a body ``json`` failed to encode; ``where`` prefixes the path."""
    found = json_problem(value)
    if found is None:
        return InvalidArgumentError(where or "body", "cannot be encoded as JSON")
    path, reason = found
    if where and path:
        field = f"{where}{path}" if path.startswith("[") else f"{where}.{path}"
    else:
        field = where or path or "body"
    return InvalidArgumentError(field, reason)


def check_json(value: Any, where: str) -> None:
    """Raise InvalidArgumentError for the first part of ``value`` that is not valid JSON."""
    if json_problem(value) is not None:
        raise json_error(value, where)
