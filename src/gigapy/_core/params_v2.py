"""v2 request bodies (``POST /v2/chat/completions``), built and checked before sending.

The wire wants every message's ``content`` as a list of parts and the sampling settings
under ``model_options``. For convenience this accepts plain strings as content, sampling
fields at the top level, ``functions=`` for a functions tool, built-in tool names as
strings, a tool or function name as ``tool_config`` and a pydantic model as
``response_format``; it turns them into the wire form. Role ``tool`` becomes ``function``
(the live service rejects ``tool``). Fields and values gigapy does not know yet are sent
with a warning, typos are refused (the rules are in ``gigapy._core.params``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import InvalidArgumentError
from . import params as P

ROLES = ("system", "user", "assistant", "function")
BUILTIN_TOOLS = ("web_search", "image_generate", "url_content_extraction", "code_interpreter", "model_3d_generate")
#: Tool names the live service answers 404 to, and the name it knows.
REFUSED_TOOLS = {"url_extraction": "url_content_extraction"}
PART_KEYS = frozenset(
    {"text", "files", "function_call", "function_result", "inline_data", "tool_execution", "logprobs"}
)
MODEL_OPTIONS = (
    "temperature",
    "top_p",
    "max_tokens",
    "repetition_penalty",
    "update_interval",
    "response_format",
    "reasoning",
    "top_logprobs",
    "unnormalized_history",
    "preset",
    "parallel_tool_calls",
)
#: Top-level shorthands of ``model_options.reasoning`` (as langchain-gigachat names them).
REASONING_ALIASES = {"reasoning_effort": "effort", "reasoning_max_tokens": "max_tokens"}
REASONING_KEYS = ("effort", "max_tokens")
TOOL_MODES = ("auto", "none", "forced", "any")
TOOL_CONFIG_KEYS = ("mode", "tool_name", "function_name", "functions_names_any")
V2_FIELDS = frozenset(
    {
        "model",
        "messages",
        "model_options",
        "tools",
        "functions",
        "tool_config",
        "storage",
        "ranker_options",
        "filter_config",
        "user_info",
        "disable_filter",
        "flags",
        "assistant_id",
        *MODEL_OPTIONS,
        *REASONING_ALIASES,
    }
)
MISPLACED_V2 = {
    "stream": "completion_stream() streams",
    "function_call": "v2 chooses with tool_config= ('auto', 'none', 'any', a function or tool name)",
    "n": "v1 only (client.completion())",
    "profanity_check": "v2 has disable_filter= (profanity_check=True is disable_filter=False)",
    "attachments": "v2 attaches files per message: {'role': 'user', 'content': ..., 'attachments': [...]}",
}


def _fail(field: str, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(field, reason)


def part(value: Any, field: str) -> dict[str, Any]:
    """One content part: a string is text; dicts are checked key by key."""
    if isinstance(value, str):
        return {"text": value}
    raw = P.plain(value, field)
    P.unknown_fields(raw, PART_KEYS, f"{field}.")
    if "text" in raw and not isinstance(raw["text"], str):
        raise _fail(f"{field}.text", f"expected a string, got {type(raw['text']).__name__}")
    if "files" in raw:
        files = raw["files"]
        if isinstance(files, (str, Mapping)) or not isinstance(files, Sequence):
            raise _fail(f"{field}.files", "expected a list of file ids (or {'id': ...} objects)")
        out = []
        for i, item in enumerate(files):
            file_id = item.get("id") if isinstance(item, Mapping) else item
            if not isinstance(file_id, str) or not file_id:
                raise _fail(f"{field}.files[{i}]", "expected a file id from upload_file()")
            out.append({"id": file_id} if not isinstance(item, Mapping) else dict(item))
        raw["files"] = out
    if "function_call" in raw:
        raw["function_call"] = P.function_call_value(raw["function_call"], f"{field}.function_call")
    if "function_result" in raw:
        raw["function_result"] = function_result(raw["function_result"], f"{field}.function_result")
    return raw


def function_result(value: Any, field: str) -> dict[str, Any]:
    """``{name, result}``: the result is a JSON object (or JSON text)."""
    result = P.plain(value, field)
    if not isinstance(result.get("name"), str) or not result["name"]:
        raise _fail(f"{field}.name", "required: the name of the function that produced the result")
    if result.get("id") is not None:
        result["id"] = P.text(result["id"], f"{field}.id")
    body = result.get("result")
    if isinstance(body, str):
        try:
            json.loads(body, parse_constant=P.not_json)  # NaN and Infinity are not JSON either
        except ValueError:
            raise _fail(
                f"{field}.result",
                'must be JSON (the service rejects anything else); wrap plain text, e.g. {"result": text}',
            ) from None
    elif not isinstance(body, (dict, list)):
        raise _fail(f"{field}.result", f"expected a JSON object, got {type(body).__name__}")
    return result


def messages_v2(value: Any, field: str = "messages") -> list[dict[str, Any]]:
    """Normalize and check v2 messages (content as parts, roles, system first, results after calls)."""
    if isinstance(value, str):
        if not value.strip():
            raise _fail(field, "must not be empty")
        return [{"role": "user", "content": [{"text": value}]}]  # the body encoder names the part if bad
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise _fail(field, f"expected a prompt string or a list of messages, got {type(value).__name__}")
    if not value:
        raise _fail(field, "must hold at least one message")
    out: list[dict[str, Any]] = []
    seen_call = False
    call_ids: set[str] = set()
    for i, raw in enumerate(value):
        where = f"{field}[{i}]"
        msg = P.plain(raw, where)
        role = msg.get("role")
        if role == "tool":
            role = msg["role"] = "function"
        if role not in ROLES:
            raise _fail(f"{where}.role", f"unknown role {role!r}, expected one of {', '.join(ROLES)}")
        if role == "system" and i != 0:
            raise _fail(f"{where}.role", "a system message must be the first message (and there can be only one)")
        content = msg.get("content")
        parts: list[dict[str, Any]]
        if content is None or isinstance(content, str):
            parts = [] if not content else [{"text": content}]
        elif isinstance(content, Sequence):
            parts = [part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
        else:
            parts = [part(content, f"{where}.content")]
        attachments = msg.pop("attachments", None)
        if attachments is not None:
            ids = P.strings(attachments, f"{where}.attachments", min_items=0)
            parts.append({"files": [{"id": file_id} for file_id in ids]})
        if not parts and role != "assistant":
            raise _fail(f"{where}.content", "must not be empty")
        msg["content"] = parts
        if any("function_call" in p for p in parts):
            if role != "assistant":
                raise _fail(f"{where}.content", "only assistant messages carry a function_call")
            seen_call = True
            call_ids.update(p["function_call"]["id"] for p in parts if p.get("function_call", {}).get("id"))
        if any("function_result" in p for p in parts):
            if role != "function":
                raise _fail(f"{where}.role", "a function_result goes in a 'function' message")
            if not seen_call:
                raise _fail(where, "a function result must follow an assistant message with a function_call")
            for j, p in enumerate(parts):
                result_id = p.get("function_result", {}).get("id")
                if result_id is not None and call_ids and result_id not in call_ids:
                    raise _fail(
                        f"{where}.content[{j}].function_result.id",
                        f"{result_id!r} is the id of no earlier function call",
                    )
        out.append(msg)
    return out


def tools(value: Any, functions: Any, dialect: str = "reduced") -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """The ``tools`` list; returns (tools, builtin names, function names).

    A built-in name gigapy does not know yet is sent with a warning (typos refused)."""
    out: list[dict[str, Any]] = []
    builtins: set[str] = set()
    names: set[str] = set()
    if value is not None:
        if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
            raise _fail("tools", "expected a list of tools, e.g. ['web_search', {'functions': {...}}]")
        for i, entry in enumerate(value):
            where = f"tools[{i}]"
            if isinstance(entry, str):
                entry = {entry: {}}
            tool = P.plain(entry, where)
            if len(tool) != 1:
                raise _fail(where, "a tool is one key: a built-in name or 'functions'")
            ((name, spec),) = tool.items()
            if name == "functions":
                specs = P.plain(spec, f"{where}.functions").get("specifications")
                checked = _function_list(specs, f"{where}.functions.specifications", dialect)
                names |= {fn["name"] for fn in checked}
                out.append({"functions": {"specifications": checked}})
                continue
            if name in REFUSED_TOOLS:
                raise _fail(
                    where, f"unknown tool {name!r} (the service answers 404); did you mean {REFUSED_TOOLS[name]!r}?"
                )
            if name not in BUILTIN_TOOLS:
                typo = P.close_to(name, (*BUILTIN_TOOLS, "functions"))
                if typo is not None:
                    raise _fail(
                        where,
                        f"unknown tool {name!r}; did you mean {typo!r}? (built-ins are "
                        f"{', '.join(BUILTIN_TOOLS)}, custom functions go under 'functions')",
                    )
                P.warn_unknown(
                    f"{where}.{name}", f"{name!r} is not a built-in tool gigapy knows ({', '.join(BUILTIN_TOOLS)})"
                )
            builtins.add(name)
            out.append({name: P.plain(spec, f"{where}.{name}") if spec else {}})
    if functions is not None:
        checked = _function_list(functions, "functions", dialect)
        names |= {fn["name"] for fn in checked}
        out.append({"functions": {"specifications": checked}})
    return out, builtins, names


def _function_list(value: Any, field: str, dialect: str) -> list[dict[str, Any]]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence) or not value:
        raise _fail(field, "expected a non-empty list of function definitions")
    return [P.function_def(fn, f"{field}[{i}]", dialect) for i, fn in enumerate(value)]


def tool_config(value: Any, builtins: set[str], names: set[str], *, assistant: bool = False) -> dict[str, Any]:
    """``auto``/``none``/``any``, a tool or function name (forced), a list of function names (``any``
    of them), or the wire dict. ``assistant``: the assistant's functions join the request's (names
    are then not checked against the request alone)."""
    if isinstance(value, str) and value in TOOL_MODES and value != "forced":
        value = {"mode": value}
    elif isinstance(value, str):
        if value in builtins or value in BUILTIN_TOOLS:
            return {"mode": "forced", "tool_name": value}
        if value in names or (assistant and P.FUNCTION_NAME_RE.match(value)):
            return {"mode": "forced", "function_name": value}
        typo = P.close_to(value, (*TOOL_MODES, *builtins, *names))
        hint = f"; did you mean {typo!r}?" if typo else ""
        raise _fail(
            "tool_config", f"{value!r} is neither 'auto', 'none', 'any', a tool in tools= nor a function name{hint}"
        )
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray, Mapping)):
        value = {"mode": "any", "functions_names_any": list(value)}
    config = P.plain(value, "tool_config")
    P.unknown_fields(config, TOOL_CONFIG_KEYS, "tool_config.")
    mode = config["mode"] = P.open_value(config.get("mode"), "tool_config.mode", TOOL_MODES)
    if mode == "forced":
        target = config.get("function_name") or config.get("tool_name")
        if not isinstance(target, str):
            raise _fail("tool_config", "forced mode needs tool_name (a built-in) or function_name")
        if "function_name" in config and target not in names and not assistant:
            raise _fail("tool_config.function_name", f"{target!r} is not among the functions given")
    allowed = config.get("functions_names_any")
    if allowed is not None:
        if mode != "any":
            raise _fail("tool_config.functions_names_any", f"applies to mode 'any' only (mode is {mode!r})")
        allowed = config["functions_names_any"] = P.strings(allowed, "tool_config.functions_names_any")
        for i, name in enumerate(allowed):
            if name not in names and not assistant:
                raise _fail(f"tool_config.functions_names_any[{i}]", f"{name!r} is not among the functions given")
    if mode == "any" and not names and not assistant:
        raise _fail(
            "tool_config", "mode 'any' makes the model call one of the functions: give functions= (or a functions tool)"
        )
    return config


def _reasoning(value: Any) -> dict[str, Any]:
    """``"high"`` (an effort) or ``{"effort"?, "max_tokens"?}``; efforts gigapy does not know are sent."""
    if isinstance(value, str):
        return {"effort": P.open_value(value, "reasoning.effort", P.REASONING_EFFORTS)}
    config = P.plain(value, "reasoning")
    P.unknown_fields(config, REASONING_KEYS, "reasoning.")
    if config.get("effort") is not None:
        config["effort"] = P.open_value(config["effort"], "reasoning.effort", P.REASONING_EFFORTS)
    if config.get("max_tokens") is not None:
        config["max_tokens"] = P.number(
            config["max_tokens"], "reasoning.max_tokens", low=0, low_open=True, integer=True
        )
    if not {k: v for k, v in config.items() if v is not None}:
        raise _fail("reasoning", "give an effort ('low', 'medium', 'high') and/or max_tokens")
    return config


def chat_body_v2(
    params: Mapping[str, Any],
    *,
    default_model: str,
    profanity_check: bool | None,
    flags: Sequence[str] | None,
    schema_dialect_default: str = "reduced",
    options: Iterable[str] = (),
) -> dict[str, Any]:
    """The v2 body from keyword arguments (see ``client.v2.completion``); ``options`` as in v1."""
    passed = P.unknown_fields(params, V2_FIELDS | P.LOCAL_FIELDS, misplaced=MISPLACED_V2, near=options)
    if params.get("messages") is None:
        raise _fail("messages", "required: a prompt string or a list of messages")
    dialect = P.schema_dialect(params.get("schema_dialect") or schema_dialect_default)
    model = params.get("model")
    assistant_id = params.get("assistant_id")
    storage = params.get("storage")
    if storage is not None and storage is not False:
        storage = {} if storage is True else P.plain(storage, "storage")
    thread_id = storage.get("thread_id") if isinstance(storage, dict) else None
    body: dict[str, Any] = {}
    if model is not None or (assistant_id is None and not thread_id):  # as the SDK: the assistant/thread decides
        body["model"] = P.text(default_model if model is None else model, "model")
    body["messages"] = messages_v2(params["messages"])
    options = dict(P.plain(params["model_options"], "model_options")) if params.get("model_options") else {}
    P.unknown_fields(options, MODEL_OPTIONS, "model_options.")
    for name in MODEL_OPTIONS:
        if params.get(name) is not None:
            options[name] = params[name]
    aliased = {key: params[alias] for alias, key in REASONING_ALIASES.items() if params.get(alias) is not None}
    if aliased:
        current = options.get("reasoning")
        base = {"effort": current} if isinstance(current, str) else P.plain(current, "reasoning") if current else {}
        options["reasoning"] = {**base, **aliased}
    for name, limits in P.NUMERIC.items():
        if name in options and options[name] is not None and name in MODEL_OPTIONS:
            options[name] = P.number(options[name], name, **limits)
    if options.get("response_format") is not None:
        options["response_format"] = P.response_format(options["response_format"])
    if options.get("reasoning") is not None:
        options["reasoning"] = _reasoning(options["reasoning"])
    for flag in ("parallel_tool_calls", "unnormalized_history"):
        if options.get(flag) is not None and not isinstance(options[flag], bool):
            raise _fail(flag, f"expected True or False, got {options[flag]!r}")
    if options:
        body["model_options"] = options
    tool_list, builtins, names = tools(params.get("tools"), params.get("functions"), dialect)
    if tool_list:
        body["tools"] = tool_list
    if params.get("tool_config") is not None:
        body["tool_config"] = tool_config(params["tool_config"], builtins, names, assistant=assistant_id is not None)
    if storage is not None and storage is not False:
        body["storage"] = storage
    for name in ("ranker_options", "filter_config", "user_info"):
        value = params.get(name)
        if value is not None:
            body[name] = P.plain(value, name)
    disable = params.get("disable_filter")
    if disable is None and profanity_check is not None:
        disable = not profanity_check
    if disable is not None:
        if not isinstance(disable, bool):
            raise _fail("disable_filter", f"expected True or False, got {disable!r}")
        body["disable_filter"] = disable
    chosen = params.get("flags", flags)
    if chosen is not None:
        body["flags"] = P.strings(chosen, "flags", min_items=0)
    if assistant_id is not None:
        body["assistant_id"] = P.text(assistant_id, "assistant_id")
    for name in passed:
        body[name] = params[name]
    return body
