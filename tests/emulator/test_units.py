"""Unit tests of the building blocks: tokenizer, text, structured output, JPEG, embeddings, relevance."""

from __future__ import annotations

import io
import math
import random
import re

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gigapy.emulator._compose import Writer
from gigapy.emulator._embeddings import embed
from gigapy.emulator._jpeg import encode, mosaic
from gigapy.emulator._relevance import best_function, stem, stems
from gigapy.emulator._structured import fill_schema, regex_sample
from gigapy.emulator._textgen import count_tokens, is_russian, tokenize
from gigapy.emulator._topics import topics


@settings(max_examples=200)
@given(st.text())
def test_tokens_join_back_into_the_text(text: str) -> None:
    pieces = tokenize(text)
    assert "".join(pieces) == text
    assert count_tokens(text) == len(pieces)


def test_token_counts_match_the_recorded_service() -> None:
    assert [count_tokens(t) for t in ("Hello, world!", "First text", "Second text")] == [4, 2, 2]


def test_language_and_keywords() -> None:
    assert is_russian("Привет, как дела?") and not is_russian("Hello there")
    assert topics("Tell me about the history of Rome and Roman roads") == ["history of Rome", "Roman roads"]


def test_writer_is_deterministic_and_exact() -> None:
    one, two = Writer("Explain compilers", random.Random(1)), Writer("Explain compilers", random.Random(1))
    assert one.answer() == two.answer()
    assert len(Writer("anything", random.Random(2)).exactly(5000)) == 5000


@pytest.mark.parametrize(
    "pattern",
    [
        r"[A-Z]{3}-\d{4}",
        r"(cat|dog)s?",
        r"\w+@\w+\.com",
        r"[^abc]{2}x",
        r"(ab)\1",
        r"^\d{2,4}$",
        r"[a-f0-9]{8}-[a-f0-9]{4}",
    ],
)
def test_regex_samples_match(pattern: str) -> None:
    sample = regex_sample(pattern, random.Random(0))
    assert sample is not None and re.fullmatch(pattern, sample)


@pytest.mark.parametrize("pattern", ["(", "a{100000}", "(a{4000}){4000}"])
def test_regex_samples_refuse_bad_patterns(pattern: str) -> None:
    assert regex_sample(pattern, random.Random(0)) is None


SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "a": {"type": "string", "minLength": 3, "maxLength": 5},
            "b": {"type": "integer", "minimum": 10, "maximum": 20},
            "c": {"type": "array", "items": {"type": "number"}, "minItems": 2},
            "d": {"type": ["string", "null"], "enum": ["x", "y"]},
            "e": {"$ref": "#/$defs/inner"},
        },
        "required": ["a", "b", "c", "d", "e"],
        "$defs": {
            "inner": {
                "type": "object",
                "properties": {"flag": {"type": "boolean"}, "code": {"type": "string", "pattern": "^[A-Z]{2}\\d$"}},
            }
        },
    },
    {"anyOf": [{"type": "integer", "exclusiveMinimum": 5}, {"type": "string"}]},
    {"type": "array", "items": {"type": "object", "properties": {"id": {"const": 1}}}, "maxItems": 1},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_schema_values_validate(schema: dict) -> None:
    jsonschema.validate(fill_schema(schema, "Some prompt about 7 things", random.Random(0), "words"), schema)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "minItems": "x"},
        {"type": "string", "minLength": 10**9},
        {"$ref": "#/a"},
        {"properties": {"x": {"$ref": "#"}}},
    ],
)
def test_odd_schemas_do_not_crash(schema: dict) -> None:
    value = fill_schema(schema, "prompt", random.Random(0), "words")
    assert len(str(value)) < 100_000


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Create a customer named '你好啊集团' (Hello Group) - a Chinese company", "你好啊集团"),
        ("Заведи клиента, которого зовут «Анна Петровна»", "Анна Петровна"),
        ("Create a customer named Alice", "Alice"),
    ],
)
def test_quoted_names_keep_their_script(prompt: str, expected: str) -> None:
    schema = {"type": "object", "properties": {"customer_name": {"type": "string"}}, "required": ["customer_name"]}
    assert fill_schema(schema, prompt, random.Random(0), "words")["customer_name"] == expected


def test_jpeg_encoder() -> None:
    blocks = [[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (255, 255, 255)]]
    image = Image.open(io.BytesIO(encode(blocks)))
    image.load()
    assert image.size == (16, 16) and image.mode == "RGB"
    for (x, y), color in {(2, 2): (255, 0, 0), (10, 2): (0, 255, 0), (2, 10): (0, 0, 255)}.items():
        assert all(abs(a - b) <= 6 for a, b in zip(image.getpixel((x, y)), color, strict=True))
    assert mosaic(1) == mosaic(1) != mosaic(2)


def test_embeddings_are_unit_scaled_and_similarity_preserving() -> None:
    a, b, c = (embed(t, 1024, 0) for t in ("red apples and pears", "red apples and plums", "tax law reform"))
    assert math.isclose(math.sqrt(sum(v * v for v in a)), 32, rel_tol=0.01)
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True)) / 1024  # noqa: E731
    assert dot(a, b) > 0.5 > dot(a, c)
    assert len(embed("x", 2560, 0)) == 2560
    assert embed("x", 64, 1) != embed("x", 64, 2)


def test_stems_meet_across_forms_and_languages() -> None:
    assert {stem(w) for w in ("погода", "погоду", "погоде", "погоды")} == {"погод"}
    assert stem("orders") == stem("order") and stem("cities") == stem("city") and stem("status") == "status"
    assert stems("getWeatherForecast") == stems("get_weather forecast") == {"weathe", "foreca"}
    assert "weathe" in stems("Какая погода?") and stems("What is the time, please?") == {"time"}


def test_best_function_needs_a_related_prompt() -> None:
    weather = {
        "name": "get_weather",
        "description": "Forecast for a city",
        "parameters": {"properties": {"days": {"type": "integer", "description": "Number of days"}}},
    }
    clock = {
        "name": "now",
        "description": "Current time",
        "few_shot_examples": [{"request": "Который час?", "params": {}}],
    }
    functions = {"get_weather": weather, "now": clock}
    assert best_function(functions, "Погода в Осло") == "get_weather"
    assert best_function(functions, "What time is it?") == "now"
    assert best_function(functions, "Который час сейчас") == "now"  # from the few-shot request
    assert best_function(functions, "Tell me a joke") is None
    assert best_function(functions, "Two days") is None  # one parameter word is not enough
    assert best_function(functions, "") is None


@pytest.mark.parametrize(
    ("text", "dims", "seed", "digest"),
    [
        ("Hello, world!", 1024, 0, "72def5c100e58014"),
        ("Привет, мир!", 2560, 42, "646b2a7a0f4edde9"),
        ("", 16, 0, "847229a8c66b6b25"),
    ],
)
def test_embedding_vectors_stay_the_same_across_versions(text: str, dims: int, seed: int, digest: str) -> None:
    """Users store the emulator's vectors (search indexes in tests): a faster transform must give
    the same floats, bit for bit (digests from the block-loop transform it replaced)."""
    import hashlib
    import struct

    vector = embed(text, dims, seed)
    assert hashlib.sha256(struct.pack(f"<{dims}e", *vector)).hexdigest()[:16] == digest
