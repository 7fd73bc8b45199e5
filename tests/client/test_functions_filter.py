"""``/functions/convert`` (OpenAPI → functions) and ``/filter/check``: the client (sync and async)
against the emulator over loopback, the emulator's conversion against the recorded service answer,
and bad input refused before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gigapy import AsyncGigaChat, BadRequestError, GigaChat, InvalidArgumentError, NotFoundError
from gigapy.emulator import BLACKLIST_TRIGGER, Emulator
from gigapy.emulator._misc import CANNED_TRIGGER
from gigapy.testing import client_settings
from gigapy.types import ConvertedFunctions, FilterCheckResult, Function

from ..conftest import RECORDINGS, needs_shared, run

RECORDED = RECORDINGS / "payloads" / "convert_functions.json"


def sms_openapi() -> dict[str, Any]:
    """An OpenAPI 3 document for the operation behind the recorded ``convert_functions.json``: a path
    parameter, a $ref'd request body, a $ref'd 200 schema and few-shot examples."""
    return {
        "openapi": "3.0.1",
        "info": {"title": "SMS", "version": "2"},
        "paths": {
            "/api/v{version}/sms": {
                "post": {
                    "operationId": "send_sms",
                    "summary": "Отправка SMS",
                    "description": "Подробное описание того за что отвечает функция, в данном случае отправка SMS по "
                    "табельному номеру",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "path",
                            "required": True,
                            "description": "Описание параметра - версия API",
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Sms"}}}},
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SmsStatus"}}},
                        }
                    },
                    "x-few-shot-examples": [
                        {
                            "request": "Отправь смс сотруднику с табельным номером 111111 с текстом Hello World "
                            "используя API v2",
                            "params": {"version": "2", "text": "Hello world", "employeeId": "111111"},
                        }
                    ],
                }
            }
        },
        "components": {
            "schemas": {
                "Sms": {
                    "type": "object",
                    "required": ["employeeId", "text"],
                    "properties": {
                        "text": {"type": "string", "minLength": 1, "description": "Текст смс"},
                        "employeeId": {
                            "type": "integer",
                            "format": "int32",
                            "example": 111111,
                            "description": "Id сотрудника/табельный номер сотрудника без лидирующих нулей",
                        },
                    },
                },
                "SmsStatus": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "boolean", "description": "Отправлено/не отправлено"},
                        "phone": {
                            "type": "string",
                            "nullable": True,
                            "description": "Номер: маска + 2 последние цифры номера",
                        },
                        "description": {"type": "string", "nullable": True, "description": "Описание статуса"},
                    },
                },
            }
        },
    }


def _raw(emu: Emulator, path: str, **kwargs: Any) -> httpx.Response:
    with GigaChat(**client_settings(emu)) as client:
        token = client.create_token().access_token.get_secret_value()
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return httpx.post(emu.base_url + path, headers=headers, timeout=10, **kwargs)


@needs_shared
def test_the_emulator_converts_as_the_service_did(emu: Emulator) -> None:
    """The recorded answer, byte for byte in key order: sorted schema keys, path parameters first in
    ``required``, the body's properties merged, the 200 schema as return_parameters."""
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    response = _raw(emu, "/functions/convert", content=json.dumps(sms_openapi(), ensure_ascii=False).encode())
    assert response.status_code == 200, response.text
    assert json.dumps(response.json(), ensure_ascii=False) == json.dumps(recorded, ensure_ascii=False)


def test_convert_sync_typed_and_usable_as_functions(emu: Emulator, tmp_path: Path) -> None:
    spec = sms_openapi()
    spec["paths"]["/employees/{id}"] = {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "get": {
            "summary": "Карточка сотрудника",
            "parameters": [{"name": "fields", "in": "query", "schema": {"type": "string"}}],
        },
        "delete": {"operationId": "delete employee!"},
    }
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with GigaChat(**client_settings(emu)) as client:
        for source in (json.dumps(spec), json.dumps(spec).encode(), path, spec):
            result = client.convert_functions(source)
            assert isinstance(result, ConvertedFunctions) and result.request_id
            by_name = {f.name: f for f in result.functions}
            assert set(by_name) == {"send_sms", "get_employees_id", "delete_employee"}
            get = by_name["get_employees_id"]
            assert isinstance(get, Function) and get.description == "Карточка сотрудника"
            assert get.parameters == {
                "type": "object",
                "properties": {"fields": {"type": "string"}, "id": {"type": "integer"}},
                "required": ["id"],
            }
        # what came back is what functions= takes: the model calls the converted function
        answer = client.completion("Отправь смс сотруднику 111111 с текстом привет", functions=result.functions)
        assert answer.choices[0].message.function_call is not None


def test_convert_async(emu: Emulator) -> None:
    async def main() -> ConvertedFunctions:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            return await client.convert_functions(json.dumps(sms_openapi()))

    result = run(main())
    assert [f.name for f in result.functions] == ["send_sms"]
    assert result.functions[0].few_shot_examples and result.functions[0].return_parameters


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"openapi: [unclosed", "neither JSON nor YAML object"),
        (json.dumps({"info": {}, "paths": {"/a": {"get": {}}}}).encode(), "no openapi version"),
        (json.dumps({"openapi": "3.0.0", "paths": {}}).encode(), "no paths"),
        (json.dumps({"openapi": "3.0.0", "paths": {"/a": {"summary": "x"}}}).encode(), "no operations"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_convert_errors_in_the_service_shape(emu: Emulator, body: bytes, why: str) -> None:
    response = _raw(emu, "/functions/convert", content=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["status"] == 400 and payload["message"].startswith("Invalid OpenAPI specification: ")
    with GigaChat(**client_settings(emu)) as client, pytest.raises(BadRequestError) as info:
        client.convert_functions(json.dumps({"openapi": "3.0.0", "paths": {}}))
    assert "no paths" in str(info.value)


def test_convert_refuses_bad_input_before_sending(emu: Emulator, tmp_path: Path) -> None:
    with GigaChat(**client_settings(emu)) as client:
        before = emu.stats()["api_requests"].get("functions_convert", 0)
        for bad, reason in (
            ("   ", "is empty"),
            (b"\xff", "not UTF-8"),
            (42, "expected the OpenAPI document"),
            (tmp_path / "missing.yaml", "file not found"),
            ("\ud800", "surrogate"),
        ):
            with pytest.raises(InvalidArgumentError, match=reason) as info:
                client.convert_functions(bad)  # type: ignore[arg-type]
            assert info.value.field == "openapi"
        assert emu.stats()["api_requests"].get("functions_convert", 0) == before


def test_filter_check_sync(emu: Emulator) -> None:
    with GigaChat(**client_settings(emu)) as client:
        clean = client.check_filter("Как испечь блины?")
        assert isinstance(clean, FilterCheckResult) and clean.is_profane is False
        assert clean.usage.filter_tokens > 0 and clean.request_id
        for text in (f"текст {BLACKLIST_TRIGGER}", "как собрать взрывчатку", f"вопрос {CANNED_TRIGGER}"):
            assert client.check_filter(text).is_profane is True, text
        # each check can be switched off
        assert client.check_filter("как собрать взрывчатку", settings={"neuro": False}).is_profane is False
        assert client.check_filter(f"x {BLACKLIST_TRIGGER}", settings={"blacklist": False}).is_profane is False
        messages = [{"role": "system", "content": "Ты помощник"}, {"role": "user", "content": "Привет"}]
        assert client.check_filter(messages).usage.filter_tokens > clean.usage.filter_tokens - 10
    sent = [json.loads(r.body) for r in emu.requests if r.path.endswith("/filter/check")]
    assert sent[0] == {"model": "GigaFilter", "messages": [{"role": "user", "content": "Как испечь блины?"}]}
    assert {"model": "GigaFilter", "settings": {"neuro": False}}.items() <= sent[4].items()


def test_filter_check_async_and_errors(emu: Emulator) -> None:
    async def main() -> bool:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            with pytest.raises(NotFoundError):
                await client.check_filter("x", model="GigaChat-2")  # not a filter model
            return (await client.check_filter(f"{BLACKLIST_TRIGGER}")).is_profane

    assert run(main()) is True
    with GigaChat(**client_settings(emu)) as client:
        before = emu.stats()["api_requests"].get("filter_check", 0)
        with pytest.raises(InvalidArgumentError, match=r"settings\.neuro"):
            client.check_filter("x", settings={"neuro": "yes"})  # type: ignore[dict-item]
        with pytest.raises(InvalidArgumentError, match="messages"):
            client.check_filter([])
        assert emu.stats()["api_requests"].get("filter_check", 0) == before
    bad = _raw(emu, "/filter/check", json={"model": "GigaFilter", "messages": [{"role": "user", "content": 1}]})
    assert bad.status_code == 422 and bad.json()["message"] == "Invalid params: messages[0].content must be a string"
