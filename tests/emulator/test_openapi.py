"""The emulator's responses validate against the published OpenAPI specs (2025 and 2026).

OpenAPI schemas are turned into JSON Schema (``nullable``, boolean ``exclusiveMinimum``) and
``$ref`` resolves inside the spec's components. Known spec-vs-live deviations are patched in,
each with the evidence that the live service differs (``DEVIATIONS``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from gigapy.emulator import SCOPE_CORP, Emulator

from .conftest import REFERENCE, Api, needs_reference, oauth, v1_chunks

pytestmark = needs_reference
SPECS = ("gigachat-api-2025.yml", "gigachat-api-2026.yml")
FUNCTION = {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def _allow_filter_models(schemas: dict[str, Any]) -> None:
    # Live GET /models lists GigaFilter with type "filter" (cassette test_get_models); the enum lacks it.
    schemas["Model"]["properties"]["type"]["enum"].append("filter")


def _arguments_are_objects(schemas: dict[str, Any]) -> None:
    # function_call.arguments is a JSON object on the wire (api-contract §5.4, live samples); S26 says string.
    if "FunctionCallArgs" in schemas:
        schemas["FunctionCallArgs"]["properties"]["arguments"] = {"type": ["object", "string"]}


def _fix_uuid_pattern(schemas: dict[str, Any]) -> None:
    # S25 writes the UUID pattern without braces, "(([0-9a-fA-F-])36)", which no UUID matches.
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("pattern") == "(([0-9a-fA-F-])36)":
                node["pattern"] = "^([0-9a-fA-F-]){36}$"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schemas)


DEVIATIONS: tuple[Callable[[dict[str, Any]], None], ...] = (
    _allow_filter_models,
    _arguments_are_objects,
    _fix_uuid_pattern,
)


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0/3.1 schema → JSON Schema 2020-12."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_json_schema(value) for key, value in node.items() if key not in ("nullable", "example")}
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool):
            flag = out.pop(bound)
            if flag and limit in out:
                out[bound] = out.pop(limit)
    return out


class Spec:
    def __init__(self, name: str) -> None:
        raw = yaml.safe_load((REFERENCE / name).read_text().replace("\t", " "))
        self.paths = raw["paths"]
        components = to_json_schema(raw["components"])
        for patch in DEVIATIONS:
            patch(components["schemas"])
        self.components = components

    def validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator({"components": self.components, **to_json_schema(schema)})

    def response_schema(self, path: str, method: str) -> dict[str, Any]:
        for candidate in (path, "/v1" + path, path.replace("{model}", "model")):
            if candidate in self.paths:
                content = self.paths[candidate][method]["responses"]["200"]["content"]
                return copy.deepcopy(content["application/json"]["schema"])
        raise KeyError(path)


def collect(emu: Emulator) -> Iterator[tuple[str, str, Any]]:
    """(path, method, body) for every documented 200 response the emulator can produce."""
    api, corp = Api(emu), Api(emu, SCOPE_CORP)
    yield "/oauth", "post", oauth(api.http).json()
    yield "/tokens/count", "post", api.post("tokens/count", json={"model": "GigaChat", "input": ["a b", "c"]}).json()
    yield "/balance", "get", api.get("balance").json()
    yield "/models", "get", api.get("models").json()
    yield "/models/{model}", "get", api.get("models/GigaChat-2-Max").json()
    uploaded = api.post("files", files={"file": ("a.png", b"\x89PNG", "image/png")}).json()
    yield "/files", "post", uploaded
    yield "/files", "get", api.get("files").json()
    yield "/files/{file}", "get", api.get(f"files/{uploaded['id']}").json()
    yield "/files/{file}/delete", "post", api.post(f"files/{uploaded['id']}/delete").json()
    for body in ({}, {"max_tokens": 3}, {"functions": [FUNCTION]}, {"function_call": "auto", "n": 2},
                 {"response_format": {"type": "json_schema", "schema": FUNCTION["parameters"]}}):
        prompt = "Draw the weather in Paris" if "function_call" in body else "Weather in Paris?"
        yield "/chat/completions", "post", api.chat(prompt, **body).json()
    for chunk in v1_chunks(api.chat("Tell me about Paris", stream=True).text):
        yield "stream", "post", chunk
    yield "/ai/check", "post", corp.post("ai/check", json={"input": "Кроме того, это текст.",
                                                             "model": "GigaCheckDetection"}).json()
    yield "/embeddings", "post", api.post("embeddings", json={"model": "Embeddings", "input": ["a", "b"]}).json()
    created = corp.post("batches", params={"method": "embedder"},
                        content=json.dumps({"id": "1", "request": {"model": "Embeddings", "input": "x"}})).json()
    yield "/batches", "post", created
    yield "/batches", "get", corp.get("batches").json()
    yield "/functions/validate", "post", api.post("functions/validate", json=FUNCTION).json()
    yield "/functions/validate", "post", api.post("functions/validate", json={}).json()
    for body in ({}, {"tools": [{"functions": {"specifications": [FUNCTION]}}]},
                 {"tools": [{"image_generate": {}}]}, {"tools": [{"web_search": {}}]}):
        yield "/v2/chat/completions", "post", api.chat_v2("Draw the weather in Paris", **body).json()
    api.close()
    corp.close()


@pytest.fixture(scope="module")
def responses() -> list[tuple[str, str, Any]]:
    with Emulator(limits=None) as emu:
        return list(collect(emu))


@pytest.mark.parametrize("spec_name", SPECS)
def test_responses_validate(spec_name: str, responses: list[tuple[str, str, Any]]) -> None:
    spec = Spec(spec_name)
    checked = 0
    for path, method, body in responses:
        if path == "stream":
            schema = {"$ref": "#/components/schemas/ChatCompletionStream/properties/data"}
        else:
            try:
                schema = spec.response_schema(path, method)
            except KeyError:
                assert path == "/v2/chat/completions" and spec_name.endswith("2025.yml")
                continue
        errors = sorted(spec.validator(schema).iter_errors(body), key=str)
        assert not errors, f"{spec_name} {method.upper()} {path}: {errors[0].message} at {list(errors[0].path)}"
        checked += 1
    assert checked >= 25
