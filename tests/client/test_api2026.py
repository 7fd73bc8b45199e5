"""The 2026 API fields and full JSON Schema, through the client, against the emulator (sync and async).

v1: ``assistant_id``, ``reasoning_effort`` (free-form) with ``reasoning_max_tokens``, ``top_logprobs``,
call ids. v2: ``tool_config`` mode ``any`` with ``functions_names_any``, ``parallel_tool_calls``,
``reasoning`` ``{effort, max_tokens}``, call ids round-tripped into results, logprobs, error_details.
Both: the ``session_id`` setting, forward compatibility (unknown fields and values sent with a
warning, typos refused) and the full JSON Schema dialect.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel

from gigapy import (
    AsyncGigaChat,
    BadRequestError,
    GigaChat,
    InvalidArgumentError,
    NotFoundError,
    UnknownFieldWarning,
)
from gigapy._core import params as P
from gigapy.emulator import count_tokens
from gigapy.errors import APIError
from gigapy.testing import client_settings
from gigapy.types import ChatCompletion, ChatCompletionV2, ErrorDetails, Logprob

WEATHER = {
    "name": "get_weather",
    "description": "Погода в городе",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {
    "name": "get_time",
    "description": "Текущее время в городе",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
BOTH = "Какая сейчас погода и время в Москве?"

Call = Callable[..., Any]


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    """Each test sees the once-per-process warnings anew (they are keyed by field name)."""
    P.warned.clear()
    yield
    P.warned.clear()


def _method(client: Any, name: str) -> Any:
    target = client
    for part in name.split("."):
        target = getattr(target, part)
    return target


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest, emu: Any) -> Call:
    """Call ``client.<method>`` (dotted: ``v2.completion``) on a sync or an async client; with
    ``stream=True`` the method is a stream and its final completion is returned."""

    def run(
        method: str, *args: Any, client_options: dict[str, Any] | None = None, stream: bool = False, **kwargs: Any
    ) -> Any:
        settings = client_settings(emu, **(client_options or {}))
        if request.param == "sync":
            with GigaChat(**settings) as client:
                fn = _method(client, method)
                if not stream:
                    return fn(*args, **kwargs)
                with fn(*args, **kwargs) as s:
                    for _ in s:
                        pass
                    return s.get_final_completion()

        async def go() -> Any:
            async with AsyncGigaChat(**settings) as client:
                fn = _method(client, method)
                if not stream:
                    return await fn(*args, **kwargs)
                async with fn(*args, **kwargs) as s:
                    async for _ in s:
                        pass
                    return await s.get_final_completion()

        return asyncio.run(go())

    return run


def sent(emu: Any, path_part: str = "/chat/completions") -> Any:
    request = next(r for r in reversed(emu.requests) if path_part in r.path)
    return request


# --- v1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_v1_reasoning_effort_and_budget(call: Call, emu: Any, stream: bool) -> None:
    method = "completion_stream" if stream else "completion"
    answer = call(method, "Почему небо голубое?", reasoning_effort="high", reasoning_max_tokens=40, stream=stream)
    assert isinstance(answer, ChatCompletion)
    body = sent(emu).json()
    assert (body["reasoning_effort"], body["reasoning_max_tokens"]) == ("high", 40)
    assert answer.text and answer.reasoning
    assert count_tokens(answer.reasoning) == 40  # "high" reasons longer than 40 tokens: cut at the budget
    plain = call("completion", "Почему небо голубое?")
    assert plain.reasoning == "" and plain.text == answer.text  # reasoning never changes the answer
    assert answer.usage.completion_tokens == plain.usage.completion_tokens + 40


def test_v1_reasoning_effort_is_free_form(call: Call, emu: Any) -> None:
    with pytest.warns(UnknownFieldWarning, match="reasoning_effort: 'xhigh' is not a value gigapy knows"):
        answer = call("completion", "Почему небо голубое?", reasoning_effort="xhigh")
    assert sent(emu).json()["reasoning_effort"] == "xhigh"  # sent as given: the service adds efforts
    assert answer.reasoning  # the emulator reasons at its medium length for an effort it does not know


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_v1_logprobs(call: Call, emu: Any, stream: bool) -> None:
    method = "completion_stream" if stream else "completion"
    answer = call(method, "Расскажи о реках", top_logprobs=3, stream=stream)
    assert sent(emu).json()["top_logprobs"] == 3
    logprobs = answer.logprobs
    assert logprobs and all(isinstance(lp, Logprob) for lp in logprobs)
    assert "".join(lp.chosen.token for lp in logprobs) == answer.text
    for lp in logprobs:
        assert len(lp.top) == 3 and lp.top[0] == lp.chosen
        assert [t.logprob for t in lp.top] == sorted((t.logprob for t in lp.top), reverse=True)
    if stream:
        assert call("completion", "Расскажи о реках", top_logprobs=3).logprobs == logprobs


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_v1_call_id_and_result_message(call: Call, emu: Any, stream: bool) -> None:
    method = "completion_stream" if stream else "completion"
    first = call(method, "Какая погода в Туле?", functions=[WEATHER], stream=stream)
    fc = first.function_call
    assert fc is not None and uuid.UUID(fc.id)
    history = [{"role": "user", "content": "Какая погода в Туле?"}, first.message, fc.result_message({"t": 5})]
    second = call("completion", history, functions=[WEATHER])
    assert second.finish_reason == "stop" and "5" in second.text
    replayed = sent(emu).json()["messages"]
    assert replayed[1]["function_call"]["id"] == fc.id
    assert replayed[2] == {"role": "function", "name": "get_weather", "content": '{"t": 5}'}


def test_v1_assistant_id_without_model(call: Call, emu: Any) -> None:
    with GigaChat(**client_settings(emu)) as client:
        assistant = client.assistants.create(name="Pirate", model="GigaChat-2-Max", instructions="Отвечай кратко")
    answer = call("completion", "Привет!", assistant_id=assistant.assistant_id)
    body = sent(emu).json()
    assert "model" not in body and body["assistant_id"] == assistant.assistant_id  # as the SDK sends it
    assert answer.model.startswith("GigaChat-2-Max:")


def test_v1_stored_thread_decides_the_model(call: Call, emu: Any) -> None:
    first = call("completion", "Меня зовут Алекс", model="GigaChat-2-Pro", storage={"is_stateful": True})
    second = call("completion", "Как меня зовут?", storage={"is_stateful": True, "thread_id": first.thread_id})
    assert "model" not in sent(emu).json()
    assert second.model.startswith("GigaChat-2-Pro:") and "Алекс" in second.text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_v1_error_details(call: Call, stream: bool) -> None:
    method = "completion_stream" if stream else "completion"
    answer = call(method, "Погода? [emulator:function_call_error]", functions=[WEATHER], stream=stream)
    assert answer.finish_reason == "error"
    assert isinstance(answer.error_details, ErrorDetails)
    assert answer.error_details.code == "function_call_error" and "get_weather" in answer.error_details.message


# --- v2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_v2_any_mode_forces_one_of_the_allowed(call: Call, emu: Any, stream: bool) -> None:
    method = "v2.completion_stream" if stream else "v2.completion"
    answer = call(method, "Расскажи анекдот", functions=[WEATHER, TIME], tool_config=["get_time"], stream=stream)
    assert sent(emu).json()["tool_config"] == {"mode": "any", "functions_names_any": ["get_time"]}
    assert answer.finish_reason == "function_call"
    assert [c.name for c in answer.function_calls] == ["get_time"]  # a joke is about no function: still a call
    free = call("v2.completion", "Расскажи анекдот", functions=[WEATHER, TIME], tool_config="any")
    assert sent(emu).json()["tool_config"] == {"mode": "any"}
    assert [c.name for c in free.function_calls] in (["get_weather"], ["get_time"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_v2_parallel_calls_and_results_by_id(call: Call, emu: Any, stream: bool) -> None:
    method = "v2.completion_stream" if stream else "v2.completion"
    answer = call(method, BOTH, functions=[WEATHER, TIME], parallel_tool_calls=True, stream=stream)
    assert sent(emu).json()["model_options"] == {"parallel_tool_calls": True}
    calls = answer.function_calls
    assert sorted(c.name for c in calls) == ["get_time", "get_weather"]
    assert len({c.id for c in calls}) == 2 and all(uuid.UUID(c.id) for c in calls)
    results = {"get_weather": {"temperature": -3}, "get_time": {"time": "12:30"}}
    history = [
        {"role": "user", "content": BOTH},
        answer.message,
        *(c.result_message(results[c.name]) for c in reversed(calls)),
    ]  # any order: the ids tell
    final = call("v2.completion", history, functions=[WEATHER, TIME])
    assert final.finish_reason == "stop" and "-3" in final.text and "12:30" in final.text
    replayed = sent(emu).json()["messages"]
    assert [m["content"][0]["function_result"]["id"] for m in replayed[2:]] == [c.id for c in reversed(calls)]
    single = call("v2.completion", BOTH, functions=[WEATHER, TIME], parallel_tool_calls=False)
    assert len(single.function_calls) == 1


def test_v2_run_tools_parallel(call: Call, emu: Any) -> None:
    seen: list[str] = []

    def get_weather(city: str) -> dict[str, Any]:
        """Погода в городе."""
        seen.append(f"weather:{city}")
        return {"temperature": 21}

    def get_time(city: str) -> dict[str, Any]:
        """Текущее время в городе."""
        seen.append(f"time:{city}")
        return {"time": "09:15"}

    run = call("v2.run_tools", BOTH, tools=[get_weather, get_time], parallel_tool_calls=True)
    assert sorted(s.split(":")[0] for s in seen) == ["time", "weather"]
    assert len(run.calls) == 2 and all(uuid.UUID(c.id) for c in run.calls)
    assert "21" in run.text and "09:15" in run.text
    results = [p for m in run.messages if isinstance(m, dict) and m.get("role") == "function" for p in m["content"]]
    assert {r["function_result"]["id"] for r in results} == {c.id for c in run.calls}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_v2_reasoning_effort_and_max_tokens(call: Call, emu: Any, stream: bool) -> None:
    method = "v2.completion_stream" if stream else "v2.completion"
    answer = call(method, "Почему небо голубое?", reasoning={"effort": "low", "max_tokens": 500}, stream=stream)
    assert sent(emu).json()["model_options"] == {"reasoning": {"effort": "low", "max_tokens": 500}}
    assert isinstance(answer, ChatCompletionV2)
    assert count_tokens(answer.reasoning) == 24  # low effort, well inside the budget
    capped = call(method, "Почему небо голубое?", reasoning_effort="high", reasoning_max_tokens=10, stream=stream)
    assert sent(emu).json()["model_options"] == {"reasoning": {"effort": "high", "max_tokens": 10}}
    assert count_tokens(capped.reasoning) == 10 and capped.text == answer.text
    assert call("v2.completion", "Почему небо голубое?").reasoning == ""


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_v2_logprobs(call: Call, stream: bool) -> None:
    method = "v2.completion_stream" if stream else "v2.completion"
    answer = call(method, "Расскажи о горах", top_logprobs=2, stream=stream)
    logprobs = answer.all_logprobs
    assert "".join(lp.chosen.token for lp in logprobs) == answer.text
    assert all(len(lp.top) == 2 for lp in logprobs)
    if stream:
        assert call("v2.completion", "Расскажи о горах", top_logprobs=2).all_logprobs == logprobs


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_v2_error_details(call: Call, stream: bool) -> None:
    method = "v2.completion_stream" if stream else "v2.completion"
    answer = call(method, "Погода? [emulator:function_call_error]", functions=[WEATHER], stream=stream)
    assert answer.finish_reason == "function_call_error"
    assert answer.error_details is not None and answer.error_details.model_extra["function_name"] == "get_weather"


def test_v2_assistant_id_without_model(call: Call, emu: Any) -> None:
    with GigaChat(**client_settings(emu)) as client:
        assistant = client.assistants.create(name="Helper", model="GigaChat-2-Pro", functions=[WEATHER])
    answer = call(
        "v2.completion", "Какая погода в Туле?", assistant_id=assistant.assistant_id, tool_config="get_weather"
    )  # the assistant's function: not in this request
    body = sent(emu).json()
    assert "model" not in body and body["tool_config"] == {"mode": "forced", "function_name": "get_weather"}
    assert answer.model.startswith("GigaChat-2-Pro:") and answer.function_calls[0].name == "get_weather"


# --- session id ---------------------------------------------------------------------------------


def test_session_id_setting_and_per_call_override(call: Call, emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    prompt = "Расскажи подробно о истории Москвы " * 20
    first = call("completion", prompt, client_options={"session_id": "sess-1"})
    assert sent(emu).headers["X-Session-ID"] == "sess-1" and first.session_id == "sess-1"
    again = call("v2.completion", prompt, client_options={"session_id": "sess-1"})
    assert sent(emu).headers["X-Session-ID"] == "sess-1"
    assert again.usage.input_tokens_details.cached_tokens > 0  # the prompt cache keys on the session
    call("completion", "Привет", client_options={"session_id": "sess-1"}, session_id="sess-2")
    assert sent(emu).headers["X-Session-ID"] == "sess-2"
    monkeypatch.setenv("GIGACHAT_SESSION_ID", "from-env")
    call("all_models")
    assert sent(emu, "/models").headers["X-Session-ID"] == "from-env"


@pytest.mark.parametrize("value", ["", "два\nслова", 5])
def test_session_id_setting_is_checked(emu: Any, value: Any) -> None:
    from gigapy import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        GigaChat(**client_settings(emu, session_id=value))
    assert info.value.field == "session_id"


# --- forward compatibility -----------------------------------------------------------------------


def test_unknown_fields_are_sent_with_one_warning_per_name(call: Call, emu: Any) -> None:
    name = f"future_{uuid.uuid4().hex[:8]}"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call("completion", "Привет", **{name: {"a": 1}})
        call("completion", "Привет", **{name: {"a": 2}})
    mine = [w for w in record if issubclass(w.category, UnknownFieldWarning) and name in str(w.message)]
    assert len(mine) == 1  # once per field name per process
    assert f"{name}: not a field gigapy knows" in str(mine[0].message)
    assert mine[0].filename == __file__  # the warning points at the caller's line
    assert sent(emu).json()[name] == {"a": 2}
    with pytest.warns(UnknownFieldWarning, match="model_options.new_knob"):
        call("v2.completion", "Привет", model_options={"new_knob": True, "temperature": 0.5})
    assert sent(emu).json()["model_options"] == {"new_knob": True, "temperature": 0.5}


def test_unknown_tool_and_mode_are_sent(emu: Any) -> None:
    with GigaChat(**client_settings(emu)) as client:
        with pytest.warns(UnknownFieldWarning, match="tools\\[0\\].image_edit"), pytest.raises(NotFoundError) as info:
            client.v2.completion("Привет", tools=["image_edit"])
        assert info.value.server_message == "Unknown tool image_edit"  # the service's verdict, not gigapy's
        assert sent(emu).json()["tools"] == [{"image_edit": {}}]
        with pytest.warns(UnknownFieldWarning, match="tool_config.mode"), pytest.raises(BadRequestError):
            client.v2.completion("Привет", functions=[WEATHER], tool_config={"mode": "required"})
        assert sent(emu).json()["tool_config"] == {"mode": "required"}


def test_warnings_can_be_errors(emu: Any) -> None:
    with GigaChat(**client_settings(emu)) as client, warnings.catch_warnings():
        warnings.simplefilter("error", UnknownFieldWarning)
        before = len(emu.requests)
        with pytest.raises(UnknownFieldWarning):
            client.completion("Привет", some_new_field=1)
        assert len(emu.requests) == before


@pytest.mark.parametrize(
    ("kwargs", "field", "hint"),
    [
        ({"temprature": 0.5}, "temprature", "did you mean 'temperature'"),
        ({"Max_Tokens": 5}, "Max_Tokens", "did you mean 'max_tokens'"),
        ({"reasoning_efort": "low"}, "reasoning_efort", "did you mean 'reasoning_effort'"),
        ({"sesion_id": "x"}, "sesion_id", "did you mean 'session_id'"),
        ({"reasoning_effort": "Low"}, "reasoning_effort", "did you mean 'low'"),
        ({"reasoning_effort": ["low"]}, "reasoning_effort", "expected a non-empty string"),
        ({"tool_config": "auto"}, "tool_config", "v2 field"),
        ({"assistant_id": 5}, "assistant_id", "expected a string"),
    ],
)
def test_typos_and_bad_types_of_known_fields_raise(emu: Any, kwargs: dict[str, Any], field: str, hint: str) -> None:
    before = len(emu.requests)
    with GigaChat(**client_settings(emu)) as client, pytest.raises(InvalidArgumentError) as info:
        client.completion("Привет", **kwargs)
    assert info.value.field == field and hint in info.value.reason
    assert len(emu.requests) == before


# --- full JSON Schema -----------------------------------------------------------------------------


class Address(BaseModel):
    city: str
    street: str | None = None


class Delivery(BaseModel):
    """Book a delivery to an address."""

    address: Address
    when: str | int
    mode: Literal["courier", "pickup"] = "courier"
    tags: list[str] = []


def _resolved(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("api_version", ["v1", "v2"])
def test_full_schema_is_sent_unchanged(call: Call, emu: Any, api_version: str) -> None:
    method = "completion" if api_version == "v1" else "v2.completion"
    forced = {"function_call": "Delivery"} if api_version == "v1" else {"tool_config": "Delivery"}
    answer = call(
        method,
        "Доставь в Казань, улица Баумана, завтра",
        functions=[Delivery],
        client_options={"schema_dialect": "full"},
        **forced,
    )
    body = sent(emu).json()
    spec = body["functions"][0] if api_version == "v1" else body["tools"][0]["functions"]["specifications"][0]
    assert spec["parameters"] == Delivery.model_json_schema()  # $defs, $ref, anyOf, titles: all of it
    assert "$defs" in spec["parameters"] and "anyOf" in json.dumps(spec["parameters"])
    (fc,) = [answer.function_call] if api_version == "v1" else answer.function_calls
    _resolved(spec["parameters"]).validate(fc.parsed_arguments)  # the emulator resolved $ref to fill them
    assert Delivery.model_validate(fc.parsed_arguments).address.city


def test_reduced_is_the_default_and_per_call_wins(call: Call, emu: Any) -> None:
    call("completion", "Доставь в Казань", functions=[Delivery])
    reduced = sent(emu).json()["functions"][0]["parameters"]
    assert "$ref" not in json.dumps(reduced) and reduced["properties"]["address"]["type"] == "object"
    call("completion", "Доставь в Казань", functions=[Delivery], schema_dialect="full")
    assert sent(emu).json()["functions"][0]["parameters"] == Delivery.model_json_schema()
    assert "schema_dialect" not in sent(emu).json()  # it shapes the request, it is not sent
    call(
        "completion",
        "Доставь в Казань",
        functions=[Delivery],
        schema_dialect="reduced",
        client_options={"schema_dialect": "full"},
    )
    assert sent(emu).json()["functions"][0]["parameters"] == reduced


@pytest.mark.parametrize("method", ["assistants.create", "assistants.update"])
def test_assistant_functions_follow_the_clients_schema_dialect(call: Call, emu: Any, method: str) -> None:
    args = () if method == "assistants.create" else ("6f0b9c5e-0000-4000-8000-000000000001",)
    named = {"name": "Курьер"} if method == "assistants.create" else {}
    path = "/assistants" if method == "assistants.create" else "/assistants/modify"
    for dialect, reduced in (("full", False), ("reduced", True)):
        try:
            call(method, *args, functions=[Delivery], client_options={"schema_dialect": dialect}, **named)
        except APIError:
            pass  # the emulator may not know the assistant id: the request body is what is checked
        parameters = next(r for r in reversed(emu.requests) if r.path.endswith(path)).json()["functions"][0][
            "parameters"
        ]
        assert ("$ref" not in json.dumps(parameters)) is reduced
        if not reduced:
            assert parameters == Delivery.model_json_schema()


@pytest.mark.parametrize("api_version", ["v1", "v2"])
def test_run_tools_with_full_schemas(call: Call, api_version: str) -> None:
    booked: list[Delivery] = []

    def book_delivery(order: Delivery) -> dict[str, Any]:
        """Оформить доставку заказа по адресу."""
        booked.append(order)
        return {"status": "booked"}

    method = "run_tools" if api_version == "v1" else "v2.run_tools"
    run = call(method, "Оформи доставку заказа в Казань", tools=[book_delivery], schema_dialect="full")
    assert run.calls and run.calls[0].error is None, run.calls
    assert booked and booked[0].address.city
    assert "booked" in run.text


# --- response models ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ({"code": 7, "message": "bad args", "function_name": "f"}, 7, "bad args"),
        ("generation failed", None, "generation failed"),
        ({"code": {"kind": "x"}, "message": ["a", "b"]}, '{"kind": "x"}', '["a", "b"]'),
        ([1, 2], None, "[1, 2]"),
    ],
)
def test_error_details_keep_any_shape(raw: Any, code: Any, message: str) -> None:
    for model in (ChatCompletion, ChatCompletionV2):
        details = model.model_validate({"error_details": raw}).error_details
        assert details is not None and (details.code, details.message) == (code, message)
    kept = ChatCompletionV2.model_validate({"error_details": {"message": "m", "trace": [1]}}).error_details
    assert kept is not None and kept.model_extra == {"trace": [1]}  # unknown fields kept


def test_reasoning_in_either_shape() -> None:
    as_field = ChatCompletionV2.model_validate(
        {"messages": [{"role": "assistant", "reasoning_content": "think", "content": [{"text": "answer"}]}]}
    )
    as_role = ChatCompletionV2.model_validate(
        {
            "messages": [
                {"role": "reasoning", "content": [{"text": "think"}]},
                {"role": "assistant", "content": [{"text": "answer"}]},
            ]
        }
    )
    for completion in (as_field, as_role):
        assert (completion.reasoning, completion.text) == ("think", "answer")
