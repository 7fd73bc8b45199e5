"""Request bodies: built from the caller's arguments, checked, never mutating the input.

Every check raises :class:`~gigapy.errors.InvalidArgumentError` naming the field (for
example ``messages[2].role``) and what is allowed, before anything is sent. The rules
are the service's own (its 422 texts are in reference/api-contract.md §5), so a request
that passes here is not rejected for these reasons there.

Forward compatibility (the service adds fields and values faster than clients ship):

- a field gigapy knows is checked strictly: its type and range, and for a closed set (roles,
  upload purposes) its value;
- a field name gigapy does not know is sent as given, with an :class:`UnknownFieldWarning`
  (once per name per process), unless it is a typo of a known name (``temprature``,
  ``Max_Tokens``, ``function_names_any``; see ``_typo_cost``): then it is refused with "did you
  mean";
- a string value gigapy does not know for an open set (``reasoning_effort``, ``tool_config.mode``,
  built-in tool names, ``response_format.type``) is sent the same way, with the same typo rule;
  values the live service is known to refuse (``response_format`` ``json_object``) are refused;
- a field of the other API version (``tools`` on v1, ``function_call`` on v2) is refused with
  the way to send it;
- ``extra_body`` is sent as given, unchecked, always.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..errors import InvalidArgumentError, UnknownFieldWarning
from .wire import check_json, utf8_text

MESSAGE_ROLES = ("system", "user", "assistant", "function", "search_result")
BUILTIN_FUNCTIONS = ("text2image", "text2model3d")
FUNCTION_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
REASONING_EFFORTS = ("low", "medium", "high")
#: ``response_format`` types: known, and known to be refused (live 400 ``Unknown type``).
FORMAT_TYPES = ("text", "json_schema", "regex")
REFUSED_FORMAT_TYPES = ("json", "json_object", "xml")
SCHEMA_DIALECTS = ("reduced", "full")

# v1 chat fields gigapy knows; anything else is sent as given (with a warning, see above).
CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "n",
        "max_tokens",
        "repetition_penalty",
        "update_interval",
        "profanity_check",
        "functions",
        "function_call",
        "flags",
        "response_format",
        "reasoning_effort",
        "reasoning_max_tokens",
        "top_logprobs",
        "storage",
        "function_ranker",
        "attachments",
        "assistant_id",
    }
)
#: Keyword arguments that shape the request but are not sent.
LOCAL_FIELDS = frozenset({"schema_dialect"})
#: Names that are not request fields of the method they were given to, and what to do instead.
MISPLACED_V1 = {
    "stream": "completion_stream() streams",
    **dict.fromkeys(
        (
            "tools",
            "tool_config",
            "model_options",
            "reasoning",
            "parallel_tool_calls",
            "ranker_options",
            "user_info",
            "disable_filter",
            "filter_config",
        ),
        "a v2 field: use client.v2.completion() (or extra_body= to send it to v1 as is)",
    ),
}


# --- forward compatibility -----------------------------------------------------------------

#: Field names warned about so far (a dict: ``setdefault`` claims a name atomically, no lock).
warned: dict[str, object] = {}
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # gigapy/


def warn_unknown(field: str, what: str) -> None:
    """Warn once per field name per process that ``field`` goes to the service unchecked."""
    claim = object()
    if warned.setdefault(field, claim) is not claim:
        return
    warnings.warn(
        f"{field}: {what}; sent as given (the service may know it)", UnknownFieldWarning, stacklevel=_caller_level()
    )


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside gigapy (the caller's line)."""
    frame = sys._getframe(2)  # the caller of warn_unknown
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _simple(text: str) -> str:
    return text.lower().replace("-", "_").replace(" ", "_")


def _typo_cost(value: str, name: str) -> int | None:
    """How far ``value`` is from ``name`` as a typo, or None when it is not one.

    A typo differs only in case or ``-``/``_``, has one or two letters changed, two neighbours
    swapped, or one or two letters left out. A longer word (``xhigh``, ``max_tokens_v2``) is not a
    typo: new names often extend old ones.
    """
    if _simple(value) == _simple(name):
        return 0
    if len(name) < 4 or len(value) > len(name):
        return None
    if len(value) == len(name):
        diffs = [i for i, (a, b) in enumerate(zip(value, name, strict=True)) if a != b]
        if (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and value[diffs[0]] == name[diffs[1]]
            and value[diffs[1]] == name[diffs[0]]
        ):
            return 1
        return len(diffs) if len(diffs) <= 2 else None
    missing = len(name) - len(value)
    if missing > 2 or len(value) < 3:
        return None
    letters = iter(name)
    return missing if all(ch in letters for ch in value) else None  # value is name with letters left out


def close_to(value: str, known: Iterable[str]) -> str | None:
    """The known name ``value`` is most likely a typo of, or None (see ``_typo_cost``)."""
    best: tuple[int, str] | None = None
    for name in known:
        if name == value:
            continue
        cost = _typo_cost(value, name)
        if cost is not None and (best is None or (cost, name) < best):
            best = (cost, name)
    return best[1] if best else None


def open_value(value: Any, field: str, known: Sequence[str]) -> str:
    """A value of an open set: a known one, or an unknown string sent with a warning (typos refused)."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, f"expected a non-empty string such as {', '.join(map(repr, known))}, got {value!r}")
    checked = utf8_text(value, field)
    if checked in known:
        return checked
    typo = close_to(checked, known)
    if typo is not None:
        raise _fail(field, f"unknown value {checked!r}; did you mean {typo!r}?")
    warn_unknown(field, f"{checked!r} is not a value gigapy knows ({', '.join(known)})")
    return checked


def unknown_fields(
    given: Iterable[str],
    known: Iterable[str],
    where: str = "",
    misplaced: Mapping[str, str] | None = None,
    hint: str = "",
    near: Iterable[str] = (),
) -> list[str]:
    """The names of ``given`` that are not ``known``: typos and misplaced names raise, the rest warn.

    ``where`` prefixes the field in messages (``model_options.``); ``hint`` follows "did you mean";
    ``near`` are more names a typo may be of (the per-call options next to request fields).
    """
    known = frozenset(known)
    candidates = known | frozenset(near)
    out = []
    for name in given:
        if name in known:
            continue
        field = f"{where}{name}"
        if not isinstance(name, str):
            raise _fail(where.rstrip(".") or "body", f"field names must be strings, got {name!r}")
        if misplaced and name in misplaced:
            raise _fail(field, f"not a field of this request: {misplaced[name]}")
        typo = close_to(name, candidates)
        if typo is not None:
            escape = hint or f"to send {name!r} as is, pass extra_body={{{name!r}: ...}}"
            raise _fail(field, f"unknown parameter; did you mean {typo!r}? ({escape})")
        warn_unknown(field, "not a field gigapy knows")
        out.append(name)
    return out


def schema_dialect(value: Any, field: str = "schema_dialect") -> str:
    """``reduced`` (the older dialect, see gigapy.schema) or ``full`` (JSON Schema unchanged)."""
    if value not in SCHEMA_DIALECTS:
        raise _fail(field, f"expected 'reduced' or 'full', got {value!r}")
    return str(value)


def _fail(field: str, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(field, reason)


def plain(value: Any, field: str) -> dict[str, Any]:
    """A pydantic model as its wire dict; a mapping as a plain dict copy."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    raise _fail(field, f"expected a dict or a gigapy model, got {type(value).__name__}")


def number(
    value: Any,
    field: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> float | int:
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
        json.loads(value, parse_constant=not_json)
    except ValueError:
        raise _fail(
            field,
            "a function result must be JSON (the service rejects anything else); "
            'wrap plain text, e.g. json.dumps({"result": text})',
        ) from None
    return value


def json_text(value: Any, field: str) -> str:
    """``value`` as JSON text, for a field that carries JSON inside a string (a function result).

    NaN, infinity and objects json cannot write raise InvalidArgumentError naming ``field``.
    """
    check_json(value, field)
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def function_call_value(value: Any, field: str) -> dict[str, Any]:
    """An assistant's function call as the wire wants it: arguments as a JSON object."""
    call = plain(value, field)
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(f"{field}.name", "a function call needs the function's name")
    call_id = call.get("id")
    if call_id is not None:
        call["id"] = text(call_id, f"{field}.id")
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
        msg = plain(raw, where)
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
            raise _fail(
                f"{field}[{pending_call}].function_call",
                "every assistant function call must be followed by a 'function' result message",
            )
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
        raise _fail(
            f"{field}[{pending_call}].function_call",
            "every assistant function call must be followed by a 'function' result message",
        )
    return out


def function_def(value: Any, field: str, dialect: str = "reduced") -> dict[str, Any]:
    """Check one custom function definition (name pattern, parameters object).

    A Python function or a pydantic model class becomes a definition through
    :func:`gigapy.schema.function_schema` in ``dialect``; a dict is sent as given.
    """
    if (isinstance(value, type) and issubclass(value, BaseModel)) or (
        callable(value) and not isinstance(value, (Mapping, BaseModel, type))
    ):
        from ..schema import function_schema

        try:
            return function_schema(value, dialect=dialect).to_dict()
        except InvalidArgumentError as exc:
            raise _fail(f"{field}.{exc.field}", exc.reason) from None
    fn = plain(value, field)
    name = fn.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME_RE.match(name):
        raise _fail(
            f"{field}.name",
            f"{name!r} is not a valid function name: Latin letters, digits (not leading), '_', '-' and '.' only",
        )
    params = fn.get("parameters")
    if params is None:
        fn["parameters"] = {"type": "object", "properties": {}}
    elif not isinstance(params, Mapping) or not _object_type(params.get("type", "object")):
        raise _fail(f"{field}.parameters", "must be a JSON Schema object ({'type': 'object', 'properties': {...}})")
    return fn


def _object_type(kind: Any) -> bool:
    """``object``, or a type list of full JSON Schema that holds it (``["object", "null"]``)."""
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def response_format(value: Any, field: str = "response_format") -> dict[str, Any]:
    """``{"type": "text"}``, ``{"type": "json_schema", "schema": {...}}``, ``{"type": "regex", "regex": ...}``,
    or a pydantic model class. A type gigapy does not know yet is sent with a warning."""
    if isinstance(value, type) and issubclass(value, BaseModel):
        return {"type": "json_schema", "schema": value.model_json_schema(), "strict": True}
    fmt = plain(value, field)
    kind = fmt.get("type")
    if kind in REFUSED_FORMAT_TYPES:
        raise _fail(
            f"{field}.type",
            f"unknown type {kind!r}; the service accepts 'text', 'json_schema' and "
            "'regex' (it answers 400 to this one)",
        )
    if kind == "text":
        return fmt
    if kind == "json_schema":
        schema = fmt.get("schema")
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            fmt["schema"] = schema.model_json_schema()
        elif not isinstance(schema, Mapping) or not schema:
            raise _fail(f"{field}.schema", "json_schema needs a non-empty JSON Schema (or a pydantic model class)")
        if fmt.get("strict") is not None and not isinstance(fmt["strict"], bool):
            raise _fail(f"{field}.strict", f"expected True or False, got {fmt['strict']!r}")
        return fmt
    if kind == "regex":
        pattern = fmt.get("regex")
        if not isinstance(pattern, str) or not pattern:
            raise _fail(f"{field}.regex", "the regex type needs a non-empty regular expression")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _fail(f"{field}.regex", f"is not a valid regular expression: {exc}") from None
        return fmt
    open_value(kind, f"{field}.type", FORMAT_TYPES)
    return fmt


def chat_body(
    params: Mapping[str, Any],
    *,
    default_model: str,
    profanity_check: bool | None,
    flags: Sequence[str] | None,
    schema_dialect_default: str = "reduced",
    options: Iterable[str] = (),
) -> dict[str, Any]:
    """The v1 ``/chat/completions`` body from keyword arguments (see ``GigaChat.completion``).

    ``options``: the per-call option names (a typo of one is refused too)."""
    passed = unknown_fields(params, CHAT_FIELDS | LOCAL_FIELDS, misplaced=MISPLACED_V1, near=options)
    if "messages" not in params or params["messages"] is None:
        raise _fail("messages", "required: a prompt string or a list of messages")
    dialect = schema_dialect(params.get("schema_dialect") or schema_dialect_default)
    body: dict[str, Any] = {}
    model = params.get("model")
    assistant_id = params.get("assistant_id")
    storage = params.get("storage")
    if storage is not None:
        storage = plain(storage, "storage")
    stateful = assistant_id is not None or bool(storage and (storage.get("thread_id") or storage.get("assistant_id")))
    if model is not None or not stateful:  # an assistant or a stored thread decides the model (as the SDK does)
        body["model"] = text(default_model if model is None else model, "model")
    if assistant_id is not None:
        body["assistant_id"] = text(assistant_id, "assistant_id")
    body["messages"] = messages_v1(params["messages"])
    attachments = params.get("attachments")
    if attachments is not None:
        ids = strings(attachments, "attachments", min_items=0)
        last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), None)
        if last is None:
            raise _fail("attachments", "needs a user message to attach the files to")
        last["attachments"] = [*(last.get("attachments") or []), *ids]
    for name, kwargs in NUMERIC.items():
        value = params.get(name)
        if value is not None:
            body[name] = number(value, name, **kwargs)
    functions = params.get("functions")
    names: set[str] = set()
    if functions is not None:
        if not isinstance(functions, Sequence) or isinstance(functions, (str, bytes)):
            raise _fail("functions", "expected a list of function definitions")
        body["functions"] = [function_def(fn, f"functions[{i}]", dialect) for i, fn in enumerate(functions)]
        names = {fn["name"] for fn in body["functions"]}
    call = params.get("function_call")
    if call is not None:
        body["function_call"] = _function_call_mode(call, names)
    effort = params.get("reasoning_effort")
    if effort is not None:
        body["reasoning_effort"] = open_value(effort, "reasoning_effort", REASONING_EFFORTS)
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
    if storage is not None:
        body["storage"] = storage
    if params.get("function_ranker") is not None:
        body["function_ranker"] = plain(params["function_ranker"], "function_ranker")
    for name in passed:
        body[name] = params[name]
    return body


NUMERIC: dict[str, dict[str, Any]] = {
    "temperature": {"low": 0, "low_open": True},
    "top_p": {"low": 0, "high": 1},
    "n": {"low": 1, "high": 4, "integer": True},
    "max_tokens": {"low": 0, "low_open": True, "integer": True},
    "repetition_penalty": {"low": 0, "low_open": True},
    "update_interval": {"low": 0},
    "reasoning_max_tokens": {"low": 0, "low_open": True, "integer": True},
    "top_logprobs": {"low": 1, "high": 5, "integer": True},
}


def _function_call_mode(call: Any, names: set[str]) -> Any:
    if call in ("auto", "none"):
        return call
    if isinstance(call, str):
        call = {"name": call}
    spec = plain(call, "function_call")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise _fail("function_call", "expected 'auto', 'none', a function name or {'name': ...}")
    if name not in names and name not in BUILTIN_FUNCTIONS:
        raise _fail(
            "function_call.name", f"{name!r} is not among functions= (nor a built-in: {', '.join(BUILTIN_FUNCTIONS)})"
        )
    return spec


def merge_extra(body: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Shallow-merge ``extra_body`` into a JSON body (extra keys win)."""
    if extra:
        if not isinstance(extra, Mapping):
            raise _fail("extra_body", "expected a dict")
        body.update(extra)
    return body
