"""Request validation shared by v1 and v2 chat: sampling options, response_format, function specs.

v1 reports wrong types as 422 ``Invalid params``; v2 reports wrong shapes as 400 (as seen live),
so each check takes the error factory to use for shape problems.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ._http import INVALID_JSON, ApiError, invalid_params

Bad = Callable[[str], ApiError]
FUNCTION_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_BAD_NAMES = (
    "Invalid function names. Only Latin letters (A-Z or a-z), underscore (_), hyphen (-), dot (.) "
    "and digits (not leading) are allowed.: [{}]"
)


def shape_422(detail: str) -> ApiError:
    """v1: a wrong type is a 422."""
    return invalid_params(detail)


def shape_400(detail: str) -> ApiError:
    """v2: a wrong shape is a 400 with the generic message."""
    return ApiError(400, INVALID_JSON)


def is_number(value: object) -> bool:
    """A JSON number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(opts: dict[str, Any], key: str, bad: Bad) -> float | None:
    value = opts.get(key)
    if value is None:
        return None
    if not is_number(value):
        raise bad(f"{key} must be a number")
    return float(value)


def sampling(opts: dict[str, Any], bad: Bad) -> tuple[int | None, float]:
    """Check temperature, top_p, max_tokens, repetition_penalty, n, update_interval.

    Returns (max_tokens, update_interval).
    """
    temperature = _number(opts, "temperature", bad)
    if temperature is not None and temperature <= 0:
        raise invalid_params("temperature must be in range (0, +inf)")
    top_p = _number(opts, "top_p", bad)
    if top_p is not None and not 0 <= top_p <= 1:
        raise invalid_params("top_p must be in range [0, 1]")
    penalty = _number(opts, "repetition_penalty", bad)
    if penalty is not None and penalty <= 0:
        raise invalid_params("repetition_penalty must be in range (0, +inf)")
    max_tokens = opts.get("max_tokens")
    if max_tokens is not None:
        if not is_number(max_tokens) or int(max_tokens) != max_tokens:
            raise bad("max_tokens must be an integer")
        if max_tokens <= 0:
            raise invalid_params("max_tokens must be in range (0, +inf)")
    interval = _number(opts, "update_interval", bad) or 0.0
    if interval < 0:
        raise invalid_params("update_interval must be in range [0, +inf)")
    return (int(max_tokens) if max_tokens is not None else None), interval


def response_format(fmt: object, bad: Bad) -> dict[str, Any] | None:
    """Check ``response_format``: text, json_schema (with a schema) or regex."""
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
        raise bad("response_format must be an object with a type")
    kind = fmt["type"]
    if kind == "text":
        return None
    if kind == "json_schema":
        if not fmt.get("schema"):
            raise ApiError(400, "Empty schema with json format type is not supported")
        if not isinstance(fmt["schema"], dict):
            raise bad("response_format.schema must be an object")
        return fmt
    if kind == "regex":
        if not isinstance(fmt.get("regex"), str) or not fmt["regex"]:
            raise ApiError(400, "Empty regex with regex format type is not supported")
        return fmt
    raise ApiError(400, f'Unknown type "{kind}" in response_format')


def function_specs(functions: object, bad: Bad, builtin_names: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Check custom function definitions (names as the live service allows them)."""
    if functions is None:
        return []
    if not isinstance(functions, list):
        raise bad("functions must be an array")
    bad_names = []
    for index, spec in enumerate(functions):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise bad(f"functions[{index}].name must be a string")
        if spec["name"] in builtin_names:
            continue
        if not FUNCTION_NAME_RE.fullmatch(spec["name"]):
            bad_names.append(spec["name"])
        params = spec.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise bad(f"functions[{index}].parameters must be an object")
    if bad_names:
        raise invalid_params(_BAD_NAMES.format(" ".join(bad_names)))
    return functions


def function_result(name: str, raw: object) -> Any:
    """Parse a function result: a JSON string (or, leniently, an already-decoded value)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError as exc:
        line, column = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
        raise ApiError(
            400,
            f"invalid function result for function {name} json string {raw}, error: "
            f"JSON parse error at line {line} column {column}",
        ) from None


def check_call_pairs(calls_and_results: list[tuple[bool, bool]], results_need_calls: bool) -> None:
    """A function call must be answered by the next message; a result needs an earlier call (v2).

    ``calls_and_results`` holds (is_call, is_result) per message, in order.
    """
    seen_call = False
    for index, (is_call, is_result) in enumerate(calls_and_results):
        if is_call and (index + 1 >= len(calls_and_results) or not calls_and_results[index + 1][1]):
            raise invalid_params("every assistant function call must have a result in history")
        if is_result and results_need_calls and not seen_call:
            raise invalid_params("every assistant function result must have an assistant function call in history")
        seen_call = seen_call or is_call


def required_str(body: dict[str, Any], key: str) -> str:
    """A required non-empty string field (422 otherwise)."""
    value = body.get(key)
    if value is None:
        raise invalid_params(f"{key} is required")
    if not isinstance(value, str) or not value:
        raise invalid_params(f"{key} must be a non-empty string")
    return value


def optional_str(body: dict[str, Any], key: str) -> str | None:
    """An optional string field (null means absent)."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_params(f"{key} must be a string")
    return value


def optional_int(body: dict[str, Any], key: str, low: int = 1) -> int | None:
    """An optional integer field of at least ``low`` (null means absent)."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_params(f"{key} must be an integer")
    if value < low:
        raise invalid_params(f"{key} must be in range [{low}, +inf)")
    return value


def string_list(body: dict[str, Any], key: str) -> list[str] | None:
    """An optional array of strings (null means absent)."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid_params(f"{key} must be an array of strings")
    return value
