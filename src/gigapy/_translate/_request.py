"""The neutral request every front end (Chat Completions, Responses, Messages) builds, and
its encoding as a GigaChat v1 or v2 body.

Which GigaChat API a request goes to (:func:`choose_api`):

- **v2** (``/v2/chat/completions``) when the request gives tools (functions or the
  built-in web search): v2 returns an id with every function call and can return several
  calls in one answer (parallel tool calls), so OpenAI's ``tool_calls`` map one to one;
  always when ``tool_choice`` is ``required`` with several functions (v2's mode ``any``,
  which v1 lacks; with ``parallel_tool_calls`` false it stays on v2 with that option);
- **v1** (``/chat/completions``) otherwise, and always when ``n > 1`` (only v1 has ``n``),
  when ``parallel_tool_calls`` is false or for OpenAI's legacy ``functions`` (v1 returns at
  most one call per answer, which is what they ask for);
- a caller may force one with ``api=`` (for a host without v2); a request that needs
  both (``n > 1`` with the built-in web search) is refused, naming ``n``.

The history encodes losslessly either way: v1 has no multi-call assistant turns, so an
assistant message with k tool calls becomes k (call, result) pairs in order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..schema import reduce_schema
from ._common import Notes, bad_value, fail
from ._uploads import PendingUpload, resolve

Api = Literal["v1", "v2"]
Role = Literal["system", "user", "assistant", "tool"]
FUNCTION_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
#: Built-in tools of GigaChat v2 the front ends can ask for.
BUILTINS = ("web_search",)
#: GigaChat's reasoning efforts; other OpenAI/Anthropic efforts are mapped onto these.
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


@dataclass
class FileRef:
    """A file in a message: a GigaChat file id, or the key of a pending upload."""

    at: str
    file_id: str | None = None
    upload_key: str | None = None


@dataclass
class Call:
    """A function call: in the history, or in an answer."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Msg:
    """One neutral message. A ``tool`` message is one function result (``call_id``, ``result``)."""

    role: Role
    at: str
    text: str = ""
    files: list[FileRef] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    call_id: str | None = None
    name: str | None = None
    result: str | None = None


@dataclass
class Function:
    """A function the model may call, its parameters already in GigaChat's schema dialect."""

    name: str
    parameters: dict[str, Any]
    description: str | None = None


@dataclass
class Request:
    """Everything a front end understood, in GigaChat's terms."""

    model: str
    messages: list[Msg] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    builtins: list[str] = field(default_factory=list)
    tool_mode: Literal["auto", "none", "forced", "any"] | None = None
    forced: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    n: int = 1
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    stop: tuple[str, ...] = ()
    parallel_tool_calls: bool | None = None
    include_usage: bool = False
    legacy_functions: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    uploads: list[PendingUpload] = field(default_factory=list)
    notes: Notes = field(default_factory=Notes)
    api: Api | None = None
    echo: dict[str, Any] = field(default_factory=dict)  # request fields a front end echoes on its answer
    strict_any: bool = False  # refuse (rather than send as auto) a mode-any request that must go to v1
    any_at: str = "tool_choice"


@dataclass(frozen=True)
class GigaChatCall:
    """The translated call: which API, the JSON body, extra headers, and the request it came from.

    ``request`` is needed again to translate the answer (stop sequences, n, tools).
    """

    api: Api
    body: dict[str, Any]
    stream: bool
    headers: dict[str, str]
    notes: tuple[str, ...]
    why: str
    request: Request


def function(name: Any, description: Any, parameters: Any, where: str, notes: Notes) -> Function:
    """A checked function definition, its JSON Schema reduced to GigaChat's dialect."""
    if not isinstance(name, str) or not FUNCTION_NAME_RE.match(name):
        raise bad_value(
            f"{where}.name",
            f"{name!r} is not a function name GigaChat accepts: Latin letters, digits "
            "(not leading), '_', '-' and '.' only",
        )
    if description is not None and not isinstance(description, str):
        raise fail(f"{where}.description", "expected a string")
    if parameters is None:
        params: dict[str, Any] = {"type": "object", "properties": {}}
    elif isinstance(parameters, Mapping):
        dropped: list[str] = []
        params = reduce_schema(dict(parameters), dropped)
        if params.get("type") != "object":
            raise bad_value(f"{where}.parameters", "GigaChat takes function parameters as an object schema")
        for item in dropped:
            notes.add(f"{name}: schema {item}")
    else:
        raise fail(f"{where}.parameters", "expected a JSON Schema object")
    return Function(name, params, description or None)


def effort(value: Any, where: str) -> str | None:
    """An OpenAI/Anthropic reasoning effort as GigaChat's low/medium/high; ``none`` means off."""
    if value is None or value == "none":
        return None
    if value not in EFFORTS:
        raise bad_value(where, f"unknown reasoning effort {value!r}; expected none, {', '.join(EFFORTS)}")
    return EFFORTS[value]


def json_schema_format(schema: Any, strict: Any, where: str) -> dict[str, Any]:
    """GigaChat's ``response_format`` for a JSON Schema (``$ref``s inlined)."""
    if not isinstance(schema, Mapping) or not schema:
        raise fail(where, "json_schema needs a non-empty JSON Schema object")
    out: dict[str, Any] = {"type": "json_schema", "schema": _inline_refs(dict(schema))}
    if strict is not None:
        if not isinstance(strict, bool):
            raise fail(where.rsplit(".", 1)[0] + ".strict", "expected true or false")
        out["strict"] = strict
    return out


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def walk(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
            key = ref.rsplit("/", 1)[-1]
            if key in seen or key not in defs:
                return {"type": "object"}
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**defs[key], **rest}, seen | {key})
        return {k: walk(v, seen) for k, v in node.items() if k not in ("$defs", "definitions")}

    result: dict[str, Any] = walk(schema, frozenset())
    return result


def choose_api(req: Request) -> tuple[Api, str]:
    """v1 or v2 for this request, and why (see the module docstring)."""
    if req.api is not None:
        if req.api == "v1" and req.builtins:
            raise bad_value("tools", "the built-in web search needs GigaChat v2, but v1 was forced")
        if req.api == "v2" and req.n > 1:
            raise bad_value("n", "n > 1 needs GigaChat v1, but v2 was forced")
        return req.api, "forced by the caller"
    if req.n > 1:
        if req.builtins:
            raise bad_value("n", "n > 1 needs GigaChat v1, which has no built-in web search; ask without one of them")
        return "v1", "n > 1 (only v1 has n)"
    if req.builtins:
        return "v2", "built-in tools (v2 only)"
    if req.tool_mode == "any":
        return "v2", "tool_choice required: mode any (v2 only)"
    if req.functions and (req.parallel_tool_calls is False or req.legacy_functions):
        return "v1", "tools with parallel_tool_calls=false or the legacy functions (v1 returns at most one call)"
    if req.functions:
        return "v2", "tools (v2 returns call ids and parallel calls)"
    return "v1", "plain chat"


def encode(req: Request, file_ids: Mapping[str, str] | None = None) -> GigaChatCall:
    """The GigaChat call for a neutral request; ``file_ids`` maps upload keys to uploaded file ids."""
    api, why = choose_api(req)
    if api == "v1" and req.tool_mode == "any":
        if req.strict_any:
            raise bad_value(
                req.any_at,
                "calling one of several tools needs GigaChat v2 (mode any), "
                f"but this request goes to v1 ({why}); name one tool, or use 'auto'",
            )
        req.tool_mode = "auto"
        req.notes.add(
            f"tool_choice 'required' with several tools was sent to v1 as 'auto' ({why}; mode any is v2 only)"
        )
    _check_pairs(req.messages)
    for msg in req.messages:
        if msg.role == "user" and not msg.text and not msg.files:
            raise fail(f"{msg.at}.content" if not msg.at.endswith(".content") else msg.at, "must not be empty")
    if not any(m.role in ("user", "assistant", "tool") for m in req.messages):
        raise fail("messages", "needs a user message (GigaChat does not answer a system message alone)")
    body: dict[str, Any] = {"model": req.model}
    body["messages"] = _messages_v2(req, file_ids) if api == "v2" else _messages_v1(req, file_ids)
    options: dict[str, Any] = {}
    for name in ("temperature", "top_p", "max_tokens"):
        value = getattr(req, name)
        if value is not None:
            options[name] = value
    for name in ("repetition_penalty", "update_interval"):
        if name in req.extra:
            options[name] = req.extra[name]
    if req.response_format is not None:
        options["response_format"] = req.response_format
    if api == "v1":
        body.update(options)
        if req.n > 1:
            body["n"] = req.n
        if req.reasoning_effort:
            body["reasoning_effort"] = req.reasoning_effort
        if req.functions:
            body["functions"] = [_function_json(fn) for fn in req.functions]
        if req.tool_mode == "forced":
            body["function_call"] = {"name": req.forced}
        elif req.tool_mode is not None and req.functions:
            body["function_call"] = req.tool_mode
        if "profanity_check" in req.extra:
            body["profanity_check"] = req.extra["profanity_check"]
    else:
        if req.reasoning_effort:
            options["reasoning"] = {"effort": req.reasoning_effort}
        if options:
            body["model_options"] = options
        tools: list[dict[str, Any]] = []
        if req.functions:
            tools.append({"functions": {"specifications": [_function_json(fn) for fn in req.functions]}})
        tools.extend({name: {}} for name in req.builtins)
        if tools:
            body["tools"] = tools
        if req.tool_mode == "forced":
            key = "tool_name" if req.forced in req.builtins else "function_name"
            body["tool_config"] = {"mode": "forced", key: req.forced}
        elif req.tool_mode == "any":
            body["tool_config"] = {"mode": "any"}
            if req.parallel_tool_calls is False:
                body.setdefault("model_options", {})["parallel_tool_calls"] = False
        elif req.tool_mode is not None and tools:
            body["tool_config"] = {"mode": req.tool_mode}
        if "profanity_check" in req.extra:
            body["disable_filter"] = not req.extra["profanity_check"]
    if "flags" in req.extra:
        body["flags"] = req.extra["flags"]
    if req.stream:
        body["stream"] = True
    return GigaChatCall(api, body, req.stream, dict(req.headers), tuple(req.notes.lines), why, req)


def _function_json(fn: Function) -> dict[str, Any]:
    out: dict[str, Any] = {"name": fn.name}
    if fn.description:
        out["description"] = fn.description
    out["parameters"] = fn.parameters
    return out


def _check_pairs(messages: list[Msg]) -> None:
    """Every tool result answers an earlier call of the latest assistant turn, and every call is answered."""
    open_calls: dict[str, tuple[Call, str]] = {}
    for msg in messages:
        if msg.role == "tool":
            if msg.call_id not in open_calls:
                raise fail(
                    msg.at,
                    f"tool result for {msg.call_id!r}, which no earlier assistant message called "
                    "(or which was answered already)",
                )
            call, _ = open_calls.pop(msg.call_id)
            msg.name = msg.name or call.name
            continue
        if open_calls:
            first = next(iter(open_calls.values()))
            raise fail(first[1], f"tool call {first[0].id!r} has no tool result before the next message")
        for j, call in enumerate(msg.calls):
            if call.id in open_calls:
                raise fail(f"{msg.at}.tool_calls[{j}].id", f"duplicate tool call id {call.id!r}")
            open_calls[call.id] = (call, f"{msg.at}.tool_calls[{j}]")
    if open_calls:
        first = next(iter(open_calls.values()))
        raise fail(first[1], f"tool call {first[0].id!r} has no tool result")


def _file_ids(msg: Msg, file_ids: Mapping[str, str] | None) -> list[str]:
    out = []
    for ref in msg.files:
        if ref.file_id is not None:
            out.append(ref.file_id)
        else:
            out.append(resolve(ref.upload_key or "", file_ids, ref.at))
    return out


def _system_text(req: Request) -> tuple[str | None, list[Msg]]:
    """Leading system messages joined into one; later ones become user messages (GigaChat wants one, first)."""
    rest = list(req.messages)
    texts = []
    while rest and rest[0].role == "system":
        texts.append(rest.pop(0).text)
    out = []
    for msg in rest:
        if msg.role == "system":
            req.notes.add("a system/developer message after the first turn was sent as a user message")
            msg = Msg("user", msg.at, msg.text)
        out.append(msg)
    return ("\n\n".join(t for t in texts if t) or None), out


def _split_files(msg: Msg, ids: list[str]) -> list[tuple[str, list[str]]]:
    """(text, file ids) per wire message: GigaChat reads one file per message."""
    if len(ids) <= 1:
        return [(msg.text, ids)]
    return [(msg.text if i == 0 else "", [file_id]) for i, file_id in enumerate(ids)]


def _messages_v1(req: Request, file_ids: Mapping[str, str] | None) -> list[dict[str, Any]]:
    system, messages = _system_text(req)
    out: list[dict[str, Any]] = []
    if system is not None:
        out.append({"role": "system", "content": system})
    results = {m.call_id: m for m in messages if m.role == "tool"}
    for msg in messages:
        if msg.role == "tool":
            continue  # placed right after its call below
        if msg.role == "assistant" and msg.calls:
            if len(msg.calls) > 1:
                req.notes.add(
                    "an assistant turn with several tool calls was sent to v1 as consecutive call/result pairs"
                )
            for j, call in enumerate(msg.calls):
                out.append(
                    {
                        "role": "assistant",
                        "content": msg.text if j == 0 else "",
                        "function_call": {"name": call.name, "arguments": call.arguments},
                    }
                )
                result = results[call.id]
                out.append({"role": "function", "name": call.name, "content": result.result})
            continue
        if msg.role == "assistant":
            out.append({"role": "assistant", "content": msg.text})
            continue
        for text, ids in _split_files(msg, _file_ids(msg, file_ids)):
            item: dict[str, Any] = {"role": "user", "content": text}
            if ids:
                item["attachments"] = ids
            out.append(item)
    return out


def _messages_v2(req: Request, file_ids: Mapping[str, str] | None) -> list[dict[str, Any]]:
    system, messages = _system_text(req)
    out: list[dict[str, Any]] = []
    if system is not None:
        out.append({"role": "system", "content": [{"text": system}]})
    for msg in messages:
        if msg.role == "tool":
            out.append({"role": "function", "content": [{"function_result": {"name": msg.name, "result": msg.result}}]})
        elif msg.role == "assistant":
            parts: list[dict[str, Any]] = [{"text": msg.text}] if msg.text or not msg.calls else []
            parts += [{"function_call": {"name": c.name, "arguments": c.arguments}} for c in msg.calls]
            out.append({"role": "assistant", "content": parts})
        else:
            for text, ids in _split_files(msg, _file_ids(msg, file_ids)):
                content: list[dict[str, Any]] = [{"text": text}] if text or not ids else []
                if ids:
                    content.append({"files": [{"id": file_id} for file_id in ids]})
                out.append({"role": "user", "content": content})
    return out


def canonical(body: Mapping[str, Any]) -> str:
    """Canonical JSON of a body (a seed for ids when no request id is known)."""
    return json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)


@dataclass
class Plan:
    """A translated request waiting for its uploads: upload each of :attr:`uploads`, then :meth:`finish`."""

    request: Request

    @property
    def uploads(self) -> tuple[PendingUpload, ...]:
        """The files to upload first, one per distinct key (content hash or URL)."""
        seen: dict[str, PendingUpload] = {}
        for upload in self.request.uploads:
            seen.setdefault(upload.key, upload)
        return tuple(seen.values())

    def finish(self, file_ids: Mapping[str, str] | None = None) -> GigaChatCall:
        """The GigaChat call, with ``file_ids`` (upload key -> GigaChat file id) filled in."""
        return encode(self.request, file_ids)


def tool_choice(req: Request, mode: str, name: str | None, where: str, strict: bool) -> None:
    """Set the GigaChat tool mode for ``auto``/``none``/``required``/a named tool."""
    names = [fn.name for fn in req.functions] + req.builtins
    if mode in ("auto", "none"):
        req.tool_mode = mode  # type: ignore[assignment]
        return
    if mode == "forced":
        if name not in names:
            raise fail(where, f"names {name!r}, which is not among the tools given")
        req.tool_mode, req.forced = "forced", name
        return
    # required: call some tool
    if not names:
        raise fail(where, "'required' needs at least one tool")
    if len(names) == 1:
        req.tool_mode, req.forced = "forced", names[0]
        return
    if not req.functions:
        raise bad_value(
            where, "'required' with several built-in tools: GigaChat's mode any calls functions only; name one tool"
        )
    # GigaChat v2's mode any: the model must call one of the functions (built-ins stay optional)
    req.tool_mode, req.strict_any, req.any_at = "any", strict, where
