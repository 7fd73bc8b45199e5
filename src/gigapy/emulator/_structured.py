"""Structured output: JSON values built from a JSON Schema and the prompt, strings matching a regex."""

from __future__ import annotations

import json
import random
import re
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

if sys.version_info >= (3, 11):
    from re import _parser as sre_parse  # type: ignore[attr-defined,unused-ignore]
else:
    import sre_parse

_MAX_DEPTH = 8
_MAX_REPEAT = 8
_MAX_LITERAL_REPEAT = 4096
_MAX_STRING = 10_000
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_IDENT_RE = re.compile(r"\b[A-Za-zА-Яа-я]{0,6}-?\d[\w-]*\b")
_QUOTED_RE = re.compile(r"[\"'«“]([^\"'»”]{1,120})[\"'»”]")
_CAPITALIZED_RE = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-ZА-ЯЁ][a-zа-яё]{2,})")
_JSON_OBJECT_RE = re.compile(r"\{.*\}", re.DOTALL)
_LOCATION_HINTS = frozenset({"city", "location", "place", "town", "country", "region", "address"})
_ID_HINTS = frozenset({"id", "code", "number", "номер", "код", "sku", "ref"})
_TEXT_HINTS = frozenset(
    {
        "description",
        "summary",
        "answer",
        "text",
        "content",
        "explanation",
        "reason",
        "reasoning",
        "details",
        "comment",
        "message",
        "response",
        "note",
        "notes",
        "body",
        "bio",
        "review",
        "описание",
        "ответ",
        "текст",
        "пояснение",
        "комментарий",
        "причина",
        "итог",
    }
)
_NAMED = (
    ("email", frozenset({"email", "mail", "почта"})),
    ("url", frozenset({"url", "link", "website", "site", "href", "uri", "ссылка", "сайт"})),
    ("phone", frozenset({"phone", "tel", "telephone", "телефон"})),
    ("date", frozenset({"date", "birthday", "дата"})),
    ("language", frozenset({"language", "lang", "locale", "язык"})),
    ("title", frozenset({"title", "headline", "subject", "topic", "heading", "название", "заголовок", "тема"})),
    ("street", frozenset({"street", "улица"})),
    ("name", frozenset({"name", "author", "person", "user", "username", "имя", "автор"})),
)
_PLACE_RE = re.compile(r"\b(?:in|at|from|to|near|live in|lives in|в|во|из|на|около)\s+([A-ZА-ЯЁ][\w-]{2,})")
_PERSON_RE = re.compile(r"\b(?:named|called|name is|зовут|по имени|имя|имени)\s+([A-ZА-ЯЁ][\w-]{1,30})")
#: A quoted name after "named" keeps any script and spaces: named '你好啊集团', зовут «Анна Петровна».
_QUOTED_PERSON_RE = re.compile(r"\b(?:named|called|name is|зовут|по имени|имя|имени)\s+[\"'«“]([^\"'»”]{1,60})[\"'»”]")
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


class SchemaFiller:
    """Builds a value that satisfies a (reasonable) JSON Schema, using facts found in the prompt.

    ``sentence`` gives a sentence on the prompt's topic for text-like fields (description,
    summary, answer, ...); names, titles, places, ids, dates, e-mails and URLs get values of
    their kind.
    """

    def __init__(
        self,
        root: dict[str, Any],
        prompt: str,
        rng: random.Random,
        phrase: str,
        sentence: Callable[[], str] | None = None,
        phrases: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.prompt = prompt
        self.rng = rng
        self.phrase = phrase or "ok"
        self.sentence = sentence
        #: Topic phrases that array items of plain strings take in turn.
        self.phrases = [p for p in phrases if p] or [self.phrase]
        self.item = 0
        self.hints = _json_in_prompt(prompt)
        #: The ``$ref``s being expanded (a recursive schema stops at its optional self-references).
        self.active: list[str] = []

    def build(self) -> Any:
        """A value for the root schema."""
        return self.value(self.root, "", 0)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    def value(self, schema: Any, name: str, depth: int) -> Any:
        """A value for one (sub)schema; ``name`` is the property name, used for hints."""
        if not isinstance(schema, dict):
            return self._string(name, {})
        if depth > _MAX_DEPTH:
            return _minimal(self._resolve(schema))
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return self._value(schema, name, depth)
        self.active.append(ref)
        try:
            return self._value(schema, name, depth)
        finally:
            self.active.pop()

    def _value(self, schema: dict[str, Any], name: str, depth: int) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return self._pick_enum(enum)
        merged = _merge_all_of(schema, self._resolve)
        if merged is not schema:
            return self.value(merged, name, depth + 1)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.value(_not_null(options, self._resolve), name, depth + 1)
        kind = schema.get("type", "object" if "properties" in schema else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        hinted = self.hints.get(name)
        if hinted is not None and isinstance(hinted, _PY_TYPES.get(str(kind), ())):
            return hinted
        return self._by_type(str(kind), schema, name, depth)

    def _by_type(self, kind: str, schema: dict[str, Any], name: str, depth: int) -> Any:
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            count = min(max(int(schema.get("minItems", 0) or 0), 2), _MAX_REPEAT)
            count = min(count, int(schema.get("maxItems", count)))
            items = []
            for index in range(count):
                self.item = index
                items.append(self.value(schema.get("items", {}), name, depth + 1))
            self.item = 0
            if schema.get("uniqueItems") or all(isinstance(i, str) for i in items):
                items = _distinct(items)
            return items
        if kind in ("integer", "number"):
            return self._number(schema, kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(name, schema)

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        required = schema.get("required")
        needed = set(required) if isinstance(required, list) else set()
        return {
            key: self.value(sub, key, depth + 1)
            for key, sub in props.items()
            if key in needed or not self._recursive(sub)
        }

    def _recursive(self, schema: Any) -> bool:
        """Whether ``schema`` (or its items) refers to a ``$ref`` being expanded: a self-reference."""
        if isinstance(schema, dict) and isinstance(schema.get("items"), dict):
            schema = schema["items"]
        return isinstance(schema, dict) and schema.get("$ref") in self.active

    def _pick_enum(self, enum: list[Any]) -> Any:
        low = self.prompt.lower()
        for item in enum:
            if isinstance(item, str) and item.lower() in low:
                return item
        return enum[0]

    def _number(self, schema: dict[str, Any], integer: bool) -> int | float:
        found = _NUMBER_RE.search(self.prompt)
        value: float = float(found.group()) if found else 1.0
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if isinstance(low, (int, float)) and value < low:
            value = low + (1 if "exclusiveMinimum" in schema else 0)
        if isinstance(high, (int, float)) and value > high:
            value = high - (1 if "exclusiveMaximum" in schema else 0)
        return int(value) if integer else value

    def _string(self, name: str, schema: dict[str, Any]) -> str:
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            generated = regex_sample(pattern, self.rng)
            if generated is not None:
                return generated
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt](self)
        text = self._string_from_prompt(name.lower())
        low = schema.get("minLength")
        if isinstance(low, int) and len(text) < low:
            text += (" " + self.phrase) * (min(low, _MAX_STRING) // (len(self.phrase) + 1) + 1)
        high = schema.get("maxLength")
        if isinstance(high, int) and high >= 0:
            text = text[:high]
        return text

    def _string_from_prompt(self, name: str) -> str:
        words = set(re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", name.lower()))
        if words & _ID_HINTS or name.endswith("id"):
            ident = _IDENT_RE.search(self.prompt)
            if ident:
                return ident.group()
        if words & _LOCATION_HINTS or any(name.startswith(h) for h in ("город", "мест", "стран")):
            place = _PLACE_RE.search(self.prompt)
            if place:
                return place.group(1)
            proper = _proper_nouns(self.prompt)
            if proper:
                return proper[0]
        for kind, hints in _NAMED:
            if words & hints:
                return _BY_KIND[kind](self)
        quoted = _QUOTED_RE.search(self.prompt)
        if quoted:
            return quoted.group(1)
        if words & _TEXT_HINTS and self.sentence is not None:
            return self.sentence()
        return self.phrases[self.item % len(self.phrases)]


def _minimal(schema: dict[str, Any]) -> Any:
    """The smallest value of a schema's type (where a recursive or very deep schema stops)."""
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return {"object": {}, "array": [], "integer": 0, "number": 0, "boolean": False, "null": None}.get(str(kind), "")


def _merge_all_of(schema: dict[str, Any], resolve: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """``schema`` with its ``allOf`` parts merged in (properties and required united); else itself."""
    parts = schema.get("allOf")
    if not isinstance(parts, list) or not parts:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        if not isinstance(part, dict):
            continue
        part = _merge_all_of(resolve(part), resolve)
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
            else:
                merged.setdefault(key, value)
    return merged


def _not_null(options: list[Any], resolve: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """The first option that is not ``{"type": "null"}`` (``Optional[X]`` means X)."""
    for option in options:
        if isinstance(option, dict) and resolve(option).get("type") != "null":
            return option
    return options[0]


def _distinct(items: list[Any]) -> list[Any]:
    """Strings made distinct (``x``, ``x 2``, ...), so arrays of text do not repeat one value."""
    seen: dict[str, int] = {}
    out = []
    for item in items:
        if isinstance(item, str):
            seen[item] = seen.get(item, 0) + 1
            if seen[item] > 1:
                item = f"{item} {seen[item]}"
        out.append(item)
    return out


def _name(filler: SchemaFiller) -> str:
    person = _QUOTED_PERSON_RE.search(filler.prompt) or _PERSON_RE.search(filler.prompt)
    if person:
        return person.group(1)
    proper = _proper_nouns(filler.prompt)
    return proper[0] if proper else filler.phrase[:1].upper() + filler.phrase[1:]


def _proper_nouns(text: str) -> list[str]:
    """Capitalized words that do not start a sentence."""
    found: list[str] = []
    for sentence in re.split(r"(?<=[.!?\n])\s*", text):
        words = re.findall(r"[^\W\d_][\w-]*", sentence)
        found.extend(w for w in words[1:] if w[:1].isupper() and w[1:2].islower() and len(w) > 2)
    return found


def _street(filler: SchemaFiller) -> str:
    return "ул. Центральная, 1" if re.search(r"[А-Яа-яЁё]", filler.prompt) else "1 Main Street"


def _title(filler: SchemaFiller) -> str:
    return filler.phrase[:1].upper() + filler.phrase[1:]


def _slug(filler: SchemaFiller) -> str:
    return re.sub(r"[^a-z0-9]+", "-", filler.phrase.lower()).strip("-") or "page"


_BY_KIND: dict[str, Callable[[SchemaFiller], str]] = {
    "name": _name,
    "title": _title,
    "street": _street,
    "email": lambda f: "user@example.com",
    "url": lambda f: f"https://example.com/{_slug(f)}",
    "phone": lambda f: "+7 900 000-00-00",
    "date": lambda f: "2025-01-15",
    "language": lambda f: "ru" if re.search(r"[А-Яа-яЁё]", f.prompt) else "en",
}
_FORMATS: dict[str, Callable[[SchemaFiller], str]] = {
    "date": lambda f: "2025-01-15",
    "date-time": lambda f: "2025-01-15T12:00:00Z",
    "time": lambda f: "12:00:00",
    "email": _BY_KIND["email"],
    "idn-email": _BY_KIND["email"],
    "uri": _BY_KIND["url"],
    "url": _BY_KIND["url"],
    "iri": _BY_KIND["url"],
    "uuid": lambda f: str(uuid.UUID(int=f.rng.getrandbits(128), version=4)),
    "ipv4": lambda f: "192.0.2.1",
    "ipv6": lambda f: "2001:db8::1",
    "hostname": lambda f: "example.com",
}


def _json_in_prompt(prompt: str) -> dict[str, Any]:
    """A JSON object quoted in the prompt (``Return {"a": 1}``) gives hints for same-named fields."""
    found = _JSON_OBJECT_RE.search(prompt)
    if not found:
        return {}
    try:
        value = json.loads(found.group())
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def fill_schema(
    schema: dict[str, Any],
    prompt: str,
    rng: random.Random,
    phrase: str,
    sentence: Callable[[], str] | None = None,
    name: str = "",
    phrases: Sequence[str] = (),
) -> Any:
    """A JSON value valid for ``schema`` built from ``prompt`` (``{}`` for schemas it cannot read).

    ``sentence`` fills text-like fields, ``phrases`` (the prompt's topics) plain strings in arrays;
    ``name`` is the field the value is for (hints its kind).
    """
    try:
        return SchemaFiller(schema, prompt, rng, phrase, sentence, phrases).value(schema, name, 0)
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError, OverflowError):
        return {}


def regex_sample(pattern: str, rng: random.Random) -> str | None:
    """A string matching ``pattern`` (``None`` when the pattern is invalid or unsupported)."""
    try:
        parsed = sre_parse.parse(pattern)
        out: list[str] = []
        groups: dict[int, str] = {}
        _emit(list(parsed.data), rng, out, groups)
        text = "".join(out)
    except (re.error, RecursionError, ValueError, TypeError, IndexError, OverflowError):
        return None
    return text if re.fullmatch(pattern, text) else None


_CATEGORY_CHARS = {
    "CATEGORY_DIGIT": "0123456789",
    "CATEGORY_NOT_DIGIT": "abcxyz",
    "CATEGORY_WORD": "abcdefghijklmnopqrstuvwxyz",
    "CATEGORY_NOT_WORD": " -.",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": "abcxyz",
}


def _emit(items: list[tuple[Any, Any]], rng: random.Random, out: list[str], groups: dict[int, str]) -> None:
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("x" if chr(arg) != "x" else "y")
        elif name == "ANY":
            out.append(rng.choice("abcdefghijklmnopqrstuvwxyz"))
        elif name == "IN":
            out.append(_from_set(arg, rng))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            if low > _MAX_LITERAL_REPEAT:
                raise ValueError("repeat too long")
            count = low if low else min(1, high)
            for _ in range(count):
                _emit(list(sub), rng, out, groups)
                if len(out) > _MAX_STRING:
                    raise ValueError("regex sample too long")
        elif name == "SUBPATTERN":
            group, sub = arg[0], arg[-1]
            start = len(out)
            _emit(list(sub), rng, out, groups)
            if group is not None:
                groups[group] = "".join(out[start:])
        elif name == "BRANCH":
            _emit(list(arg[1][0]), rng, out, groups)
        elif name == "GROUPREF":
            out.append(groups.get(arg, ""))
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        elif name == "CATEGORY":
            out.append(rng.choice(_CATEGORY_CHARS.get(str(arg), "a")))
        else:
            raise ValueError(name)


def _from_set(items: list[tuple[Any, Any]], rng: random.Random) -> str:
    if items and str(items[0][0]) == "NEGATE":
        banned = {chr(a) for op, a in items[1:] if str(op) == "LITERAL"}
        return next(c for c in "xyzabc0123" if c not in banned)
    choices: list[str] = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            choices.append(chr(arg))
        elif name == "RANGE":
            low, high = arg
            choices.extend(chr(c) for c in range(low, min(high, low + 64) + 1))
        elif name == "CATEGORY":
            choices.extend(_CATEGORY_CHARS.get(str(arg), "a"))
    if not choices:
        raise ValueError("empty set")
    return rng.choice(choices)
