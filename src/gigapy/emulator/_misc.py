"""Smaller endpoints: ``/balance``, ``/ai/check``, ``/functions/validate``, ``/functions/convert``,
``/filter/check``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._config import PREPAID_SCOPES, SCOPE_CORP
from ._engine import BLACKLIST_TRIGGER
from ._http import ApiError, invalid_params, parse_json_object
from ._models import resolve
from ._textgen import count_tokens, stable_seed
from ._validate import FUNCTION_NAME_RE

if TYPE_CHECKING:
    from ._pipeline import Ctx

#: Starting balance per usage line for prepaid accounts (tokens).
INITIAL_BALANCE = {
    "embeddings": 10_000_000,
    "GigaChat-Pro": 1_000_000,
    "GigaChat-Max": 1_000_000,
    "GigaChat": 1_000_000,
}
RULES_VERSION = "1.0.5"
_SENTENCE_RE = re.compile(r"[^.!?…]+[.!?…]*\s*")
_AI_MARKERS = re.compile(
    r"важно|кроме того|таким образом|в целом|следует отметить|стоит отметить|в заключение|"
    r"it is important|additionally|moreover|overall|in conclusion|furthermore",
    re.IGNORECASE,
)
_HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def require_corp(ctx: Ctx) -> None:
    """403 for prepaid scopes on pay-as-you-go-only methods (unless tariffs are not enforced)."""
    if ctx.state.config.enforce_tariffs and ctx.auth.scope != SCOPE_CORP:
        raise ApiError(403, "Permission denied")


async def balance(ctx: Ctx) -> dict[str, Any]:
    """``GET /balance``: prepaid scopes only; pay-as-you-go (CORP) gets 403."""
    if ctx.auth.scope not in PREPAID_SCOPES:
        raise ApiError(403, "Permission denied")
    spent: Mapping[str, int] = ctx.state.spent.get(ctx.auth.account.client_id, {})
    return {"balance": [{"usage": k, "value": max(v - spent.get(k, 0), 0)} for k, v in INITIAL_BALANCE.items()]}


def _ai_spans(text: str, seed: int) -> list[tuple[int, int]]:
    """Character spans the detector attributes to a model (deterministic per sentence)."""
    spans: list[tuple[int, int]] = []
    for match in _SENTENCE_RE.finditer(text):
        sentence = match.group().strip()
        if not sentence:
            continue
        if _AI_MARKERS.search(sentence) or stable_seed(seed, sentence) % 3 == 0:
            if spans and spans[-1][1] >= match.start():
                spans[-1] = (spans[-1][0], match.end())
            else:
                spans.append((match.start(), match.end()))
    return spans


async def ai_check(ctx: Ctx) -> dict[str, Any]:
    """``POST /ai/check``: ai / human (Classification) or also mixed with intervals (Detection)."""
    require_corp(ctx)
    body = parse_json_object(ctx.body)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise invalid_params("input must be a non-empty string")
    model = resolve(body.get("model"), "aicheck")
    spans = _ai_spans(text, ctx.state.config.seed)
    ai_chars = sum(end - start for start, end in spans)
    if model == "GigaCheckClassification" or not spans or ai_chars >= len(text.strip()):
        category = "ai" if ai_chars * 2 >= len(text) else "human"
        intervals: list[list[int]] = []
    else:
        category, intervals = "mixed", [[start, end] for start, end in spans]
    return {"category": category, "characters": len(text), "tokens": count_tokens(text), "ai_intervals": intervals}


def _issue(description: str, location: str = "(root)") -> dict[str, str]:
    return {"description": description, "schema_location": location}


def _function_errors(spec: dict[str, Any]) -> list[dict[str, str]]:
    errors = []
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        errors.append(_issue("name is required"))
    elif not FUNCTION_NAME_RE.fullmatch(name):
        errors.append(_issue("name must match ^[A-Za-z][A-Za-z0-9_.-]*$", "(root).name"))
    params = spec.get("parameters")
    if params is None:
        errors.append(_issue("parameters is required"))
    elif not isinstance(params, dict) or params.get("type", "object") != "object":
        errors.append(_issue("parameters must be an object schema with type object", "(root).parameters"))
    else:
        props = params.get("properties", {})
        if not isinstance(props, dict):
            errors.append(_issue("properties must be an object", "(root).parameters.properties"))
        required = params.get("required", [])
        if not isinstance(required, list):
            errors.append(_issue("required must be an array", "(root).parameters.required"))
        else:
            errors.extend(
                _issue(f"required property {field} is not described", "(root).parameters.required")
                for field in required
                if not isinstance(props, dict) or field not in props
            )
    if "return_parameters" in spec and not isinstance(spec["return_parameters"], dict):
        errors.append(_issue("return_parameters must be an object", "(root).return_parameters"))
    examples = spec.get("few_shot_examples")
    if examples is not None and not (
        isinstance(examples, list) and all(isinstance(e, dict) and "request" in e and "params" in e for e in examples)
    ):
        errors.append(_issue("few_shot_examples must be a list of {request, params}", "(root).few_shot_examples"))
    return errors


def _function_warnings(spec: dict[str, Any]) -> list[dict[str, str]]:
    warnings = []
    if not spec.get("description"):
        warnings.append(_issue("description is missing"))
    if not spec.get("few_shot_examples"):
        warnings.append(_issue("few_shot_examples are missing"))
    if "return_parameters" not in spec:
        warnings.append(_issue("return_parameters are missing"))
    props = (spec.get("parameters") or {}).get("properties") or {}
    for key, prop in props.items():
        if not isinstance(prop, dict) or not prop.get("description"):
            warnings.append(_issue("description is missing", f"(root).parameters.properties.{key}"))
    return warnings


async def validate_function(ctx: Ctx) -> dict[str, Any]:
    """``POST /functions/validate``: errors (then no warnings) or warnings."""
    spec = parse_json_object(ctx.body)
    errors = _function_errors(spec)
    result: dict[str, Any] = {
        "status": 200,
        "message": "Incorrect function syntax" if errors else "Function is valid",
        "json_ai_rules_version": RULES_VERSION,
    }
    if errors:
        result["errors"] = errors
    else:
        result["warnings"] = _function_warnings(spec)
    return result


_OPENAPI_ERROR = "Invalid OpenAPI specification"
_REF_DEPTH = 32


def _openapi_error(why: str) -> ApiError:
    return ApiError(400, f"{_OPENAPI_ERROR}: {why}")


def _load_openapi(body: bytes) -> dict[str, Any]:
    """The OpenAPI document of a ``/functions/convert`` body (JSON, or YAML when PyYAML is installed)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _openapi_error("the body is not UTF-8 text") from None
    if not text.strip():
        raise _openapi_error("the body is empty")
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            import yaml

            doc = yaml.safe_load(text)
        except Exception:  # PyYAML missing, or the text is not YAML either
            doc = None
    if not isinstance(doc, dict):
        raise _openapi_error("expected an OpenAPI 3 document (a JSON or YAML object)")
    version = doc.get("openapi", doc.get("swagger"))
    if not isinstance(version, str) or not version[:1].isdigit():
        raise _openapi_error("the document has no openapi version field")
    if not isinstance(doc.get("paths"), dict) or not doc["paths"]:
        raise _openapi_error("the document has no paths")
    return doc


class _Resolver:
    """Inlines local ``$ref`` pointers (``#/components/...``); a cycle or a dangling pointer becomes ``{}``."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def __call__(self, node: Any, depth: int = 0) -> Any:
        if depth > _REF_DEPTH:
            return {}
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return self(self._target(ref), depth + 1)
            return {k: self(v, depth + 1) for k, v in node.items() if k not in ("example", "examples", "xml")}
        if isinstance(node, list):
            return [self(v, depth + 1) for v in node]
        return node

    def _target(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            return {}
        target: Any = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
            if target is None:
                return {}
        return target


def _sorted(node: Any) -> Any:
    """A schema with its keys sorted at every level, as the service returns them."""
    if isinstance(node, dict):
        return {k: _sorted(node[k]) for k in sorted(node)}
    if isinstance(node, list):
        return [_sorted(v) for v in node]
    return node


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": _sorted(properties)}
    if required:
        schema["required"] = list(dict.fromkeys(required))
    return schema


def _json_schema(content: Any) -> dict[str, Any] | None:
    """The schema of a requestBody / response ``content`` map (JSON media types first)."""
    if not isinstance(content, dict) or not content:
        return None
    media = next((v for k, v in content.items() if "json" in k), next(iter(content.values())))
    schema = media.get("schema") if isinstance(media, dict) else None
    return schema if isinstance(schema, dict) else None


def _function_name(op: dict[str, Any], method: str, path: str, taken: set[str]) -> str:
    raw = op.get("operationId")
    name = raw if isinstance(raw, str) and raw.strip() else f"{method}_{path}"
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", name.strip()).strip("_") or method
    if not name[0].isalpha():
        name = "f_" + name
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _operation_function(
    resolve_ref: _Resolver, path: str, method: str, op: dict[str, Any], shared: list[Any], taken: set[str]
) -> dict[str, Any]:
    """One function per operation: operationId -> name, description (or summary), path/query/header
    parameters and the requestBody schema -> parameters, the 2xx JSON schema -> return_parameters,
    ``x-few-shot-examples`` -> few_shot_examples."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: dict[tuple[str, str], dict[str, Any]] = {
        (str(p.get("in")), p["name"]): p
        for p in resolve_ref([*shared, *(op.get("parameters") or [])])
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    }
    body_schema = _json_schema(resolve_ref(op.get("requestBody") or {}).get("content"))
    for (place, name), param in params.items():
        if place == "body":  # Swagger 2.0
            body_schema = param.get("schema") if isinstance(param.get("schema"), dict) else body_schema
            continue
        prop = dict(param.get("schema") or {"type": "string"})
        if param.get("description"):
            prop["description"] = param["description"]
        properties[name] = prop
        if param.get("required") or place == "path":
            required.append(name)
    if body_schema is not None:
        if isinstance(body_schema.get("properties"), dict):
            properties.update(body_schema["properties"])
            required.extend(r for r in body_schema.get("required") or [] if isinstance(r, str))
        else:  # an array or a scalar body is one argument
            properties["body"] = body_schema
            required.append("body")
    function: dict[str, Any] = {"name": _function_name(op, method, path, taken)}
    description = op.get("description") or op.get("summary")
    if isinstance(description, str) and description.strip():
        function["description"] = description.strip()
    function["parameters"] = _object(properties, required)
    responses: dict[Any, Any] = op["responses"] if isinstance(op.get("responses"), dict) else {}
    ok = next((responses[c] for c in sorted(responses, key=str) if str(c).startswith("2")), None)
    returned = _json_schema(resolve_ref(ok).get("content")) if isinstance(ok, dict) else None
    if returned is not None:
        if isinstance(returned.get("properties"), dict):
            function["return_parameters"] = _object(returned["properties"], returned.get("required") or [])
        else:
            function["return_parameters"] = _sorted(returned)
    examples = op.get("x-few-shot-examples", op.get("x-few_shot_examples"))
    if isinstance(examples, list):
        function["few_shot_examples"] = [
            {"request": e["request"], "params": _sorted(e.get("params") or {})}
            for e in examples
            if isinstance(e, dict) and isinstance(e.get("request"), str)
        ]
    return function


async def convert_functions(ctx: Ctx) -> dict[str, Any]:
    """``POST /functions/convert`` (used by the official SDK): OpenAPI text → function definitions."""
    doc = _load_openapi(ctx.body)
    resolve_ref = _Resolver(doc)
    taken: set[str] = set()
    functions = []
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            continue
        item = resolve_ref(item, _REF_DEPTH - 8) if "$ref" in item else item
        shared: list[Any] = item["parameters"] if isinstance(item.get("parameters"), list) else []
        functions += [
            _operation_function(resolve_ref, str(path), method, op, shared, taken)
            for method, op in item.items()
            if method in _HTTP_METHODS and isinstance(op, dict)
        ]
    if not functions:
        raise _openapi_error("the document has no operations (get, post, put, patch, delete) under paths")
    return {"functions": functions}


#: Put this in a message to make ``/filter/check``'s canned-answer check (``whitelist``) fire.
CANNED_TRIGGER = "[emulator:whitelist]"
#: The neural censor's stand-in: topics the service restricts (weapons, explosives, drugs).
_RESTRICTED_TOPICS = re.compile(r"взрывчат|взрывн\w* устройств|наркотик|explosive|narcotic|\bbomb", re.IGNORECASE)
FILTER_CHECKS = ("neuro", "blacklist", "whitelist")


def _filter_texts(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        raise invalid_params("messages must be a non-empty array")
    texts = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_params(f"messages[{i}] must be an object")
        content = message.get("content", "")
        if not isinstance(content, str):
            raise invalid_params(f"messages[{i}].content must be a string")
        texts.append(content)
    return texts


async def filter_check(ctx: Ctx) -> dict[str, Any]:
    """``POST /filter/check``: do the messages break the topic restrictions? Each check of ``settings``
    (``neuro``, ``blacklist``, ``whitelist``) is on unless set to false."""
    body = parse_json_object(ctx.body)
    resolve(body.get("model", "GigaFilter"), "filter")
    texts = _filter_texts(body.get("messages"))
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        raise invalid_params("settings must be an object")
    for key in FILTER_CHECKS:
        if key in settings and not isinstance(settings[key], bool):
            raise invalid_params(f"settings.{key} must be a boolean")
    text = "\n".join(texts)
    low = text.lower()
    stop_words = (BLACKLIST_TRIGGER, *(w.lower() for w in ctx.state.config.filter_stop_words))
    hits = {
        "neuro": _RESTRICTED_TOPICS.search(text) is not None,
        "blacklist": any(word in low for word in stop_words),
        "whitelist": CANNED_TRIGGER in low,
    }
    profane = any(hit and settings.get(key, True) for key, hit in hits.items())
    return {"is_profane": profane, "usage": {"filter_tokens": sum(count_tokens(t) + 3 for t in texts)}}
