"""Structured output: ``client.parse(messages, response_format=MyModel)`` -> a validated MyModel.

Strategy (``method="auto"``): ask with the native ``json_schema`` response format; if the
service rejects it (the model does not support it), ask again with a forced function call
whose parameters are the model's schema. An answer that is not valid JSON or fails
validation gets one repair round (the model is told what was wrong); if that fails too,
:class:`~gigapy.errors.StructuredOutputError` carries the raw text and usage. An answer
cut at ``max_tokens`` raises :class:`~gigapy.errors.LengthFinishReasonError` at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .._core import params as P
from .._core.flow import Flow
from ..errors import (
    BadRequestError,
    InvalidArgumentError,
    LengthFinishReasonError,
    StructuredOutputError,
    UnprocessableEntityError,
)
from ..schema import function_schema

M = TypeVar("M", bound=BaseModel)
METHODS = ("auto", "json_schema", "function")
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?```\s*$", re.S)

Ask = Callable[[list[Any], dict[str, Any]], Flow[Any]]


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with ``$ref`` to ``$defs`` inlined (recursive references become plain objects)."""
    defs = schema.get("$defs", {})

    def walk(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            key = ref.rsplit("/", 1)[-1]
            if key in seen or key not in defs:
                return {"type": "object"}
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return walk({**defs[key], **rest}, seen | {key})
        return {k: walk(v, seen) for k, v in node.items() if k != "$defs"}

    result: dict[str, Any] = walk(schema, frozenset())
    return result


def parse_flow(ask: Ask, messages: Any, model: type[M], *, method: str, v2: bool, dialect: str = "reduced") -> Flow[M]:
    """Ask for ``model`` as structured output; see the module docstring for the strategy.

    ``dialect``: the schema dialect of the forced function (``method="function"``)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise InvalidArgumentError("response_format", f"expected a pydantic model class, got {model!r}")
    if method not in METHODS:
        raise InvalidArgumentError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    history: list[Any] = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
    fn = function_schema(model, dialect=dialect)
    requests: dict[str, dict[str, Any]] = {
        "json_schema": {
            "response_format": {"type": "json_schema", "schema": inline_refs(model.model_json_schema()), "strict": True}
        },
        "function": {
            "functions": [fn.to_dict()],
            ("tool_config" if v2 else "function_call"): (
                {"mode": "forced", "function_name": fn.name} if v2 else {"name": fn.name}
            ),
        },
    }
    order = ["json_schema", "function"] if method == "auto" else [method]
    chosen = order[0]
    answer: Any = None
    for chosen in order:
        try:
            answer = yield from ask(history, requests[chosen])
        except (BadRequestError, UnprocessableEntityError) as exc:
            if method == "auto" and chosen == "json_schema" and _rejects_format(exc):
                continue
            raise
        break
    errors: list[str] = []
    for attempt in range(2):
        raw, data = _extract(answer, chosen, v2)
        if answer.finish_reason == "length":
            raise LengthFinishReasonError(
                "the answer was cut at max_tokens (finish_reason 'length'); raise max_tokens",
                raw_text=raw,
                usage=answer.usage,
                errors=errors,
                request_id=answer.request_id,
            )
        try:
            if data is None:
                raise ValueError("the answer is not JSON")
            return model.model_validate(data)
        except (ValueError, ValidationError) as exc:
            errors.append(_describe(exc))
        if attempt == 1:
            break
        history = [*history, *_repair(answer, chosen, v2, fn.name, errors[-1])]
        answer = yield from ask(history, requests[chosen])
    raise StructuredOutputError(
        f"no valid {model.__name__} after a repair round: {errors[-1]}",
        raw_text=raw,
        usage=answer.usage,
        errors=errors,
        request_id=answer.request_id,
    )


def _rejects_format(exc: BadRequestError | UnprocessableEntityError) -> bool:
    text = (exc.server_message or "").lower()
    return "response_format" in text or "schema" in text or "format" in text


def _extract(answer: Any, method: str, v2: bool) -> tuple[str, Any]:
    """(raw text, parsed JSON or None) of an answer."""
    if method == "function":
        calls = list(answer.function_calls) if v2 else ([answer.function_call] if answer.function_call else [])
        if calls:
            args = calls[0].arguments
            return (args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)), calls[0].parsed_arguments
    text = answer.text or ""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        return text, json.loads(body)
    except ValueError:
        return text, None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _repair(answer: Any, method: str, v2: bool, name: str, error: str) -> list[Any]:
    """Messages that show the model its invalid answer and ask for a corrected one."""
    message = answer.message.model_dump(mode="json", by_alias=True, exclude_none=True)
    feedback = f"The previous answer is not valid: {error}. Answer again, strictly following the schema."
    if method == "function" and (answer.function_calls if v2 else answer.function_call):
        result = {"error": feedback}
        if v2:
            return [message, {"role": "function", "content": [{"function_result": {"name": name, "result": result}}]}]
        return [message, {"role": "function", "name": name, "content": P.json_text(result, "result")}]
    return [message, {"role": "user", "content": feedback + " Reply with the JSON object only."}]
