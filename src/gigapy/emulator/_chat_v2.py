"""v2 chat: ``POST /v2/chat/completions`` (content parts, tools, model_options, named SSE events)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import _engine as engine
from ._assistants import owned_assistant
from ._engine import CODE, IMAGE, MODEL3D, URL_EXTRACT, WEB_SEARCH, Msg, Outcome, Params, Tools
from ._http import INVALID_JSON, ApiError, dumps, encode_str, invalid_params, parse_json_object
from ._models import resolve, versioned
from ._sse import send_events
from ._thread_store import Run, Thread, answer_message, conversation, owned_thread, stored_message
from ._timing import generate_for
from ._validate import (
    function_result,
    function_specs,
    is_number,
    response_format,
    sampling,
    shape_400,
)

if TYPE_CHECKING:
    from ._pipeline import Ctx

ROLES = {"user": "user", "system": "system", "assistant": "assistant", "function": "function", "tool": "function"}
BUILTIN_TOOLS = frozenset({IMAGE, MODEL3D, WEB_SEARCH, URL_EXTRACT, CODE})
TOOL_MODES = frozenset({"auto", "none", "forced", "any"})
_OPTIONAL_OBJECTS = ("ranker_options", "filter_config", "user_info")


def _bad() -> ApiError:
    return ApiError(400, INVALID_JSON)


@dataclass(slots=True)
class V2Request:
    """A validated v2 request."""

    model: str
    msgs: list[Msg]
    tools: Tools
    params: Params
    stream: bool
    update_interval: float


def _optional_id(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _bad()
    return value or None


def _part(part: object, texts: list[str], files: list[str], slots: dict[str, list[Any]]) -> None:
    """Read one content part into the collected texts/files and the calls/results (with their ids)."""
    if not isinstance(part, dict):
        raise _bad()
    text = part.get("text")
    if text is not None:
        if not isinstance(text, str):
            raise _bad()
        texts.append(text)
    attached = part.get("files") or []
    if not isinstance(attached, list):
        raise _bad()
    for item in attached:
        file_id = item.get("id") if isinstance(item, dict) else item
        if not isinstance(file_id, str):
            raise _bad()
        files.append(file_id)
    call = part.get("function_call")
    if call is not None:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise _bad()
        if not isinstance(call.get("arguments", {}), dict):
            raise _bad()
        slots["calls"].append((_optional_id(call.get("id")), call["name"], call.get("arguments", {})))
    result = part.get("function_result")
    if result is not None:
        if not isinstance(result, dict) or not isinstance(result.get("name"), str):
            raise _bad()
        value = function_result(result["name"], result.get("result"))
        slots["results"].append((_optional_id(result.get("id")), result["name"], value))


def _message(raw: object) -> Msg:
    if not isinstance(raw, dict) or not isinstance(raw.get("role"), str) or raw["role"] not in ROLES:
        raise _bad()
    content = raw.get("content")
    if not isinstance(content, list):
        raise _bad()
    texts: list[str] = []
    files: list[str] = []
    slots: dict[str, list[Any]] = {"calls": [], "results": []}
    for part in content:
        _part(part, texts, files, slots)
    role = ROLES[raw["role"]]
    calls, results = tuple(slots["calls"]), tuple(slots["results"])
    first_call = (calls[0][1], calls[0][2]) if calls else None
    first_result = (results[0][1], results[0][2]) if results else None
    return Msg(role, "\n".join(texts), first_call, first_result, tuple(files), calls, results)


def check_pairs(msgs: list[Msg], results_need_calls: bool) -> None:
    """Every function call is answered by the function messages that follow it; a result answers a call.

    A result with an ``id`` answers the call with that id (an id no call has is 422); one without
    answers the first open call of its name (else the first open call). Parallel calls of one
    assistant message may be answered by one function message or by several.
    """
    pending: list[tuple[str | None, str]] = []
    call_ids: set[str] = set()
    seen_call = False
    no_call = "every assistant function result must have an assistant function call in history"
    no_result = "every assistant function call must have a result in history"
    for msg in msgs:
        calls = msg.calls or ([(None, *msg.call)] if msg.call else [])
        results = msg.results or ([(None, *msg.result)] if msg.result else [])
        if results:
            if not seen_call and results_need_calls:
                raise invalid_params(no_call)
            for result_id, name, _ in results:
                if result_id is not None and result_id not in call_ids and call_ids:
                    raise invalid_params(no_call)
                match = next(
                    (i for i, (cid, _) in enumerate(pending) if result_id is not None and cid == result_id), None
                )
                if match is None:
                    match = next((i for i, (cid, cname) in enumerate(pending) if cname == name), None)
                if match is None and pending:
                    match = 0
                if match is not None:
                    pending.pop(match)
            continue
        if pending:
            raise invalid_params(no_result)
        if calls:
            seen_call = True
            pending = [(cid, name) for cid, name, _ in calls]
            call_ids.update(cid for cid, _, _ in calls if cid)
    if pending:
        raise invalid_params(no_result)


def parse_messages(raw: object) -> list[Msg]:
    """Validate v2 messages: content arrays, system first, calls and results paired both ways."""
    if not isinstance(raw, list) or not raw:
        raise _bad()
    msgs = [_message(item) for item in raw]
    if any(m.role == "system" for m in msgs[1:]):
        raise invalid_params("system message must be the first message")
    check_pairs(msgs, results_need_calls=True)
    return msgs


def _tool_entry(entry: object) -> tuple[str, Any]:
    """``{"web_search": {...}}`` or the shorthand ``"web_search"`` → (tool id, options)."""
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and entry:
        name, options = next(iter(entry.items()))
        return str(name), options
    raise _bad()


def _tool_entries(raw: object) -> tuple[dict[str, dict[str, Any]], set[str]]:
    if raw is None:
        return {}, set()
    if not isinstance(raw, list):
        raise _bad()
    functions: dict[str, dict[str, Any]] = {}
    builtins: set[str] = set()
    for entry in raw:
        name, options = _tool_entry(entry)
        if name == "functions":
            specs = options.get("specifications") if isinstance(options, dict) else None
            functions.update((s["name"], s) for s in function_specs(specs or [], shape_400))
        elif name in BUILTIN_TOOLS:
            builtins.add(name)
        else:
            raise ApiError(404, f"Unknown tool {name}")
    return functions, builtins


def parse_tools(body: dict[str, Any], inherited: list[dict[str, Any]] | None = None) -> Tools:
    """``tools`` + ``tool_config`` → what the model may call (``inherited``: an assistant's functions,
    which the body's own override on a name clash)."""
    functions, builtins = _tool_entries(body.get("tools"))
    if inherited:
        functions = {spec["name"]: spec for spec in inherited} | functions
    config = body.get("tool_config")
    if config is None:
        return Tools(functions, frozenset(builtins), "auto" if functions or builtins else "none")
    if not isinstance(config, dict) or not isinstance(config.get("mode"), str) or config["mode"] not in TOOL_MODES:
        raise _bad()
    mode = config["mode"]
    allowed = config.get("functions_names_any")
    if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed)):
        raise _bad()
    if mode == "any":
        return Tools(functions, frozenset(builtins), mode, allowed=tuple(allowed) if allowed else None)
    if mode != "forced":
        return Tools(functions, frozenset(builtins), mode)
    tool, function = config.get("tool_name"), config.get("function_name")
    if isinstance(function, str):
        if function not in functions:
            raise invalid_params(f"function {function} is not described in tools")
        return Tools(functions, frozenset(builtins), mode, function)
    if isinstance(tool, str):
        if tool not in BUILTIN_TOOLS:
            raise ApiError(404, f"Unknown tool {tool}")
        if tool not in builtins:
            raise ApiError(422, f"Tool {tool} is unavailable")
        return Tools(functions, frozenset(builtins), mode, tool)
    raise invalid_params("tool_config.tool_name or tool_config.function_name is required in forced mode")


def _check_optional(body: dict[str, Any]) -> None:
    for key in _OPTIONAL_OBJECTS:
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise _bad()
    for key in ("stream", "disable_filter"):
        if body.get(key) is not None and not isinstance(body[key], bool):
            raise _bad()
    if body.get("storage") is not None and not isinstance(body["storage"], (bool, dict)):
        raise _bad()
    if body.get("flags") is not None and not isinstance(body["flags"], list):
        raise _bad()


def parse_request(
    ctx: Ctx, body: dict[str, Any], default_model: str | None = None, functions: list[dict[str, Any]] | None = None
) -> V2Request:
    """Validate a v2 chat body.

    ``default_model`` serves when the body has none (an assistant or a stored thread decides);
    ``functions`` (an assistant's) join the body's own, which win on a name clash.
    """
    if body.get("model") is None and default_model is not None:
        model = default_model
    elif "model" not in body:
        raise _bad()
    else:
        model = resolve(body.get("model"), "chat")
    _check_optional(body)
    msgs = parse_messages(body.get("messages"))
    options = body.get("model_options") or {}
    if not isinstance(options, dict):
        raise _bad()
    max_tokens, interval = sampling(options, shape_400)
    fmt = response_format(options.get("response_format", body.get("response_format")), shape_400)
    params = Params(model, max_tokens, fmt, engine.answer_tokens_hook(ctx))
    params.reasoning, params.reasoning_tokens = _reasoning(options.get("reasoning"))
    params.top_logprobs = _top_logprobs(options.get("top_logprobs"))
    tools = parse_tools(body, functions)
    _check_any(tools)
    parallel = options.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad()
    tools.parallel = parallel is not False  # v2 calls several functions unless told not to (inferred)
    return V2Request(model, msgs, tools, params, bool(body.get("stream")), interval)


def _check_any(tools: Tools) -> None:
    """Mode ``any`` calls one of the request's functions: each name in ``functions_names_any`` is one."""
    if tools.mode != "any":
        return
    if not tools.functions:
        raise invalid_params("tool_config.mode any requires functions in tools")
    for name in tools.allowed or ():
        if name not in tools.functions:
            raise invalid_params(f"function {name} is not described in tools")


def _reasoning(raw: object) -> tuple[str | None, int | None]:
    """``model_options.reasoning`` ``{effort?, max_tokens?}``: any effort string (the service adds
    efforts), a positive token budget; a budget alone reasons at ``medium`` (inferred)."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise _bad()
    effort, limit = raw.get("effort"), raw.get("max_tokens")
    if effort is not None and not isinstance(effort, str):
        raise _bad()
    if limit is not None:
        if not is_number(limit) or int(limit) != limit:
            raise _bad()
        if limit <= 0:
            raise invalid_params("reasoning.max_tokens must be in range (0, +inf)")
    if effort is None and limit is None:
        return None, None
    return effort or "medium", int(limit) if limit is not None else None


def _top_logprobs(raw: object) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, (int, float)) or isinstance(raw, bool) or int(raw) != raw:
        raise _bad()
    if not 1 <= int(raw) <= engine.MAX_TOP_LOGPROBS:
        raise invalid_params(f"top_logprobs must be in range [1, {engine.MAX_TOP_LOGPROBS}]")
    return int(raw)


@dataclass(slots=True)
class V2Storage:
    """v2 ``storage``: ``true`` / ``{}`` (a new thread) or ``{thread_id?, limit?, metadata?}``."""

    thread_id: str | None = None
    limit: int | None = None
    metadata: dict[str, Any] | None = None


def parse_storage(raw: object) -> V2Storage | None:
    """``storage`` as the official SDK sends it (``false`` / null: none); wrong shapes are 400."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return V2Storage()
    if not isinstance(raw, dict):
        raise _bad()
    thread_id, limit, metadata = raw.get("thread_id"), raw.get("limit"), raw.get("metadata")
    if thread_id is not None and not isinstance(thread_id, str):
        raise _bad()
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise _bad()
    if limit is not None and limit < 1:
        raise invalid_params("storage.limit must be in range [1, +inf)")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad()
    return V2Storage(thread_id or None, limit, metadata)


@dataclass(slots=True)
class Stored:
    """Where a v2 answer is kept: the thread and the answer's message id."""

    thread: Thread
    message_id: str


def content_parts(outcome: Outcome) -> list[dict[str, Any]]:
    """The assistant message content of a v2 answer (one part per function call, each with its id)."""
    if outcome.calls:
        return [
            {"function_call": {"id": call_id, "name": name, "arguments": args}} for call_id, name, args in outcome.calls
        ]
    parts: list[dict[str, Any]] = []
    if outcome.files:
        parts.append({"files": [{"id": f.id, "mime": f.mime, "target": f.target} for f in outcome.files]})
    if outcome.pieces or outcome.error is None:
        parts.append(_text_part(outcome, outcome.text, outcome.logprobs))
    return parts


def _text_part(outcome: Outcome, text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"text": text}
    if outcome.sources is not None:
        part["inline_data"] = {"images": [], "sources": outcome.sources}
    if logprobs is not None:
        part["logprobs"] = logprobs
    return part


def assistant_message(
    outcome: Outcome, content: list[dict[str, Any]], stored: Stored | None = None, reasoning: str | None = None
) -> dict[str, Any]:
    """``{[message_id], role, [tool_state_id], [reasoning_content], content}`` (``message_id`` for a
    stored answer; ``reasoning`` defaults to the outcome's whole reasoning)."""
    message: dict[str, Any] = {"message_id": stored.message_id} if stored is not None else {}
    message["role"] = "assistant"
    if outcome.state_id:
        message["tool_state_id"] = outcome.state_id
    text = outcome.reasoning_text if reasoning is None else reasoning
    if text:
        message["reasoning_content"] = text
    message["content"] = content
    return message


def usage_json(outcome: Outcome) -> dict[str, Any]:
    """v2 usage with input token details."""
    prompt, output = outcome.prompt, outcome.completion_tokens
    return {
        "input_tokens": prompt.tokens,
        "input_tokens_details": {"prompt_tokens": prompt.tokens, "cached_tokens": prompt.cached},
        "output_tokens": output,
        "total_tokens": prompt.tokens + output,
    }


def response_json(request: V2Request, outcome: Outcome, stored: Stored | None = None) -> dict[str, Any]:
    """The non-streaming v2 response body (``thread_id`` and ``message_id`` when stored)."""
    body: dict[str, Any] = {"model": versioned(request.model)}
    if stored is not None:
        body["thread_id"] = stored.thread.id
    body["created_at"] = int(time.time())
    body["messages"] = [assistant_message(outcome, content_parts(outcome), stored)]
    body["finish_reason"] = outcome.finish_reason
    body["usage"] = usage_json(outcome)
    if outcome.error is not None:
        body["error_details"] = outcome.error
    return body


class _Frames:
    """Named v2 SSE events (with storage, each carries ``thread_id`` and the answer's ``message_id``)."""

    def __init__(self, model: str, stored: Stored | None = None) -> None:
        self.stored = stored
        thread = f',"thread_id":{encode_str(stored.thread.id)}' if stored is not None else ""
        self.head = f'{{"model":"{versioned(model)}"{thread},"created_at":{int(time.time())}'
        self.message = f'{{"message_id":{encode_str(stored.message_id)},' if stored is not None else "{"

    def event(self, name: str, fields: dict[str, Any]) -> str:
        body = dumps(fields)[1:]
        return f"event: {name}\ndata: {self.head},{body}\n\n"

    def text(self, text: str) -> str:
        return (
            f'event: response.message.delta\ndata: {self.head},"messages":[{self.message}"role":"assistant",'
            f'"content":[{{"text":{encode_str(text)}}}]}}]}}\n\n'
        )

    def part(self, outcome: Outcome, part: dict[str, Any], reasoning: str = "") -> str:
        message = assistant_message(outcome, [part] if part else [], self.stored, reasoning)
        return self.event("response.message.delta", {"messages": [message]})


def stream_events(outcome: Outcome, frames: _Frames, size: int) -> list[str]:
    """Tool progress, reasoning deltas, message deltas, then ``response.message.done`` (no ``[DONE]``)."""
    events = []
    stored = frames.stored
    if outcome.tool:
        progress = {"tool_execution": {"name": outcome.tool, "seconds_left": 1}}
        events.append(
            frames.event(
                "response.tool.in_progress", {"messages": [assistant_message(outcome, [progress], stored, "")]}
            )
        )
        done = {"tool_execution": {"name": outcome.tool, "status": "success", "censored": False}}
        events.append(
            frames.event("response.tool.completed", {"messages": [assistant_message(outcome, [done], stored, "")]})
        )
    reasoning = outcome.reasoning  # streams before the answer
    events.extend(frames.part(outcome, {}, "".join(reasoning[i : i + size])) for i in range(0, len(reasoning), size))
    if outcome.files:
        files = content_parts(outcome)[:1]
        events.append(
            frames.event("response.message.delta", {"messages": [assistant_message(outcome, files, stored, "")]})
        )
    if not outcome.calls:
        logprobs = outcome.logprobs
        for start in range(0, len(outcome.pieces), size):
            text = "".join(outcome.pieces[start : start + size])
            last = start + size >= len(outcome.pieces)
            chunk_logprobs = logprobs[start : start + size] if logprobs is not None else None
            if chunk_logprobs is not None or (last and outcome.sources):
                part = _text_part(outcome, text, chunk_logprobs)
                if not last:
                    part.pop("inline_data", None)
                events.append(frames.part(outcome, part))
            else:
                events.append(frames.text(text))
    done_fields: dict[str, Any] = {"finish_reason": outcome.finish_reason, "usage": usage_json(outcome)}
    if outcome.calls:
        done_fields["messages"] = [assistant_message(outcome, content_parts(outcome), stored, "")]
    if outcome.error is not None:
        done_fields["error_details"] = outcome.error
    events.append(frames.event("response.message.done", done_fields))
    return events


def _assistant_id(body: dict[str, Any]) -> str | None:
    value = body.get("assistant_id")
    if value is not None and not isinstance(value, str):
        raise _bad()
    return value or None


def _answer(ctx: Ctx, body: dict[str, Any]) -> tuple[V2Request, Outcome, Stored | None]:
    """Answer with the assistant's settings and the stored thread's history; store the new turn.

    ``assistant_id`` alone: its model, instructions, files and functions answer, nothing is kept.
    ``storage``: the thread (a new one, or ``thread_id``) keeps the request's messages and the answer.
    """
    storage = parse_storage(body.get("storage"))
    assistant_id = _assistant_id(body)
    if storage is None and assistant_id is None:
        request = parse_request(ctx, body)
        (outcome,) = engine.complete(ctx, request.msgs, request.tools, request.params)
        return request, outcome, None
    owner, threads = ctx.auth.account.client_id, ctx.state.threads
    thread = owned_thread(ctx, storage.thread_id, idle=True) if storage is not None and storage.thread_id else None
    assistant = owned_assistant(ctx, assistant_id) if assistant_id is not None else None
    if assistant is None and thread is not None and thread.assistant_id is not None:
        assistant = ctx.state.assistants.get(thread.assistant_id, owner)
    default_model = thread.model if thread is not None else assistant.model if assistant is not None else None
    request = parse_request(ctx, body, default_model, assistant.functions if assistant is not None else None)
    history = [m.msg for m in thread.messages] if thread is not None else []
    msgs = conversation(history, request.msgs, assistant, storage.limit if storage else None, ctx)
    check_pairs(msgs, results_need_calls=False)
    if storage is not None and thread is None:  # made now, kept once answered: its id keys the prompt cache
        thread = threads.new(owner, request.model, assistant.id if assistant is not None else None, storage.metadata)
    cache_key = thread.id if thread is not None else None
    (outcome,) = engine.complete(ctx, msgs, request.tools, request.params, cache_key=cache_key)
    if storage is None or thread is None:
        return request, outcome, None
    inputs = [stored_message(ctx, m, request.model) for m in request.msgs]
    answer = answer_message(outcome, request.model)
    threads.register(thread)
    if storage.metadata is not None:
        thread.metadata = storage.metadata
    threads.append(thread, [*inputs, answer])
    thread.run = Run(inputs, answer, request.model)
    return request, outcome, Stored(thread, answer.id)


async def chat_completions_v2(ctx: Ctx) -> web.StreamResponse | dict[str, Any]:
    """``POST /v2/chat/completions`` (``assistant_id`` and ``storage`` as the official SDK sends them)."""
    request, outcome, stored = _answer(ctx, parse_json_object(ctx.body))
    if not request.stream:
        await generate_for(engine.answer_seconds(ctx, [outcome]))
        return response_json(request, outcome, stored)
    size = engine.chunk_size(ctx, request.update_interval)
    pace = engine.stream_pace(ctx, outcome, size, request.update_interval)
    return await send_events(ctx, stream_events(outcome, _Frames(request.model, stored), size), pace)
