"""OpenAI Responses API (``POST /v1/responses``) <-> GigaChat v1/v2.

:func:`responses_request` gives a :class:`ResponsesPlan`. With ``previous_response_id``
the conversation so far must come from a store the caller keeps (the translation holds
no state): load ``plan.previous_response_id`` from it and pass the stored items to
:meth:`ResponsesPlan.finish` (no store configured: the request is refused, naming the
parameter). After the answer, :meth:`ResponsesPlan.conversation` gives the items to save
under the new response id. :class:`MemoryResponseStore` is a bounded in-memory store.

:func:`responses_response` renders the answer as a ``response`` object;
:class:`ResponsesStream` emits the streaming events openai-agents and coding assistants
read: ``response.created``, ``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, ``response.output_text.delta``/``.done``,
``response.content_part.done``, ``response.function_call_arguments.delta``/``.done``,
``response.output_item.done``, then ``response.completed`` (``response.incomplete`` when
the answer was cut), each with its ``sequence_number``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    decode,
)
from ._common import (
    TranslateContext,
    UnsupportedParameterError,
    bad_value,
    boolean,
    fail,
    finite,
    items,
    json_text,
    mapping,
    number,
    parse_arguments,
    result_json,
    session_id,
    string,
    unsupported,
)
from ._options import DEFAULT_OPTIONS, TranslateOptions
from ._request import Call, FileRef, GigaChatCall, Msg, Plan, Request, effort, function, json_schema_format, tool_choice
from ._uploads import from_url

RESPONSES_PARAMETERS: dict[str, tuple[str, str]] = {
    "input": ("mapped", "a string, or message / function_call / function_call_output items; reasoning items dropped"),
    "instructions": ("mapped", "the system message"),
    "model": ("mapped", "GigaChat model name (aliases from the options)"),
    "tools": ("mapped", "function tools; web_search / web_search_preview -> GigaChat v2 web_search; others refused"),
    "tool_choice": ("mapped", "auto, none, required (as in Chat Completions), a named function"),
    "parallel_tool_calls": ("mapped", "as in Chat Completions"),
    "text": ("mapped", "format: json_schema (strict kept), json_object, text; verbosity: medium only"),
    "max_output_tokens": ("mapped", "max_tokens"),
    "temperature": ("mapped", "0 becomes 0.001"),
    "top_p": ("mapped", "as is"),
    "reasoning": ("mapped", "effort as in Chat Completions; summary: no effect (no summaries are made)"),
    "stream": ("mapped", "the streaming events listed in the module docstring"),
    "previous_response_id": ("mapped", "the caller's response store; refused without one"),
    "store": ("mapped", "true: the caller stores the conversation when it has a store"),
    "metadata": ("mapped", "echoed on the response"),
    "user": ("mapped", "X-Session-ID header when prompt_cache_key is not given (hashed likewise)"),
    "prompt_cache_key": ("mapped", "X-Session-ID header (hashed unless a plain ASCII token)"),
    "include": ("no effect", "no extra output fields are produced (no encrypted reasoning)"),
    "stream_options": ("no effect", "include_obfuscation: no padding is sent"),
    "safety_identifier": ("no effect", "GigaChat has no abuse-monitoring id"),
    "prompt_cache_options": ("no effect", "GigaChat caches prompt prefixes on its own"),
    "prompt_cache_retention": ("no effect", "GigaChat's cache lifetime is its own"),
    "service_tier": ("no effect", "auto/default only; other tiers refused"),
    "truncation": ("refused", "auto (GigaChat does not drop old items to fit); disabled accepted"),
    "background": ("refused", "true"),
    "background_options": ("refused", "no background responses"),
    "conversation": ("refused", "no conversations API; use previous_response_id"),
    "prompt": ("refused", "no stored prompts"),
    "max_tool_calls": ("refused", "no limit on built-in tool calls"),
    "top_logprobs": ("refused", "non-zero"),
    "context_management": ("refused", "no server-side compaction"),
    "moderation": ("refused", "no moderation models"),
    "access_programs": ("refused", "no access programs"),
    "image": ("refused", "no image options"),
}


class ResponseStore(Protocol):
    """Where a caller keeps conversations for ``previous_response_id`` (any backend; the caller does the I/O)."""

    def load(self, response_id: str) -> list[dict[str, Any]] | None:
        """The items stored under ``response_id``, or None."""

    def save(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """Store the items of a conversation under ``response_id``."""


class MemoryResponseStore:
    """A bounded in-memory :class:`ResponseStore` (oldest entries go first)."""

    def __init__(self, max_entries: int = 1000) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def load(self, response_id: str) -> list[dict[str, Any]] | None:
        """The stored items (a copy), or None."""
        found = self._items.get(response_id)
        if found is None:
            return None
        self._items.move_to_end(response_id)
        return copy.deepcopy(found)

    def save(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """Store a copy of the items."""
        self._items[response_id] = copy.deepcopy(items)
        self._items.move_to_end(response_id)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)


@dataclass
class ResponsesPlan:
    """A translated Responses request: give it the stored conversation if it continues one, then finish."""

    body: dict[str, Any]
    options: TranslateOptions
    input_items: list[dict[str, Any]]
    previous_response_id: str | None = None
    _history: list[dict[str, Any]] | None = field(default=None, repr=False)
    _plan: Plan | None = field(default=None, repr=False)

    def with_previous(self, stored: list[dict[str, Any]] | None) -> ResponsesPlan:
        """Prepend the items stored for ``previous_response_id`` (None: the store has no such response)."""
        if self.previous_response_id is None:
            return self
        if stored is None:
            raise UnsupportedParameterError(
                "previous_response_id",
                f"no stored response {self.previous_response_id!r}",
                code="previous_response_not_found",
            )
        self._history = list(stored)
        self._plan = None
        return self

    @property
    def plan(self) -> Plan:
        """The neutral plan."""
        if self.previous_response_id is not None and self._history is None:
            raise unsupported(
                "previous_response_id",
                "this bridge keeps no responses unless it is given a response "
                "store; send the whole conversation in input instead",
            )
        if self._plan is None:
            self._plan = _build(self.body, self.options, (self._history or []) + self.input_items)
        return self._plan

    @property
    def uploads(self) -> tuple[Any, ...]:
        """The files to upload first."""
        return self.plan.uploads

    def finish(self, file_ids: Mapping[str, str] | None = None) -> GigaChatCall:
        """The GigaChat call."""
        return self.plan.finish(file_ids)

    def conversation(self, response: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The items to store under ``response["id"]``: the input so far plus the response's output."""
        output = [_as_input(item) for item in response.get("output") or () if isinstance(item, Mapping)]
        return [*(self._history or []), *self.input_items, *[o for o in output if o is not None]]


def _as_input(item: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = item.get("type")
    if kind == "message":
        return {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": p.get("text", "")}
                for p in item.get("content") or ()
                if isinstance(p, Mapping) and p.get("type") == "output_text"
            ],
        }
    if kind == "function_call":
        return {
            "type": "function_call",
            "call_id": item.get("call_id"),
            "name": item.get("name"),
            "arguments": item.get("arguments"),
        }
    return None


def _zero(value: Any) -> bool:
    return value is None or value == 0 or value is False or value == {}


def responses_request(body: Mapping[str, Any], options: TranslateOptions = DEFAULT_OPTIONS) -> ResponsesPlan:
    """A Responses request body as a plan (see the module docstring)."""
    body = mapping(body, "body")
    finite(body, "")
    unknown = [k for k in body if k not in RESPONSES_PARAMETERS and k != "stream"]
    if unknown:
        raise unsupported(unknown[0], "unknown parameter")
    for name in (
        "background",
        "background_options",
        "conversation",
        "prompt",
        "max_tool_calls",
        "top_logprobs",
        "context_management",
        "moderation",
        "access_programs",
        "image",
    ):
        if not _zero(body.get(name)):
            raise unsupported(name, RESPONSES_PARAMETERS[name][1])
    if body.get("truncation") not in (None, "disabled"):
        raise unsupported("truncation", "GigaChat does not drop old input items to fit the context")
    if body.get("service_tier") not in (None, "auto", "default"):
        raise unsupported("service_tier", "GigaChat has one service tier")
    raw = body.get("input")
    if raw is None:
        raise fail("input", "required")
    if isinstance(raw, str):
        input_items: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": raw}]
    else:
        input_items = [dict(mapping(item, f"input[{i}]")) for i, item in enumerate(items(raw, "input"))]
    previous = body.get("previous_response_id")
    plan = ResponsesPlan(
        dict(body),
        options,
        input_items,
        string(previous, "previous_response_id", empty=False) if previous is not None else None,
    )
    _build(body, options, input_items, continued=plan.previous_response_id is not None)  # every check, now
    return plan


def _build(
    body: Mapping[str, Any], options: TranslateOptions, input_items: list[dict[str, Any]], continued: bool = False
) -> Plan:
    model = string(body.get("model"), "model", empty=False)
    req = Request(model=options.model(model), api=options.api)
    req.echo = {
        k: body.get(k)
        for k in (
            "instructions",
            "previous_response_id",
            "store",
            "user",
            "metadata",
            "tools",
            "tool_choice",
            "text",
            "parallel_tool_calls",
            "reasoning",
        )
    }
    _tools(req, body, options)
    instructions = body.get("instructions")
    if instructions is not None:
        req.messages.append(Msg("system", "instructions", string(instructions, "instructions")))
    _items(req, input_items)
    if not continued and not any(m.role != "system" for m in req.messages):
        raise fail("input", "must hold at least one message")
    if body.get("temperature") is not None:
        degree = number(body["temperature"], "temperature", low=0, high=2)
        req.temperature = degree if degree > 0 else 0.001
    if body.get("top_p") is not None:
        req.top_p = number(body["top_p"], "top_p", low=0, high=1)
    if body.get("max_output_tokens") is not None:
        req.max_tokens = int(number(body["max_output_tokens"], "max_output_tokens", low=1, integer=True))
    reasoning = body.get("reasoning")
    if reasoning is not None:
        reasoning = mapping(reasoning, "reasoning")
        req.reasoning_effort = effort(reasoning.get("effort"), "reasoning.effort")
    text = body.get("text")
    if text is not None:
        text = mapping(text, "text")
        if text.get("verbosity") not in (None, "medium"):
            raise unsupported("text.verbosity", "no verbosity control")
        fmt = text.get("format")
        if fmt is not None:
            fmt = mapping(fmt, "text.format")
            kind = fmt.get("type")
            if kind == "json_schema":
                req.response_format = json_schema_format(fmt.get("schema"), fmt.get("strict"), "text.format.schema")
            elif kind == "json_object":
                req.response_format = {"type": "json_schema", "schema": {"type": "object"}}
            elif kind != "text":
                raise bad_value(
                    "text.format.type", f"unknown format {kind!r}; expected text, json_schema or json_object"
                )
    if body.get("stream") is not None:
        req.stream = boolean(body["stream"], "stream")
    session = body.get("prompt_cache_key") or body.get("user")
    if session is not None:
        req.headers["X-Session-ID"] = session_id(
            string(session, "prompt_cache_key" if body.get("prompt_cache_key") else "user", empty=False)
        )
    return Plan(req)


def _tools(req: Request, body: Mapping[str, Any], options: TranslateOptions) -> None:
    for i, tool in enumerate(items(body.get("tools") or [], "tools")):
        tool = mapping(tool, f"tools[{i}]")
        kind = tool.get("type")
        if kind == "function":
            if tool.get("strict"):
                req.notes.add("strict function schemas are not enforced by GigaChat")
            req.functions.append(
                function(tool.get("name"), tool.get("description"), tool.get("parameters"), f"tools[{i}]", req.notes)
            )
        elif kind in ("web_search", "web_search_preview"):
            if "web_search" not in req.builtins:
                req.builtins.append("web_search")
        else:
            raise unsupported(f"tools[{i}].type", f"{kind!r} tools (GigaChat calls functions and its web search)")
    names = [fn.name for fn in req.functions]
    if len(set(names)) != len(names):
        raise fail("tools", "two tools have the same name")
    if body.get("parallel_tool_calls") is not None:
        req.parallel_tool_calls = boolean(body["parallel_tool_calls"], "parallel_tool_calls")
    choice = body.get("tool_choice")
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad_value("tool_choice", f"expected auto, none, required or a named tool, got {choice!r}")
        tool_choice(req, choice, None, "tool_choice", options.strict_tool_choice)
        return
    choice = mapping(choice, "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        tool_choice(
            req,
            "forced",
            string(choice.get("name"), "tool_choice.name"),
            "tool_choice.name",
            options.strict_tool_choice,
        )
    elif kind in ("web_search", "web_search_preview"):
        tool_choice(req, "forced", "web_search", "tool_choice.type", options.strict_tool_choice)
    else:
        raise unsupported("tool_choice.type", f"{kind!r} tool choices")


def _content_text(content: Any, where: str, allowed: Sequence[str]) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(items(content, where)):
        part = mapping(part, f"{where}[{j}]")
        if part.get("type") not in allowed:
            raise bad_value(f"{where}[{j}].type", f"{part.get('type')!r} parts are not allowed here")
        texts.append(string(part.get("text") if "text" in part else part.get("refusal"), f"{where}[{j}].text"))
    return "\n".join(texts)


def _user(req: Request, role: str, content: Any, where: str) -> Msg:
    msg = Msg("system" if role in ("system", "developer") else "user", where)
    if isinstance(content, str):
        msg.text = content
        return msg
    texts = []
    for j, part in enumerate(items(content, where)):
        at = f"{where}[{j}]"
        part = mapping(part, at)
        kind = part.get("type")
        if kind == "input_text":
            texts.append(string(part.get("text"), f"{at}.text"))
        elif kind in ("input_image", "input_file") and msg.role == "user":
            if part.get("file_id"):
                msg.files.append(FileRef(f"{at}.file_id", file_id=string(part["file_id"], f"{at}.file_id")))
                continue
            key = "image_url" if kind == "input_image" else ("file_data" if part.get("file_data") else "file_url")
            url = string(part.get(key), f"{at}.{key}", empty=False)
            if key == "file_data" and not url.startswith("data:"):
                url = "data:application/octet-stream;base64," + url
            name = part.get("filename") if isinstance(part.get("filename"), str) else None
            upload = from_url(url, f"{at}.{key}", images_only=kind == "input_image", filename=name)
            req.uploads.append(upload)
            msg.files.append(FileRef(f"{at}.{key}", upload_key=upload.key))
        else:
            raise bad_value(f"{at}.type", f"{kind!r} parts are not allowed in a {role} message")
    msg.text = "\n".join(texts)
    return msg


def _items(req: Request, raw: list[dict[str, Any]]) -> None:
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        last = req.messages[-1] if req.messages else None
        if kind == "message":
            role = item.get("role")
            if role == "assistant":
                text = _content_text(item.get("content"), f"{where}.content", ("output_text", "refusal", "input_text"))
                req.messages.append(Msg("assistant", where, text))
            elif role in ("user", "system", "developer"):
                if item.get("content") is None:
                    raise fail(f"{where}.content", "required")
                req.messages.append(_user(req, role, item["content"], f"{where}.content"))
            else:
                raise bad_value(f"{where}.role", f"unknown role {role!r}")
        elif kind == "function_call":
            call = Call(
                string(item.get("call_id"), f"{where}.call_id", empty=False),
                string(item.get("name"), f"{where}.name", empty=False),
                parse_arguments(item.get("arguments"), f"{where}.arguments"),
            )
            if last is not None and last.role == "assistant":
                last.calls.append(call)  # one assistant turn: its text and its (parallel) calls
            else:
                req.messages.append(Msg("assistant", where, calls=[call]))
        elif kind == "function_call_output":
            output = item.get("output")
            text = _content_text(output, f"{where}.output", ("input_text", "output_text"))
            req.messages.append(
                Msg(
                    "tool",
                    where,
                    call_id=string(item.get("call_id"), f"{where}.call_id", empty=False),
                    result=result_json(text),
                )
            )
        elif kind == "reasoning":
            req.notes.add("reasoning items in the input were dropped (GigaChat takes no earlier reasoning)")
        elif kind == "item_reference":
            raise unsupported(f"{where}.type", "item references (send the items, or use previous_response_id)")
        else:
            raise unsupported(f"{where}.type", f"{kind!r} input items")


# --------------------------------------------------------------------------------- answers


def _usage(completion: Completion) -> dict[str, Any] | None:
    usage = completion.usage
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt,
        "input_tokens_details": {"cached_tokens": usage.cached or 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total or usage.prompt + usage.completion,
    }


def _status(choice: Choice) -> tuple[str, dict[str, str] | None]:
    kind = choice.kind
    if kind == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if kind == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


class _Ids:
    def __init__(self, ctx: TranslateContext, seed: str) -> None:
        self.ctx = ctx
        self.seed = seed

    def response(self) -> str:
        return self.ctx.ids("resp_", f"{self.seed}:response")

    def item(self, prefix: str, position: int) -> str:
        return self.ctx.ids(prefix, f"{self.seed}:item:{position}")


def _shell(call: GigaChatCall, ids: _Ids, created: int, model: str) -> dict[str, Any]:
    """The response object without output: what the request asked for, echoed."""
    body = call.request
    source = body.echo
    fmt: dict[str, Any] = {"type": "text"}
    if body.response_format is not None:
        fmt = {"type": "json_schema", "name": "output", "schema": body.response_format["schema"]}
        if "strict" in body.response_format:
            fmt["strict"] = body.response_format["strict"]
    text = dict(source["text"]) if isinstance(source.get("text"), Mapping) else {}
    text.setdefault("format", fmt)
    tools = [dict(t) for t in source.get("tools") or () if isinstance(t, Mapping)]
    return {
        "id": ids.response(),
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": source.get("instructions"),
        "max_output_tokens": body.max_tokens,
        "model": model,
        "output": [],
        "parallel_tool_calls": source.get("parallel_tool_calls") is not False,
        "previous_response_id": source.get("previous_response_id"),
        "reasoning": dict(source["reasoning"]) if isinstance(source.get("reasoning"), Mapping) else None,
        "store": source.get("store") is not False,
        "temperature": body.temperature,
        "text": text,
        "tool_choice": source.get("tool_choice") or "auto",
        "tools": tools,
        "top_p": body.top_p,
        "truncation": "disabled",
        "usage": None,
        "user": source.get("user"),
        "metadata": source.get("metadata") or {},
    }


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        if text or status == "completed"
        else [],
    }


def _call_item(item_id: str, call: Call, status: str, arguments: str | None = None) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": json_text(call.arguments) if arguments is None else arguments,
        "status": status,
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": "completed",
    }


def render_response(call: GigaChatCall, completion: Completion, ctx: TranslateContext) -> dict[str, Any]:
    """A neutral completion as a Responses ``response`` object."""
    ids = _Ids(ctx, completion.seed)
    out = _shell(call, ids, completion.created, completion.model)
    choice = completion.choices[0] if completion.choices else Choice(0)
    items_out: list[dict[str, Any]] = []
    position = 0
    if choice.reasoning:
        items_out.append(_reasoning_item(ids.item("rs_", position), choice.reasoning))
        position += 1
    if choice.text or not choice.calls:
        items_out.append(_message_item(ids.item("msg_", position), choice.text, "completed"))
        position += 1
    for call_ in choice.calls:
        items_out.append(_call_item(ids.item("fc_", position), call_, "completed"))
        position += 1
    status, details = _status(choice)
    out.update(
        output=items_out,
        status=status,
        incomplete_details=details,
        usage=_usage(completion),
        completed_at=completion.created if status == "completed" else None,
    )
    return out


def responses_response(call: GigaChatCall, body: Mapping[str, Any], ctx: TranslateContext) -> dict[str, Any]:
    """GigaChat's whole answer as a Responses ``response`` object."""
    return render_response(call, decode(call.api, mapping(body, "response"), ctx, call.request.stop), ctx)


class ResponsesStream:
    """GigaChat stream payloads in, Responses streaming events out (see the module docstring)."""

    def __init__(self, call: GigaChatCall, ctx: TranslateContext) -> None:
        self.call = call
        self.ctx = ctx
        self.decoder = StreamDecoder(call.api, ctx, call.request.stop)
        self._seq = 0
        self._ids: _Ids | None = None
        self._shell: dict[str, Any] = {}
        self._items: list[dict[str, Any]] = []
        self._text_item: int | None = None
        self._reasoning_item: int | None = None
        self._done = False

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def feed(self, data: Mapping[str, Any], event: str | None = None) -> list[dict[str, Any]]:
        """One decoded GigaChat payload -> events to send."""
        return self._render(self.decoder.feed(data, event))

    def close(self) -> list[dict[str, Any]]:
        """The GigaChat stream ended -> the closing events."""
        return self._render(self.decoder.close())

    def _ensure_ids(self) -> _Ids:
        assert self._ids is not None
        return self._ids

    def _close_text(self, out: list[dict[str, Any]]) -> None:
        if self._text_item is None:
            return
        index = self._text_item
        item = self._items[index]
        text = item["content"][0]["text"]
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        out.append(
            self._event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            )
        )
        out.append(
            self._event(
                "response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part
            )
        )
        item["status"] = "completed"
        out.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))
        self._text_item = None

    def _open_text(self, out: list[dict[str, Any]]) -> dict[str, Any]:
        if self._text_item is None:
            ids = self._ensure_ids()
            index = len(self._items)
            item = _message_item(ids.item("msg_", index), "", "in_progress")
            self._items.append(item)
            out.append(self._event("response.output_item.added", output_index=index, item=copy.deepcopy(item)))
            item["content"] = [{"type": "output_text", "text": "", "annotations": [], "logprobs": []}]
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=copy.deepcopy(item["content"][0]),
                )
            )
            self._text_item = index
        return self._items[self._text_item]

    def _render(self, events: list[Event]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, Started):
                self._ids = _Ids(self.ctx, event.seed)
                self._shell = _shell(self.call, self._ids, event.created, event.model)
                out.append(self._event("response.created", response=copy.deepcopy(self._shell)))
                out.append(self._event("response.in_progress", response=copy.deepcopy(self._shell)))
            elif isinstance(event, ReasoningDelta):
                if self._reasoning_item is None:
                    index = len(self._items)
                    item = _reasoning_item(self._ensure_ids().item("rs_", index), "")
                    item["status"] = "in_progress"
                    self._items.append(item)
                    self._reasoning_item = index
                    out.append(self._event("response.output_item.added", output_index=index, item=copy.deepcopy(item)))
                item = self._items[self._reasoning_item]
                item["content"][0]["text"] += event.text
                out.append(
                    self._event(
                        "response.reasoning_text.delta",
                        item_id=item["id"],
                        output_index=self._reasoning_item,
                        content_index=0,
                        delta=event.text,
                    )
                )
            elif isinstance(event, TextDelta):
                self._close_reasoning(out)
                item = self._open_text(out)
                item["content"][0]["text"] += event.text
                out.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=self._text_item,
                        content_index=0,
                        delta=event.text,
                        logprobs=[],
                    )
                )
            elif isinstance(event, CallDone):
                self._close_reasoning(out)
                self._close_text(out)
                self._call(event.call, out)
            elif isinstance(event, Finished) and not self._done:
                self._finish(event.choice, out)
        return out

    def _close_reasoning(self, out: list[dict[str, Any]]) -> None:
        if self._reasoning_item is None:
            return
        index = self._reasoning_item
        item = self._items[index]
        out.append(
            self._event(
                "response.reasoning_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=item["content"][0]["text"],
            )
        )
        item["status"] = "completed"
        out.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))
        self._reasoning_item = None

    def _call(self, call: Call, out: list[dict[str, Any]]) -> None:
        index = len(self._items)
        item = _call_item(self._ensure_ids().item("fc_", index), call, "in_progress", "")
        self._items.append(item)
        out.append(self._event("response.output_item.added", output_index=index, item=copy.deepcopy(item)))
        arguments = json_text(call.arguments)
        out.append(
            self._event(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=arguments
            )
        )
        out.append(
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=call.name,
                arguments=arguments,
            )
        )
        item.update(arguments=arguments, status="completed")
        out.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))

    def _finish(self, choice: Choice, out: list[dict[str, Any]]) -> None:
        self._done = True
        self._close_reasoning(out)
        if not self._items:
            self._open_text(out)
        self._close_text(out)
        status, details = _status(choice)
        final = dict(self._shell)
        final.update(
            output=copy.deepcopy(self._items),
            status=status,
            incomplete_details=details,
            usage=_usage(self.decoder.completion()),
            completed_at=final["created_at"] if status == "completed" else None,
        )
        self.response = final
        out.append(
            self._event("response.completed" if status == "completed" else "response.incomplete", response=final)
        )
