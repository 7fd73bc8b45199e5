"""v2 request bodies (``POST /v2/chat/completions``), built and checked before sending.

The wire wants every message's ``content`` as a list of parts and the sampling settings
under ``model_options``. For convenience this accepts plain strings as content, sampling
fields at the top level, ``functions=`` for a functions tool, built-in tool names as
strings, a tool or function name as ``tool_config`` and a pydantic model as
``response_format``; it turns them into the wire form. Role ``tool`` becomes ``function``
(the live service rejects ``tool``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from . import _params as P
from .errors import InvalidArgumentError

ROLES = ("system", "user", "assistant", "function")
BUILTIN_TOOLS = ("web_search", "image_generate", "url_content_extraction", "code_interpreter", "model_3d_generate")
PART_KEYS = frozenset({"text", "files", "function_call", "function_result", "inline_data", "tool_execution",
                       "logprobs"})
MODEL_OPTIONS = ("temperature", "top_p", "max_tokens", "repetition_penalty", "update_interval",
                 "response_format", "reasoning", "top_logprobs", "unnormalized_history", "preset")
V2_FIELDS = frozenset({
    "model", "messages", "model_options", "tools", "functions", "tool_config", "storage", "ranker_options",
    "filter_config", "user_info", "disable_filter", "flags", "assistant_id", *MODEL_OPTIONS,
})


def _fail(field: str, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(field, reason)


def part(value: Any, field: str) -> dict[str, Any]:
    """One content part: a string is text; dicts are checked key by key."""
    if isinstance(value, str):
        return {"text": value}
    raw = P._plain(value, field)
    unknown = set(raw) - PART_KEYS
    if unknown:
        raise _fail(field, f"unknown content part key {sorted(unknown)[0]!r}; parts hold text, files, "
                    "function_call or function_result")
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
    result = P._plain(value, field)
    if not isinstance(result.get("name"), str) or not result["name"]:
        raise _fail(f"{field}.name", "required: the name of the function that produced the result")
    body = result.get("result")
    if isinstance(body, str):
        try:
            json.loads(body, parse_constant=P._not_json)  # NaN and Infinity are not JSON either
        except ValueError:
            raise _fail(f"{field}.result", "must be JSON (the service rejects anything else); wrap plain text, "
                        "e.g. {\"result\": text}") from None
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
    for i, raw in enumerate(value):
        where = f"{field}[{i}]"
        msg = P._plain(raw, where)
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
        if any("function_result" in p for p in parts):
            if role != "function":
                raise _fail(f"{where}.role", "a function_result goes in a 'function' message")
            if not seen_call:
                raise _fail(where, "a function result must follow an assistant message with a function_call")
        out.append(msg)
    return out


def tools(value: Any, functions: Any) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """The ``tools`` list; returns (tools, builtin names, function names)."""
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
            tool = P._plain(entry, where)
            if len(tool) != 1:
                raise _fail(where, "a tool is one key: a built-in name or 'functions'")
            (name, spec), = tool.items()
            if name == "functions":
                specs = P._plain(spec, f"{where}.functions").get("specifications")
                checked = _function_list(specs, f"{where}.functions.specifications")
                names |= {fn["name"] for fn in checked}
                out.append({"functions": {"specifications": checked}})
            elif name in BUILTIN_TOOLS:
                builtins.add(name)
                out.append({name: P._plain(spec, f"{where}.{name}") if spec else {}})
            else:
                raise _fail(where, f"unknown tool {name!r}; built-ins are {', '.join(BUILTIN_TOOLS)}, "
                            "custom functions go under 'functions'")
    if functions is not None:
        checked = _function_list(functions, "functions")
        names |= {fn["name"] for fn in checked}
        out.append({"functions": {"specifications": checked}})
    return out, builtins, names


def _function_list(value: Any, field: str) -> list[dict[str, Any]]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence) or not value:
        raise _fail(field, "expected a non-empty list of function definitions")
    return [P.function_def(fn, f"{field}[{i}]") for i, fn in enumerate(value)]


def tool_config(value: Any, builtins: set[str], names: set[str]) -> dict[str, Any]:
    """``auto``/``none``, a tool or function name (forced), or the wire dict."""
    if isinstance(value, str):
        if value in ("auto", "none"):
            return {"mode": value}
        if value in builtins or value in BUILTIN_TOOLS:
            return {"mode": "forced", "tool_name": value}
        if value in names:
            return {"mode": "forced", "function_name": value}
        raise _fail("tool_config", f"{value!r} is neither 'auto', 'none', a tool in tools= nor a function name")
    config = P._plain(value, "tool_config")
    mode = config.get("mode")
    if mode not in ("auto", "none", "forced"):
        raise _fail("tool_config.mode", f"expected 'auto', 'none' or 'forced', got {mode!r}")
    if mode == "forced":
        target = config.get("function_name") or config.get("tool_name")
        if not isinstance(target, str):
            raise _fail("tool_config", "forced mode needs tool_name (a built-in) or function_name")
        if "function_name" in config and target not in names:
            raise _fail("tool_config.function_name", f"{target!r} is not among the functions given")
    return config


def chat_body_v2(params: Mapping[str, Any], *, default_model: str, profanity_check: bool | None,
                 flags: Sequence[str] | None) -> dict[str, Any]:
    """The v2 body from keyword arguments (see ``client.v2.completion``)."""
    unknown = set(params) - V2_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise _fail(name, "unknown parameter; pass fields gigapy does not know with extra_body={...}")
    if params.get("messages") is None:
        raise _fail("messages", "required: a prompt string or a list of messages")
    model = params.get("model")
    body: dict[str, Any] = {
        "model": P.text(default_model if model is None else model, "model"),
        "messages": messages_v2(params["messages"]),
    }
    options = dict(P._plain(params["model_options"], "model_options")) if params.get("model_options") else {}
    for name in MODEL_OPTIONS:
        if params.get(name) is not None:
            options[name] = params[name]
    for name, limits in P._NUMERIC.items():
        if name in options and options[name] is not None and name != "n":
            options[name] = P.number(options[name], name, **limits)
    if options.get("top_logprobs") is not None:
        options["top_logprobs"] = P.number(options["top_logprobs"], "top_logprobs", low=1, high=5, integer=True)
    if options.get("response_format") is not None:
        options["response_format"] = P.response_format(options["response_format"])
    reasoning = options.get("reasoning")
    if reasoning is not None:
        effort = reasoning if isinstance(reasoning, str) else P._plain(reasoning, "reasoning").get("effort")
        if effort not in P.REASONING_EFFORTS:
            raise _fail("reasoning", f"expected an effort of {', '.join(P.REASONING_EFFORTS)}, got {effort!r}")
        options["reasoning"] = {"effort": effort}
    if options:
        body["model_options"] = options
    tool_list, builtins, names = tools(params.get("tools"), params.get("functions"))
    if tool_list:
        body["tools"] = tool_list
    if params.get("tool_config") is not None:
        body["tool_config"] = tool_config(params["tool_config"], builtins, names)
    for name in ("storage", "ranker_options", "filter_config", "user_info"):
        value = params.get(name)
        if value is not None:
            body[name] = {} if value is True else P._plain(value, name)
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
    if params.get("assistant_id") is not None:
        body["assistant_id"] = P.text(params["assistant_id"], "assistant_id")
    return body
