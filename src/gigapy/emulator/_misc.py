"""Smaller endpoints: ``/balance``, ``/ai/check``, ``/functions/validate``, ``/functions/convert``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._config import PREPAID_SCOPES, SCOPE_CORP
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


def _load_openapi(body: bytes) -> dict[str, Any]:
    text = body.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            import yaml

            doc = yaml.safe_load(text.replace("\t", " "))
        except Exception:  # yaml missing or the text is not YAML either
            doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise ApiError(400, "Invalid OpenAPI specification")
    return doc


class _Resolver:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def __call__(self, node: Any, depth: int = 0) -> Any:
        if depth > 10:
            return {}
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                target: Any = self.doc
                for part in ref[2:].split("/"):
                    target = target.get(part, {}) if isinstance(target, dict) else {}
                return self(target, depth + 1)
            return {k: self(v, depth + 1) for k, v in node.items() if k not in ("example", "xml")}
        if isinstance(node, list):
            return [self(v, depth + 1) for v in node]
        return node


def _operation_function(resolve_ref: _Resolver, path: str, method: str, op: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in resolve_ref(op.get("parameters", [])):
        if isinstance(param, dict) and isinstance(param.get("name"), str):
            prop = dict(param.get("schema") or {"type": "string"})
            if param.get("description"):
                prop["description"] = param["description"]
            properties[param["name"]] = prop
            if param.get("required"):
                required.append(param["name"])
    content = (resolve_ref(op.get("requestBody", {})).get("content") or {}).values()
    for media in content:
        schema = (media or {}).get("schema") or {}
        properties.update(schema.get("properties") or {})
        required.extend(schema.get("required") or [])
        break
    name = op.get("operationId") or re.sub(r"\W+", "_", f"{method}_{path}").strip("_")
    function: dict[str, Any] = {
        "name": name,
        "description": op.get("description") or op.get("summary") or name,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }
    ok = resolve_ref((op.get("responses") or {}).get("200") or {})
    for media in (ok.get("content") or {}).values():
        function["return_parameters"] = (media or {}).get("schema") or {}
        break
    return function


async def convert_functions(ctx: Ctx) -> dict[str, Any]:
    """``POST /functions/convert`` (used by the official SDK): OpenAPI text → function definitions."""
    doc = _load_openapi(ctx.body)
    resolve_ref = _Resolver(doc)
    functions = [
        _operation_function(resolve_ref, path, method, op)
        for path, ops in doc["paths"].items()
        if isinstance(ops, dict)
        for method, op in ops.items()
        if method in _HTTP_METHODS and isinstance(op, dict)
    ]
    return {"functions": functions}
