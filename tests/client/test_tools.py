"""Function calling: schemas from Python (with a report of what was dropped) and run_tools."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from gigapy import AsyncGigaChat, InvalidArgumentError, ToolLoopError
from gigapy.schema import function_schema
from gigapy.testing import client_settings
from gigapy.tools import Tool


def get_weather(city: str, days: int = 1, unit: Literal["c", "f"] = "c") -> dict[str, Any]:
    """Погода в городе на несколько дней.

    Args:
        city: Название города
        days: Сколько дней прогноза
    """
    return {"city": city, "days": days, "temperature": 18, "unit": unit}


async def get_time(timezone: str) -> str:
    """Текущее время в часовом поясе.

    :param timezone: IANA timezone, e.g. Europe/Moscow
    """
    await asyncio.sleep(0)
    return "12:00"


@dataclass
class Forecast:
    city: str
    sky: str


def forecast(city: str) -> Forecast:
    """Прогноз погоды на завтра."""
    return Forecast(city, "ясно")


class Address(BaseModel):
    street: str = Field(min_length=1, description="Улица")
    zip: str | int


class Order(BaseModel):
    """Заказ доставки."""

    id: str
    address: Address
    items: list[Address]
    priority: int = Field(default=1, ge=1, le=5)
    note: str | None = None


def test_schema_from_a_function_with_docstring() -> None:
    schema = function_schema(get_weather)
    assert schema.name == "get_weather"
    assert schema.description == "Погода в городе на несколько дней."
    params = schema.parameters
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {"type": "string", "description": "Название города"}
    assert params["properties"]["unit"]["enum"] == ["c", "f"]
    assert "default 1" in params["properties"]["days"]["description"]
    assert function_schema(get_time).parameters["properties"]["timezone"]["description"].startswith("IANA")


def test_schema_from_a_pydantic_model_is_reduced_and_the_report_says_how() -> None:
    schema = function_schema(Order)
    text = json.dumps(schema.parameters)
    assert "$ref" not in text
    assert "$defs" not in text
    assert "anyOf" not in text
    assert "title" not in text
    address = schema.parameters["properties"]["address"]
    assert address["properties"]["zip"]["type"] == "string"
    assert schema.parameters["properties"]["items"]["items"]["type"] == "object"
    assert schema.parameters["properties"]["note"]["type"] == "string"  # Optional[str] -> str, silently
    assert "address.zip: anyOf with 2 alternatives: kept the first" in schema.dropped
    assert "priority.maximum: moved into the description" in schema.dropped
    assert "<= 5" in schema.parameters["properties"]["priority"]["description"]
    assert not any("note" in d for d in schema.dropped)


def test_schema_from_a_dict_reports_non_string_enums_and_formats() -> None:
    schema = function_schema(
        {
            "name": "pick",
            "parameters": {
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "enum": [1, 2]},
                    "when": {"type": "string", "format": "date"},
                    "uuid": {"type": "string", "format": "uuid"},
                    "list": {"type": "array"},
                },
            },
        }
    )
    props = schema.parameters["properties"]
    assert "enum" not in props["n"]
    assert props["when"]["format"] == "date"
    assert "format" not in props["uuid"]
    assert props["list"]["items"] == {"type": "string"}
    assert len(schema.dropped) == 3


def test_invalid_function_names_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="name="):
        function_schema(lambda x: x)
    assert function_schema(lambda x: x, name="echo").name == "echo"


@pytest.mark.parametrize("v2", [False, True])
def test_run_tools_answers_after_calling_the_function(emu: Any, make_client: Any, v2: bool) -> None:
    api = make_client().v2 if v2 else make_client()
    run = api.run_tools("Какая погода в Казани?", tools=[get_weather, get_time])
    assert run.text
    (call,) = run.calls
    assert call.name == "get_weather"
    assert call.error is None
    assert call.result["temperature"] == 18
    roles = [m["role"] for m in run.messages]
    assert roles == ["user", "assistant", "function", "assistant"]
    result_msg = run.messages[2]
    if v2:
        assert result_msg["content"][0]["function_result"]["result"]["city"] == call.arguments["city"]
    else:
        assert json.loads(result_msg["content"])["temperature"] == 18  # sent as JSON text


def test_async_tools_in_the_sync_client_and_dataclass_results(make_client: Any) -> None:
    client = make_client()
    run = client.run_tools("Который час в часовом поясе Москвы?", tools=[get_time], function_call="get_time")
    assert run.calls[0].result == {"result": "12:00"}
    dataclass_run = client.run_tools("Прогноз погоды на завтра в Омске", tools=[forecast], function_call="forecast")
    assert dataclass_run.calls[0].result["sky"] == "ясно"


def test_sync_and_async_tools_in_the_async_client(emu: Any) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            run = await client.run_tools(
                "Погода в Перми и время?", tools=[get_weather, Tool(get_time)], function_call="get_weather"
            )
            assert run.calls[0].result["city"]
            run2 = await client.v2.run_tools("Который час в часовом поясе Москвы?", tools=[get_time])
            assert run2.calls[0].result == {"result": "12:00"}

    asyncio.run(main())


def test_a_failing_tool_is_reported_to_the_model(make_client: Any) -> None:
    def get_stock(ticker: str) -> float:
        """Цена акции по тикеру."""
        raise ConnectionError("биржа недоступна")

    run = make_client().run_tools("Сколько стоит акция тикера SBER?", tools=[get_stock])
    assert run.calls[0].error == "ConnectionError: биржа недоступна"
    assert json.loads(run.messages[2]["content"]) == {"error": "ConnectionError: биржа недоступна"}
    assert run.text


def test_invalid_arguments_are_reported_not_executed(make_client: Any) -> None:
    executed = []

    def book(seats: int) -> dict[str, int]:
        """Забронировать места в кинотеатре: число мест."""
        executed.append(seats)
        return {"booked": seats}

    tool = Tool(book)
    with pytest.raises(Exception, match="int"):
        tool.validate({"seats": "много"})
    assert tool.validate({"seats": "3"}) == {"seats": 3}
    assert executed == []


def test_step_limit_raises_with_the_transcript(make_client: Any) -> None:
    with pytest.raises(ToolLoopError) as info:
        make_client().run_tools("Какая погода в Казани?", tools=[get_weather], function_call="get_weather", max_steps=1)
    assert len(info.value.calls) == 1
    assert [m["role"] for m in info.value.messages] == ["user", "assistant", "function"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tools": []}, "tools"),
        ({"tools": ["x"]}, "tools"),
        ({"tools": [get_weather], "max_steps": 0}, "max_steps"),
        ({"tools": [get_weather, get_weather]}, "tools"),
    ],
)
def test_run_tools_bad_arguments(emu: Any, make_client: Any, kwargs: dict[str, Any], field: str) -> None:
    before = len(emu.requests)
    with pytest.raises(InvalidArgumentError) as info:
        make_client().run_tools("hi", **kwargs)
    assert info.value.field == field
    assert len(emu.requests) == before
