"""The real ``openai`` client, its HTTP layer answered by the translation (an httpx MockTransport).

What the client sends must translate; what the translation answers must be parsed by the
client's own code: plain and streamed chat, tool calls, ``parse()`` with a pydantic model,
embeddings (its default base64 encoding), the models list, and errors as its exceptions.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from pydantic import BaseModel

from gigapy._translate._answer import StreamPayloadError
from gigapy._translate._common import TranslateContext
from gigapy._translate.chat import ChatCompletionStream, chat_completion, chat_request
from gigapy._translate.embeddings import embeddings_request, embeddings_response, models_response
from gigapy._translate.errors import openai_error, openai_error_from_exception
from gigapy._translate.framing import chat_error_frame, data_frame
from gigapy.errors import APIConnectionError, APITimeoutError, InvalidArgumentError, RateLimitError

from ._helpers import data_url, http_client, sse_body

CTX = TranslateContext(request_id="rq")
Answer = Callable[[Any], Any]


class Bridge:
    """Plays the OpenAI endpoint: request -> GigaChat call -> the given GigaChat answer -> OpenAI answer."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls: list[Any] = []
        self.sent: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append(body)
        try:
            if request.url.path.endswith("/embeddings"):
                ecall = embeddings_request(body)
                return httpx.Response(200, json=embeddings_response(ecall, self.answer(ecall)))
            if request.url.path.endswith("/models"):
                return httpx.Response(200, json=models_response(self.answer(None)))
            plan = chat_request(body)
            call = plan.finish({u.key: f"file-{i}" for i, u in enumerate(plan.uploads)})
        except InvalidArgumentError as exc:
            reply = openai_error_from_exception(exc)
            return httpx.Response(reply.status, json=reply.body)
        self.calls.append(call)
        answer = self.answer(call)
        if isinstance(answer, tuple):  # a GigaChat error: (status, body)
            reply = openai_error(*answer, headers={"Retry-After": "1"})
            return httpx.Response(reply.status, json=reply.body, headers=reply.headers)
        if call.stream:
            stream = ChatCompletionStream(call, CTX)
            chunks = [c for event, data in answer for c in stream.feed(data, event)] + stream.close()
            return httpx.Response(200, content=sse_body(chunks), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=chat_completion(call, answer, CTX))


def client(answer: Answer) -> tuple[openai.OpenAI, Bridge]:
    bridge = Bridge(answer)
    return openai.OpenAI(
        base_url="http://bridge.test/v1", api_key="unused", http_client=http_client(bridge), max_retries=0
    ), bridge


def v1_text(text: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "created": 1700000000,
        "model": "GigaChat-2:2.0.28.2",
        "object": "chat.completion",
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8, "precached_prompt_tokens": 1},
    }


def v2_call_answer(calls: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    return {
        "model": "GigaChat-2-Max:2.0.30.01",
        "created_at": 1700000001,
        "finish_reason": "function_call",
        "messages": [
            {
                "role": "assistant",
                "tool_state_id": "st",
                "content": [{"function_call": {"id": i, "name": n, "arguments": a}} for i, n, a in calls],
            }
        ],
        "usage": {
            "input_tokens": 9,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 4,
            "total_tokens": 13,
        },
    }


TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def test_plain_chat_with_an_image() -> None:
    oa, bridge = client(lambda call: v1_text("a red dot"))
    answer = oa.chat.completions.create(
        model="GigaChat-2",
        messages=[
            {"role": "system", "content": "short answers"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": data_url()}},
                ],
            },
        ],
        temperature=0,
        max_completion_tokens=50,
        seed=1,
        user="u-1",
    )
    assert answer.choices[0].message.content == "a red dot"
    assert answer.model == "GigaChat-2:2.0.28.2"
    assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 1
    (call,) = bridge.calls
    assert call.body["messages"][1] == {"role": "user", "content": "what is this?", "attachments": ["file-0"]}
    assert call.headers == {"X-Session-ID": "u-1"}


def test_parallel_tool_calls_then_the_results() -> None:
    answers = iter(
        [
            v2_call_answer([("id-1", "get_weather", {"city": "Moscow"}), ("id-2", "get_weather", {"city": "Kazan"})]),
            {
                "model": "GigaChat-2-Max:2",
                "created_at": 2,
                "finish_reason": "stop",
                "messages": [{"role": "assistant", "content": [{"text": "cold in both"}]}],
            },
        ]
    )
    oa, bridge = client(lambda call: next(answers))
    messages: list[Any] = [{"role": "user", "content": "weather in Moscow and Kazan?"}]
    first = oa.chat.completions.create(model="GigaChat-2-Max", messages=messages, tools=TOOLS)
    calls = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("id-1", "get_weather", {"city": "Moscow"}),
        ("id-2", "get_weather", {"city": "Kazan"}),
    ]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": "-5"} for c in calls]
    second = oa.chat.completions.create(model="GigaChat-2-Max", messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "cold in both"
    sent = bridge.calls[1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "function", "function"]
    assert sent[2]["content"][0]["function_result"] == {"name": "get_weather", "result": '{"result":-5}'}


def test_streamed_tool_calls_through_the_stream_helper() -> None:
    done = v2_call_answer([("id-9", "get_weather", {"city": "Paris"})])
    oa, _ = client(lambda call: [("response.message.done", done)])
    with oa.chat.completions.stream(
        model="GigaChat-2-Max",
        messages=[{"role": "user", "content": "Paris?"}],
        tools=TOOLS,
        stream_options={"include_usage": True},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in kinds
    (tc,) = final.choices[0].message.tool_calls or []
    assert (tc.id, tc.function.name, json.loads(tc.function.arguments)) == ("id-9", "get_weather", {"city": "Paris"})
    assert final.usage is not None and final.usage.total_tokens == 13


def test_streamed_text_with_a_stop_sequence() -> None:
    pieces = ["Thought: x\nObs", "ervation: secret", " more"]
    feed = [(None, {"choices": [{"index": 0, "delta": {"content": p}}], "created": 1, "model": "G:1"}) for p in pieces]
    feed.append(
        (
            None,
            {
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}],
                "created": 1,
                "model": "G:1",
            },
        )
    )
    oa, _ = client(lambda call: feed)
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in oa.chat.completions.create(
            model="GigaChat-2", messages=[{"role": "user", "content": "go"}], stream=True, stop=["Observation:"]
        )
        if chunk.choices
    )
    assert text == "Thought: x\n"


class Order(BaseModel):
    order_id: str
    status: str


def test_parse_with_a_pydantic_model() -> None:
    oa, bridge = client(lambda call: v1_text('{"order_id": "A-1", "status": "packed"}'))
    parsed = oa.chat.completions.parse(
        model="GigaChat-2", messages=[{"role": "user", "content": "order A-1?"}], response_format=Order
    )
    assert parsed.choices[0].message.parsed == Order(order_id="A-1", status="packed")
    fmt = bridge.calls[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["strict"] is True
    assert fmt["schema"]["required"] == ["order_id", "status"]


def test_refused_parameter_is_an_openai_bad_request() -> None:
    oa, _ = client(lambda call: v1_text("x"))
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(model="GigaChat-2", messages=[{"role": "user", "content": "x"}], logprobs=True)
    assert err.value.param == "logprobs"
    assert err.value.code == "unsupported_parameter"


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (400, {"status": 400, "message": "Your request contains invalid JSON syntax."}, openai.BadRequestError, None),
        (401, {"status": 401, "message": "Token has expired"}, openai.AuthenticationError, "invalid_api_key"),
        (402, {"status": 402, "message": "Payment Required"}, openai.APIStatusError, "insufficient_quota"),
        (403, {"status": 403, "message": "Permission denied"}, openai.PermissionDeniedError, None),
        (404, {"status": 404, "message": "No such model"}, openai.NotFoundError, "model_not_found"),
        (413, {"status": 413, "message": "Payload too large"}, openai.BadRequestError, "context_length_exceeded"),
        (
            422,
            {"status": 422, "message": "Invalid params: system message must be the first message"},
            openai.BadRequestError,
            None,
        ),
        (423, {"status": 423, "message": "Locked"}, openai.InternalServerError, "overloaded"),
        (429, {"status": 429, "message": "Too many requests"}, openai.RateLimitError, "rate_limit_exceeded"),
        (500, b"<html><body>SOWA</body></html>", openai.InternalServerError, None),
        (503, {"status": 503, "message": "Unavailable"}, openai.InternalServerError, None),
    ],
)
def test_gigachat_errors_are_openai_exceptions(
    status: int, body: Any, error: type[Exception], code: str | None
) -> None:
    oa, _ = client(lambda call: (status, body))
    with pytest.raises(error) as err:
        oa.chat.completions.create(model="GigaChat-2", messages=[{"role": "user", "content": "x"}])
    exc = err.value
    assert isinstance(exc, openai.APIStatusError)
    assert exc.code == code
    assert "GigaChat" in exc.message
    if status == 402:
        assert exc.status_code == 402
    if status == 429:
        assert exc.response.headers["retry-after"] == "1"


@pytest.mark.parametrize("encoding", [None, "float", "base64"])
def test_embeddings(encoding: str | None) -> None:
    giga = {
        "object": "list",
        "model": "Embeddings",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.5, -1.25], "usage": {"prompt_tokens": 3}},
            {"object": "embedding", "index": 0, "embedding": [1.0, 2.0], "usage": {"prompt_tokens": 2}},
        ],
    }
    oa, bridge = client(lambda call: giga)
    kw: dict[str, Any] = {} if encoding is None else {"encoding_format": encoding}
    out = oa.embeddings.create(model="Embeddings", input=["a", "b"], **kw)
    vectors = [d.embedding for d in out.data]
    if encoding == "base64":  # asked for explicitly, the client hands the text over as it came
        vectors = [np.frombuffer(base64.b64decode(v), dtype="<f4").tolist() for v in vectors]  # type: ignore[arg-type]
    assert vectors == [[1.0, 2.0], [0.5, -1.25]]
    assert out.usage.prompt_tokens == 5
    assert bridge.sent[0].get("encoding_format") == (encoding or "base64")  # the client asks for base64 itself


def test_embeddings_refusals() -> None:
    oa, _ = client(lambda call: {})
    with pytest.raises(openai.BadRequestError) as err:
        oa.embeddings.create(model="Embeddings", input="a", dimensions=64)
    assert err.value.param == "dimensions"
    with pytest.raises(openai.BadRequestError) as err:
        oa.embeddings.create(model="Embeddings", input=[[1, 2, 3]])
    assert err.value.param == "input[0]"


def test_models_list() -> None:
    giga = {
        "object": "list",
        "data": [
            {"id": "GigaChat-2-Max", "object": "model", "owned_by": "salutedevices", "type": "chat"},
            {"id": "Embeddings", "object": "model", "owned_by": "salutedevices", "type": "embedder"},
        ],
    }
    oa, _ = client(lambda call: giga)
    models = oa.models.list()
    assert [(m.id, m.owned_by) for m in models] == [
        ("GigaChat-2-Max", "salutedevices"),
        ("Embeddings", "salutedevices"),
    ]


def test_an_error_inside_a_stream_raises_in_the_client() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        call = chat_request(json.loads(request.content)).finish()
        stream = ChatCompletionStream(call, CTX)
        first = stream.feed({"choices": [{"index": 0, "delta": {"content": "par"}}], "created": 1, "model": "G"})
        try:
            stream.feed({"status": 500, "message": "Internal Server Error"})
        except StreamPayloadError as exc:
            tail = chat_error_frame(openai_error_from_exception(exc))
        return httpx.Response(
            200, content=b"".join(data_frame(c) for c in first) + tail, headers={"content-type": "text/event-stream"}
        )

    oa = openai.OpenAI(
        base_url="http://bridge.test/v1", api_key="unused", http_client=http_client(handler), max_retries=0
    )
    got = []
    with pytest.raises(openai.APIError, match="Internal Server Error"):
        for chunk in oa.chat.completions.create(model="G", messages=[{"role": "user", "content": "x"}], stream=True):
            got.append(chunk)
    assert got[-1].choices[0].delta.content == "par"


def test_gigapy_exceptions_as_openai_errors() -> None:
    limited = RateLimitError(
        "429", status_code=429, json_body={"status": 429, "message": "Too many requests"}, headers={"Retry-After": "3"}
    )
    reply = openai_error_from_exception(limited)
    assert (reply.status, reply.body["error"]["code"], reply.headers) == (
        429,
        "rate_limit_exceeded",
        {"Retry-After": "3"},
    )
    assert openai_error_from_exception(APITimeoutError("read timeout")).status == 504
    assert openai_error_from_exception(APIConnectionError("refused")).status == 502
    bad = openai_error_from_exception(InvalidArgumentError("messages[0].content", "must not be empty"))
    assert bad.status == 400
    assert bad.body["error"] == {
        "message": "messages[0].content: must not be empty",
        "type": "invalid_request_error",
        "param": "messages[0].content",
        "code": "invalid_value",
    }
    html = openai_error(502, b"<html>bad gateway</html>")
    assert html.status == 502 and "HTML" in html.body["error"]["message"]
