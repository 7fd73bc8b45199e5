"""Request bodies: built from the caller's arguments, checked, never mutating the input.

Every check raises :class:`~gigapy.errors.InvalidArgumentError` naming the field (for
example ``messages[2].role``) and what is allowed, before anything is sent. The rules
are the service's own (its 422 texts are in reference/api-contract.md §5), so a request
that passes here is not rejected for these reasons there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ._wire import check_json, utf8_text
from .errors import InvalidArgumentError

MESSAGE_ROLES = ("system", "user", "assistant", "function", "search_result")
BUILTIN_FUNCTIONS = ("text2image", "text2model3d")
FUNCTION_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
REASONING_EFFORTS = ("low", "medium", "high")

# v1 chat fields gigapy knows; anything else goes through extra_body.
CHAT_FIELDS = frozenset({
    "model", "messages", "temperature", "top_p", "n", "max_tokens", "repetition_penalty",
    "update_interval", "profanity_check", "functions", "function_call", "flags", "response_format",
    "reasoning_effort", "storage", "function_ranker", "attachments",
})


def _fail(field: str, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(field, reason)


def _plain(value: Any, field: str) -> dict[str, Any]:
    """A pydantic model as its wire dict; a mapping as a plain dict copy."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    raise _fail(field, f"expected a dict or a gigapy model, got {type(value).__name__}")


def number(value: Any, field: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, integer: bool = False) -> float | int:
    """Check a number against a range; ``low_open`` makes the lower bound exclusive."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise _fail(field, f"expected {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(field, f"must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        if high is not None:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        raise _fail(field, f"must be {bound}, got {value!r}")
    if high is not None and value > high:
        raise _fail(field, f"must be in {'(' if low_open else '['}{low:g}, {high:g}], got {value!r}")
    return value


def text(value: Any, field: str, *, allow_empty: bool = False) -> str:
    """Check a string (UTF-8 must be able to encode it: ids also go into URLs and headers)."""
    if not isinstance(value, str):
        raise _fail(field, f"expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise _fail(field, "must not be empty")
    return utf8_text(value, field)


def strings(value: Any, field: str, *, min_items: int = 1) -> list[str]:
    """Check a list of strings (a single string becomes a one-item list)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise _fail(field, f"expected a string or a list of strings, got {type(value).__name__}")
    items = list(value)
    if len(items) < min_items:
        raise _fail(field, f"must hold at least {min_items} item(s)")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _fail(f"{field}[{i}]", f"expected a string, got {type(item).__name__}")
    return items


def function_result_content(value: Any, field: str) -> str:
    """A function result must be JSON text; dicts and lists are serialized for you."""
    if isinstance(value, (dict, list)):
        return json_text(value, field)
    if not isinstance(value, str):
        raise _fail(field, f"expected JSON text or a dict, got {type(value).__name__}")
    try:
        json.loads(value, parse_constant=_not_json)
    except ValueError:
        raise _fail(
            field,
            "a function result must be JSON (the service rejects anything else); "
            "wrap plain text, e.g. json.dumps({\"result\": text})",
        ) from None
    return value


def json_text(value: Any, field: str) -> str:
    """``value`` as JSON text, for a field that carries JSON inside a string (a function result).

    NaN, infinity and objects json cannot write raise InvalidArgumentError naming ``field``.
    """
    check_json(value, field)
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def function_call_value(value: Any, field: str) -> dict[str, Any]:
    """An assistant's function call as the wire wants it: arguments as a JSON object."""
    call = _plain(value, field)
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(f"{field}.name", "a function call needs the function's name")
    args = call.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            raise _fail(f"{field}.arguments", "is not valid JSON") from None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise _fail(f"{field}.arguments", "must be a JSON object (a dict)")
    call["arguments"] = args
    return call


def messages_v1(value: Any, field: str = "messages") -> list[dict[str, Any]]:
    """Normalize and check v1 messages: roles, system-first, function call/result pairing."""
    if isinstance(value, str):
        if not value.strip():
            raise _fail(field, "must not be empty")
        return [{"role": "user", "content": value}]  # the body encoder names messages[0].content if bad
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise _fail(field, f"expected a prompt string or a list of messages, got {type(value).__name__}")
    if not value:
        raise _fail(field, "must hold at least one message")
    out: list[dict[str, Any]] = []
    pending_call: int | None = None
    for i, raw in enumerate(value):
        where = f"{field}[{i}]"
        msg = _plain(raw, where)
        role = msg.get("role")
        if role not in MESSAGE_ROLES:
            hint = "; function results use role 'function'" if role == "tool" else ""
            raise _fail(f"{where}.role", f"unknown role {role!r}, expected one of {', '.join(MESSAGE_ROLES)}{hint}")
        if role == "system" and i != 0:
            raise _fail(f"{where}.role", "a system message must be the first message (and there can be only one)")
        content = msg.get("content")
        if role == "function":
            if pending_call is None:
                raise _fail(where, "a function result must follow an assistant message with a function_call")
            msg["content"] = function_result_content(content, f"{where}.content")
            if msg.get("name") is None and isinstance(out[pending_call].get("function_call"), dict):
                msg["name"] = out[pending_call]["function_call"]["name"]
            pending_call = None
        elif content is None:
            msg["content"] = ""
        elif not isinstance(content, str):
            raise _fail(f"{where}.content", f"expected a string, got {type(content).__name__}")
        if pending_call is not None and role != "function":
            raise _fail(f"{field}[{pending_call}].function_call",
                        "every assistant function call must be followed by a 'function' result message")
        if msg.get("function_call") is not None:
            if role != "assistant":
                raise _fail(f"{where}.function_call", "only assistant messages carry a function_call")
            msg["function_call"] = function_call_value(msg["function_call"], f"{where}.function_call")
            pending_call = i
        attachments = msg.get("attachments")
        if attachments is not None:
            msg["attachments"] = strings(attachments, f"{where}.attachments", min_items=0)
        if role in ("user", "system") and not msg["content"] and not msg.get("attachments"):
            raise _fail(f"{where}.content", "must not be empty")
        out.append(msg)
    if pending_call is not None:
        raise _fail(f"{field}[{pending_call}].function_call",
                    "every assistant function call must be followed by a 'function' result message")
    return out


def function_def(value: Any, field: str) -> dict[str, Any]:
    """Check one custom function definition (name pattern, parameters object)."""
    fn = _plain(value, field)
    name = fn.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME_RE.match(name):
        raise _fail(f"{field}.name", f"{name!r} is not a valid function name: Latin letters, digits (not "
                    "leading), '_', '-' and '.' only")
    params = fn.get("parameters")
    if params is None:
        fn["parameters"] = {"type": "object", "properties": {}}
    elif not isinstance(params, Mapping) or params.get("type", "object") != "object":
        raise _fail(f"{field}.parameters", "must be a JSON Schema object ({'type': 'object', 'properties': {...}})")
    return fn


def response_format(value: Any, field: str = "response_format") -> dict[str, Any]:
    """``{"type": "text"}``, ``{"type": "json_schema", "schema": {...}}``, or a pydantic model class."""
    if isinstance(value, type) and issubclass(value, BaseModel):
        return {"type": "json_schema", "schema": value.model_json_schema(), "strict": True}
    fmt = _plain(value, field)
    kind = fmt.get("type")
    if kind == "text":
        return fmt
    if kind == "json_schema":
        schema = fmt.get("schema")
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            fmt["schema"] = schema.model_json_schema()
        elif not isinstance(schema, Mapping) or not schema:
            raise _fail(f"{field}.schema", "json_schema needs a non-empty JSON Schema (or a pydantic model class)")
        return fmt
    raise _fail(f"{field}.type", f"unknown type {kind!r}; the service accepts 'text' and 'json_schema'")


def chat_body(params: Mapping[str, Any], *, default_model: str, profanity_check: bool | None,
              flags: Sequence[str] | None) -> dict[str, Any]:
    """The v1 ``/chat/completions`` body from keyword arguments (see ``GigaChat.completion``)."""
    unknown = set(params) - CHAT_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise _fail(name, "unknown parameter; pass fields gigapy does not know with extra_body={...}")
    if "messages" not in params or params["messages"] is None:
        raise _fail("messages", "required: a prompt string or a list of messages")
    body: dict[str, Any] = {}
    model = params.get("model")
    body["model"] = text(default_model if model is None else model, "model")
    body["messages"] = messages_v1(params["messages"])
    attachments = params.get("attachments")
    if attachments is not None:
        ids = strings(attachments, "attachments", min_items=0)
        last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), None)
        if last is None:
            raise _fail("attachments", "needs a user message to attach the files to")
        last["attachments"] = [*(last.get("attachments") or []), *ids]
    for name, kwargs in _NUMERIC.items():
        value = params.get(name)
        if value is not None:
            body[name] = number(value, name, **kwargs)
    functions = params.get("functions")
    names: set[str] = set()
    if functions is not None:
        if not isinstance(functions, Sequence) or isinstance(functions, (str, bytes)):
            raise _fail("functions", "expected a list of function definitions")
        body["functions"] = [function_def(fn, f"functions[{i}]") for i, fn in enumerate(functions)]
        names = {fn["name"] for fn in body["functions"]}
    call = params.get("function_call")
    if call is not None:
        body["function_call"] = _function_call_mode(call, names)
    effort = params.get("reasoning_effort")
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise _fail("reasoning_effort", f"expected one of {', '.join(REASONING_EFFORTS)}, got {effort!r}")
        body["reasoning_effort"] = effort
    fmt = params.get("response_format")
    if fmt is not None:
        body["response_format"] = response_format(fmt)
    check = params.get("profanity_check", profanity_check)
    if check is not None:
        if not isinstance(check, bool):
            raise _fail("profanity_check", f"expected True or False, got {check!r}")
        body["profanity_check"] = check
    chosen_flags = params.get("flags", flags)
    if chosen_flags is not None:
        body["flags"] = strings(chosen_flags, "flags", min_items=0)
    for name in ("storage", "function_ranker"):
        value = params.get(name)
        if value is not None:
            body[name] = _plain(value, name)
    return body


_NUMERIC: dict[str, dict[str, Any]] = {
    "temperature": {"low": 0, "low_open": True},
    "top_p": {"low": 0, "high": 1},
    "n": {"low": 1, "high": 4, "integer": True},
    "max_tokens": {"low": 0, "low_open": True, "integer": True},
    "repetition_penalty": {"low": 0, "low_open": True},
    "update_interval": {"low": 0},
}


def _function_call_mode(call: Any, names: set[str]) -> Any:
    if call in ("auto", "none"):
        return call
    if isinstance(call, str):
        call = {"name": call}
    spec = _plain(call, "function_call")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise _fail("function_call", "expected 'auto', 'none', a function name or {'name': ...}")
    if name not in names and name not in BUILTIN_FUNCTIONS:
        raise _fail("function_call.name", f"{name!r} is not among functions= (nor a built-in: "
                    f"{', '.join(BUILTIN_FUNCTIONS)})")
    return spec


def merge_extra(body: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Shallow-merge ``extra_body`` into a JSON body (extra keys win)."""
    if extra:
        if not isinstance(extra, Mapping):
            raise _fail("extra_body", "expected a dict")
        body.update(extra)
    return body
