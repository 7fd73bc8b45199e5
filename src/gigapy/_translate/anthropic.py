"""Anthropic Messages API (``POST /v1/messages``) <-> GigaChat v1/v2.

:func:`messages_request` gives a :class:`~._request.Plan`; :func:`message_response`
renders GigaChat's answer as a ``message``; :class:`MessagesStream` emits Anthropic's
streaming events (``message_start``, ``ping``, ``content_block_start``,
``content_block_delta`` with ``text_delta`` / ``input_json_delta`` / ``thinking_delta``,
``content_block_stop``, ``message_delta`` with the stop reason and usage,
``message_stop``). Errors: :func:`~.errors.anthropic_error`.

Usage: Anthropic's ``input_tokens`` counts only uncached input, so GigaChat's cached
prompt tokens are moved to ``cache_read_input_tokens`` (assuming, as OpenAI's shape does,
that GigaChat's prompt count includes them).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ._answer import (
    CallDone,
    Choice,
    Completion,
    Event,
    Finished,
    ReasoningDelta,
    Started,
    StreamDecoder,
    TextDelta,
    Usage,
    decode,
)
from ._common import (
    TranslateContext,
    bad_value,
    boolean,
    fail,
    finite,
    items,
    json_text,
    mapping,
    number,
    result_json,
    session_id,
    string,
    unsupported,
)
from ._options import DEFAULT_OPTIONS, TranslateOptions
from ._request import Call, FileRef, GigaChatCall, Msg, Plan, Request, effort, function, json_schema_format, tool_choice
from ._uploads import PendingUpload, decode_base64, from_url, inline_upload

MESSAGES_PARAMETERS: dict[str, tuple[str, str]] = {
    "model": ("mapped", "GigaChat model name (aliases from the options)"),
    "max_tokens": ("mapped", "max_tokens (required, as Anthropic requires it)"),
    "messages": ("mapped", "user/assistant (and system) turns; text, image, document, tool_use, tool_result blocks"),
    "system": ("mapped", "the system message (a string or text blocks)"),
    "stop_sequences": ("emulated", "the text is cut at the earliest one; stop_reason stop_sequence"),
    "stream": ("mapped", "the streaming events listed in the module docstring"),
    "temperature": ("mapped", "0 becomes 0.001 (older clients still send it)"),
    "top_p": ("mapped", "as is (older clients still send it)"),
    "top_k": ("refused", "GigaChat has no top-k sampling"),
    "tools": ("mapped", "custom tools -> GigaChat functions; web_search server tools -> GigaChat v2 web_search"),
    "tool_choice": (
        "mapped",
        "auto, none, tool (forced), any (as OpenAI's required); disable_parallel_tool_use -> at most one call (v1)",
    ),
    "thinking": (
        "mapped",
        "enabled: effort by budget_tokens (< 4096 low, < 16384 medium, else high); adaptive: medium; disabled: off",
    ),
    "output_config": ("mapped", "effort -> reasoning effort; format json_schema -> GigaChat json_schema"),
    "metadata": ("mapped", "user_id -> X-Session-ID header (hashed unless a plain ASCII token)"),
    "cache_control": ("no effect", "GigaChat caches prompt prefixes on its own (block cache_control likewise)"),
    "service_tier": ("no effect", "GigaChat has one service tier"),
    "speed": ("no effect", "standard only; fast refused"),
    "container": ("refused", "no code-execution containers"),
    "diagnostics": ("refused", "no diagnostics"),
    "inference_geo": ("refused", "GigaChat runs where it runs"),
    "user_profile_id": ("refused", "no user profiles"),
    "workspace_id": ("refused", "no workspaces"),
}


def _budget_effort(thinking: Mapping[str, Any]) -> str | None:
    kind = thinking.get("type")
    if kind == "disabled":
        return None
    if kind == "adaptive":
        return "medium"
    if kind == "enabled":
        budget = number(thinking.get("budget_tokens"), "thinking.budget_tokens", low=1, integer=True)
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    raise bad_value("thinking.type", f"unknown thinking type {kind!r}")


def messages_request(body: Mapping[str, Any], options: TranslateOptions = DEFAULT_OPTIONS) -> Plan:
    """A Messages request body as a GigaChat plan; errors name the Anthropic parameter."""
    body = mapping(body, "body")
    finite(body, "")
    unknown = [k for k in body if k not in MESSAGES_PARAMETERS]
    if unknown:
        raise unsupported(unknown[0], "unknown parameter")
    for name in ("top_k", "container", "diagnostics", "inference_geo", "user_profile_id", "workspace_id"):
        if body.get(name) is not None:
            raise unsupported(name, MESSAGES_PARAMETERS[name][1])
    if body.get("speed") not in (None, "standard"):
        raise unsupported("speed", "GigaChat has one speed")
    model = string(body.get("model"), "model", empty=False)
    req = Request(model=options.model(model), api=options.api)
    if body.get("max_tokens") is None:
        raise fail("max_tokens", "required")
    req.max_tokens = int(number(body["max_tokens"], "max_tokens", low=1, integer=True))
    _tools(req, body, options)
    system = body.get("system")
    if system is not None:
        req.messages.append(Msg("system", "system", _texts(system, "system")))
    for i, raw in enumerate(items(body.get("messages"), "messages")):
        _message(req, mapping(raw, f"messages[{i}]"), f"messages[{i}]")
    if not any(m.role != "system" for m in req.messages):
        raise fail("messages", "must hold at least one message")
    if body.get("temperature") is not None:
        degree = number(body["temperature"], "temperature", low=0, high=1)
        req.temperature = degree if degree > 0 else 0.001
    if body.get("top_p") is not None:
        req.top_p = number(body["top_p"], "top_p", low=0, high=1)
    stops = body.get("stop_sequences")
    if stops is not None:
        req.stop = tuple(
            string(s, f"stop_sequences[{i}]", empty=False) for i, s in enumerate(items(stops, "stop_sequences"))
        )
    if body.get("thinking") is not None:
        req.reasoning_effort = effort(_budget_effort(mapping(body["thinking"], "thinking")), "thinking")
    config = body.get("output_config")
    if config is not None:
        config = mapping(config, "output_config")
        if config.get("effort") is not None:
            req.reasoning_effort = effort(config["effort"], "output_config.effort")
        fmt = config.get("format")
        if fmt is not None:
            fmt = mapping(fmt, "output_config.format")
            if fmt.get("type") != "json_schema":
                raise bad_value("output_config.format.type", f"unknown format {fmt.get('type')!r}")
            req.response_format = json_schema_format(fmt.get("schema"), None, "output_config.format.schema")
    metadata = body.get("metadata")
    if metadata is not None and mapping(metadata, "metadata").get("user_id") is not None:
        req.headers["X-Session-ID"] = session_id(string(metadata["user_id"], "metadata.user_id", empty=False))
    if body.get("stream") is not None:
        req.stream = boolean(body["stream"], "stream")
    req.echo["thinking"] = req.reasoning_effort is not None
    return Plan(req)


def _tools(req: Request, body: Mapping[str, Any], options: TranslateOptions) -> None:
    for i, tool in enumerate(items(body.get("tools") or [], "tools")):
        tool = mapping(tool, f"tools[{i}]")
        kind = tool.get("type")
        if kind in (None, "custom"):
            req.functions.append(
                function(tool.get("name"), tool.get("description"), tool.get("input_schema"), f"tools[{i}]", req.notes)
            )
        elif isinstance(kind, str) and kind.startswith("web_search"):
            if "web_search" not in req.builtins:
                req.builtins.append("web_search")
        else:
            raise unsupported(f"tools[{i}].type", f"{kind!r} tools (GigaChat calls custom tools and its web search)")
    names = [fn.name for fn in req.functions]
    if len(set(names)) != len(names):
        raise fail("tools", "two tools have the same name")
    choice = body.get("tool_choice")
    if choice is None:
        return
    choice = mapping(choice, "tool_choice")
    if choice.get("disable_parallel_tool_use"):
        req.parallel_tool_calls = False
    kind = choice.get("type")
    if kind in ("auto", "none"):
        tool_choice(req, kind, None, "tool_choice", options.strict_tool_choice)
    elif kind == "any":
        tool_choice(req, "required", None, "tool_choice", options.strict_tool_choice)
    elif kind == "tool":
        tool_choice(
            req,
            "forced",
            string(choice.get("name"), "tool_choice.name"),
            "tool_choice.name",
            options.strict_tool_choice,
        )
    else:
        raise bad_value("tool_choice.type", f"expected auto, any, tool or none, got {kind!r}")


def _texts(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, block in enumerate(items(content, where)):
        block = mapping(block, f"{where}[{j}]")
        if block.get("type") != "text":
            raise bad_value(f"{where}[{j}].type", f"{block.get('type')!r} blocks are not allowed here (text only)")
        texts.append(string(block.get("text"), f"{where}[{j}].text"))
    return "\n".join(texts)


def _media(req: Request, block: Mapping[str, Any], at: str, images_only: bool) -> FileRef | str:
    """An image or document block: a file to upload (or a file id), or inline text (a text document)."""
    source = mapping(block.get("source"), f"{at}.source")
    kind = source.get("type")
    upload: PendingUpload
    if kind == "base64":
        data = decode_base64(string(source.get("data"), f"{at}.source.data"), f"{at}.source.data")
        upload = inline_upload(data, source.get("media_type"), f"{at}.source.data", images_only=images_only)
    elif kind == "url":
        upload = from_url(
            string(source.get("url"), f"{at}.source.url", empty=False), f"{at}.source.url", images_only=images_only
        )
    elif kind == "file":
        return FileRef(
            f"{at}.source.file_id", file_id=string(source.get("file_id"), f"{at}.source.file_id", empty=False)
        )
    elif kind == "text" and not images_only:
        return string(source.get("data"), f"{at}.source.data")
    else:
        raise bad_value(f"{at}.source.type", f"unknown source type {kind!r}")
    req.uploads.append(upload)
    return FileRef(upload.field, upload_key=upload.key)


def _message(req: Request, msg: Mapping[str, Any], where: str) -> None:
    role = msg.get("role")
    content = msg.get("content")
    if role == "system":
        req.messages.append(Msg("system", where, _texts(content, f"{where}.content")))
        return
    if role not in ("user", "assistant"):
        raise bad_value(f"{where}.role", f"unknown role {role!r}")
    if content is None:
        raise fail(f"{where}.content", "required")
    if isinstance(content, str):
        req.messages.append(Msg(role, where, content))
        return
    turn = Msg(role, where)
    texts: list[str] = []
    for j, block in enumerate(items(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        block = mapping(block, at)
        kind = block.get("type")
        if kind == "text":
            texts.append(string(block.get("text"), f"{at}.text"))
        elif kind in ("image", "document") and role == "user":
            found = _media(req, block, at, images_only=kind == "image")
            if isinstance(found, str):
                texts.append(found)
            else:
                turn.files.append(found)
        elif kind == "tool_use" and role == "assistant":
            raw_input = block.get("input")
            turn.calls.append(
                Call(
                    string(block.get("id"), f"{at}.id", empty=False),
                    string(block.get("name"), f"{at}.name", empty=False),
                    dict(mapping(raw_input, f"{at}.input")) if raw_input is not None else {},
                )
            )
        elif kind == "tool_result" and role == "user":
            result = _texts(block.get("content") or "", f"{at}.content")
            if block.get("is_error"):
                result = json_text({"error": result})
            req.messages.append(
                Msg(
                    "tool",
                    at,
                    call_id=string(block.get("tool_use_id"), f"{at}.tool_use_id", empty=False),
                    result=result_json(result),
                )
            )
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            req.notes.add("thinking blocks in the history were dropped (GigaChat takes no earlier reasoning)")
        else:
            raise bad_value(f"{at}.type", f"{kind!r} blocks are not supported in a {role} message")
    turn.text = "\n".join(texts)
    if turn.text or turn.files or turn.calls or role == "assistant":
        req.messages.append(turn)


# --------------------------------------------------------------------------------- answers


def stop_reason(choice: Choice) -> str:
    """GigaChat's finish reason in Anthropic's terms."""
    if choice.stopped is not None:
        return "stop_sequence"
    return {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}[
        choice.kind
    ]


def _usage(usage: Usage | None) -> dict[str, Any]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    cached = usage.cached or 0
    return {
        "input_tokens": max(usage.prompt - cached, 0),
        "output_tokens": usage.completion,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def message_id(ctx: TranslateContext, seed: str) -> str:
    """The ``msg_...`` id of an answer."""
    return ctx.ids("msg_", seed)


def _blocks(choice: Choice, thinking: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if choice.reasoning and thinking:
        blocks.append({"type": "thinking", "thinking": choice.reasoning, "signature": ""})
    if choice.text or not choice.calls:
        blocks.append({"type": "text", "text": choice.text})
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in choice.calls]
    return blocks


def render_message(call: GigaChatCall, completion: Completion, ctx: TranslateContext) -> dict[str, Any]:
    """A neutral completion as an Anthropic ``message``."""
    choice = completion.choices[0] if completion.choices else Choice(0)
    return {
        "id": message_id(ctx, completion.seed),
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": _blocks(choice, bool(call.request.echo.get("thinking"))),
        "stop_reason": stop_reason(choice),
        "stop_sequence": choice.stopped,
        "usage": _usage(completion.usage),
    }


def message_response(call: GigaChatCall, body: Mapping[str, Any], ctx: TranslateContext) -> dict[str, Any]:
    """GigaChat's whole answer as an Anthropic ``message``."""
    return render_message(call, decode(call.api, mapping(body, "response"), ctx, call.request.stop), ctx)


class MessagesStream:
    """GigaChat stream payloads in, Anthropic streaming events out (see the module docstring)."""

    def __init__(self, call: GigaChatCall, ctx: TranslateContext) -> None:
        self.call = call
        self.ctx = ctx
        self.decoder = StreamDecoder(call.api, ctx, call.request.stop)
        self._thinking = bool(call.request.echo.get("thinking"))
        self._index = -1
        self._open: str | None = None
        self._done = False

    def feed(self, data: Mapping[str, Any], event: str | None = None) -> list[dict[str, Any]]:
        """One decoded GigaChat payload -> events to send."""
        return self._render(self.decoder.feed(data, event))

    def close(self) -> list[dict[str, Any]]:
        """The GigaChat stream ended -> the closing events."""
        return self._render(self.decoder.close())

    def _start_block(self, kind: str, block: dict[str, Any], out: list[dict[str, Any]]) -> None:
        self._stop_block(out)
        self._index += 1
        self._open = kind
        out.append({"type": "content_block_start", "index": self._index, "content_block": block})

    def _stop_block(self, out: list[dict[str, Any]]) -> None:
        if self._open is not None:
            out.append({"type": "content_block_stop", "index": self._index})
            self._open = None

    def _render(self, events: list[Event]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, Started):
                message: dict[str, Any] = {
                    "id": message_id(self.ctx, event.seed),
                    "type": "message",
                    "role": "assistant",
                    "model": event.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }
                out.append({"type": "message_start", "message": message})
                out.append({"type": "ping"})
            elif isinstance(event, ReasoningDelta) and self._thinking:
                if self._open != "thinking":
                    self._start_block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
                out.append(
                    {
                        "type": "content_block_delta",
                        "index": self._index,
                        "delta": {"type": "thinking_delta", "thinking": event.text},
                    }
                )
            elif isinstance(event, TextDelta):
                if self._open != "text":
                    self._start_block("text", {"type": "text", "text": ""}, out)
                out.append(
                    {
                        "type": "content_block_delta",
                        "index": self._index,
                        "delta": {"type": "text_delta", "text": event.text},
                    }
                )
            elif isinstance(event, CallDone):
                self._start_block(
                    "tool_use", {"type": "tool_use", "id": event.call.id, "name": event.call.name, "input": {}}, out
                )
                out.append(
                    {
                        "type": "content_block_delta",
                        "index": self._index,
                        "delta": {"type": "input_json_delta", "partial_json": json_text(event.call.arguments)},
                    }
                )
                self._stop_block(out)
            elif isinstance(event, Finished) and not self._done:
                self._done = True
                if self._index < 0:
                    self._start_block("text", {"type": "text", "text": ""}, out)
                self._stop_block(out)
                usage = _usage(self.decoder.completion().usage)
                out.append(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason(event.choice), "stop_sequence": event.choice.stopped},
                        "usage": copy.deepcopy(usage),
                    }
                )
                out.append({"type": "message_stop"})
        return out

    @property
    def finished(self) -> bool:
        """True once ``message_stop`` was emitted."""
        return self._done
