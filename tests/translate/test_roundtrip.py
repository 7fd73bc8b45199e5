"""Random OpenAI conversations translate to bodies GigaChat's rules accept, pairing every call with its result.

The rules are checked by the emulator's own request validators (the offline model of the
service: system first, each function call answered by the next message, results as JSON,
arguments as objects), for v1 and v2 alike.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gigapy._translate._common import result_json
from gigapy._translate._options import TranslateOptions
from gigapy._translate.chat import chat_request
from gigapy.emulator import _chat as emulator_v1
from gigapy.emulator import _chat_v2 as emulator_v2
from gigapy.errors import InvalidArgumentError

from ._helpers import data_url

NAMES = ["get_weather", "get_time", "search.docs", "lookup-user"]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": n,
            "parameters": {"type": "object", "properties": {"q": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
        },
    }
    for n in NAMES
]
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
args = st.dictionaries(st.sampled_from(["q", "n", "flag"]), st.one_of(st.integers(), texts, st.booleans()), max_size=2)
results = st.one_of(
    texts, st.integers().map(str), args.map(json.dumps), st.sampled_from(["[1, 2]", "null", "NaN", "-Infinity"])
)


@st.composite
def conversations(draw: Any) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(texts)})
    msgs.append({"role": "user", "content": draw(texts)})
    counter = 0
    for _ in range(draw(st.integers(0, 3))):
        calls = []
        for _ in range(draw(st.integers(1, 3))):
            counter += 1
            calls.append(
                {
                    "id": f"call_{counter}",
                    "type": "function",
                    "function": {"name": draw(st.sampled_from(NAMES)), "arguments": json.dumps(draw(args))},
                }
            )
        msgs.append({"role": "assistant", "content": draw(st.one_of(st.none(), texts)), "tool_calls": calls})
        for call in draw(st.permutations(calls)):
            msgs.append({"role": "tool", "tool_call_id": call["id"], "content": draw(results)})
        if draw(st.booleans()):
            content: Any = draw(texts)
            if draw(st.booleans()):
                content = [{"type": "text", "text": content}, {"type": "image_url", "image_url": {"url": data_url()}}]
            msgs.append({"role": "user", "content": content})
    return msgs


@settings(max_examples=120, deadline=None)
@given(msgs=conversations(), api=st.sampled_from(["v1", "v2", None]))
def test_random_histories_pass_gigachat_rules(msgs: list[dict[str, Any]], api: Any) -> None:
    plan = chat_request({"model": "GigaChat-2", "messages": msgs, "tools": TOOLS}, TranslateOptions(api=api))
    call = plan.finish({u.key: "file-1" for u in plan.uploads})
    body = call.body
    calls = {tc["id"]: tc["function"] for m in msgs for tc in m.get("tool_calls", [])}
    wanted = {cid: result_json(m["content"]) for m in msgs if m["role"] == "tool" for cid in [m["tool_call_id"]]}
    if call.api == "v1":
        parsed = emulator_v1.parse_messages(body["messages"])
        emulator_v1.parse_tools(body)
        pairs = [(a.call, b.result) for a, b in itertools.pairwise(parsed) if a.call is not None]
        assert len(pairs) == len(calls)
        expected = [(fn["name"], json.loads(fn["arguments"]), json.loads(wanted[cid])) for cid, fn in calls.items()]
        assert [(c[0], c[1], r[1]) for c, r in pairs] == expected  # type: ignore[index]
    else:
        parsed_v2 = emulator_v2.parse_messages(body["messages"])
        emulator_v2.parse_tools(body)
        got = [p["function_result"] for m in body["messages"] for p in m["content"] if "function_result" in p]
        results_in_order = [
            (calls[m["tool_call_id"]]["name"], wanted[m["tool_call_id"]]) for m in msgs if m["role"] == "tool"
        ]
        assert [(g["name"], g["result"]) for g in got] == results_in_order
        assert len(parsed_v2) == len(body["messages"])
    for text in wanted.values():
        assert isinstance(json.loads(text), dict)


@given(content=st.one_of(texts, args, st.lists(st.integers()), st.integers()))
def test_results_are_always_json_objects(content: Any) -> None:
    value = json.loads(result_json(content))
    assert isinstance(value, dict)
    if isinstance(content, dict):
        assert value == content


@pytest.mark.parametrize("content", ["", []])
def test_empty_user_message_is_refused_before_sending(content: Any) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        chat_request({"model": "m", "messages": [{"role": "user", "content": content}]}).finish()
    assert err.value.field == "messages[0].content"


def test_a_system_message_alone_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="user message"):
        chat_request({"model": "m", "messages": [{"role": "system", "content": "x"}]}).finish()
