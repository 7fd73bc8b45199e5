"""Models, embeddings, token counts, balance, AI check, function helpers."""

from __future__ import annotations

import json
import math

import pytest

from gigapy.emulator import count_tokens

from .conftest import Api


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.mark.parametrize("prefix", ["/api/v1", "/v1"])
def test_models(api: Api, prefix: str) -> None:
    body = api.get(f"{prefix}/models").json()
    assert body["object"] == "list"
    types = {m["id"]: m["type"] for m in body["data"]}
    assert types["GigaChat-2-Max"] == "chat" and types["Embeddings"] == "embedder"
    assert types["GigaCheckDetection"] == "aicheck" and types["GigaFilter"] == "filter"
    assert all(m["object"] == "model" and m["owned_by"] == "salutedevices" and ":" not in m["id"] for m in body["data"])
    assert api.get(f"{prefix}/models/GigaChat").json() == {
        "id": "GigaChat",
        "object": "model",
        "owned_by": "salutedevices",
        "type": "chat",
    }
    missing = api.get(f"{prefix}/models/NonExistentModel")
    assert missing.status_code == 404 and missing.json() == {"status": 404, "message": "No such model"}


def test_embeddings(api: Api) -> None:
    texts = ["The cat sat on the mat", "The cat sat on a mat", "Quarterly revenue grew by ten percent"]
    response = api.post("embeddings", json={"model": "Embeddings", "input": texts})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"object", "model", "data"}  # usage is per item only
    assert body["object"] == "list" and body["model"] == "Embeddings"
    for index, (item, text) in enumerate(zip(body["data"], texts, strict=True)):
        assert item["object"] == "embedding" and item["index"] == index
        assert len(item["embedding"]) == 1024
        assert item["usage"] == {"prompt_tokens": count_tokens(text) + 5}
    a, b, c = (item["embedding"] for item in body["data"])
    assert cosine(a, b) > 0.6 > cosine(a, c)
    again = api.post("embeddings", json={"model": "Embeddings", "input": texts[0]}).json()
    assert again["data"][0]["embedding"] == a


def test_embeddings_errors(api: Api) -> None:
    assert api.post("embeddings", json={"model": "GigaChat", "input": ["x"]}).status_code == 404
    assert api.post("embeddings", json={"model": "Embeddings", "input": [1]}).status_code == 422
    assert api.post("embeddings", json={"input": ["x"]}).status_code == 422


def test_tokens_count_matches_chat_usage(api: Api) -> None:
    body = api.post(
        "tokens/count", json={"model": "GigaChat", "input": ["First text", "Second text", "Hello, world!"]}
    ).json()
    assert body == [
        {"object": "tokens", "tokens": 2, "characters": 10},
        {"object": "tokens", "tokens": 2, "characters": 11},
        {"object": "tokens", "tokens": 4, "characters": 13},
    ]
    answer = api.chat("Tell me about the moon").json()
    text = answer["choices"][0]["message"]["content"]
    counted = api.post("tokens/count", json={"model": "GigaChat", "input": [text]}).json()[0]["tokens"]
    assert counted == answer["usage"]["completion_tokens"]
    assert api.post("tokens/count", json={"model": "Nope", "input": ["x"]}).status_code == 404


def test_balance(api: Api, api_pers: Api, api_corp: Api) -> None:
    for client in (api, api_pers):
        body = client.get("balance").json()
        usages = {item["usage"]: item["value"] for item in body["balance"]}
        assert {"GigaChat", "embeddings"} <= set(usages)
        assert all(isinstance(v, int) for v in usages.values())
    before = {i["usage"]: i["value"] for i in api.get("balance").json()["balance"]}["GigaChat"]
    api.chat("spend some tokens please")
    after = {i["usage"]: i["value"] for i in api.get("balance").json()["balance"]}["GigaChat"]
    assert after < before
    denied = api_corp.get("balance")
    assert denied.status_code == 403 and denied.json() == {"status": 403, "message": "Permission denied"}


def test_ai_check(api_corp: Api, api: Api) -> None:
    text = (
        "Кроме того, следует отметить, что технологии развиваются быстро. Я вчера гулял в парке с собакой. "
        "Таким образом, в целом можно сделать вывод о пользе прогресса. Потом мы пили чай на веранде."
    )
    detection = api_corp.post("ai/check", json={"input": text, "model": "GigaCheckDetection"}).json()
    assert detection["category"] == "mixed"
    assert detection["characters"] == len(text) and detection["tokens"] == count_tokens(text)
    assert all(0 <= start < end <= len(text) for start, end in detection["ai_intervals"])
    classification = api_corp.post("ai/check", json={"input": text, "model": "GigaCheckClassification"}).json()
    assert classification["category"] in ("ai", "human") and classification["ai_intervals"] == []
    assert api_corp.post("ai/check", json={"input": text, "model": "GigaChat"}).status_code == 404
    assert api.post("ai/check", json={"input": text, "model": "GigaCheckDetection"}).status_code == 403


def test_functions_validate(api: Api) -> None:
    good = {
        "name": "get_weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    body = api.post("functions/validate", json=good).json()
    assert body["status"] == 200 and body["message"] == "Function is valid"
    assert body["json_ai_rules_version"] == "1.0.5"
    assert {"description": "few_shot_examples are missing", "schema_location": "(root)"} in body["warnings"]
    assert "errors" not in body
    bad = api.post("functions/validate", json={"description": "no name"}).json()
    assert bad["message"] == "Incorrect function syntax"
    assert {"description": "name is required", "schema_location": "(root)"} in bad["errors"]
    assert "warnings" not in bad


def test_functions_convert(api: Api) -> None:
    spec = {
        "openapi": "3.0.0",
        "paths": {
            "/sms": {
                "post": {
                    "operationId": "send_sms",
                    "summary": "Send an SMS",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"text": {"type": "string"}},
                                    "required": ["text"],
                                }
                            }
                        }
                    },
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"type": "object", "properties": {"status": {"type": "boolean"}}}
                                }
                            }
                        }
                    },
                }
            }
        },
    }
    body = api.post("functions/convert", content=json.dumps(spec)).json()
    (function,) = body["functions"]
    assert function["name"] == "send_sms"
    assert function["parameters"]["properties"] == {"text": {"type": "string"}}
    assert function["return_parameters"]["properties"]["status"] == {"type": "boolean"}
    assert api.post("functions/convert", content=b"not a spec").status_code == 400


@pytest.mark.hostile("unencodable")
@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("chat/completions", b'{"model": "GigaChat", "messages": [{"role": "user", "content": "cut \\ud83d"}]}'),
        ("chat/completions", b'{"model": "GigaChat", "messages": [{"role": "user", "content": "\\ude00 low"}]}'),
        ("embeddings", b'{"model": "Embeddings", "input": ["ok", "cut \\ud83d"]}'),
        ("tokens/count", b'{"model": "GigaChat", "input": ["\\udbff"]}'),
    ],
)
def test_a_lone_surrogate_in_a_request_is_a_4xx_in_the_service_shape(api: Api, route: str, body: bytes) -> None:
    response = api.post(route, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    error = response.json()
    assert error["status"] == response.status_code and error["message"]
