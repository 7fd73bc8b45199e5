"""GigaChat's reasoning text in each front end: stream and whole answer agree, every event validates."""

from __future__ import annotations

from typing import Any

from anthropic.types import Message
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import Response

from gigapy._translate import (
    ChatCompletionStream,
    MessagesStream,
    ResponsesStream,
    TranslateContext,
    chat_completion,
    chat_request,
    message_response,
    messages_request,
    responses_request,
    responses_response,
)

from . import test_anthropic as anthropic_tests
from . import test_responses as responses_tests

CTX = TranslateContext(request_id="rq-think")
FEED: list[dict[str, Any]] = [
    {
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "reasoning_content": "Let me "}}],
        "created": 3,
        "model": "GigaChat-2-Max:2",
    },
    {"choices": [{"index": 0, "delta": {"reasoning_content": "think."}}], "created": 3, "model": "GigaChat-2-Max:2"},
    {"choices": [{"index": 0, "delta": {"content": "42"}}], "created": 3, "model": "GigaChat-2-Max:2"},
    {
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}],
        "created": 3,
        "model": "GigaChat-2-Max:2",
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    },
]
WHOLE = {
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "42", "reasoning_content": "Let me think."},
        }
    ],
    "created": 3,
    "model": "GigaChat-2-Max:2",
    "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
}


def test_chat_completions() -> None:
    call = chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "?"}], "stream": True, "reasoning_effort": "high"}
    ).finish()
    stream = ChatCompletionStream(call, CTX)
    chunks = [c for data in FEED for c in stream.feed(data)] + stream.close()
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"])
    assert reasoning == "Let me think."
    assert chat_completion(call, WHOLE, CTX)["choices"] == stream.completion()["choices"]


def test_responses() -> None:
    call = responses_request({"model": "m", "input": "?", "stream": True, "reasoning": {"effort": "high"}}).finish()
    stream = ResponsesStream(call, CTX)
    events = [e for data in FEED for e in stream.feed(data)] + stream.close()
    for event in events:
        responses_tests.EVENTS.validate_python(event)
    whole = Response.model_validate(responses_response(call, WHOLE, CTX))
    assert [o.type for o in whole.output] == ["reasoning", "message"]
    assert responses_tests.plain(responses_tests.accumulate(events)) == responses_tests.plain(whole)


def test_messages() -> None:
    call = messages_request(
        {
            "model": "m",
            "max_tokens": 9,
            "messages": [{"role": "user", "content": "?"}],
            "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 20000},
        }
    ).finish()
    assert call.body["reasoning_effort"] == "high"
    stream = MessagesStream(call, CTX)
    events = [e for data in FEED for e in stream.feed(data)] + stream.close()
    whole = Message.model_validate(message_response(call, WHOLE, CTX))
    assert [b.type for b in whole.content] == ["thinking", "text"]
    assert anthropic_tests.accumulate(events).model_dump() == whole.model_dump()
