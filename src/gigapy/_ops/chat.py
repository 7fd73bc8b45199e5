"""Chat v1: the request fields, building ``POST /chat/completions`` and parsing the answer or the
stream."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from .._core import params as P
from .._core.flow import (
    Flow,
    Request,
    parse_model,
)
from .._core.stream_state import ChatStreamState
from ..errors import InvalidArgumentError
from ..types.chat import ChatCompletion, Function, Message
from .base import OPTION_KEYS, ClientCore, OpenStream, RequestOptions, open_stream


class ChatFields(RequestOptions, total=False):
    """The v1 request fields other than ``response_format`` (see ChatParams)."""

    messages: str | Sequence[Message | Mapping[str, Any]]
    model: str
    temperature: float
    top_p: float
    n: int
    max_tokens: int
    repetition_penalty: float
    update_interval: float
    profanity_check: bool
    functions: Sequence[Function | Mapping[str, Any] | Callable[..., Any] | type[BaseModel]]
    function_call: str | Mapping[str, Any]
    flags: Sequence[str]
    #: "low", "medium", "high" or a value the service added since (sent with a warning).
    reasoning_effort: Literal["low", "medium", "high"] | str
    #: The most tokens the model may spend reasoning before it answers.
    reasoning_max_tokens: int
    #: 1..5: the log probabilities of that many most likely tokens per position (``message.logprobs``).
    top_logprobs: int
    storage: Mapping[str, Any]
    function_ranker: Mapping[str, Any]
    attachments: Sequence[str]
    #: An assistant answers (its model, instructions, files, functions); ``model`` may then be left out.
    assistant_id: str
    #: How Python functions and pydantic models in ``functions`` become schemas: "reduced" or "full".
    schema_dialect: Literal["reduced", "full"]


class ChatParams(ChatFields, total=False):
    """Keyword arguments of ``completion`` / ``completion_stream`` (the v1 request fields)."""

    response_format: Mapping[str, Any] | type[BaseModel]


def split_call(messages: Any, params: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """(request fields, per-call options) of a chat call; positional messages join the fields."""
    fields = {k: v for k, v in params.items() if k not in OPTION_KEYS}
    options = {k: v for k, v in params.items() if k in OPTION_KEYS}
    if messages is not None:
        if fields.get("messages") is not None:
            raise InvalidArgumentError("messages", "given both positionally and as a keyword")
        fields["messages"] = messages
    return fields, options


def schema_dialect_of(core: ClientCore, params: Mapping[str, Any]) -> str:
    """The schema dialect of a call: its ``schema_dialect``, else the client's setting."""
    return str(params.get("schema_dialect") or core.settings.schema_dialect)


def chat_request(core: ClientCore, messages: Any, params: Mapping[str, Any], *, stream: bool) -> Request:
    """The ``/chat/completions`` request for ``completion`` / ``completion_stream``."""
    fields, options = split_call(messages, params)
    s = core.settings
    body = P.chat_body(
        fields,
        default_model=s.model,
        profanity_check=s.profanity_check,
        flags=s.flags,
        schema_dialect_default=s.schema_dialect,
        options=OPTION_KEYS,
    )
    if stream:
        body["stream"] = True
        return core.request("POST", "/chat/completions", options, body=body, stream=True, accept="text/event-stream")
    return core.request("POST", "/chat/completions", options, body=body)


def completion(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[ChatCompletion]:
    """``POST /chat/completions``."""
    return core.call(chat_request(core, messages, params, stream=False), lambda r: parse_model(ChatCompletion, r))


def completion_stream(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[OpenStream]:
    """``POST /chat/completions`` with ``stream: true``; arguments are checked at call time."""
    return open_stream(core, chat_request(core, messages, params, stream=True), ChatStreamState)


def completion_json(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[dict[str, Any]]:
    """:func:`completion` with GigaChat's answer as its JSON dict (no model built; the OpenAI bridge)."""
    return core.call_json(chat_request(core, messages, params, stream=False), ChatCompletion, "choices")
