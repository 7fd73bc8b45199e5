"""Threads: server-side conversations answered with the chat engine, JSON or v1-style SSE.

Routes: ``GET|POST /threads``, ``POST /threads/retrieve``, ``POST /threads/delete``,
``GET|POST /threads/messages``, ``GET|POST /threads/run``, ``POST /threads/messages/run``,
``POST /threads/messages/rerun``. Threads are private to their account.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import _engine as engine
from ._assistants import Assistant, owned_assistant
from ._chat import finish_reason, message_json, parse_message, parse_tools, with_functions
from ._engine import IMAGE, MODEL3D, Msg, Outcome, Params, Tools
from ._http import ApiError, dumps, encode_str, invalid_params, parse_json_object
from ._models import resolve, versioned
from ._sse import send_events
from ._thread_store import (
    Run,
    Thread,
    ThreadMessage,
    answer_message,
    conversation,
    image_tags,
    owned_thread,
    stored_message,
)
from ._timing import generate_for
from ._validate import (
    check_call_pairs,
    optional_int,
    optional_str,
    required_str,
    response_format,
    sampling,
    shape_422,
    string_list,
)

if TYPE_CHECKING:
    from ._pipeline import Ctx

DEFAULT_MODEL = "GigaChat"
RUN_OBJECT = "threads.messages.run"


@dataclass(slots=True)
class RunOptions:
    """``thread_options`` (sent flattened into the body) plus ``stream`` and ``update_interval``."""

    params: Params
    tools: Tools
    limit: int | None
    stream: bool
    update_interval: float


def _body(ctx: Ctx) -> dict[str, Any]:
    """The JSON object body; an empty body counts as ``{}``."""
    return parse_json_object(ctx.body) if ctx.body.strip() else {}


def _options(ctx: Ctx, body: dict[str, Any], model: str, assistant: Assistant | None) -> RunOptions:
    max_tokens, interval = sampling(body, shape_422)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid_params("stream must be a boolean")
    string_list(body, "flags")
    fmt = response_format(body.get("response_format"), shape_422)
    tools = parse_tools(with_functions(body, assistant.functions if assistant else None))
    params = Params(model, max_tokens, fmt, engine.answer_tokens_hook(ctx))
    return RunOptions(params, tools, optional_int(body, "limit"), bool(stream), interval)


def _messages(raw: object) -> list[Msg]:
    if not isinstance(raw, list) or not raw:
        raise invalid_params("messages must be a non-empty array")
    msgs = [parse_message(item, index) for index, item in enumerate(raw)]
    if any(m.role == "system" for m in msgs[1:]):
        raise invalid_params("system message must be the first message")
    return msgs


def _assistant_of(ctx: Ctx, thread: Thread | None, body: dict[str, Any]) -> Assistant | None:
    """The assistant named in the body, else the thread's (if it still exists)."""
    assistant_id = optional_str(body, "assistant_id")
    if assistant_id is not None:
        return owned_assistant(ctx, assistant_id)
    if thread is not None and thread.assistant_id is not None:
        return ctx.state.assistants.get(thread.assistant_id, ctx.auth.account.client_id)
    return None


def _model(body: dict[str, Any], thread: Thread | None, assistant: Assistant | None) -> str:
    """An explicit ``model``, else the assistant's, the thread's, or the default."""
    if body.get("model") is not None:
        return resolve(body["model"], "chat")
    if assistant is not None:
        return assistant.model
    return thread.model if thread is not None else DEFAULT_MODEL


def _answer(
    ctx: Ctx,
    thread: Thread,
    history: list[Msg],
    new: list[Msg],
    assistant: Assistant | None,
    options: RunOptions,
    variant: int = 0,
) -> Outcome:
    msgs = conversation(history, new, assistant, options.limit, ctx)
    check_call_pairs([(m.call is not None, m.result is not None) for m in msgs], results_need_calls=False)
    (outcome,) = engine.complete(ctx, msgs, options.tools, options.params, variant=variant, cache_key=thread.id)
    return outcome


# --- wire shapes -------------------------------------------------------------------------------


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_json(thread: Thread, answer: ThreadMessage, outcome: Outcome, model: str) -> dict[str, Any]:
    """ThreadCompletion: ``{object, model, thread_id, message_id, created, usage, message, finish_reason}``."""
    return {
        "object": RUN_OBJECT,
        "model": versioned(model),
        "thread_id": thread.id,
        "message_id": answer.id,
        "created": int(time.time()),
        "usage": _usage(outcome.prompt.tokens, outcome.completion_tokens),
        "message": message_json(outcome),
        "finish_reason": finish_reason(outcome),
    }


class _Frames:
    """ThreadCompletionChunk events: v1 chunks with object, usage, thread_id and message_id on each."""

    def __init__(self, model: str, thread_id: str, message_id: str) -> None:
        self.created = int(time.time())
        self.head = f',"created":{self.created},"model":{encode_str(versioned(model))},"object":"{RUN_OBJECT}"'
        self.ids = f',"thread_id":{encode_str(thread_id)},"message_id":{encode_str(message_id)}}}\n\n'

    def chunk(self, delta: str, usage: dict[str, int], finish: str | None = None) -> str:
        end = f',"finish_reason":"{finish}"' if finish else ""
        return f'data: {{"choices":[{{"delta":{delta},"index":0{end}}}]{self.head},"usage":{dumps(usage)}{self.ids}'


def stream_events(outcome: Outcome, frames: _Frames, size: int) -> list[str]:
    """Chunks whose usage adds up to the answer's (prompt tokens on the first), the last one with
    ``finish_reason``, then ``data: [DONE]``."""
    events: list[str] = []
    prompt = outcome.prompt.tokens
    if outcome.tool in (IMAGE, MODEL3D):
        name = "text2image" if outcome.tool == IMAGE else "text2model3d"
        progress = {"content": "", "role": "function_in_progress", "name": name, "created": frames.created}
        events.append(frames.chunk(dumps(progress), _usage(prompt, 0)))
        prompt = 0
    if outcome.call:
        events.append(
            frames.chunk(
                dumps(message_json(outcome)), _usage(prompt, outcome.completion_tokens), finish_reason(outcome)
            )
        )
        return [*events, "data: [DONE]\n\n"]
    tags = image_tags(outcome)
    groups = [outcome.pieces[i : i + size] for i in range(0, len(outcome.pieces), size)] or [[]]
    extra = outcome.extra_tokens
    for index, group in enumerate(groups):
        delta: dict[str, Any] = {"content": (tags if index == 0 else "") + "".join(group)}
        if index == 0:
            delta["role"] = "assistant"
            if outcome.state_id:
                delta["functions_state_id"] = outcome.state_id
        last = index == len(groups) - 1
        events.append(
            frames.chunk(dumps(delta), _usage(prompt, len(group) + extra), finish_reason(outcome) if last else None)
        )
        prompt = extra = 0
    return [*events, "data: [DONE]\n\n"]


async def _reply(
    ctx: Ctx, thread: Thread, answer: ThreadMessage, outcome: Outcome, options: RunOptions, model: str, stream: bool
) -> web.StreamResponse | dict[str, Any]:
    if not stream:
        await generate_for(engine.answer_seconds(ctx, [outcome]))
        return completion_json(thread, answer, outcome, model)
    frames = _Frames(model, thread.id, answer.id)
    size = engine.chunk_size(ctx, options.update_interval)
    events = stream_events(outcome, frames, size)
    return await send_events(ctx, events, engine.stream_pace(ctx, outcome, size, options.update_interval))


def _query_int(ctx: Ctx, key: str) -> int | None:
    raw = ctx.request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid_params(f"{key} must be an integer") from None
    if value < 1:
        raise invalid_params(f"{key} must be in range [1, +inf)")
    return value


def _query_thread(ctx: Ctx) -> Thread:
    thread_id = ctx.request.query.get("thread_id")
    if not thread_id:
        raise invalid_params("thread_id is required")
    return owned_thread(ctx, thread_id)


# --- handlers ----------------------------------------------------------------------------------


async def list_threads(ctx: Ctx) -> dict[str, Any]:
    """``GET /threads?assistants_ids=&limit=&before=`` → ``{"threads": [...]}``, most recently updated first.

    ``assistants_ids`` may repeat or be comma-separated; ``before`` keeps threads updated before that
    Unix time; ``limit`` keeps the first N.
    """
    wanted = {a for raw in ctx.request.query.getall("assistants_ids", []) for a in raw.split(",") if a}
    limit, before = _query_int(ctx, "limit"), _query_int(ctx, "before")
    threads = ctx.state.threads.of_owner(ctx.auth.account.client_id)
    if wanted:
        threads = [t for t in threads if t.assistant_id in wanted]
    if before is not None:
        threads = [t for t in threads if t.updated_at < before]
    threads.reverse()
    threads.sort(key=lambda t: t.updated_at, reverse=True)
    return {"threads": [t.to_json() for t in threads[:limit]]}


async def create_thread(ctx: Ctx) -> dict[str, Any]:
    """``POST /threads`` ``{}`` (optionally ``model``, ``assistant_id``, ``metadata``) → the Thread."""
    body = _body(ctx)
    assistant = _assistant_of(ctx, None, body)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid_params("metadata must be an object")
    threads = ctx.state.threads
    thread = threads.new(
        ctx.auth.account.client_id, _model(body, None, assistant), assistant.id if assistant else None, metadata
    )
    threads.register(thread)
    return thread.to_json()


async def retrieve_threads(ctx: Ctx) -> dict[str, Any]:
    """``POST /threads/retrieve`` ``{threads_ids: [...]}`` → ``{"threads": [...]}`` in the asked order.

    Unknown ids are left out; deleted threads show ``status: "deleted"``.
    """
    body = _body(ctx)
    ids = string_list(body, "threads_ids")
    if not ids:
        raise invalid_params("threads_ids must be a non-empty array of strings")
    owner, store = ctx.auth.account.client_id, ctx.state.threads
    found = [store.get(thread_id, owner) for thread_id in dict.fromkeys(ids)]
    return {"threads": [t.to_json() for t in found if t is not None]}


async def delete_thread(ctx: Ctx) -> web.Response:
    """``POST /threads/delete`` ``{thread_id}`` → the bare JSON ``true``."""
    body = _body(ctx)
    thread = owned_thread(ctx, required_str(body, "thread_id"))
    ctx.state.threads.delete(thread)
    return web.Response(body=b"true", headers={**ctx.id_headers, "Content-Type": "application/json; charset=utf-8"})


async def get_messages(ctx: Ctx) -> dict[str, Any]:
    """``GET /threads/messages?thread_id=&limit=&before=`` → ``{thread_id, messages}``, oldest first.

    ``before`` keeps messages created before that Unix time; ``limit`` keeps the last N of them.
    """
    thread = _query_thread(ctx)
    limit, before = _query_int(ctx, "limit"), _query_int(ctx, "before")
    messages = thread.messages if before is None else [m for m in thread.messages if m.created_at < before]
    if limit is not None:
        messages = messages[-limit:]
    return {"thread_id": thread.id, "messages": [m.to_json() for m in messages]}


async def add_messages(ctx: Ctx) -> dict[str, Any]:
    """``POST /threads/messages`` ``{thread_id?, model?, assistant_id?, messages}`` → ids and times.

    Without ``thread_id`` a new thread is created (for the assistant or model, if given).
    """
    body = _body(ctx)
    thread_id = optional_str(body, "thread_id")
    thread = owned_thread(ctx, thread_id, idle=True) if thread_id else None
    assistant = _assistant_of(ctx, thread, body) if thread is None else None
    msgs = _messages(body.get("messages"))
    store = ctx.state.threads
    if thread is None:
        model = _model(body, None, assistant)
        thread = store.new(ctx.auth.account.client_id, model, assistant.id if assistant else None)
    stored = [stored_message(ctx, m, thread.model) for m in msgs]
    store.register(thread)
    store.append(thread, stored)
    return {"thread_id": thread.id, "messages": [{"created_at": m.created_at, "message_id": m.id} for m in stored]}


async def run_thread(ctx: Ctx) -> web.StreamResponse | dict[str, Any]:
    """``POST /threads/run`` ``{thread_id, assistant_id?, stream?, ...thread_options}``.

    Without ``stream``: ``{status: "in_progress", thread_id, created_at}`` and the answer lands after
    ``thread_run_delay``; with it, the answer streams at once.
    """
    body = _body(ctx)
    thread = owned_thread(ctx, required_str(body, "thread_id"), idle=True)
    assistant = _assistant_of(ctx, thread, body)
    model = _model({}, thread, assistant)
    options = _options(ctx, body, model, assistant)
    history = [m.msg for m in thread.messages]
    outcome = _answer(ctx, thread, history, [], assistant, options)
    answer = answer_message(outcome, model)
    if assistant is not None and thread.assistant_id is None:
        thread.assistant_id, thread.model = assistant.id, assistant.model
    inputs = thread.since_last_answer()
    store = ctx.state.threads
    if options.stream:
        thread.run = Run(inputs, answer, model)
        store.append(thread, [answer])
        return await _reply(ctx, thread, answer, outcome, options, model, True)
    thread.run = Run(inputs, answer, model, time.monotonic() + ctx.state.config.thread_run_delay, done=False)
    store.touch(thread)
    return {"status": "in_progress", "thread_id": thread.id, "created_at": int(time.time())}


async def get_run(ctx: Ctx) -> dict[str, Any]:
    """``GET /threads/run?thread_id=`` → ``{status, thread_id, updated_at, model, messages?}``.

    ``messages`` (the run's input messages and its answer) once the run is ``ready``.
    """
    thread = _query_thread(ctx)
    run = thread.run
    if run is None:
        raise ApiError(404, "Thread run not found")
    body: dict[str, Any] = {
        "status": thread.status,
        "thread_id": thread.id,
        "updated_at": thread.updated_at,
        "model": run.model,
    }
    if run.done:
        body["messages"] = [m.to_json(with_model=False) for m in (*run.inputs, run.answer)]
    return body


async def run_messages(ctx: Ctx) -> web.StreamResponse | dict[str, Any]:
    """``POST /threads/messages/run`` ``{messages, thread_id?, assistant_id?, model?, stream?,
    update_interval?, ...thread_options}`` → ThreadCompletion or its stream."""
    body = _body(ctx)
    thread_id = optional_str(body, "thread_id")
    thread = owned_thread(ctx, thread_id, idle=True) if thread_id else None
    assistant = _assistant_of(ctx, thread, body)
    model = _model(body, thread, assistant)
    options = _options(ctx, body, model, assistant)
    msgs = _messages(body.get("messages"))
    store = ctx.state.threads
    if thread is None:
        thread = store.new(ctx.auth.account.client_id, model, assistant.id if assistant else None)
    inputs = [stored_message(ctx, m, model) for m in msgs]
    outcome = _answer(ctx, thread, [m.msg for m in thread.messages], msgs, assistant, options)
    answer = answer_message(outcome, model)
    store.register(thread)
    store.append(thread, [*inputs, answer])
    thread.run = Run(inputs, answer, model)
    return await _reply(ctx, thread, answer, outcome, options, model, options.stream)


async def rerun_messages(ctx: Ctx) -> web.StreamResponse | dict[str, Any]:
    """``POST /threads/messages/rerun`` ``{thread_id, stream?, update_interval?, ...thread_options}``:
    a new answer replaces the thread's last one → ThreadCompletion or its stream."""
    body = _body(ctx)
    thread = owned_thread(ctx, required_str(body, "thread_id"), idle=True)
    assistant = _assistant_of(ctx, thread, body)
    model = _model(body, thread, assistant)
    options = _options(ctx, body, model, assistant)
    replaced = bool(thread.messages) and thread.messages[-1].msg.role == "assistant"
    history = [m.msg for m in (thread.messages[:-1] if replaced else thread.messages)]
    outcome = _answer(ctx, thread, history, [], assistant, options, variant=thread.reruns + 1)
    answer = answer_message(outcome, model)
    store = ctx.state.threads
    last_run = thread.run
    if replaced:
        old = store.pop_last(thread)
        inputs = last_run.inputs if last_run is not None and last_run.answer is old else thread.since_last_answer()
    else:
        inputs = thread.since_last_answer()
    thread.reruns += 1
    store.append(thread, [answer])
    thread.run = Run(inputs, answer, model)
    return await _reply(ctx, thread, answer, outcome, options, model, options.stream)
