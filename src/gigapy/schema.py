"""Function schemas: Python functions and pydantic models as GigaChat function definitions.

:func:`function_schema` builds the parameters schema from type hints (and a docstring) in one
of two dialects:

``"reduced"`` (the default): the older, narrow dialect every version of the service accepts.
Every construct it had to change or drop is reported in ``FunctionSchema.dropped``, so nothing
is lost silently:

- ``$ref``/``$defs`` are inlined; ``allOf`` is merged; ``Optional[X]`` becomes ``X``;
- a union of several types keeps the first one (reported);
- every object gets ``properties``, every array ``items``;
- ``format`` is kept only for date, date-time and time; enums only of strings;
- defaults and validation keywords (``minLength``, ``maximum``, ...) move into the field's
  description, so the model still sees them; other keywords are dropped (reported; titles
  silently, they carry no meaning for the model).

``"full"``: the JSON Schema pydantic produces, sent unchanged (``$defs``/``$ref``, ``anyOf``
unions, type lists, every keyword), as the official SDK 0.2.4a1 sends the ``parameters`` it is
given (v1 ``FunctionParameters`` takes type lists and keeps every keyword; v2
``ChatFunctionSpecification.parameters`` is a plain dict, and its flattening of a pydantic schema
keeps ``$defs``).

Why ``reduced`` stays the default: no source shows the service accepting the full dialect. The
2026 spec only says ``parameters`` is "a valid JSON object" of key-value pairs; the live
observations of 2026 probed flat schemas only; the SDK passes on what the caller gives but does
not say the service takes ``$ref``. Meanwhile the service's own integrations still reduce
(langchain-gigachat 0.5.2a1 inlines ``$ref`` and refuses unions, "GigaChat currently do not
support these typings: Union"; gpt2giga 0.3.0 normalizes every schema, a "$ref resolution" fix in
its changelog), and a 422 for a schema outside the dialect is on record (langchain-gigachat#41,
"Field 'properties.schema.properties' is missing"). A reduced schema is also valid full JSON
Schema, so it works with either service; ``full`` is one setting away
(``GigaChat(schema_dialect="full")``, ``GIGACHAT_SCHEMA_DIALECT=full``, or per call).
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model

from ._core.params import FUNCTION_NAME_RE
from .errors import InvalidArgumentError

SILENT = frozenset({"title"})
# validation keywords the dialect lacks: kept for the model as words in the description
FOLDED = {
    "default": "default",
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
    "minLength": "min length",
    "maxLength": "max length",
    "pattern": "pattern",
    "minItems": "min items",
    "maxItems": "max items",
    "multipleOf": "multiple of",
}
FORMATS = frozenset({"date", "date-time", "time"})
TYPES = frozenset({"object", "string", "integer", "number", "boolean", "array"})


@dataclass(frozen=True)
class FunctionSchema:
    """A function definition GigaChat accepts, and what was changed to get there."""

    name: str
    description: str | None
    parameters: dict[str, Any]
    dropped: list[str] = field(default_factory=list)
    return_parameters: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The definition for ``functions=[...]`` (v1) or ``functions`` tools (v2)."""
        out: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            out["description"] = self.description
        if self.return_parameters:
            out["return_parameters"] = self.return_parameters
        return out


def function_schema(
    obj: Callable[..., Any] | type[BaseModel] | dict[str, Any],
    *,
    name: str | None = None,
    description: str | None = None,
    dialect: str = "reduced",
) -> FunctionSchema:
    """Build a GigaChat function definition from a function, a pydantic model or a dict.

    ``dialect``: ``"reduced"`` (the older dialect, changes reported in ``dropped``) or ``"full"``
    (the JSON Schema unchanged); see the module's docstring for which to choose.
    """
    if dialect not in ("reduced", "full"):
        raise InvalidArgumentError("dialect", f"expected 'reduced' or 'full', got {dialect!r}")
    if isinstance(obj, dict):
        raw_name = name or obj.get("name")
        desc = description or obj.get("description")
        schema = copy.deepcopy(obj.get("parameters") or {"type": "object", "properties": {}})
    elif isinstance(obj, type) and issubclass(obj, BaseModel):
        raw_name = name or obj.__name__
        desc = description or _first_paragraph(inspect.getdoc(obj))
        schema = obj.model_json_schema()
    elif callable(obj):
        raw_name = name or getattr(obj, "__name__", None)
        doc = inspect.getdoc(obj)
        desc = description or _first_paragraph(doc)
        schema = arguments_model(obj).model_json_schema()
        for param, text in _param_docs(doc).items():
            prop = schema.get("properties", {}).get(param)
            if isinstance(prop, dict) and "description" not in prop:
                prop["description"] = text
    else:
        raise InvalidArgumentError("function", f"expected a function, a pydantic model or a dict, got {obj!r}")
    if not isinstance(raw_name, str) or not FUNCTION_NAME_RE.match(raw_name):
        raise InvalidArgumentError(
            "name",
            f"{raw_name!r} is not a valid function name: Latin letters, digits "
            "(not leading), '_', '-' and '.' only; pass name=",
        )
    dropped: list[str] = []
    if dialect == "full":
        return FunctionSchema(raw_name, desc, _object_root(schema), dropped)
    params = reduce_schema(schema, dropped)
    if params.get("type") != "object":
        params = {"type": "object", "properties": {"value": params}, "required": ["value"]}
    return FunctionSchema(raw_name, desc, params, dropped)


def _object_root(schema: dict[str, Any]) -> dict[str, Any]:
    """A full schema whose root is an object (other roots become its ``value``; ``$defs`` stay at the root)."""
    kind = schema.get("type", "object" if "properties" in schema or "$ref" not in schema else None)
    if kind == "object" or (isinstance(kind, list) and "object" in kind):
        return schema
    inner = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    root: dict[str, Any] = {"type": "object", "properties": {"value": inner}, "required": ["value"]}
    root.update({k: schema[k] for k in ("$defs", "definitions") if k in schema})
    return root


def arguments_model(fn: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of a function's keyword arguments (used to validate the model's call)."""
    signature = inspect.signature(fn)
    try:
        hints = get_type_hints(fn)
    except Exception:  # unresolvable annotations: fall back to Any
        hints = {}
    fields: dict[str, Any] = {}
    for pname, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(pname, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    model: type[BaseModel] = create_model(
        f"{getattr(fn, '__name__', 'function')}_arguments",
        __config__=ConfigDict(extra="ignore"),
        **fields,
    )
    return model


def reduce_schema(schema: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    """Reduce a JSON Schema to GigaChat's dialect; ``dropped`` collects what changed."""
    defs = {**schema.get("$defs", {}), **schema.get("definitions", {})}
    return _reduce(schema, defs, dropped, "", set())


def _reduce(node: Any, defs: dict[str, Any], dropped: list[str], path: str, seen: set[str]) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {"type": "string"}
    node = dict(node)
    ref = node.pop("$ref", None)
    if isinstance(ref, str):
        key = ref.rsplit("/", 1)[-1]
        if key in seen or key not in defs:
            dropped.append(f"{path or '(root)'}: $ref {ref} (recursive or unknown) replaced by an object")
            return {"type": "object", "properties": {}}
        merged = {**defs[key], **node}
        return _reduce(merged, defs, dropped, path, seen | {key})
    for combinator in ("allOf",):
        parts = node.pop(combinator, None)
        if parts:
            for part in parts:
                resolved = _reduce(part, defs, dropped, path, seen)
                for key, value in resolved.items():
                    if key == "properties":
                        node.setdefault("properties", {}).update(value)
                    elif key == "required":
                        node["required"] = sorted({*node.get("required", []), *value})
                    else:
                        node.setdefault(key, value)
    for combinator in ("anyOf", "oneOf"):
        options = node.pop(combinator, None)
        if options:
            real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            if len(real) > 1:
                dropped.append(f"{path or '(root)'}: {combinator} with {len(real)} alternatives: kept the first")
            if real:
                chosen = _reduce(real[0], defs, dropped, path, seen)
                for key, value in chosen.items():
                    node.setdefault(key, value)
    kind = node.get("type")
    if isinstance(kind, list):
        real_types = [t for t in kind if t != "null"]
        if len(real_types) > 1:
            dropped.append(f"{path or '(root)'}: type {kind}: kept {real_types[0]}")
        kind = node["type"] = real_types[0] if real_types else "string"
    if kind not in TYPES:
        if kind is not None:
            dropped.append(f"{path or '(root)'}: type {kind!r} replaced by string")
        kind = node["type"] = "object" if "properties" in node else "string"
    out: dict[str, Any] = {"type": kind}
    notes: list[str] = []
    for key, value in node.items():
        where = f"{path}.{key}" if path else key
        if key in ("type", "$defs", "definitions"):
            continue
        if key == "description" and isinstance(value, str):
            out["description"] = value
        elif key == "properties" and kind == "object" and isinstance(value, dict):
            out["properties"] = {
                name: _reduce(sub, defs, dropped, f"{path}.{name}" if path else name, seen)
                for name, sub in value.items()
            }
        elif key == "required" and isinstance(value, list):
            out["required"] = [r for r in value if isinstance(r, str)]
        elif key == "items" and kind == "array":
            out["items"] = _reduce(value, defs, dropped, f"{path}[]", seen)
        elif key == "enum" and isinstance(value, list):
            if all(isinstance(v, str) for v in value):
                out["enum"] = value
            else:
                dropped.append(f"{where}: non-string enum {value}")
        elif key == "format":
            if value in FORMATS:
                out["format"] = value
            else:
                dropped.append(f"{where}: format {value!r}")
        elif key == "const" and isinstance(value, str):
            out["enum"] = [value]
        elif key == "default" and value is None:
            continue  # "defaults to nothing" tells the model nothing
        elif key in FOLDED and isinstance(value, (str, int, float, bool)):
            notes.append(f"{FOLDED[key]} {value}")
            dropped.append(f"{where}: moved into the description")
        elif key not in SILENT:
            dropped.append(f"{where}: unsupported keyword dropped")
    if notes:
        text = out.get("description", "")
        out["description"] = f"{text} ({', '.join(notes)})".strip()
    if kind == "object":
        out.setdefault("properties", {})
        if "required" in out:
            out["required"] = [r for r in out["required"] if r in out["properties"]]
    if kind == "array" and "items" not in out:
        dropped.append(f"{path or '(root)'}: array without items: items of type string assumed")
        out["items"] = {"type": "string"}
    return out


def _first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    lines = []
    for line in doc.strip().splitlines():
        if not line.strip() or re.match(r"^\s*(Args|Arguments|Parameters|Returns|Raises|:param)\b", line):
            break
        lines.append(line.strip())
    return " ".join(lines) or None


def _param_docs(doc: str | None) -> dict[str, str]:
    """Parameter descriptions from Google style (``Args:``) or reST (``:param x:``) docstrings."""
    out: dict[str, str] = {}
    if not doc:
        return out
    for match in re.finditer(r"^\s*:param\s+(?:\w+\s+)?(\w+):\s*(.+)$", doc, flags=re.M):
        out[match.group(1)] = match.group(2).strip()
    section = re.search(r"^\s*(?:Args|Arguments|Parameters):\s*\n(.*?)(?:\n\s*\n|\Z)", doc, flags=re.M | re.S)
    if section:
        for line in section.group(1).splitlines():
            found = re.match(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$", line)
            if found:
                out.setdefault(found.group(1), found.group(2).strip())
    return out
