"""Answers follow the prompt's format instructions and read as sentences on the prompt's topic.

Format instructions are LangChain's own (``langchain-core``'s parsers generate them, and the same
parsers read the answers back); answers come over real HTTP from the emulator, v1 and v2.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, Field

from gigapy.emulator._topics import STOPWORDS

from .conftest import Api

output_parsers = pytest.importorskip("langchain_core.output_parsers")
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


class Address(BaseModel):
    city: str = Field(description="City name")
    street: str | None = None


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="The person's name")
    age: int = Field(description="Age in years", ge=0, le=150)
    hobbies: list[str] = Field(description="What the person likes doing")
    address: Address
    email: str | None = None
    is_student: bool = False
    summary: str = Field(description="One sentence about the person")


def v1(api: Api, prompt: str, system: str | None = None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    response = api.post("chat/completions", json={"model": "GigaChat", "messages": messages})
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def v2(api: Api, prompt: str) -> str:
    response = api.chat_v2(prompt)
    assert response.status_code == 200, response.text
    return "".join(part.get("text", "") for part in response.json()["messages"][0]["content"])


ASK = {"v1": v1, "v2": v2}


# --- JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize(
    "query",
    [
        "Tell me about a person named Maria, 28 years old, who lives in Berlin and likes chess.",
        "Расскажи о человеке по имени Ольга: ей 35 лет, она живёт в Казани и любит шахматы.",
    ],
)
def test_pydantic_output_parser_instructions(api: Api, version: str, query: str) -> None:
    parser = output_parsers.PydanticOutputParser(pydantic_object=Person)
    prompt = f"Answer the user query.\n{parser.get_format_instructions()}\n{query}"
    answer = ASK[version](api, prompt)
    person = parser.parse(answer)  # LangChain's own parser accepts it
    jsonschema.validate(json.loads(answer), Person.model_json_schema())
    assert person.name in query and str(person.age) in query
    assert person.address.city in query or person.address.city[:4] in query
    assert bool(CYRILLIC.search(person.summary)) == bool(CYRILLIC.search(query))  # the question's language


def test_format_instructions_in_the_system_prompt(api: Api) -> None:
    parser = output_parsers.PydanticOutputParser(pydantic_object=Address)
    answer = v1(api, "I live in Oslo.", system=parser.get_format_instructions())
    assert parser.parse(answer).city == "Oslo"


def test_json_output_parser_without_a_model(api: Api) -> None:
    parser = output_parsers.JsonOutputParser()
    answer = v1(api, f"Какие бывают времена года? {parser.get_format_instructions()}")
    value = parser.parse(answer)
    assert isinstance(value, dict) and value["items"] == ["зима", "весна", "лето", "осень"]


@pytest.mark.parametrize(
    "prompt",
    [
        "What is a good name for a cat? Return nothing but JSON.",
        "Answer only with valid JSON: which ocean is the largest?",
        "Ответь только JSON: чем полезны прогулки?",
        "Respond in JSON format. Why is the sky blue?",
    ],
)
def test_nothing_but_json(api: Api, prompt: str) -> None:
    value = json.loads(v1(api, prompt))
    assert isinstance(value, dict) and value


def test_named_keys_get_typed_values(api: Api) -> None:
    answer = v1(api, "Return JSON with keys name, age, city and is_member for John, 30, from Paris.")
    value = json.loads(answer)
    assert list(value) == ["name", "age", "city", "is_member"]
    assert value == {"name": "John", "age": 30, "city": "Paris", "is_member": True}
    ru = json.loads(v1(api, "Верни JSON с полями «название», «год» и «жанры» для фильма «Солярис» 1972 года"))
    assert list(ru) == ["название", "год", "жанры"] and ru["год"] == 1972 and isinstance(ru["жанры"], list)


def test_an_example_object_keeps_its_shape(api: Api) -> None:
    value = json.loads(v1(api, 'Reply with JSON like {"city": "...", "population": 0, "tags": ["..."]} about Rome'))
    assert set(value) == {"city", "population", "tags"}
    assert isinstance(value["population"], int) and isinstance(value["tags"], list)


def test_questions_about_json_are_not_answered_in_json(api: Api) -> None:
    for prompt in ("What is JSON?", "How to return JSON from a Flask view?"):
        with pytest.raises(ValueError):
            json.loads(v1(api, prompt))


# --- code and lists ----------------------------------------------------------------------------


def test_code_comes_in_a_fenced_block(api: Api) -> None:
    answer = v1(api, "Напиши функцию на Python, которая считает факториал")
    ((language, code),) = FENCE.findall(answer)
    assert language == "python" and CYRILLIC.search(answer.split("```")[0])
    namespace: dict[str, Any] = {}
    exec(compile(ast.parse(code), "<answer>", "exec"), namespace)
    assert namespace["factorial"](5) == 120
    generic = v1(api, "Write a Python script that renames image files")
    ((language, code),) = FENCE.findall(generic)
    assert language == "python" and ast.parse(code)


@pytest.mark.parametrize(
    ("prompt", "language"),
    [
        ("Write a JavaScript function that reverses a string", "javascript"),
        ("Implement fizzbuzz in TypeScript", "typescript"),
        ("Write a Go function that merges two slices", "go"),
        ("Напиши SQL-запрос, который выбирает последние заказы", "sql"),
        ("Write a bash script that lists big files", "bash"),
    ],
)
def test_code_in_the_language_asked(api: Api, prompt: str, language: str) -> None:
    ((fence, code),) = FENCE.findall(v2(api, prompt))
    assert fence == language and code.strip()


def test_javascript_runs() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    from gigapy.emulator._compose import _JAVASCRIPT

    for name, code in _JAVASCRIPT.items():
        proc = subprocess.run([node, "--check"], input=code, capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == 0, (name, proc.stderr)


@pytest.mark.parametrize(
    ("prompt", "count"),
    [
        ("Назови три столицы Европы", 3),
        ("List 5 tips for better sleep", 5),
        ("Give me a bullet list of ways to save money", None),
        ("Перечисли шаги, чтобы испечь хлеб", None),
    ],
)
def test_lists_are_markdown_lists(api: Api, prompt: str, count: int | None) -> None:
    answer = v1(api, prompt)
    items = re.findall(r"^(?:\d+\.|-) (.+)$", answer, flags=re.M)
    assert len(items) == count if count else len(items) >= 3
    assert bool(CYRILLIC.search(answer)) == bool(CYRILLIC.search(prompt))


def test_the_readme_list_prompt_gets_real_capitals(api: Api) -> None:
    answer = v1(api, "Назови три столицы Европы")
    assert re.findall(r"^- (\w+) — столица", answer, flags=re.M) == ["Париж", "Берлин", "Рим"]


@pytest.mark.parametrize(
    "parser_name", ["CommaSeparatedListOutputParser", "NumberedListOutputParser", "MarkdownListOutputParser"]
)
def test_langchain_list_parsers(api: Api, parser_name: str) -> None:
    parser = getattr(output_parsers, parser_name)()
    values = parser.parse(v1(api, f"List four planets of the solar system.\n{parser.get_format_instructions()}"))
    assert len(values) == 4 and values[0].startswith("Mercury")


# --- prose -------------------------------------------------------------------------------------

PROSE = [
    "Что такое квантовая запутанность?",
    "Расскажи, что такое фотосинтез",
    "Почему небо голубое?",
    "Чем отличается Python от Java?",
    "Как научиться играть на гитаре?",
    "Можно ли пить кофе вечером?",
    "What is machine learning?",
    "How do I make a good cup of coffee?",
    "Why do cats purr?",
    "Tell me about the history of Rome and Roman roads",
]


@pytest.mark.parametrize("prompt", PROSE)
def test_prose_is_about_the_topic_in_the_prompts_language(api: Api, prompt: str) -> None:
    answer = v1(api, prompt)
    russian = bool(CYRILLIC.search(prompt))
    assert bool(CYRILLIC.search(answer)) == russian
    quoted = re.findall(r"«([^»]+)»", answer)
    for topic in quoted:  # no stop word quoted as a topic ("Практический подход к теме «такое»")
        assert any(w.lower() not in STOPWORDS for w in re.findall(r"\w+", topic)), (topic, answer)
    words = {w.lower() for w in re.findall(r"\w{4,}", prompt)} - STOPWORDS
    assert any(w[:5] in answer.lower() for w in words), answer  # on the prompt's topic
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", answer.strip()) if s]
    assert len(sentences) >= 2 and all(s[0].isupper() or s[0] in '«"' for s in sentences), answer


def test_the_first_thing_a_new_user_sees(api: Api) -> None:
    answer = v1(api, "Привет! Что ты умеешь?")
    assert answer.startswith("Здравствуйте!") and "эмулятор GigaChat" in answer
    assert "«" not in answer
    assert "emulator" in v1(api, "Hi! What can you do?")
    definition = v1(api, "Что такое квантовая запутанность?")
    assert "квантовая запутанность — это" in definition.lower()


def test_answers_are_deterministic(api: Api) -> None:
    for prompt in (
        "Что такое квантовая запутанность?",
        "List 5 tips for better sleep",
        "Return JSON with keys a and b",
    ):
        assert v1(api, prompt) == v1(api, prompt)
        assert v2(api, prompt) == v2(api, prompt)
