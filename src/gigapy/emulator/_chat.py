"""v1 chat: ``POST /chat/completions`` with the service's validation, JSON and SSE shapes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import _engine as engine
from ._assistants import owned_assistant
from ._engine import IMAGE, MODEL3D, Msg, Outcome, Params, Tools
from ._http import dumps, encode_str, invalid_params, parse_json_object
from ._models import resolve, versioned
from ._sse import send_events
from ._thread_store import (
    Run,
    answer_content,
    answer_message,
    conversation,
    image_tags,
    owned_thread,
    stored_message,
)
from ._timing import generate_for
from ._validate import (
    check_call_pairs,
    function_result,
    function_specs,
    optional_int,
    optional_str,
    response_format,
    sampling,
    shape_422,
)

if TYPE_CHECKING:
    from ._pipeline import Ctx

ROLES = frozenset({"system", "user", "assistant", "function", "search_result"})
#: v1 built-in functions and the engine tools they map to.
BUILTINS = {"text2image": IMAGE, "text2model3d": MODEL3D}


@dataclass(slots=True)
class ChatRequest:
    """A validated v1 request."""

    model: str
    msgs: list[Msg]
    tools: Tools
    params: Params
    stream: bool
    update_interval: float
    n: int


def _content(raw: dict[str, Any], index: int) -> str:
    content = raw.get("content", "")
    if content is None:
        return ""
    if not isinstance(content, str):
        raise invalid_params(f"messages[{index}].content must be a string")
    return content


def _call(raw: dict[str, Any], index: int) -> tuple[str, dict[str, Any]] | None:
    call = raw.get("function_call")
    if call is None or raw.get("role") != "assistant":
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise invalid_params(f"messages[{index}].function_call must have a name")
    if call.get("id") is not None and not isinstance(call["id"], str):
        raise invalid_params(f"messages[{index}].function_call.id must be a string")
    args = call.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            args = None
    if not isinstance(args, dict):
        raise invalid_params(f"messages[{index}].function_call.arguments must be an object")
    return call["name"], args


def parse_message(raw: object, index: int) -> Msg:
    """Validate one v1 message."""
    if not isinstance(raw, dict):
        raise invalid_params(f"messages[{index}] must be an object")
    role = raw.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise invalid_params(f"messages[{index}].role must be one of system, user, assistant, function")
    text = _content(raw, index)
    files = raw.get("attachments") or []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise invalid_params(f"messages[{index}].attachments must be an array of file ids")
    result = None
    if role == "function":
        name = raw.get("name") if isinstance(raw.get("name"), str) else "function"
        result = (str(name), function_result(str(name), text))
    call = _call(raw, index)
    calls = ((raw["function_call"].get("id"), *call),) if call is not None else ()
    return Msg(role, text, call, result, tuple(files), calls)


def parse_messages(raw: object) -> list[Msg]:
    """Validate v1 messages: roles, system first, every function call followed by its result."""
    if not isinstance(raw, list) or not raw:
        raise invalid_params("messages must be a non-empty array")
    msgs = [parse_message(item, index) for index, item in enumerate(raw)]
    if any(m.role == "system" for m in msgs[1:]):
        raise invalid_params("system message must be the first message")
    check_call_pairs([(m.call is not None, m.result is not None) for m in msgs], results_need_calls=False)
    return msgs


def parse_tools(body: dict[str, Any]) -> Tools:
    """``functions`` + ``function_call`` → what the model may call."""
    specs = function_specs(body.get("functions"), shape_422, frozenset(BUILTINS))
    custom = {s["name"]: s for s in specs if s["name"] not in BUILTINS}
    listed = frozenset(BUILTINS[s["name"]] for s in specs if s["name"] in BUILTINS)
    choice = body.get("function_call")
    if choice is None:
        return Tools(custom, listed, "auto" if specs else "none")
    if choice == "none":
        return Tools(custom, listed, "none")
    if choice == "auto":
        return Tools(custom, listed if custom else listed | frozenset(BUILTINS.values()), "auto")
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        name = choice["name"]
        if name in BUILTINS:
            return Tools(custom, listed | {BUILTINS[name]}, "forced", BUILTINS[name])
        if name in custom:
            return Tools(custom, listed, "forced", name)
        raise invalid_params(f"function {name} is not described in functions")
    raise invalid_params('function_call must be "auto", "none" or {"name": ...}')


def with_functions(body: dict[str, Any], functions: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``body`` with an assistant's functions added to its own (the body's win on a name clash)."""
    if not functions:
        return body
    own = function_specs(body.get("functions"), shape_422, frozenset(BUILTINS))
    merged = {spec["name"]: spec for spec in functions} | {spec["name"]: spec for spec in own}
    return {**body, "functions": list(merged.values())}


def parse_request(ctx: Ctx, body: dict[str, Any], default_model: str | None = None) -> ChatRequest:
    """Validate a v1 chat body in the service's order: model, messages, options, tools.

    ``default_model`` serves when the body has none (a stored thread or assistant decides).
    """
    if body.get("model") is None and default_model is not None:
        model = default_model
    elif "model" not in body:
        raise invalid_params("model is required")
    else:
        model = resolve(body.get("model"), "chat")
    msgs = parse_messages(body.get("messages"))
    max_tokens, interval = sampling(body, shape_422)
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 4:
        raise invalid_params("n must be in range [1, 4]")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid_params("stream must be a boolean")
    fmt = response_format(body.get("response_format"), shape_422)
    params = Params(model, max_tokens, fmt, engine.answer_tokens_hook(ctx))
    params.reasoning, params.reasoning_tokens = _reasoning(body)
    params.top_logprobs = optional_int(body, "top_logprobs")
    if params.top_logprobs is not None and params.top_logprobs > engine.MAX_TOP_LOGPROBS:
        raise invalid_params(f"top_logprobs must be in range [1, {engine.MAX_TOP_LOGPROBS}]")
    return ChatRequest(model, msgs, parse_tools(body), params, stream, interval, n)


def _reasoning(body: dict[str, Any]) -> tuple[str | None, int | None]:
    """``reasoning_effort`` (any non-empty string: the service adds efforts) and ``reasoning_max_tokens``."""
    effort = optional_str(body, "reasoning_effort") or None
    limit = body.get("reasoning_max_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise invalid_params("reasoning_max_tokens must be an integer")
    if limit is not None and limit <= 0:
        raise invalid_params("reasoning_max_tokens must be in range (0, +inf)")
    if limit is not None and effort is None:
        effort = "medium"  # a budget alone asks for reasoning (inferred)
    return effort, limit


def finish_reason(outcome: Outcome) -> str:
    """v1 names a failed function call ``error`` (its enum has no ``function_call_error``)."""
    return "error" if outcome.finish_reason == "function_call_error" else outcome.finish_reason


def message_json(outcome: Outcome) -> dict[str, Any]:
    """The assistant message of a v1 response (``reasoning_content`` and ``logprobs`` when asked)."""
    message: dict[str, Any] = {"content": answer_content(outcome), "role": "assistant"}
    if outcome.state_id:
        message["functions_state_id"] = outcome.state_id
    if outcome.calls:
        call_id, name, args = outcome.calls[0]
        message["function_call"] = {"id": call_id, "name": name, "arguments": args}
    if outcome.reasoning:
        message["reasoning_content"] = outcome.reasoning_text
    if outcome.logprobs is not None:
        message["logprobs"] = outcome.logprobs
    return message


def usage_json(prompt: engine.Prompt, completion: int) -> dict[str, int]:
    """v1 usage: total = prompt + completion (as every real example shows)."""
    return {
        "prompt_tokens": prompt.tokens,
        "completion_tokens": completion,
        "total_tokens": prompt.tokens + completion,
        "precached_prompt_tokens": prompt.cached,
    }


def run(ctx: Ctx, request: ChatRequest) -> list[Outcome]:
    """Every choice of the answer."""
    return engine.complete(ctx, request.msgs, request.tools, request.params, request.n)


def completion_json(
    request: ChatRequest, outcomes: list[Outcome], ids: tuple[str, str] | None = None
) -> dict[str, Any]:
    """The non-streaming v1 response body; ``ids`` (thread_id, message_id) with ``storage``."""
    choices = [
        {"message": message_json(o), "index": i, "finish_reason": finish_reason(o)} for i, o in enumerate(outcomes)
    ]
    body: dict[str, Any] = {
        "choices": choices,
        "created": int(time.time()),
        "model": versioned(request.model),
        "object": "chat.completion",
        "usage": usage_json(outcomes[0].prompt, sum(o.completion_tokens for o in outcomes)),
    }
    if ids is not None:
        body["thread_id"], body["message_id"] = ids
    if outcomes[0].error is not None:
        body["error_details"] = outcomes[0].error
    return body


class _Frames:
    """Pre-rendered pieces of v1 SSE events, so each chunk costs one string escape."""

    def __init__(self, model: str, ids: tuple[str, str] | None = None) -> None:
        self.created = int(time.time())
        self.tail = f',"index":0}}],"created":{self.created},"model":"{versioned(model)}","object":"chat.completion"'
        if ids is not None:
            self.tail += f',"thread_id":{encode_str(ids[0])},"message_id":{encode_str(ids[1])}'

    def delta(self, delta: dict[str, Any]) -> str:
        return f'data: {{"choices":[{{"delta":{dumps(delta)}{self.tail}}}\n\n'

    def content(self, text: str, first: bool, logprobs: list[dict[str, Any]] | None = None) -> str:
        role = ',"role":"assistant"' if first else ""
        extra = f',"logprobs":{dumps(logprobs)}' if logprobs is not None else ""
        return f'data: {{"choices":[{{"delta":{{"content":{encode_str(text)}{role}{extra}}}{self.tail}}}\n\n'

    def finish(self, reason: str, usage: dict[str, int], error: dict[str, Any] | None = None) -> str:
        tail = self.tail.replace(',"index":0}]', f',"index":0,"finish_reason":"{reason}"}}]', 1)
        details = f',"error_details":{dumps(error)}' if error is not None else ""
        return f'data: {{"choices":[{{"delta":{{"content":""}}{tail},"usage":{dumps(usage)}{details}}}\n\n'


def stream_events(outcome: Outcome, frames: _Frames, size: int) -> list[str]:
    """Every v1 event: role first, reasoning chunks, content chunks, the finish+usage chunk, then [DONE]."""
    events = []
    if outcome.tool in (IMAGE, MODEL3D):
        name = "text2image" if outcome.tool == IMAGE else "text2model3d"
        events.append(
            frames.delta({"content": "", "role": "function_in_progress", "name": name, "created": frames.created})
        )
    first = True
    for start in range(0, len(outcome.reasoning), size):  # reasoning streams before the answer
        delta: dict[str, Any] = {"content": "", "reasoning_content": "".join(outcome.reasoning[start : start + size])}
        if first:
            delta["role"] = "assistant"
        events.append(frames.delta(delta))
        first = False
    if outcome.call:
        message = message_json(outcome)
        message.pop("reasoning_content", None)
        events.append(frames.delta(message))
        first = False
    elif outcome.state_id:
        events.append(frames.delta({"content": "", "role": "assistant", "functions_state_id": outcome.state_id}))
        first = False
    offset = 1 if outcome.files else 0
    pieces = [image_tags(outcome), *outcome.pieces] if outcome.files else outcome.pieces
    logprobs = outcome.logprobs
    for start in range(0, len(pieces), size):
        chunk_logprobs = None
        if logprobs is not None:
            chunk_logprobs = logprobs[max(0, start - offset) : max(0, start + size - offset)]
        events.append(frames.content("".join(pieces[start : start + size]), first, chunk_logprobs))
        first = False
    events.append(
        frames.finish(finish_reason(outcome), usage_json(outcome.prompt, outcome.completion_tokens), outcome.error)
    )
    events.append("data: [DONE]\n\n")
    return events


@dataclass(slots=True)
class Storage:
    """v1 ``storage``: keep the conversation server-side in a thread."""

    is_stateful: bool
    limit: int | None
    assistant_id: str | None
    thread_id: str | None
    metadata: dict[str, Any] | None


def parse_storage(raw: object) -> Storage | None:
    """``{is_stateful, limit?, assistant_id?, thread_id?, metadata?}`` (null: no storage)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid_params("storage must be an object")
    stateful = raw.get("is_stateful", False)
    if not isinstance(stateful, bool):
        raise invalid_params("storage.is_stateful must be a boolean")
    metadata = raw.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid_params("storage.metadata must be an object")
    ids = {}
    for key in ("assistant_id", "thread_id"):
        ids[key] = optional_str(raw, key)
    return Storage(stateful, optional_int(raw, "limit"), ids["assistant_id"], ids["thread_id"], metadata)


def _stateful(ctx: Ctx, body: dict[str, Any], storage: Storage) -> tuple[ChatRequest, list[Outcome], tuple[str, str]]:
    """Answer with the thread's history; store the new messages and the first choice's answer."""
    threads, owner = ctx.state.threads, ctx.auth.account.client_id
    thread = owned_thread(ctx, storage.thread_id, idle=True) if storage.thread_id else None
    assistant = None
    if thread is not None and thread.assistant_id is not None:
        assistant = ctx.state.assistants.get(thread.assistant_id, owner)
    elif thread is None and storage.assistant_id is not None:
        assistant = owned_assistant(ctx, storage.assistant_id)
    default_model = thread.model if thread else assistant.model if assistant else None
    request = parse_request(ctx, with_functions(body, assistant.functions if assistant else None), default_model)
    if thread is None:
        thread = threads.new(owner, request.model, assistant.id if assistant else None, storage.metadata)
    history = [m.msg for m in thread.messages] if storage.is_stateful else []
    msgs = conversation(history, request.msgs, assistant, storage.limit, ctx)
    check_call_pairs([(m.call is not None, m.result is not None) for m in msgs], results_need_calls=False)
    inputs = [stored_message(ctx, m, request.model) for m in request.msgs]
    outcomes = engine.complete(ctx, msgs, request.tools, request.params, request.n, cache_key=thread.id)
    answer = answer_message(outcomes[0], request.model)
    threads.register(thread)
    if storage.metadata is not None:
        thread.metadata = storage.metadata
    if storage.is_stateful:
        threads.append(thread, [*inputs, answer])
    else:
        threads.replace(thread, [*inputs, answer])
    thread.run = Run(inputs, answer, request.model)
    return request, outcomes, (thread.id, answer.id)


def _with_assistant(ctx: Ctx, body: dict[str, Any], assistant_id: str) -> tuple[ChatRequest, list[Outcome]]:
    """``assistant_id`` without ``storage``: the assistant's model, instructions, files and functions."""
    assistant = owned_assistant(ctx, assistant_id)
    request = parse_request(ctx, with_functions(body, assistant.functions), assistant.model)
    msgs = conversation([], request.msgs, assistant, None, ctx)
    return request, engine.complete(ctx, msgs, request.tools, request.params, request.n)


async def chat_completions(ctx: Ctx) -> web.StreamResponse | dict[str, Any]:
    """``POST /chat/completions`` (with ``storage``: history kept in a thread, ids in the answer).

    A top-level ``assistant_id`` (the official SDK sends it "instead of a model") picks the
    assistant; inside ``storage``, ``storage.assistant_id`` wins.
    """
    body = parse_json_object(ctx.body)
    storage = parse_storage(body.get("storage"))
    assistant_id = optional_str(body, "assistant_id") or None
    ids = None
    if storage is None and assistant_id is not None:
        request, outcomes = _with_assistant(ctx, body, assistant_id)
    elif storage is None:
        request = parse_request(ctx, body)
        outcomes = run(ctx, request)
    else:
        if storage.assistant_id is None:
            storage.assistant_id = assistant_id
        request, outcomes, ids = _stateful(ctx, body, storage)
    if not request.stream:
        await generate_for(engine.answer_seconds(ctx, outcomes))
        return completion_json(request, outcomes, ids)
    frames = _Frames(request.model, ids)
    size = engine.chunk_size(ctx, request.update_interval)
    events = stream_events(outcomes[0], frames, size)
    return await send_events(ctx, events, engine.stream_pace(ctx, outcomes[0], size, request.update_interval))
