"""Structured output: parse() returns a validated model; fallback, repair and typed failures."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from gigapy import (
    AsyncGigaChat,
    InvalidArgumentError,
    LengthFinishReasonError,
    StructuredOutputError,
    UnprocessableEntityError,
)
from gigapy._ops.structured import inline_refs, parse_flow
from gigapy.testing import client_settings
from gigapy.types import ChatCompletion


class City(BaseModel):
    name: str
    population: int = Field(ge=0)


class Trip(BaseModel):
    start: City
    stops: list[City]


def last_chat(emu: Any) -> Any:
    return next(r for r in reversed(emu.requests) if r.path.endswith("/chat/completions"))


def test_native_json_schema(emu: Any, make_client: Any) -> None:
    city = make_client().parse("Назови крупный город России", response_format=City)
    assert isinstance(city, City)
    sent = last_chat(emu).json()
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["strict"] is True
    assert sent["response_format"]["schema"]["required"] == ["name", "population"]


def test_nested_models_are_sent_with_refs_inlined(emu: Any, make_client: Any) -> None:
    trip = make_client().parse("Спланируй поездку по Золотому кольцу", response_format=Trip)
    assert isinstance(trip.start, City)
    schema = last_chat(emu).json()["response_format"]["schema"]
    assert "$ref" not in str(schema)
    assert "$defs" not in schema


def test_forced_function_method(emu: Any, make_client: Any) -> None:
    city = make_client().parse("Назови город", response_format=City, method="function")
    assert isinstance(city, City)
    sent = last_chat(emu).json()
    assert sent["function_call"] == {"name": "City"}
    assert sent["functions"][0]["name"] == "City"
    assert "response_format" not in sent


def test_v2_and_async(emu: Any, make_client: Any) -> None:
    assert isinstance(make_client().v2.parse("Назови город", response_format=City), City)
    assert isinstance(make_client().v2.parse("Назови город", response_format=City, method="function"), City)

    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            assert isinstance(await client.parse("Назови город", response_format=City), City)
            assert isinstance(await client.v2.parse("Назови город", response_format=City), City)

    asyncio.run(main())


def test_cut_answer_is_a_length_error_with_the_raw_text(make_client: Any) -> None:
    with pytest.raises(LengthFinishReasonError) as info:
        make_client().parse("Спланируй поездку", response_format=Trip, max_tokens=3)
    assert info.value.raw_text
    assert info.value.usage.completion_tokens == 3


def test_bad_arguments(make_client: Any) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        make_client().parse("x", response_format=dict)
    assert info.value.field == "response_format"
    with pytest.raises(InvalidArgumentError) as info:
        make_client().parse("x", response_format=City, method="magic")
    assert info.value.field == "method"


# --- the strategy, driven by scripted answers (no HTTP involved) ---------------------------------


def answer(content: str = "", *, call: dict[str, Any] | None = None, finish: str = "stop") -> ChatCompletion:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if call is not None:
        message["function_call"] = call
    return ChatCompletion.model_validate(
        {
            "choices": [{"message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        }
    )


def run(model: type[BaseModel], script: list[Any], method: str = "auto") -> tuple[Any, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def ask(history: list[Any], extra: dict[str, Any]) -> Generator[Any, Any, Any]:
        calls.append({"history": list(history), **extra})
        item = script[len(calls) - 1]
        if isinstance(item, Exception):
            raise item
        return item
        yield  # a generator, like every flow

    flow = parse_flow(ask, "Назови город", model, method=method, v2=False)
    try:
        next(flow)
    except StopIteration as stop:
        return stop.value, calls
    raise AssertionError("the flow yielded an action")


def rejected(message: str) -> UnprocessableEntityError:
    return UnprocessableEntityError(f"422: {message}", status_code=422, server_message=message)


def test_auto_falls_back_to_a_function_when_the_format_is_rejected() -> None:
    result, calls = run(
        City,
        [
            rejected("Invalid params: response_format is not supported for this model"),
            answer(call={"name": "City", "arguments": {"name": "Тула", "population": 470000}}),
        ],
    )
    assert result == City(name="Тула", population=470000)
    assert "response_format" in calls[0]
    assert calls[1]["function_call"] == {"name": "City"}


def test_other_errors_are_not_swallowed_by_the_fallback() -> None:
    with pytest.raises(UnprocessableEntityError):
        run(City, [rejected("Invalid params: system message must be the first message")])


def test_one_repair_round_fixes_invalid_json() -> None:
    fenced = '```json\n{"name": "Тула", "population": 5}\n```'
    result, calls = run(City, [answer("Вот JSON: {name: Тула}"), answer(fenced)])
    assert result.population == 5
    repair = calls[1]["history"]
    assert repair[-2]["role"] == "assistant"
    assert "not valid" in repair[-1]["content"]


def test_repair_for_the_function_method_answers_the_call_with_the_error() -> None:
    bad = answer(call={"name": "City", "arguments": {"name": "Тула", "population": -1}})
    good = answer(call={"name": "City", "arguments": {"name": "Тула", "population": 1}})
    result, calls = run(City, [bad, good], method="function")
    assert result.population == 1
    assert calls[1]["history"][-1]["role"] == "function"
    assert "population" in calls[1]["history"][-1]["content"]


def test_still_invalid_after_repair_is_a_typed_error_with_raw_text_and_usage() -> None:
    with pytest.raises(StructuredOutputError) as info:
        run(City, [answer('{"name": "Тула"}'), answer('{"name": 5}')])
    err = info.value
    assert not isinstance(err, LengthFinishReasonError)
    assert err.raw_text == '{"name": 5}'
    assert err.usage.total_tokens == 12
    assert len(err.errors) == 2
    assert "population" in err.errors[0]


def test_inline_refs_handles_recursion() -> None:
    class Node(BaseModel):
        value: int
        children: list[Node] = []

    schema = inline_refs(Node.model_json_schema())
    assert "$ref" not in str(schema)
