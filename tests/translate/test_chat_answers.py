"""GigaChat answers -> OpenAI chat.completion and chat.completion.chunk, checked by openai's own types.

Recorded GigaChat traffic goes through the translation; every object it emits must
validate into the installed ``openai`` package's pydantic models, and a translated
stream, accumulated by openai's own ``ChatCompletionStreamState``, must equal the
non-streaming translation of the same answer.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gigapy._core.stream_state import ChatStreamState
from gigapy._translate._answer import StreamPayloadError
from gigapy._translate._common import TranslateContext
from gigapy._translate.chat import ChatCompletionStream, chat_completion, chat_request
from gigapy.types._base import ResponseMeta

from ..conftest import RECORDINGS, needs_shared
from ._helpers import cassette, payload, sse_payloads

CTX = TranslateContext(request_id="req-1")
WEATHER = {
    "type": "function",
    "function": {"name": "get_order_status", "parameters": {"type": "object", "properties": {}}},
}


def plan(**kw: Any) -> Any:
    return chat_request({"model": "GigaChat-2", "messages": [{"role": "user", "content": "hi"}], **kw}).finish()


def v1_call(**kw: Any) -> Any:
    out = plan(**kw)
    assert out.api == "v1"
    return out


def v2_call(**kw: Any) -> Any:
    out = plan(tools=[WEATHER], **kw)
    assert out.api == "v2"
    return out


def stream_through(
    call: Any, payloads: list[tuple[str | None, Any]], ctx: TranslateContext = CTX
) -> tuple[list[dict[str, Any]], ChatCompletionStream]:
    stream = ChatCompletionStream(call, ctx)
    chunks: list[dict[str, Any]] = []
    for event, data in payloads:
        chunks += stream.feed(data, event)
    chunks += stream.close()
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks, stream


def accumulate(chunks: list[dict[str, Any]]) -> Any:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.current_completion_snapshot  # get_final_completion() also parses, refusing "length"


def same(streamed: Any, whole: dict[str, Any], usage: bool = True) -> None:
    """openai's accumulation of the stream equals the non-stream translation (usage only if streamed)."""
    expected = ChatCompletion.model_validate(whole)
    assert streamed.id == expected.id
    assert streamed.model == expected.model
    assert streamed.created == expected.created
    assert streamed.usage == (expected.usage if usage else None)
    assert len(streamed.choices) == len(expected.choices)
    for got, want in zip(streamed.choices, expected.choices):
        assert got.finish_reason == want.finish_reason
        assert got.message.content == want.message.content
        assert got.message.role == want.message.role
        got_calls = [(c.id, c.function.name, c.function.arguments) for c in got.message.tool_calls or []]
        want_calls = [(c.id, c.function.name, c.function.arguments) for c in want.message.tool_calls or []]
        assert got_calls == want_calls


@needs_shared
@pytest.mark.parametrize("name", ["chat_completion.json", "chat_completion_function.json", "chat_completion_json.json"])
def test_recorded_v1_answers_validate(name: str) -> None:
    body = payload(name)
    out = chat_completion(v1_call(), body, CTX)
    parsed = ChatCompletion.model_validate(out)
    assert parsed.model == body["model"]
    assert parsed.created == body["created"]
    assert parsed.usage is not None and parsed.usage.total_tokens == body["usage"]["total_tokens"]
    if name == "chat_completion_function.json":
        (tc,) = parsed.choices[0].message.tool_calls or []
        assert parsed.choices[0].finish_reason == "tool_calls"
        assert parsed.choices[0].message.content is None
        assert (tc.function.name, json.loads(tc.function.arguments)) == ("fc", {"location": "Москва", "num_days": 0})
        assert tc.id.startswith("call_")
        assert chat_completion(v1_call(), body, CTX)["choices"][0]["message"]["tool_calls"][0]["id"] == tc.id
        other = chat_completion(v1_call(), body, TranslateContext(request_id="req-2"))
        assert other["choices"][0]["message"]["tool_calls"][0]["id"] != tc.id
    if name == "chat_completion.json":
        assert out["choices"][0]["message"]["reasoning_content"] == "... some reasoning ..."


@needs_shared
def test_recorded_function_roundtrip_v2() -> None:
    """The recorded v2 tool round trip: the answer's call, sent back as OpenAI history, is the recorded turn 2."""
    first, second = cassette("test_primary_chat_function_tool_roundtrip.yaml")
    tools = [
        {
            "type": "function",
            "function": {"name": s["name"], "description": s["description"], "parameters": s["parameters"]},
        }
        for s in first["request"]["tools"][0]["functions"]["specifications"]
    ]
    question = first["request"]["messages"][0]["content"][0]["text"]
    call = chat_request(
        {
            "model": "GigaChat-3-Ultra",
            "messages": [{"role": "user", "content": question}],
            "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "get_order_status"}},
        }
    ).finish()
    assert call.body["tool_config"] == first["request"]["tool_config"]
    assert call.body["messages"] == first["request"]["messages"]
    answer = chat_completion(call, json.loads(first["body"]), CTX)
    message = ChatCompletion.model_validate(answer).choices[0].message
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert answer["model"] == "GigaChat-3-Ultra:32.3.18.5"
    (tc,) = message.tool_calls or []
    result = second["request"]["messages"][2]["content"][0]["function_result"]["result"]
    history = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": message.content, "tool_calls": [tc.model_dump()]},
        {"role": "tool", "tool_call_id": tc.id, "content": json.dumps(result)},
    ]
    turn2 = chat_request({"model": "GigaChat-3-Ultra", "messages": history, "tools": tools}).finish()
    recorded = second["request"]["messages"]
    sent = turn2.body["messages"]
    assert sent[:2] == [recorded[0], {"role": "assistant", "content": recorded[1]["content"]}]
    assert sent[2]["role"] == "function"  # the recording sent "tool"; the live service rejects it
    assert json.loads(sent[2]["content"][0]["function_result"]["result"]) == result
    final = ChatCompletion.model_validate(chat_completion(turn2, json.loads(second["body"]), CTX))
    assert final.choices[0].message.content == "Order A-1024 is currently packed and scheduled for delivery tomorrow."
    assert final.choices[0].finish_reason == "stop"


FINISHES = [
    ("stop", "stop", False),
    ("length", "length", False),
    ("blacklist", "content_filter", False),
    ("response_blacklist", "content_filter", False),
    ("error", "stop", True),
    ("function_call_error", "stop", True),
    ("something_new", "stop", True),
]


@pytest.mark.parametrize(("giga", "openai", "lossy"), FINISHES)
def test_finish_reasons(giga: str, openai: str, lossy: bool) -> None:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": giga}],
        "created": 1,
        "model": "GigaChat:1",
        "object": "chat.completion",
    }
    out = chat_completion(v1_call(), body, CTX)
    assert ChatCompletion.model_validate(out).choices[0].finish_reason == openai
    assert ("gigachat_finish_reason" in out["choices"][0]) is lossy
    call_body = copy.deepcopy(body)
    call_body["choices"][0]["message"]["function_call"] = {"name": "f", "arguments": {}}
    if giga not in ("blacklist", "response_blacklist"):
        assert chat_completion(v1_call(), call_body, CTX)["choices"][0]["finish_reason"] == "tool_calls"


def test_usage_with_cached_tokens_v1_and_v2() -> None:
    v1 = {
        "choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}],
        "created": 5,
        "model": "GigaChat:1",
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "precached_prompt_tokens": 7},
    }
    usage = ChatCompletion.model_validate(chat_completion(v1_call(), v1, CTX)).usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details.cached_tokens) == (10, 2, 7)
    v2 = {
        "model": "GigaChat-2:2",
        "created_at": 5,
        "messages": [{"role": "assistant", "content": [{"text": "x"}]}],
        "finish_reason": "stop",
        "usage": {
            "input_tokens": 9,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 3,
            "total_tokens": 12,
        },
    }
    usage = ChatCompletion.model_validate(chat_completion(v2_call(), v2, CTX)).usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.total_tokens, usage.prompt_tokens_details.cached_tokens) == (9, 12, 4)


def test_v2_parallel_calls_keep_their_ids() -> None:
    body = {
        "model": "GigaChat-2-Max:2.0.30.01",
        "created_at": 7,
        "finish_reason": "function_call",
        "messages": [
            {
                "role": "assistant",
                "tool_state_id": "s",
                "content": [
                    {"function_call": {"id": "3c1b6655", "name": "a", "arguments": {"x": 1}}},
                    {"function_call": {"id": "9d00", "name": "b", "arguments": {}}},
                ],
            }
        ],
    }
    out = ChatCompletion.model_validate(chat_completion(v2_call(), body, CTX))
    assert [(c.id, c.function.name, c.function.arguments) for c in out.choices[0].message.tool_calls or []] == [
        ("3c1b6655", "a", '{"x":1}'),
        ("9d00", "b", "{}"),
    ]


def test_legacy_functions_answer_with_function_call() -> None:
    call = chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "functions": [WEATHER["function"]]}
    ).finish()
    out = ChatCompletion.model_validate(chat_completion(call, payload_function(), CTX))
    assert out.choices[0].finish_reason == "function_call"
    assert out.choices[0].message.function_call is not None
    assert out.choices[0].message.tool_calls is None


def payload_function() -> dict[str, Any]:
    return {
        "model": "GigaChat:2",
        "created": 3,
        "choices": [
            {
                "index": 0,
                "finish_reason": "function_call",
                "message": {
                    "role": "assistant",
                    "content": "",
                    "function_call": {"name": "get_order_status", "arguments": {"id": 1}},
                },
            }
        ],
    }


def test_stop_sequences_cut_the_whole_answer() -> None:
    body = {
        "choices": [{"index": 0, "message": {"content": "one two three"}, "finish_reason": "length"}],
        "created": 1,
        "model": "GigaChat:1",
    }
    out = chat_completion(v1_call(stop=["three", " two"]), body, CTX)
    assert out["choices"][0]["message"]["content"] == "one"
    assert out["choices"][0]["finish_reason"] == "stop"


# --------------------------------------------------------------------------------- streams


def gigapy_final(raw: bytes) -> dict[str, Any]:
    """gigapy's own stream accumulator (independent of the translation) -> a whole v1 body."""
    state = ChatStreamState(ResponseMeta())
    state.feed(raw)
    state.feed_eof()
    return state.final().to_dict()


@needs_shared
@pytest.mark.parametrize("include_usage", [False, True])
def test_recorded_v1_stream(include_usage: bool) -> None:
    (interaction,) = cassette("test_stream_simple.yaml")
    raw = interaction["body"].encode()
    call = v1_call(stream=True, stream_options={"include_usage": include_usage})
    chunks, stream = stream_through(call, list(sse_payloads(raw)))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["delta"] == {}
    if include_usage:
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"] == {
            "prompt_tokens": 17,
            "completion_tokens": 42,
            "total_tokens": 59,
            "prompt_tokens_details": {"cached_tokens": 2},
        }
        assert all(c["usage"] is None for c in chunks[:-1])
    else:
        assert all("usage" not in c for c in chunks)
    streamed = accumulate(chunks)
    whole = chat_completion(call, gigapy_final(raw), CTX)
    same(streamed, whole, usage=include_usage)
    assert stream.completion()["choices"] == whole["choices"]
    assert streamed.choices[0].message.content.startswith("$1\\, 2\\, 3$")


@needs_shared
def test_recorded_v1_payload_stream() -> None:
    raw = (RECORDINGS / "payloads" / "chat_completion.stream").read_bytes()
    call = v1_call(stream=True)
    chunks, _ = stream_through(call, list(sse_payloads(raw)))
    same(accumulate(chunks), chat_completion(call, gigapy_final(raw), CTX), usage=False)


@needs_shared
def test_recorded_v2_stream() -> None:
    (interaction,) = cassette("test_primary_chat_stream_simple.yaml")
    payloads = list(sse_payloads(interaction["body"]))
    assert [e for e, _ in payloads] == ["response.message.delta", "response.message.done"]
    call = v2_call(stream=True, stream_options={"include_usage": True})
    chunks, _ = stream_through(call, payloads)
    streamed = accumulate(chunks)
    assert streamed.choices[0].message.content == "1, 2, 3"
    assert streamed.usage is not None and streamed.usage.total_tokens == 27
    whole = {
        "model": "GigaChat-3-Ultra:32.3.18.5",
        "created_at": 1780321864,
        "finish_reason": "stop",
        "messages": [{"role": "assistant", "content": [{"text": "1, 2, 3"}]}],
        "usage": payloads[1][1]["usage"],
    }
    same(streamed, chat_completion(call, whole, CTX))


@needs_shared
def test_recorded_function_call_as_a_v2_stream() -> None:
    """The recorded tool-call answer, streamed as the live service does (the call arrives in ``done``)."""
    first, _ = cassette("test_primary_chat_function_tool_roundtrip.yaml")
    body = json.loads(first["body"])
    done = {k: body[k] for k in ("model", "created_at", "finish_reason", "usage", "messages")}
    call = v2_call(stream=True)
    chunks, _ = stream_through(call, [("response.message.done", done)])
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": deltas[0]["tool_calls"][0]["id"],
                "type": "function",
                "function": {"name": "get_order_status", "arguments": ""},
            }
        ],
    }
    assert deltas[1] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"order_id":"A-1024"}'}}]}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    streamed = accumulate(chunks)
    same(streamed, chat_completion(call, body, CTX), usage=False)
    # the same call also arriving in a delta first is not repeated
    delta = {"model": body["model"], "created_at": body["created_at"], "messages": body["messages"]}
    again, _ = stream_through(call, [("response.message.delta", delta), ("response.message.done", done)])
    assert accumulate(again).choices[0].message.tool_calls == streamed.choices[0].message.tool_calls


@needs_shared
def test_recorded_v1_function_call_as_a_stream() -> None:
    body = payload("chat_completion_function.json")
    choice = body["choices"][0]
    chunks_in = [
        {
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
            "created": body["created"],
            "model": body["model"],
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "", "function_call": choice["message"]["function_call"]},
                    "finish_reason": "function_call",
                }
            ],
            "created": body["created"],
            "model": body["model"],
            "usage": body["usage"],
        },
    ]
    call = v1_call(stream=True, stream_options={"include_usage": True})
    chunks, _ = stream_through(call, [(None, c) for c in chunks_in])
    same(accumulate(chunks), chat_completion(call, body, CTX))
    names = [
        tc["function"].get("name") for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls", [])
    ]
    assert names == ["fc", None]


def test_n_choices_stream_and_usage_after_all() -> None:
    def chunk(i: int, text: str, finish: str | None = None, usage: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"choices": [{"index": i, "delta": {"content": text}}], "created": 9, "model": "G:1"}
        if finish:
            out["choices"][0]["finish_reason"] = finish
        if usage:
            out["usage"] = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        return out

    call = v1_call(n=2, stream=True, stream_options={"include_usage": True})
    feed = [chunk(0, "a"), chunk(1, "b"), chunk(0, "c", "stop"), chunk(1, "", "length", usage=True)]
    chunks, _ = stream_through(call, [(None, c) for c in feed])
    streamed = accumulate(chunks)
    assert [c.message.content for c in streamed.choices] == ["ac", "b"]
    assert [c.finish_reason for c in streamed.choices] == ["stop", "length"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 3


def test_stream_cut_short_still_ends_each_choice() -> None:
    call = v1_call(stream=True)
    chunks, _ = stream_through(
        call, [(None, {"choices": [{"index": 0, "delta": {"content": "partial"}}], "created": 1, "model": "G"})]
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert accumulate(chunks).choices[0].message.content == "partial"


def test_empty_stream_is_still_one_answer() -> None:
    chunks, _ = stream_through(v1_call(stream=True), [])
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": ""}, {}]


@pytest.mark.parametrize("event", ["error", None])
def test_error_payload_in_a_stream_raises(event: str | None) -> None:
    stream = ChatCompletionStream(v2_call(stream=True), CTX)
    with pytest.raises(StreamPayloadError) as err:
        stream.feed({"status": 429, "message": "Too many requests"}, event)
    assert err.value.status == 429


def test_ids_do_not_depend_on_a_clock_or_randomness() -> None:
    body = {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}], "model": "G"}
    ticks = iter([100.0, 200.0])
    ctx = TranslateContext(now=lambda: next(ticks))
    first = chat_completion(v1_call(), body, ctx)
    second = chat_completion(v1_call(), body, ctx)
    assert (first["created"], second["created"]) == (100, 200)
    assert first["id"] != second["id"]  # the seed includes created when no request id is given
    made = []
    custom = TranslateContext(request_id="r", ids=lambda prefix, seed: made.append((prefix, seed)) or f"{prefix}X")
    assert chat_completion(v1_call(), body, custom)["id"] == "chatcmpl-X"
    assert made == [("chatcmpl-", "r")]


@settings(max_examples=150, deadline=None)
@example(text=" aa", stops=["a", " aa"], cuts=[1, 2], api="v1")
@example(text=" aa", stops=["a", " aa"], cuts=[1, 2], api="v2")
@example(text="aab", stops=["ab", "a"], cuts=[1], api="v1")
@example(text="xab", stops=["abc", "b"], cuts=[2], api="v2")
@given(
    text=st.text(alphabet="ab c\n", max_size=40),
    stops=st.lists(st.text(alphabet="ab c", min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(0, 40), max_size=8),
    api=st.sampled_from(["v1", "v2"]),
)
def test_streamed_stop_sequences_equal_the_whole_answer(text: str, stops: list[str], cuts: list[int], api: str) -> None:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(points)]
    kw: dict[str, Any] = {"stream": True}
    if stops:
        kw["stop"] = stops
    call = v1_call(**kw) if api == "v1" else v2_call(**kw)
    if api == "v1":
        feed: list[tuple[str | None, Any]] = [
            (None, {"choices": [{"index": 0, "delta": {"content": p}}], "created": 1, "model": "G"}) for p in pieces
        ]
        feed.append(
            (
                None,
                {
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}],
                    "created": 1,
                    "model": "G",
                },
            )
        )
        whole = {
            "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
            "created": 1,
            "model": "G",
        }
    else:
        feed = [
            (
                "response.message.delta",
                {"model": "G", "created_at": 1, "messages": [{"role": "assistant", "content": [{"text": p}]}]},
            )
            for p in pieces
        ]
        feed.append(("response.message.done", {"model": "G", "created_at": 1, "finish_reason": "stop"}))
        whole = {
            "model": "G",
            "created_at": 1,
            "finish_reason": "stop",
            "messages": [{"role": "assistant", "content": [{"text": text}]}],
        }
    chunks, _ = stream_through(call, feed)
    same(accumulate(chunks), chat_completion(call, whole, CTX), usage=False)
    visible = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert not any(s in visible for s in stops)


def test_legacy_function_call_stream() -> None:
    call = chat_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "functions": [WEATHER["function"]],
        }
    ).finish()
    body = payload_function()
    fc = body["choices"][0]["message"]["function_call"]
    feed: list[tuple[str | None, Any]] = [
        (
            None,
            {
                "choices": [
                    {"index": 0, "delta": {"content": "", "function_call": fc}, "finish_reason": "function_call"}
                ],
                "created": 3,
                "model": "GigaChat:2",
            },
        )
    ]
    chunks, _ = stream_through(call, feed)
    streamed = accumulate(chunks)
    whole = ChatCompletion.model_validate(chat_completion(call, body, CTX))
    assert streamed.choices[0].finish_reason == whole.choices[0].finish_reason == "function_call"
    assert streamed.choices[0].message.function_call == whole.choices[0].message.function_call
    assert whole.choices[0].message.function_call is not None
    assert whole.choices[0].message.function_call.arguments == '{"id":1}'


def test_finish_reasons_map_back() -> None:
    from gigapy._translate import finish_reason_from_openai

    for giga, openai_reason, _ in FINISHES[:4]:
        assert finish_reason_from_openai(openai_reason) in (giga, "blacklist")
    assert finish_reason_from_openai("tool_calls") == "function_call"


# ------------------------------------------------- the direct JSON rendering of common answers

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_CHOICE = st.fixed_dictionaries(
    {"message": st.fixed_dictionaries({"role": st.just("assistant"), "content": st.one_of(st.none(), _TEXT)})},
    optional={
        "index": st.integers(0, 3),
        "finish_reason": st.sampled_from([None, "stop", "length", "blacklist", "function_call", "other"]),
    },
)
_USAGE = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": st.integers(0, 10**6),
        "completion_tokens": st.integers(0, 10**6),
        "total_tokens": st.integers(0, 10**6),
        "precached_prompt_tokens": st.one_of(st.none(), st.integers(0, 10**6)),
    },
)
_ANSWER = st.fixed_dictionaries(
    {"choices": st.lists(_CHOICE, max_size=3)},
    optional={"model": _TEXT, "created": st.integers(0, 2**40), "usage": _USAGE, "object": st.just("chat.completion")},
)


@settings(max_examples=300, deadline=None)
@given(_ANSWER, st.booleans())
@example(
    {
        "choices": [{"index": 0, "message": {"content": 'Париж — "столица"\n\u2028'}, "finish_reason": "stop"}],
        "model": "GigaChat:1",
        "created": 1,
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "precached_prompt_tokens": 1},
    },
    True,
)
def test_direct_json_matches_the_generic_rendering(answer: dict[str, Any], with_id: bool) -> None:
    from gigapy._translate.chat import chat_completion_json
    from gigapy.openai._bridge import _dumps

    ctx = TranslateContext(request_id="req-1" if with_id else None, now=lambda: 7.0)
    call = plan()
    direct = chat_completion_json(call, answer, ctx)
    generic = chat_completion(call, answer, ctx)
    if direct is None:  # only the uncommon answers are left to the generic rendering
        assert any(c.get("finish_reason") not in (None, "stop", "length") for c in answer["choices"])
        return
    assert direct == _dumps(generic)
    ChatCompletion.model_validate_json(direct)


def test_direct_json_leaves_the_rest_to_the_generic_rendering() -> None:
    from gigapy._translate.chat import chat_completion_json

    text = {"choices": [{"index": 0, "message": {"content": "a STOP b"}, "finish_reason": "stop"}], "model": "m"}
    assert chat_completion_json(plan(), text, CTX) is not None
    assert chat_completion_json(plan(stop=["STOP"]), text, CTX) is None  # cut at the stop sequence
    call = {"choices": [{"message": {"content": "", "function_call": {"name": "f", "arguments": {}}}}]}
    assert chat_completion_json(plan(), call, CTX) is None
    reasoning = {"choices": [{"message": {"content": "x", "reasoning_content": "because"}}]}
    assert chat_completion_json(plan(), reasoning, CTX) is None
    assert chat_completion_json(plan(), {"choices": [{"message": {"content": 5}}]}, CTX) is None
    assert chat_completion_json(plan(), {"choices": [], "usage": {"prompt_tokens": True}}, CTX) is None
