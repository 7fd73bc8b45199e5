"""Input lines of a bulk run: parse one JSONL line, or say exactly why it cannot be sent.

A line is ``{"id": "...", "request": {...}}`` (the service's batch format) or an OpenAI batch
line ``{"custom_id": "...", "url": "/v1/chat/completions", "body": {...}}``, whose body is
mapped to the GigaChat request as the OpenAI bridge maps it.

A line that cannot be sent (not UTF-8, a NUL byte, not JSON or not standard JSON, not an
object, no usable id, text that UTF-8 cannot encode anywhere in it, a request of the wrong
kind) is not an error for the run: it is reported with its line number and skipped. A line
without a usable id is accounted for by its line number.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from .errors import InvalidArgumentError

Kind = Literal["chat", "embeddings"]
#: What a line is accounted under: its id, or its line number when it has no usable id.
Key: TypeAlias = str | int
#: (field, reason) of an input line that cannot be sent.
Problem: TypeAlias = tuple[str, str]
#: (line number, key, request or None, problem or None) of one input line.
Line: TypeAlias = tuple[int, Key, dict[str, Any] | None, Problem | None]


def _non_finite(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large for a JSON number")
    return value


#: Standard JSON only: NaN, Infinity and 1e999 are refused (they would go on the wire as invalid JSON).
_strict_json = json.JSONDecoder(parse_constant=_non_finite, parse_float=_finite_float)
#: A JSON escape of a UTF-16 surrogate: only such a line can hold text that UTF-8 cannot encode.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return "an array" if isinstance(value, list) else "an object"


def lone_surrogate(text: str) -> int | None:
    """Index of the first character UTF-8 cannot encode (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _surrogate_reason(text: str, index: int) -> str:
    return (f"contains a lone surrogate U+{ord(text[index]):04X} at character {index + 1}: text that cannot be "
            "encoded as UTF-8 (was it cut in the middle of a character?)")


def _unencodable(value: Any) -> Problem | None:
    """(path, reason) of the first string or key in ``value`` that UTF-8 cannot encode, or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:  # iterative: a deeply nested line must not overflow the stack
        where, item = stack.pop()
        if isinstance(item, str):
            index = lone_surrogate(item)
            if index is not None:
                return where, _surrogate_reason(item, index)
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                index = lone_surrogate(key)
                if index is not None:
                    return (where or "line"), "a key " + _surrogate_reason(key, index)
                children.append((f"{where}.{key}" if where else key, child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{where}[{i}]", child) for i, child in enumerate(item)]))
    return None


def parse_line(raw: bytes, lineno: int) -> Line:
    """(line number, key, request, problem) of one non-blank input line; ``problem`` is None
    for a line that can be sent. A line without a usable id is keyed by its line number."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        return lineno, lineno, None, ("line", f"contains a NUL byte (column {nul + 1}); is the file UTF-16 or "
                                              "binary? save it as UTF-8 JSONL")
    try:
        text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return lineno, lineno, None, ("line", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                                              f"{exc.start + 1}); save the file as UTF-8")
    try:
        item = _strict_json.decode(text)
    except json.JSONDecodeError as exc:
        return lineno, lineno, None, ("line", f"not valid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return lineno, lineno, None, ("line", "not valid JSON here: nested too deeply")
    except ValueError as exc:  # NaN, Infinity, 1e999, an integer of more than 4300 digits
        return lineno, lineno, None, ("line", f"not valid JSON: {exc}")
    if not isinstance(item, dict):
        return lineno, lineno, None, ("line", 'expected a JSON object {"id": "...", "request": {...}}, got '
                                              + _json_type(item))
    rid = item.get("id")
    if rid is None and "custom_id" in item:
        return openai_line(item, raw, lineno)
    if not isinstance(rid, str) or not rid:
        got = "it is missing" if "id" not in item else f"got {_json_type(rid)}"
        return lineno, lineno, None, ("id", f"must be a non-empty string; {got}")
    if _SURROGATE_ESCAPE.search(raw) is not None:
        index = lone_surrogate(rid)
        if index is not None:
            return lineno, lineno, None, ("id", _surrogate_reason(rid, index))
        bad = _unencodable(item)
        if bad is not None:
            return lineno, rid, None, bad
    request = item.get("request")
    if not isinstance(request, dict):
        got = "it is missing" if "request" not in item else f"got {_json_type(request)}"
        return lineno, rid, None, ("request", f"must be an object, the body of /chat/completions or /embeddings; "
                                              f"{got}")
    return lineno, rid, request, None


def openai_line(item: Mapping[str, Any], raw: bytes, lineno: int) -> Line:
    """An OpenAI batch line (``{"custom_id", "method", "url", "body"}``) as one of ours: ``custom_id``
    is the id, ``body`` (an OpenAI chat or embeddings request) becomes the GigaChat request the
    way the OpenAI bridge maps it, or the line says exactly why it cannot."""
    rid = item.get("custom_id")
    if not isinstance(rid, str) or not rid:
        return lineno, lineno, None, ("custom_id", f"must be a non-empty string; got {_json_type(rid)}")
    if _SURROGATE_ESCAPE.search(raw) is not None:
        bad = _unencodable(item)
        if bad is not None:
            return lineno, (lineno if bad[0] == "custom_id" else rid), None, bad
    body = item.get("body")
    if not isinstance(body, dict):
        got = "it is missing" if "body" not in item else f"got {_json_type(body)}"
        return lineno, rid, None, ("body", f"must be an object, the OpenAI request of this line; {got}")
    url = item.get("url")
    path = url.split("?", 1)[0].rstrip("/") if isinstance(url, str) else ""
    try:
        if path.endswith("/chat/completions"):
            from ._translate.chat import chat_request

            plan = chat_request(body)
            if plan.uploads:
                return lineno, rid, None, ("body.messages", "holds files or images: a bulk run cannot upload them; "
                                                           "upload them first and send their ids as attachments")
            call = plan.finish()
            if call.api != "v1":
                return lineno, rid, None, ("body", f"needs GigaChat v2 ({call.why}); a bulk run sends "
                                                   "/chat/completions v1 requests")
            request = {k: v for k, v in call.body.items() if k != "stream"}
        elif path.endswith("/embeddings"):
            from ._translate.embeddings import embeddings_request

            request = embeddings_request(body).body
        else:
            shown = f"{url!r}" if isinstance(url, str) else "missing"
            return lineno, rid, None, ("url", f"an OpenAI batch line for {shown}: only /v1/chat/completions and "
                                              "/v1/embeddings can run here")
    except InvalidArgumentError as exc:
        return lineno, rid, None, (f"body.{exc.field}", exc.reason)
    return lineno, rid, request, None


def iter_lines(path: Path) -> Iterator[Line]:
    """Every non-blank line of an INPUT file, parsed (bad lines too: they carry their problem)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except FileNotFoundError:
        raise InvalidArgumentError("input", f"file not found: {path}") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if raw.strip():
                yield parse_line(raw, lineno)


def kind_of(request: Mapping[str, Any]) -> Kind | None:
    if "messages" in request:
        return "chat"
    if "input" in request:
        return "embeddings"
    return None


def kind_problem(kind: Kind, request: Mapping[str, Any]) -> Problem | None:
    if kind == "chat" and "messages" not in request:
        return "request.messages", 'a chat request needs "messages"'
    if kind == "embeddings" and "input" not in request:
        return "request.input", 'an embeddings request needs "input"'
    return None


def problem_text(problem: Problem) -> str:
    name, reason = problem
    return reason if name == "line" else f"{name}: {reason}"


def line_error(lineno: int, problem: Problem | None) -> InvalidArgumentError:
    """The error recorded for an input line that is not sent."""
    name, reason = problem or ("line", "no request")
    return InvalidArgumentError(f"line {lineno}" if name == "line" else name, reason)


@dataclass
class Scan:
    kind: Kind | None = None
    requests: int = 0  # lines with a request object
    keys: set[Key] = field(default_factory=set)
    duplicates: list[str] = field(default_factory=list)


def scan_input(path: Path) -> Scan:
    """Count the keys of INPUT and find its kind and duplicate ids (the first line of an id wins)."""
    scan = Scan()
    keys = scan.keys
    for _, key, request, _ in iter_lines(path):
        if key in keys:
            scan.duplicates.append(str(key))
            continue
        keys.add(key)
        if request is not None:
            scan.requests += 1
            if scan.kind is None:
                scan.kind = kind_of(request)
    if not keys:
        raise InvalidArgumentError("input", f"no requests in {path}")
    return scan
