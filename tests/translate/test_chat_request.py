"""OpenAI Chat Completions requests -> GigaChat v1/v2 bodies: every parameter has a fate."""

from __future__ import annotations

import hashlib
import typing
from typing import Any

import pytest
from openai.types.chat import completion_create_params

from gigapy._translate._common import UnsupportedParameterError
from gigapy._translate._options import TranslateOptions
from gigapy._translate.chat import EXTENSIONS, PARAMETERS, chat_request
from gigapy.errors import InvalidArgumentError

from ._helpers import SHARED_PNG, data_url

USER = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "GigaChat-2", "messages": USER, **kw}


def call(**kw: Any) -> Any:
    return chat_request(body(**kw)).finish()


def test_every_openai_parameter_has_a_fate() -> None:
    names = set(typing.get_type_hints(completion_create_params.CompletionCreateParamsBase))
    names |= set(typing.get_type_hints(completion_create_params.CompletionCreateParamsStreaming))
    missing = names - set(PARAMETERS)
    assert not missing, f"parameters of the installed openai package with no fate: {sorted(missing)}"
    assert {fate for fate, _ in PARAMETERS.values()} == {"mapped", "emulated", "no effect", "refused"}


def test_unknown_parameter_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedParameterError) as err:
        chat_request(body(frobnicate=1))
    assert err.value.field == "frobnicate"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("frequency_penalty", 0.5),
        ("presence_penalty", -1),
        ("logit_bias", {"50256": -100}),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("audio", {"voice": "alloy", "format": "mp3"}),
        ("modalities", ["text", "audio"]),
        ("prediction", {"type": "content", "content": "x"}),
        ("store", True),
        ("verbosity", "low"),
        ("service_tier", "flex"),
        ("moderation", {"model": "omni-moderation-latest"}),
        ("web_search_options", {"search_context_size": "high"}),
    ],
)
def test_refused_values_name_the_parameter(name: str, value: Any) -> None:
    with pytest.raises(UnsupportedParameterError) as err:
        chat_request(body(**{name: value}))
    assert err.value.field.split(".")[0] == name
    assert "GigaChat" in err.value.reason


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("frequency_penalty", 0),
        ("presence_penalty", None),
        ("logit_bias", {}),
        ("logprobs", False),
        ("top_logprobs", 0),
        ("modalities", ["text"]),
        ("store", False),
        ("verbosity", "medium"),
        ("service_tier", "auto"),
        ("seed", 42),
        ("metadata", {"a": "b"}),
        ("safety_identifier", "u1"),
        ("prompt_cache_retention", "24h"),
        ("prompt_cache_options", {"mode": "implicit"}),
    ],
)
def test_neutral_values_pass(name: str, value: Any) -> None:
    out = call(**{name: value})
    assert out.body["messages"] == [{"role": "user", "content": "hi"}]
    assert name not in out.body


def test_plain_chat_goes_to_v1_with_sampling() -> None:
    out = call(
        temperature=0,
        top_p=0.5,
        max_completion_tokens=10,
        reasoning_effort="xhigh",
        repetition_penalty=1.1,
        update_interval=0.2,
        profanity_check=False,
        flags=["f"],
    )
    assert out.api == "v1"
    assert out.body == {
        "model": "GigaChat-2",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.001,
        "top_p": 0.5,
        "max_tokens": 10,
        "repetition_penalty": 1.1,
        "update_interval": 0.2,
        "reasoning_effort": "high",
        "profanity_check": False,
        "flags": ["f"],
    }
    assert set(EXTENSIONS) <= set(PARAMETERS)


def test_max_tokens_disagreeing_is_an_error() -> None:
    assert call(max_tokens=5, max_completion_tokens=5).body["max_tokens"] == 5
    with pytest.raises(InvalidArgumentError, match="disagree"):
        call(max_tokens=5, max_completion_tokens=6)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("temperature", "hot"),
        ("top_p", 1.5),
        ("n", 0),
        ("n", 5),
        ("max_tokens", 0),
        ("reasoning_effort", "extreme"),
        ("stop", [""]),
        ("repetition_penalty", 0),
        ("stream", "yes"),
    ],
)
def test_bad_values_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        call(**{field: value})
    assert err.value.field.startswith(field)


def test_reasoning_none_means_off() -> None:
    assert "reasoning_effort" not in call(reasoning_effort="none").body
    assert call(reasoning_effort="minimal").body["reasoning_effort"] == "low"


def test_n_goes_to_v1_and_cannot_meet_web_search() -> None:
    assert call(n=3).api == "v1"
    assert call(n=3).body["n"] == 3
    with pytest.raises(UnsupportedParameterError) as err:
        call(n=2, web_search_options={})
    assert err.value.field == "n"


def test_web_search_is_the_v2_builtin() -> None:
    out = call(web_search_options={})
    assert out.api == "v2"
    assert out.body["tools"] == [{"web_search": {}}]


def test_user_and_prompt_cache_key_become_the_session_header() -> None:
    assert call(user="alice").headers == {"X-Session-ID": "alice"}
    assert call(user="alice", prompt_cache_key="k").headers == {"X-Session-ID": "k"}


def test_stream_options() -> None:
    out = chat_request(body(stream=True, stream_options={"include_usage": True, "include_obfuscation": False}))
    assert out.request.include_usage
    assert out.finish().body["stream"] is True
    with pytest.raises(InvalidArgumentError, match="stream: true"):
        chat_request(body(stream_options={"include_usage": True}))


def test_system_and_developer_messages() -> None:
    msgs = [
        {"role": "developer", "content": "be brief"},
        {"role": "system", "content": [{"type": "text", "text": "x"}]},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "later"},
    ]
    plan = chat_request({"model": "m", "messages": msgs})
    out = plan.finish()
    assert out.body["messages"] == [
        {"role": "system", "content": "be brief\n\nx"},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "later"},
    ]
    assert any("system" in note for note in out.notes)


def test_model_aliases() -> None:
    plan = chat_request({"model": "gpt-4o", "messages": USER}, TranslateOptions(models={"gpt-4o": "GigaChat-2-Max"}))
    assert plan.finish().body["model"] == "GigaChat-2-Max"


def test_images_are_uploads_keyed_by_content_hash() -> None:
    url = data_url()
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is it?"},
                {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
            ],
        },
        {"role": "assistant", "content": "a dot"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        },
    ]
    plan = chat_request({"model": "m", "messages": msgs})
    digest = hashlib.sha256(SHARED_PNG).hexdigest()
    assert [(u.key, u.mime, u.url) for u in plan.uploads] == [
        (f"sha256:{digest}", "image/png", None),
        ("https://example.com/cat.png", None, "https://example.com/cat.png"),
    ]
    assert plan.uploads[0].data == SHARED_PNG
    with pytest.raises(InvalidArgumentError) as err:
        plan.finish({f"sha256:{digest}": "f1"})
    assert err.value.field == "messages[2].content[1].image_url.url"
    ids = {f"sha256:{digest}": "f1", "https://example.com/cat.png": "f2"}
    v1 = plan.finish(ids)
    assert v1.body["messages"] == [
        {"role": "user", "content": "what is it?", "attachments": ["f1"]},
        {"role": "assistant", "content": "a dot"},
        {"role": "user", "content": "", "attachments": ["f1"]},
        {"role": "user", "content": "", "attachments": ["f2"]},
    ]
    v2 = chat_request({"model": "m", "messages": msgs, "tools": [TIME]}).finish(ids)
    assert v2.body["messages"][0] == {"role": "user", "content": [{"text": "what is it?"}, {"files": [{"id": "f1"}]}]}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("data:image/png;base64,@@@", "base64"),
        ("data:image/png,rawdata", "base64"),
        (data_url(b"GIF89a" + b"\0" * 10, "image/gif"), "gif"),
        ("ftp://x/y.png", "http"),
        (data_url(b"", "image/png"), "empty"),
    ],
)
def test_bad_images_name_the_part(url: str, reason: str) -> None:
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    with pytest.raises(InvalidArgumentError) as err:
        chat_request({"model": "m", "messages": msgs})
    assert err.value.field == "messages[0].content[0].image_url.url"
    assert reason in err.value.reason


def test_file_parts() -> None:
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "sum up"},
                {"type": "file", "file": {"file_data": pdf, "filename": "a.pdf"}},
                {"type": "file", "file": {"file_id": "giga-file-1"}},
            ],
        }
    ]
    plan = chat_request({"model": "m", "messages": msgs})
    (upload,) = plan.uploads
    assert (upload.mime, upload.filename) == ("application/pdf", "a.pdf")
    out = plan.finish({upload.key: "f9"})
    assert out.body["messages"] == [
        {"role": "user", "content": "sum up", "attachments": ["f9"]},
        {"role": "user", "content": "", "attachments": ["giga-file-1"]},
    ]
    with pytest.raises(UnsupportedParameterError):
        chat_request(
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
                    }
                ],
            }
        )


def history() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "weather and time in Moscow?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Moscow"}'},
                },
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": '{"temp": 5}'}]},
    ]


def test_tool_history_to_v2_keeps_parallel_calls_and_names_results() -> None:
    out = chat_request({"model": "m", "messages": history(), "tools": [WEATHER, TIME]}).finish()
    assert out.api == "v2"
    assert out.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"function_call": {"name": "get_weather", "arguments": {"city": "Moscow"}}},
                {"function_call": {"name": "get_time", "arguments": {}}},
            ],
        },
        {"role": "function", "content": [{"function_result": {"name": "get_time", "result": '{"result":"12:00"}'}}]},
        {"role": "function", "content": [{"function_result": {"name": "get_weather", "result": '{"temp": 5}'}}]},
    ]
    spec = out.body["tools"][0]["functions"]["specifications"][0]
    assert spec == {
        "name": "get_weather",
        "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }


def test_tool_history_to_v1_becomes_call_result_pairs() -> None:
    out = chat_request(
        {"model": "m", "messages": history(), "tools": [WEATHER, TIME], "parallel_tool_calls": False}
    ).finish()
    assert out.api == "v1"
    assert out.body["messages"][1:] == [
        {"role": "assistant", "content": "", "function_call": {"name": "get_weather", "arguments": {"city": "Moscow"}}},
        {"role": "function", "name": "get_weather", "content": '{"temp": 5}'},
        {"role": "assistant", "content": "", "function_call": {"name": "get_time", "arguments": {}}},
        {"role": "function", "name": "get_time", "content": '{"result":"12:00"}'},
    ]
    assert out.body["functions"][0]["name"] == "get_weather"


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (history()[:3], "messages[1].tool_calls[0]"),
        ([*history()[:1], {"role": "tool", "tool_call_id": "nope", "content": "x"}], "messages[1]"),
        ([*history(), {"role": "tool", "tool_call_id": "call_a", "content": "again"}], "messages[4]"),
        ([*history()[:2], {"role": "user", "content": "?"}], "messages[1].tool_calls[0]"),
    ],
)
def test_unpaired_tool_messages_are_errors(messages: list[Any], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        chat_request({"model": "m", "messages": messages, "tools": [WEATHER, TIME]}).finish()
    assert err.value.field == field


def test_bad_tool_call_arguments_name_the_field() -> None:
    msgs = history()
    msgs[1]["tool_calls"][0]["function"]["arguments"] = "{not json"
    with pytest.raises(InvalidArgumentError) as err:
        chat_request({"model": "m", "messages": msgs})
    assert err.value.field == "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize(
    ("choice", "v1", "v2"),
    [
        ("auto", "auto", {"mode": "auto"}),
        ("none", "none", {"mode": "none"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"name": "get_time"},
            {"mode": "forced", "function_name": "get_time"},
        ),
    ],
)
def test_tool_choice(choice: Any, v1: Any, v2: Any) -> None:
    assert call(tools=[WEATHER, TIME], tool_choice=choice).body["tool_config"] == v2
    assert call(tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=False).body["function_call"] == v1


def test_required_tool_choice() -> None:
    one = call(tools=[WEATHER], tool_choice="required")
    assert one.body["tool_config"] == {"mode": "forced", "function_name": "get_weather"}
    several = call(tools=[WEATHER, TIME], tool_choice="required")
    assert several.api == "v2"
    assert several.body["tool_config"] == {"mode": "any"}
    assert not any("required" in note for note in several.notes)
    single = call(tools=[WEATHER, TIME], tool_choice="required", parallel_tool_calls=False)
    assert (single.api, single.body["tool_config"]) == ("v2", {"mode": "any"})
    assert single.body["model_options"]["parallel_tool_calls"] is False
    strict = chat_request(
        body(tools=[WEATHER, TIME], tool_choice="required"), TranslateOptions(strict_tool_choice=True)
    ).finish()
    assert strict.body["tool_config"] == {"mode": "any"}
    # v1 (forced by the operator) has no mode any: auto and a note, or a 400 under strict_tool_choice
    v1 = chat_request(body(tools=[WEATHER, TIME], tool_choice="required"), TranslateOptions(api="v1")).finish()
    assert (v1.api, v1.body["function_call"]) == ("v1", "auto")
    assert any("required" in note for note in v1.notes)
    with pytest.raises(UnsupportedParameterError) as err:
        chat_request(
            body(tools=[WEATHER, TIME], tool_choice="required"), TranslateOptions(api="v1", strict_tool_choice=True)
        ).finish()
    assert err.value.field == "tool_choice"
    with pytest.raises(InvalidArgumentError):
        call(tool_choice="required")


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"name": "1bad"}}]}, "tools[0].function.name"),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}},
            "tool_choice.function.name",
        ),
        ({"tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice.type"),
        ({"tools": [WEATHER], "functions": [WEATHER["function"]]}, "functions"),
    ],
)
def test_bad_tools_name_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        chat_request(body(**kw))
    assert err.value.field == field


def test_legacy_functions_round_trip() -> None:
    msgs = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"city":"X"}'}},
        {"role": "function", "name": "get_weather", "content": '{"t": 1}'},
    ]
    out = chat_request(
        {"model": "m", "messages": msgs, "functions": [WEATHER["function"]], "function_call": {"name": "get_weather"}}
    ).finish()
    assert out.request.legacy_functions and out.api == "v1"
    assert out.body["function_call"] == {"name": "get_weather"}
    assert out.body["messages"][1:] == [
        {"role": "assistant", "content": "", "function_call": {"name": "get_weather", "arguments": {"city": "X"}}},
        {"role": "function", "name": "get_weather", "content": '{"t": 1}'},
    ]


def test_response_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}
    assert call(response_format=fmt).body["response_format"] == {
        "type": "json_schema",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        "strict": True,
    }
    assert call(response_format={"type": "json_object"}).body["response_format"] == {
        "type": "json_schema",
        "schema": {"type": "object"},
    }
    assert "response_format" not in call(response_format={"type": "text"}).body
    v2 = call(response_format=fmt, tools=[WEATHER])
    assert v2.body["model_options"]["response_format"]["strict"] is True
    with pytest.raises(InvalidArgumentError) as err:
        call(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    assert err.value.field == "response_format.json_schema.schema"


def test_session_header_is_always_a_valid_header_value() -> None:
    assert call(user="Анна Петрова").headers["X-Session-ID"].startswith("sha256-")
    assert call(user="Анна Петрова").headers == call(user="Анна Петрова").headers
    assert call(user="a b").headers["X-Session-ID"] != call(user="a c").headers["X-Session-ID"]


def test_legacy_functions_go_to_v1() -> None:
    out = chat_request(body(functions=[WEATHER["function"]], function_call="auto")).finish()
    assert out.api == "v1" and out.body["function_call"] == "auto"


@pytest.mark.parametrize(
    ("where", "kw"),
    [
        ("temperature", {"temperature": float("nan")}),
        (
            "tools[0].function.parameters.properties.x.maximum",
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {
                                "type": "object",
                                "properties": {"x": {"type": "number", "maximum": float("inf")}},
                            },
                        },
                    }
                ]
            },
        ),
        (
            "messages[0].content[0].text",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": float("-inf")}]}]},
        ),
    ],
)
def test_non_finite_numbers_anywhere_are_refused_by_path(where: str, kw: dict[str, Any]) -> None:
    """Python's json reads NaN and Infinity; a server parsing bodies with it must not pass them on."""
    with pytest.raises(InvalidArgumentError) as err:
        chat_request(body(**kw))
    assert err.value.field == where


def test_nan_in_tool_text_is_text() -> None:
    msgs = [
        *USER,
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": "NaN"},
    ]
    out = chat_request({"model": "m", "messages": msgs, "tools": [TIME]}).finish()
    assert out.body["messages"][-1]["content"][0]["function_result"]["result"] == '{"result":"NaN"}'
    bad = [
        *USER,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "get_time", "arguments": '{"a": NaN}'}}
            ],
        },
    ]
    with pytest.raises(InvalidArgumentError) as err:
        chat_request({"model": "m", "messages": bad, "tools": [TIME]})
    assert err.value.field == "messages[1].tool_calls[0].function.arguments"
