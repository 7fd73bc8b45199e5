"""Chat v2 (``/api/v2/chat/completions``): the request fields, building and parsing."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from .._core import params_v2 as P2
from .._core.flow import (
    Flow,
    Request,
    parse_model,
)
from .._core.stream_state import ChatV2StreamState
from ..types.chat import Function
from ..types.chat_v2 import ChatCompletionV2, MessageV2
from .base import OPTION_KEYS, ClientCore, OpenStream, RequestOptions, open_stream
from .chat import split_call


class ChatV2Base(RequestOptions, total=False):
    """The v2 request fields other than tools and ``response_format``."""

    messages: str | Sequence[MessageV2 | Mapping[str, Any]]
    model: str
    model_options: Mapping[str, Any]
    temperature: float
    top_p: float
    max_tokens: int
    repetition_penalty: float
    update_interval: float
    #: An effort ("low", "medium", "high", or newer) or ``{"effort": ..., "max_tokens": N}``.
    reasoning: Literal["low", "medium", "high"] | str | Mapping[str, Any]
    #: Shorthands of ``reasoning`` (``reasoning={"effort": ..., "max_tokens": ...}``).
    reasoning_effort: Literal["low", "medium", "high"] | str
    reasoning_max_tokens: int
    top_logprobs: int
    unnormalized_history: bool
    #: Let the model ask for several function calls in one answer (v2).
    parallel_tool_calls: bool
    storage: bool | Mapping[str, Any]
    ranker_options: Mapping[str, Any]
    filter_config: Mapping[str, Any]
    user_info: Mapping[str, Any]
    disable_filter: bool
    flags: Sequence[str]
    assistant_id: str
    schema_dialect: Literal["reduced", "full"]


class ChatV2Params(ChatV2Base, total=False):
    """Keyword arguments of ``client.v2.completion`` / ``completion_stream``."""

    tools: Sequence[str | Mapping[str, Any]]
    functions: Sequence[Function | Mapping[str, Any] | Callable[..., Any] | type[BaseModel]]
    #: "auto", "none", "any", a tool or function name (forced), a list of function names (any of
    #: them), or ``{"mode": ..., "tool_name"/"function_name"/"functions_names_any": ...}``.
    tool_config: str | Sequence[str] | Mapping[str, Any]
    response_format: Mapping[str, Any] | type[BaseModel]


def v2_base(base_url: str) -> str:
    """The v2 root for a base URL: its last ``/vN`` segment becomes ``/v2`` (else ``/v2`` is added)."""
    root, _, last = base_url.rpartition("/")
    return root + "/v2" if re.fullmatch(r"v\d+", last) else base_url + "/v2"


def v2_request(core: ClientCore, messages: Any, params: Mapping[str, Any], *, stream: bool) -> Request:
    """The ``/v2/chat/completions`` request."""
    fields, options = split_call(messages, params)
    s = core.settings
    body = P2.chat_body_v2(
        fields,
        default_model=s.model,
        profanity_check=s.profanity_check,
        flags=s.flags,
        schema_dialect_default=s.schema_dialect,
        options=OPTION_KEYS,
    )
    base = v2_base(s.base_url)
    if stream:
        body["stream"] = True
        return core.request(
            "POST", "/chat/completions", options, body=body, stream=True, accept="text/event-stream", base=base
        )
    return core.request("POST", "/chat/completions", options, body=body, base=base)


def v2_completion(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[ChatCompletionV2]:
    """``POST /v2/chat/completions``."""
    request = v2_request(core, messages, params, stream=False)
    return core.call(request, lambda r: parse_model(ChatCompletionV2, r))


def v2_completion_json(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[dict[str, Any]]:
    """:func:`v2_completion` with the answer as its JSON dict (no model built; the OpenAI bridge)."""
    return core.call_json(v2_request(core, messages, params, stream=False), ChatCompletionV2, "messages")


def v2_completion_stream(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[OpenStream]:
    """``POST /v2/chat/completions`` with ``stream: true`` (named events)."""
    return open_stream(core, v2_request(core, messages, params, stream=True), ChatV2StreamState)
