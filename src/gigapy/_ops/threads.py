"""Assistants and threads (``/assistants``, ``/threads``): the service-side history API.

The endpoints the official SDK offers (reference/official-python-sdk.md §2.2–2.3), with
correct wire bodies: only the fields you give are sent (no explicit nulls), messages are
checked like chat messages, and thread runs can be streamed (v1-style chunks that carry
``thread_id`` and ``message_id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._core import params as P
from .._core.flow import Flow, parse_model
from .._core.stream_state import ChatStreamState
from ..errors import InvalidArgumentError
from ..types._base import ResponseMeta
from ..types.threads import (
    Thread,
    ThreadCompletion,
    ThreadCompletionChunk,
    ThreadMessages,
    ThreadRunResponse,
    ThreadRunResult,
    Threads,
)
from .base import ClientCore, OpenStream, RequestOptions, open_stream


class RunOptions(RequestOptions, total=False):
    """Generation settings of a thread run (and the per-call options)."""

    temperature: float
    top_p: float
    limit: int
    max_tokens: int
    repetition_penalty: float
    profanity_check: bool
    flags: Sequence[str]
    function_call: str | Mapping[str, Any]
    update_interval: float


_RUN_FIELDS = (
    "temperature",
    "top_p",
    "limit",
    "max_tokens",
    "repetition_penalty",
    "profanity_check",
    "flags",
    "function_call",
    "update_interval",
)
_RUN_LIMITS: dict[str, dict[str, Any]] = {**P.NUMERIC, "limit": {"low": 1, "integer": True}}


def _split(params: Mapping[str, Any]) -> tuple[dict[str, Any], RequestOptions]:
    """(run settings checked for the wire, per-call options)."""
    body: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in params.items():
        if key in _RUN_FIELDS:
            if value is None:
                continue
            if key in _RUN_LIMITS:
                body[key] = P.number(value, key, **_RUN_LIMITS[key])
            elif key == "flags":
                body[key] = P.strings(value, key, min_items=0)
            elif key == "profanity_check" and not isinstance(value, bool):
                raise InvalidArgumentError(key, f"expected True or False, got {value!r}")
            else:
                body[key] = value
        else:
            options[key] = value
    return body, options  # type: ignore[return-value]


def compact(**fields: Any) -> dict[str, Any]:
    """The given fields without the ones left out (None): no explicit nulls on the wire."""
    return {key: value for key, value in fields.items() if value is not None}


def check_id(value: Any, field: str) -> str:
    return P.text(value, field)


# --- assistants ------------------------------------------------------------------------------


# --- threads ---------------------------------------------------------------------------------


def list_threads(
    core: ClientCore,
    assistants_ids: Sequence[str] | None,
    limit: int | None,
    before: int | None,
    options: RequestOptions,
) -> Flow[Threads]:
    """``GET /threads``."""
    params: dict[str, str] = {}
    if assistants_ids:
        params["assistants_ids"] = ",".join(P.strings(assistants_ids, "assistants_ids"))
    if limit is not None:
        params["limit"] = str(P.number(limit, "limit", low=1, integer=True))
    if before is not None:
        params["before"] = str(P.number(before, "before", low=0, integer=True))
    req = core.request("GET", "/threads", options, idempotent=True, params=params or None)
    return core.call(req, lambda r: parse_model(Threads, r))


def create_thread(core: ClientCore, options: RequestOptions) -> Flow[Thread]:
    """``POST /threads``: an empty thread."""
    return core.call(core.request("POST", "/threads", options, body={}), lambda r: parse_model(Thread, r))


def retrieve_threads(core: ClientCore, threads_ids: Sequence[str], options: RequestOptions) -> Flow[Threads]:
    """``POST /threads/retrieve``."""
    body = {"threads_ids": P.strings(threads_ids, "threads_ids")}
    return core.call(
        core.request("POST", "/threads/retrieve", options, body=body, idempotent=True),
        lambda r: parse_model(Threads, r),
    )


def delete_thread(core: ClientCore, thread_id: str, options: RequestOptions) -> Flow[bool]:
    """``POST /threads/delete``: True once deleted."""
    body = {"thread_id": check_id(thread_id, "thread_id")}
    response = yield from core.send(core.request("POST", "/threads/delete", options, body=body))
    return response.content.strip().lower() in (b"true", b"") or response.status == 200


def get_messages(
    core: ClientCore, thread_id: str, limit: int | None, before: int | None, options: RequestOptions
) -> Flow[ThreadMessages]:
    """``GET /threads/messages``."""
    params = {"thread_id": check_id(thread_id, "thread_id")}
    if limit is not None:
        params["limit"] = str(P.number(limit, "limit", low=1, integer=True))
    if before is not None:
        params["before"] = str(P.number(before, "before", low=0, integer=True))
    req = core.request("GET", "/threads/messages", options, idempotent=True, params=params)
    return core.call(req, lambda r: parse_model(ThreadMessages, r))


def _thread_target(
    core: ClientCore, thread_id: str | None, assistant_id: str | None, model: str | None
) -> dict[str, Any]:
    """Where new messages go: an existing thread, an assistant, or a model for a new thread."""
    if thread_id is not None or assistant_id is not None:
        return compact(
            thread_id=None if thread_id is None else check_id(thread_id, "thread_id"),
            assistant_id=None if assistant_id is None else check_id(assistant_id, "assistant_id"),
        )
    return {"model": P.text(model or core.settings.model, "model")}


def add_messages(
    core: ClientCore,
    messages: Any,
    thread_id: str | None,
    assistant_id: str | None,
    model: str | None,
    options: RequestOptions,
) -> Flow[ThreadMessages]:
    """``POST /threads/messages``: append messages (to a new thread when none is given)."""
    body = {**_thread_target(core, thread_id, assistant_id, model), "messages": P.messages_v1(messages)}
    return core.call(
        core.request("POST", "/threads/messages", options, body=body), lambda r: parse_model(ThreadMessages, r)
    )


def run_request(
    core: ClientCore, thread_id: str, assistant_id: str | None, params: Mapping[str, Any], *, stream: bool
) -> Any:
    """The ``POST /threads/run`` request."""
    settings, options = _split(params)
    body = {
        **settings,
        "thread_id": check_id(thread_id, "thread_id"),
        **compact(assistant_id=None if assistant_id is None else check_id(assistant_id, "assistant_id")),
    }
    if stream:
        body["stream"] = True
        return core.request("POST", "/threads/run", options, body=body, stream=True, accept="text/event-stream")
    return core.request("POST", "/threads/run", options, body=body)


def run_thread(
    core: ClientCore, thread_id: str, assistant_id: str | None, params: Mapping[str, Any]
) -> Flow[ThreadRunResponse]:
    """``POST /threads/run``: start a run in the background."""
    return core.call(
        run_request(core, thread_id, assistant_id, params, stream=False), lambda r: parse_model(ThreadRunResponse, r)
    )


def get_run(core: ClientCore, thread_id: str, options: RequestOptions) -> Flow[ThreadRunResult]:
    """``GET /threads/run?thread_id=...``: the run's status and the messages it produced."""
    req = core.request(
        "GET", "/threads/run", options, idempotent=True, params={"thread_id": check_id(thread_id, "thread_id")}
    )
    return core.call(req, lambda r: parse_model(ThreadRunResult, r))


def messages_run_request(
    core: ClientCore, path: str, body: dict[str, Any], params: Mapping[str, Any], *, stream: bool
) -> Any:
    """A ``/threads/messages/run`` or ``/rerun`` request with the run settings merged in."""
    settings, options = _split(params)
    body = {**settings, **body}
    if stream:
        body["stream"] = True
        return core.request("POST", path, options, body=body, stream=True, accept="text/event-stream")
    return core.request("POST", path, options, body=body)


def run_messages_body(
    core: ClientCore, messages: Any, thread_id: str | None, assistant_id: str | None, model: str | None
) -> dict[str, Any]:
    """The body of ``/threads/messages/run``: new messages plus where they go."""
    return {**_thread_target(core, thread_id, assistant_id, model), "messages": P.messages_v1(messages)}


def _completion(core: ClientCore, request: Any) -> Flow[ThreadCompletion]:
    return core.call(request, lambda r: parse_model(ThreadCompletion, r))


def _stream(core: ClientCore, request: Any) -> Flow[OpenStream]:
    return open_stream(core, request, _thread_state)


def run_stream(
    core: ClientCore, thread_id: str, assistant_id: str | None, params: Mapping[str, Any]
) -> Flow[OpenStream]:
    """``POST /threads/run`` streamed: v1-style chunks carrying thread_id and message_id."""
    return _stream(core, run_request(core, thread_id, assistant_id, params, stream=True))


def run_messages(
    core: ClientCore,
    messages: Any,
    thread_id: str | None,
    assistant_id: str | None,
    model: str | None,
    params: Mapping[str, Any],
) -> Flow[ThreadCompletion]:
    """``POST /threads/messages/run``: add messages and answer them."""
    body = run_messages_body(core, messages, thread_id, assistant_id, model)
    return _completion(core, messages_run_request(core, "/threads/messages/run", body, params, stream=False))


def run_messages_stream(
    core: ClientCore,
    messages: Any,
    thread_id: str | None,
    assistant_id: str | None,
    model: str | None,
    params: Mapping[str, Any],
) -> Flow[OpenStream]:
    """``POST /threads/messages/run`` streamed."""
    body = run_messages_body(core, messages, thread_id, assistant_id, model)
    return _stream(core, messages_run_request(core, "/threads/messages/run", body, params, stream=True))


def rerun_messages(core: ClientCore, thread_id: str, params: Mapping[str, Any]) -> Flow[ThreadCompletion]:
    """``POST /threads/messages/rerun``: regenerate the last answer."""
    body = {"thread_id": check_id(thread_id, "thread_id")}
    return _completion(core, messages_run_request(core, "/threads/messages/rerun", body, params, stream=False))


def rerun_messages_stream(core: ClientCore, thread_id: str, params: Mapping[str, Any]) -> Flow[OpenStream]:
    """``POST /threads/messages/rerun`` streamed."""
    body = {"thread_id": check_id(thread_id, "thread_id")}
    return _stream(core, messages_run_request(core, "/threads/messages/rerun", body, params, stream=True))


def _thread_state(meta: ResponseMeta) -> ChatStreamState:
    return ChatStreamState(meta, chunk_model=ThreadCompletionChunk, sum_usage=True)
