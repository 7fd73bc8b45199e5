"""The emulated model's answers: prose on the prompt's topic, or the format the prompt asks for.

Deterministic for a given rng (seeded from the request). Russian prompts get Russian answers,
others English; the language is judged on the question, format instructions set aside.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from ._intents import Format, detect, learned, literal, question_kind
from ._structured import fill_schema
from ._textgen import count_tokens, is_russian, tokenize
from ._topics import main_words, strip_instructions, topics

_CHARS_PER_TOKEN = 4.5
_STEPS_RE = re.compile(r"\bsteps?\b|step[- ]by[- ]step|\bhow to\b|шаг|пошагов|по шагам|инструкци", re.IGNORECASE)
_EN_TOPIC, _RU_TOPIC = "this question", "этот вопрос"

# --- prose -------------------------------------------------------------------------------------

_OPENERS = {
    "definition": (
        (
            "{A} is a concept that is easiest to explain with examples.",
            "In short, {a} is a topic with a clear definition and a lot of practical use.",
        ),
        (
            "{A} — это понятие, которое проще всего объяснить на примерах.",
            "Если коротко, {a} — это тема с чётким определением и большим практическим значением.",
        ),
    ),
    "how": (
        ("The easiest way to approach {a} is step by step.", "Here is how you can approach {a}."),
        ("Чтобы справиться с задачей «{a}», удобно идти по шагам.", "Вот как можно подойти к задаче «{a}»."),
    ),
    "why": (
        ("There are usually several reasons.", "The reasons are connected with each other."),
        ("Причин обычно несколько.", "Причин здесь несколько, и они связаны между собой."),
    ),
    "compare": (
        ("The main difference between {a} and {b} lies in what they are for and how they are used.",),
        ("Главное различие между «{a}» и «{b}» — в назначении и способе применения.",),
    ),
    "yesno": (
        ("In short: yes, with a few caveats.", "Usually yes, if a few conditions are met."),
        ("Коротко: да, но с оговорками.", "Чаще всего да, если учесть несколько условий."),
    ),
    "general": (
        ("Good question.", "Let me explain.", "Here is a short answer.", "Sure.", "In short:"),
        ("Хороший вопрос.", "Давайте разберёмся.", "Коротко о главном.", "Конечно.", "Попробую объяснить."),
    ),
}
_SEQUENCES = {
    "how": (
        (
            "First, decide what result you expect.",
            "Then gather what you need and start with the simplest option.",
            "After that, check the result and fix what did not work.",
            "Finally, keep the approach that worked so you can repeat it.",
        ),
        (
            "Сначала определите, какого результата вы ждёте.",
            "Затем подготовьте всё необходимое и начните с самого простого варианта.",
            "После этого проверьте результат и поправьте то, что не сработало.",
            "В конце закрепите удачный подход, чтобы повторять его без лишних усилий.",
        ),
    ),
    "why": (
        (
            "First, much about {a} is shaped by the starting conditions.",
            "Second, the experience of the people involved plays a role.",
            "Finally, outside circumstances matter, and they change over time.",
        ),
        (
            "Во-первых, многое в теме «{a}» определяется исходными условиями.",
            "Во-вторых, играет роль опыт тех, кто с этим сталкивается.",
            "Наконец, влияют внешние обстоятельства, а они со временем меняются.",
        ),
    ),
    "compare": (
        (
            "People often pick {a} for simplicity and {b} for flexibility.",
            "The best choice depends on the task, the budget and the experience of the team.",
        ),
        (
            "«{a}» чаще выбирают ради простоты, а «{b}» — ради гибкости.",
            "Лучший выбор зависит от задачи, бюджета и опыта команды.",
        ),
    ),
}
_ONE = (
    (
        "{A} is easier to understand step by step.",
        "A practical approach to {a} starts with a clear goal and a small first step.",
        "Much about {a} depends on the context in which it comes up.",
        "For a precise answer about {a}, rely on concrete examples and data you can check.",
        "Keep in mind that views on {a} change over time, so recent sources matter.",
        "Experts usually look at {a} in terms of benefits, costs and risks.",
        "A useful rule of thumb: check your assumptions about {a} before drawing conclusions.",
        "A good starting point is a few typical examples of {a}.",
        "If you need depth, split {a} into parts and look at each of them separately.",
    ),
    (
        "Тема «{a}» проще, чем кажется, если рассматривать её по шагам.",
        "Практический подход к теме «{a}» начинается с ясной цели и небольшого первого шага.",
        "Многое в вопросе «{a}» зависит от контекста, в котором он возникает.",
        "Для точного ответа про «{a}» стоит опираться на конкретные примеры и проверяемые данные.",
        "Учтите, что представления о теме «{a}» со временем меняются, поэтому важны свежие источники.",
        "Специалисты обычно оценивают «{a}» с точки зрения пользы, затрат и рисков.",
        "Полезное правило: прежде чем делать выводы о теме «{a}», проверьте исходные допущения.",
        "Хорошая отправная точка — несколько типичных примеров, связанных с темой «{a}».",
        "Если нужна глубина, разделите тему «{a}» на части и разберите каждую отдельно.",
    ),
)
_TWO = (
    (
        "When people talk about {a}, they usually mean how it relates to {b}.",
        "It helps to compare {a} with {b} and note where they differ.",
        "One common mistake is to look at {a} without {b}.",
        "In many cases {a} and {b} work best together.",
        "Start with the basics of {a}, then move on to {b}.",
    ),
    (
        "Если говорить о теме «{a}», главное — понять, как она связана с темой «{b}».",
        "Полезно сравнить «{a}» и «{b}» и отметить, чем они отличаются.",
        "Частая ошибка — рассматривать «{a}» в отрыве от темы «{b}».",
        "Во многих случаях «{a}» и «{b}» хорошо дополняют друг друга.",
        "Начните с основ темы «{a}», а затем переходите к «{b}».",
    ),
)
_CLOSERS = (
    ("I hope this helps.", "Let me know if you want more details.", "Feel free to ask a follow-up question."),
    ("Надеюсь, это помогло.", "Если нужно, могу рассказать подробнее.", "Задавайте уточняющие вопросы."),
)

# --- lists -------------------------------------------------------------------------------------

_ASPECTS = (
    (
        ("Key ideas", "the terms and ideas {a} starts with"),
        ("Practical use", "where {a} shows up in real work"),
        ("Common mistakes", "what to avoid when dealing with {a}"),
        ("Tools and sources", "what helps to learn {a} deeper"),
        ("History", "how views on {a} have changed"),
        ("Best practices", "proven ways to handle {a}"),
        ("Real examples", "concrete cases that show what {a} is about"),
        ("Selection criteria", "what to look at when comparing options in {a}"),
        ("Risks and limits", "where {a} calls for caution"),
        ("Next steps", "what to study after the basics of {a}"),
    ),
    (
        ("Основные понятия", "с чего начинается тема «{a}»: ключевые термины и идеи"),
        ("Практическое применение", "где тема «{a}» встречается на деле"),
        ("Типичные ошибки", "чего стоит избегать, разбираясь в теме «{a}»"),
        ("Инструменты и источники", "что помогает глубже изучить тему «{a}»"),
        ("История вопроса", "как менялись представления о теме «{a}»"),
        ("Лучшие практики", "проверенные подходы к теме «{a}»"),
        ("Примеры из жизни", "конкретные случаи, на которых видна суть темы «{a}»"),
        ("Критерии выбора", "на что смотреть, сравнивая варианты в теме «{a}»"),
        ("Риски и ограничения", "где тема «{a}» требует осторожности"),
        ("Следующие шаги", "что изучить после основ темы «{a}»"),
    ),
)
#: Small lists of well-known things, so common demo prompts get real items: (stems that must all
#: appear, English items, Russian items); an item is "head — note".
_KNOWN: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    (
        ("capital", "europ"),
        (
            "Paris — the capital of France",
            "Berlin — the capital of Germany",
            "Rome — the capital of Italy",
            "Madrid — the capital of Spain",
            "Vienna — the capital of Austria",
            "Prague — the capital of Czechia",
            "Lisbon — the capital of Portugal",
            "Warsaw — the capital of Poland",
            "Athens — the capital of Greece",
        ),
        (
            "Париж — столица Франции",
            "Берлин — столица Германии",
            "Рим — столица Италии",
            "Мадрид — столица Испании",
            "Вена — столица Австрии",
            "Прага — столица Чехии",
            "Лиссабон — столица Португалии",
            "Варшава — столица Польши",
            "Афины — столица Греции",
        ),
    ),
    (
        ("capital",),
        (
            "Tokyo — the capital of Japan",
            "Ottawa — the capital of Canada",
            "Canberra — the capital of Australia",
            "Brasília — the capital of Brazil",
            "Cairo — the capital of Egypt",
            "New Delhi — the capital of India",
            "Beijing — the capital of China",
            "Buenos Aires — the capital of Argentina",
        ),
        (
            "Москва — столица России",
            "Токио — столица Японии",
            "Оттава — столица Канады",
            "Канберра — столица Австралии",
            "Бразилиа — столица Бразилии",
            "Каир — столица Египта",
            "Нью-Дели — столица Индии",
            "Пекин — столица Китая",
        ),
    ),
    (
        ("planet",),
        (
            "Mercury — the closest planet to the Sun",
            "Venus — the hottest planet",
            "Earth — our home",
            "Mars — the red planet",
            "Jupiter — the largest planet",
            "Saturn — famous for its rings",
            "Uranus — an ice giant",
            "Neptune — the farthest planet",
        ),
        (
            "Меркурий — ближайшая к Солнцу планета",
            "Венера — самая горячая планета",
            "Земля — наш дом",
            "Марс — красная планета",
            "Юпитер — самая большая планета",
            "Сатурн — планета с кольцами",
            "Уран — ледяной гигант",
            "Нептун — самая далёкая планета",
        ),
    ),
    (
        ("ocean",),
        (
            "Pacific — the largest ocean",
            "Atlantic — between the Americas and Europe",
            "Indian — the warmest ocean",
            "Southern — around Antarctica",
            "Arctic — the smallest ocean",
        ),
        (
            "Тихий — самый большой океан",
            "Атлантический — между Америкой и Европой",
            "Индийский — самый тёплый",
            "Южный — вокруг Антарктиды",
            "Северный Ледовитый — самый маленький",
        ),
    ),
    (
        ("continent",),
        ("Eurasia — the largest continent", "Africa", "North America", "South America", "Australia", "Antarctica"),
        ("Евразия — самый большой материк", "Африка", "Северная Америка", "Южная Америка", "Австралия", "Антарктида"),
    ),
    (
        ("programming", "language"),
        (
            "Python — simple syntax and a huge ecosystem",
            "JavaScript — the language of the web",
            "Java — enterprise systems and Android",
            "Go — fast services and simple concurrency",
            "Rust — safety without a garbage collector",
            "Kotlin — modern Android development",
            "TypeScript — JavaScript with types",
            "C# — .NET applications and games",
        ),
        (
            "Python — простой синтаксис и огромная экосистема",
            "JavaScript — язык веба",
            "Java — корпоративные системы и Android",
            "Go — быстрые сервисы и простая конкурентность",
            "Rust — безопасность без сборщика мусора",
            "Kotlin — современная разработка под Android",
            "TypeScript — JavaScript с типами",
            "C# — приложения на .NET и игры",
        ),
    ),
    (
        ("color",),
        ("red", "orange", "yellow", "green", "light blue", "blue", "violet"),
        ("красный", "оранжевый", "жёлтый", "зелёный", "голубой", "синий", "фиолетовый"),
    ),
    (("season",), ("winter", "spring", "summer", "autumn"), ("зима", "весна", "лето", "осень")),
    (
        ("month",),
        (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
        (
            "январь",
            "февраль",
            "март",
            "апрель",
            "май",
            "июнь",
            "июль",
            "август",
            "сентябрь",
            "октябрь",
            "ноябрь",
            "декабрь",
        ),
    ),
    (
        ("day", "week"),
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"),
    ),
    (
        ("fruit",),
        ("apple", "banana", "orange", "pear", "mango", "kiwi", "grapes"),
        ("яблоко", "банан", "апельсин", "груша", "манго", "киви", "виноград"),
    ),
    (
        ("city", "russia"),
        ("Moscow", "Saint Petersburg", "Novosibirsk", "Yekaterinburg", "Kazan", "Nizhny Novgorod", "Sochi"),
        ("Москва", "Санкт-Петербург", "Новосибирск", "Екатеринбург", "Казань", "Нижний Новгород", "Сочи"),
    ),
)
#: Russian stem prefixes → the English stems ``_KNOWN`` uses.
_RU_STEMS = (
    ("столиц", "capital"),
    ("европ", "europ"),
    ("планет", "planet"),
    ("океан", "ocean"),
    ("материк", "continent"),
    ("континент", "continent"),
    ("программир", "programming"),
    ("язык", "language"),
    ("цвет", "color"),
    ("радуг", "color"),
    ("времен", "season"),
    ("сезон", "season"),
    ("месяц", "month"),
    ("дн", "day"),
    ("недел", "week"),
    ("фрукт", "fruit"),
    ("город", "city"),
    ("росси", "russia"),
    ("colour", "color"),
    ("cities", "city"),
    ("countr", "country"),
)

# --- code --------------------------------------------------------------------------------------

_LANG_TITLES = {
    "python": "Python",
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "java": "Java",
    "go": "Go",
    "rust": "Rust",
    "cpp": "C++",
    "csharp": "C#",
    "kotlin": "Kotlin",
    "php": "PHP",
    "ruby": "Ruby",
    "swift": "Swift",
    "bash": "Bash",
    "sql": "SQL",
}
_FENCE_TAGS = {"cpp": "cpp", "csharp": "csharp"}
#: Known small tasks: (pattern, name, what it does (en, ru)); their code is in _PYTHON and _JAVASCRIPT.
_TASKS: tuple[tuple[str, str, tuple[str, str]], ...] = (
    (r"factorial|факториал", "factorial", ("computes the factorial of n", "вычисляет факториал числа n")),
    (
        r"fibonacci|фибоначчи",
        "fibonacci",
        ("returns the first n Fibonacci numbers", "возвращает первые n чисел Фибоначчи"),
    ),
    (r"prime|прост\w* числ", "is_prime", ("checks whether a number is prime", "проверяет, простое ли число")),
    (
        r"palindrome|палиндром",
        "is_palindrome",
        ("checks whether a string is a palindrome", "проверяет, является ли строка палиндромом"),
    ),
    (r"revers|перевер|разверн|в обратном порядке", "reverse_string", ("reverses a string", "переворачивает строку")),
    (r"\bsort|сортир|упорядоч", "sort_items", ("sorts a list", "сортирует список")),
    (r"average|mean|средн", "average", ("computes the average of numbers", "вычисляет среднее значение")),
    (r"\bsum\b|сумм", "total", ("adds up numbers", "складывает числа")),
    (r"\bmax|largest|biggest|максим|наибольш", "maximum", ("finds the largest number", "находит наибольшее число")),
    (
        r"count\w* words|word count|подсч\w* слов|количеств\w* слов|посчитай слова",
        "count_words",
        ("counts the words of a text", "считает слова в тексте"),
    ),
    (r"fizz ?buzz", "fizzbuzz", ("plays FizzBuzz up to n", "решает FizzBuzz до n")),
    (r"hello,? world|привет,? мир", "hello", ("returns the classic greeting", "возвращает классическое приветствие")),
)
_PYTHON = {
    "factorial": """def factorial(n: int) -> int:
    \"\"\"n! for n >= 0.\"\"\"
    if n < 0:
        raise ValueError("n must be >= 0")
    result = 1
    for i in range(2, n + 1):
        result *= i
    return result
""",
    "fibonacci": """def fibonacci(n: int) -> list[int]:
    \"\"\"The first n Fibonacci numbers.\"\"\"
    numbers = []
    a, b = 0, 1
    for _ in range(n):
        numbers.append(a)
        a, b = b, a + b
    return numbers
""",
    "is_prime": """def is_prime(n: int) -> bool:
    \"\"\"True when n is a prime number.\"\"\"
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True
""",
    "is_palindrome": """def is_palindrome(text: str) -> bool:
    \"\"\"True when text reads the same both ways (letters and digits only).\"\"\"
    cleaned = [ch.lower() for ch in text if ch.isalnum()]
    return cleaned == cleaned[::-1]
""",
    "reverse_string": """def reverse_string(text: str) -> str:
    \"\"\"The text, back to front.\"\"\"
    return text[::-1]
""",
    "sort_items": """def sort_items(items: list[int]) -> list[int]:
    \"\"\"A sorted copy of items (insertion sort).\"\"\"
    result: list[int] = []
    for item in items:
        index = len(result)
        while index > 0 and result[index - 1] > item:
            index -= 1
        result.insert(index, item)
    return result
""",
    "average": """def average(numbers: list[float]) -> float:
    \"\"\"The arithmetic mean of numbers.\"\"\"
    if not numbers:
        raise ValueError("numbers is empty")
    return sum(numbers) / len(numbers)
""",
    "total": """def total(numbers: list[float]) -> float:
    \"\"\"The sum of numbers.\"\"\"
    result = 0.0
    for number in numbers:
        result += number
    return result
""",
    "maximum": """def maximum(numbers: list[float]) -> float:
    \"\"\"The largest of numbers.\"\"\"
    if not numbers:
        raise ValueError("numbers is empty")
    best = numbers[0]
    for number in numbers[1:]:
        if number > best:
            best = number
    return best
""",
    "count_words": """def count_words(text: str) -> dict[str, int]:
    \"\"\"How many times each word occurs in text.\"\"\"
    counts: dict[str, int] = {}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return counts
""",
    "fizzbuzz": """def fizzbuzz(n: int) -> list[str]:
    \"\"\"FizzBuzz from 1 to n.\"\"\"
    lines = []
    for i in range(1, n + 1):
        word = ("Fizz" if i % 3 == 0 else "") + ("Buzz" if i % 5 == 0 else "")
        lines.append(word or str(i))
    return lines
""",
    "hello": """def hello() -> str:
    \"\"\"The classic greeting.\"\"\"
    return "Hello, world!"
""",
}
_JAVASCRIPT = {
    "factorial": """function factorial(n) {
  if (n < 0) throw new RangeError("n must be >= 0");
  let result = 1;
  for (let i = 2; i <= n; i++) result *= i;
  return result;
}
""",
    "fibonacci": """function fibonacci(n) {
  const numbers = [];
  let [a, b] = [0, 1];
  for (let i = 0; i < n; i++) {
    numbers.push(a);
    [a, b] = [b, a + b];
  }
  return numbers;
}
""",
    "is_prime": """function isPrime(n) {
  if (n < 2) return false;
  for (let i = 2; i * i <= n; i++) {
    if (n % i === 0) return false;
  }
  return true;
}
""",
    "is_palindrome": """function isPalindrome(text) {
  const cleaned = text.toLowerCase().replace(/[^\\p{L}\\p{N}]/gu, "");
  return cleaned === [...cleaned].reverse().join("");
}
""",
    "reverse_string": """function reverseString(text) {
  return [...text].reverse().join("");
}
""",
    "sort_items": """function sortItems(items) {
  return [...items].sort((a, b) => a - b);
}
""",
    "average": """function average(numbers) {
  if (numbers.length === 0) throw new RangeError("numbers is empty");
  return numbers.reduce((a, b) => a + b, 0) / numbers.length;
}
""",
    "total": """function total(numbers) {
  return numbers.reduce((a, b) => a + b, 0);
}
""",
    "maximum": """function maximum(numbers) {
  if (numbers.length === 0) throw new RangeError("numbers is empty");
  return Math.max(...numbers);
}
""",
    "count_words": """function countWords(text) {
  const counts = {};
  for (const word of text.toLowerCase().split(/\\s+/)) {
    if (word) counts[word] = (counts[word] || 0) + 1;
  }
  return counts;
}
""",
    "fizzbuzz": """function fizzbuzz(n) {
  const lines = [];
  for (let i = 1; i <= n; i++) {
    const word = (i % 3 === 0 ? "Fizz" : "") + (i % 5 === 0 ? "Buzz" : "");
    lines.push(word || String(i));
  }
  return lines;
}
""",
    "hello": """function hello() {
  return "Hello, world!";
}
""",
}
#: Any other task: one small, complete function per language ({name}, {camel}, {pascal}, {table}).
_GENERIC = {
    "python": """def {name}(items: list[str]) -> list[str]:
    \"\"\"Process items one by one.\"\"\"
    result = []
    for item in items:
        result.append(item.strip())
    return result
""",
    "javascript": """function {camel}(items) {{
  return items.map((item) => item.trim());
}}
""",
    "typescript": """function {camel}(items: string[]): string[] {{
  return items.map((item) => item.trim());
}}
""",
    "java": """import java.util.List;

public class {pascal} {{
    public static List<String> {camel}(List<String> items) {{
        return items.stream().map(String::strip).toList();
    }}
}}
""",
    "go": """package main

import "strings"

func {pascal}(items []string) []string {{
	result := make([]string, 0, len(items))
	for _, item := range items {{
		result = append(result, strings.TrimSpace(item))
	}}
	return result
}}
""",
    "rust": """fn {name}(items: &[&str]) -> Vec<String> {{
    items.iter().map(|item| item.trim().to_string()).collect()
}}
""",
    "cpp": """#include <string>
#include <vector>

std::vector<std::string> {camel}(const std::vector<std::string>& items) {{
    std::vector<std::string> result(items.begin(), items.end());
    return result;
}}
""",
    "csharp": """using System.Collections.Generic;
using System.Linq;

public static class {pascal}
{{
    public static List<string> Run(IEnumerable<string> items) =>
        items.Select(item => item.Trim()).ToList();
}}
""",
    "kotlin": """fun {camel}(items: List<String>): List<String> = items.map {{ it.trim() }}
""",
    "php": """<?php

function {camel}(array $items): array
{{
    return array_map('trim', $items);
}}
""",
    "ruby": """def {name}(items)
  items.map(&:strip)
end
""",
    "swift": """func {camel}(_ items: [String]) -> [String] {{
    items.map {{ $0.trimmingCharacters(in: .whitespaces) }}
}}
""",
    "bash": """#!/usr/bin/env bash
set -euo pipefail

for item in "$@"; do
  echo "${{item}}"
done
""",
    "sql": """SELECT id, name, created_at
FROM {table}
ORDER BY created_at DESC
LIMIT 10;
""",
}
_CODE_TEXT = """function functions code script program class method snippet query algorithm
    implementation module python javascript typescript java golang rust kotlin php ruby swift bash sql
    write create implement simple small short please example"""
_CODE_WORDS = frozenset(_CODE_TEXT.split())


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@lru_cache(maxsize=1024)
def _analyse(prompt: str, history: str, system: str) -> tuple[bool, tuple[str, ...], str, Format]:
    """What a prompt is (language, topics, kind of question, asked format): a pure function of the
    texts, so repeated prompts (batches, load tests) are analysed once."""
    question = strip_instructions(prompt)
    russian = is_russian(question) if re.search(r"[^\W\d_]", question) else is_russian(prompt)
    words = topics(question, stripped=True) or topics(history) or [_RU_TOPIC if russian else _EN_TOPIC]
    fmt = detect(f"{system}\n{prompt}" if system else prompt)
    return russian, tuple(words), question_kind(question), fmt


class Writer:
    """Builds answers for one prompt; deterministic for a given rng.

    ``history``: earlier user turns (the topic of a follow-up with no words of its own, and facts
    to recall such as the user's name); ``system``: the system prompt (format instructions count).
    """

    def __init__(self, prompt: str, rng: random.Random, history: str = "", system: str = "") -> None:
        self.prompt = prompt
        self.rng = rng
        self.history = history
        self.system = system
        russian, words, kind, self.format = _analyse(prompt, history, system)
        self.russian = russian
        self.words = list(words)
        self.kind = kind

    def phrase(self) -> str:
        """The prompt's main topic."""
        return self.words[0]

    # prose
    def _topic_pair(self) -> tuple[str, str | None]:
        a = self.rng.choice(self.words)
        others = [w for w in self.words if w != a]
        return a, (self.rng.choice(others) if others else None)

    def _fill(self, template: str, a: str, b: str | None) -> str:
        return template.format(a=a, A=_cap(a), b=b or a)

    def sentences(self) -> Iterator[str]:
        """An endless, varied stream of sentences about the prompt's topics, shaped by its question."""
        lang = int(self.russian)
        kind = self.kind if self.kind != "compare" or len(self.words) > 1 else "general"
        a, b = self.words[0], (self.words[1] if len(self.words) > 1 else None)
        yield self._fill(self.rng.choice(_OPENERS[kind][lang]), a, b)
        for template in _SEQUENCES.get(kind, ((), ()))[lang]:
            yield self._fill(template, a, b)
        first = True
        while True:
            a, b = (self.words[0], b) if first else self._topic_pair()  # the main topic comes first
            first = False
            pool = _TWO[lang] if b is not None and self.rng.random() < 0.4 else _ONE[lang]
            yield self._fill(self.rng.choice(pool), a, b)

    def closer(self) -> str:
        """A closing sentence."""
        return self.rng.choice(_CLOSERS[int(self.russian)])

    def sentence(self) -> str:
        """One sentence on the topic (for text fields of structured answers)."""
        a, b = self._topic_pair()
        return self._fill(self.rng.choice(_ONE[int(self.russian)]), a, b)

    def paragraphs(self, min_tokens: int, closing: bool = True) -> str:
        """Sentences grouped into paragraphs until the text has roughly ``min_tokens`` tokens.

        Lengths are estimated from characters (a token is about 4.5 of them) to avoid
        tokenizing every sentence; ``exactly`` tops the text up when the estimate falls short.
        """
        parts: list[str] = []
        budget = min_tokens * _CHARS_PER_TOKEN
        size = 0
        seen: set[str] = set()
        for index, sentence in enumerate(self.sentences()):
            if size >= budget:
                break
            if sentence in seen and index < 40 and len(seen) < 12:
                continue
            seen.add(sentence)
            sep = "" if not parts else ("\n\n" if len(parts) % 4 == 0 else " ")
            parts.append(sep + sentence)
            size += len(sep) + len(sentence)
        if closing:
            parts.append(" " + self.closer())
        return "".join(parts)

    def answer(self) -> str:
        """The answer: a literal one, the asked format (JSON, code, values, a list), or prose."""
        fixed = literal(self.prompt, self.history, self.russian)
        if fixed is not None:
            return fixed
        fmt = self.format
        if fmt.kind == "json":
            return self.json_text(fmt)
        if fmt.kind == "code":
            return self.code(fmt.language)
        if fmt.kind == "csv":
            return ", ".join(head for head, _ in self._items(fmt.count or self.rng.randint(3, 5)))
        if fmt.kind == "list":
            return self.listing(fmt)
        told = learned(self.prompt)
        if told is not None:
            return told
        target = 12 + self.rng.randint(0, 40) + min(count_tokens(self.prompt), 400) // 3
        return self.paragraphs(target)

    def exactly(self, tokens: int) -> list[str]:
        """Exactly ``tokens`` tokens of answer text, as token pieces."""
        pieces: list[str] = []
        while len(pieces) < tokens:
            more = self.paragraphs(tokens - len(pieces), closing=False)
            pieces.extend(tokenize((" " if pieces else "") + more))
        return pieces[:tokens]

    # lists
    def _known(self) -> tuple[str, ...]:
        words = set(main_words(self.prompt))
        stems = set(words) | {en for w in words for ru, en in _RU_STEMS if w.startswith(ru)}
        for needed, english, russian in _KNOWN:
            if all(any(s.startswith(n) for s in stems) for n in needed):
                return russian if self.russian else english
        return ()

    def _items(self, count: int) -> list[tuple[str, str]]:
        """``count`` list items as (head, note): well-known things first, then aspects of the topic."""
        items: list[tuple[str, str]] = []
        for item in self._known():
            head, _, note = item.partition(" — ")
            items.append((head, note))
        if (self.kind == "how" or _STEPS_RE.search(self.prompt)) and not items:
            steps = _SEQUENCES["how"][int(self.russian)]
            items.extend((step.rstrip("."), "") for step in steps)
        aspects = list(_ASPECTS[int(self.russian)])
        self.rng.shuffle(aspects)
        for head, note in aspects:
            items.append((head, self._fill(note, self.words[len(items) % len(self.words)], None)))
        return items[:count]

    def listing(self, fmt: Format) -> str:
        """A markdown list (numbered when asked for steps or a ranking) with a one-line lead-in."""
        count = fmt.count or self.rng.randint(3, 5)
        a = self.phrase()
        if self.russian:
            lead = f"Вот что можно назвать по теме «{a}»:" if self._known() else f"Несколько пунктов по теме «{a}»:"
        else:
            lead = f"Here are {count} points about {a}:" if count > 1 else f"Here is one point about {a}:"
        lines = []
        for index, (head, note) in enumerate(self._items(count), start=1):
            marker = f"{index}." if fmt.numbered else "-"
            lines.append(f"{marker} {head} — {note}" if note else f"{marker} {head}")
        return lead + "\n\n" + "\n".join(lines) + "\n\n" + self.closer()

    # code
    def code(self, language: str) -> str:
        """A short lead-in, one fenced code block in ``language``, one line after it."""
        title = _LANG_TITLES.get(language, language.title())
        names = {n.lower() for n in _LANG_TITLES.values()}
        task = next((t for t in _TASKS if re.search(t[0], self.prompt, re.IGNORECASE)), None)
        body = _code_body(language, task[1] if task else None, task[1] if task else self._identifier())
        what = task[2][int(self.russian)] if task else None
        a = next((t for t in self.words if t.lower() not in names), self.phrase())
        if self.russian:
            lead = f"Вот код на {title}, который {what}:" if what else f"Вот пример на {title} для задачи «{a}»:"
            tail = "Его можно вызвать со своими данными и при необходимости дополнить проверками входных значений."
        else:
            lead = f"Here is {title} code that {what}:" if what else f"Here is a {title} example for {a}:"
            tail = "You can call it with your own data and add input checks as needed."
        return f"{lead}\n\n```{_FENCE_TAGS.get(language, language)}\n{body}```\n\n{tail}"

    def _identifier(self) -> str:
        """snake_case from the prompt's English topic words (``solve`` when it has none)."""
        words = [
            w
            for w in re.findall(r"[A-Za-z]{3,}", strip_instructions(self.prompt).lower())
            if w not in _CODE_WORDS and w in main_words(self.prompt)
        ]
        return "_".join(words[:3]) or "solve"

    # JSON
    def json_text(self, fmt: Format) -> str:
        """Valid JSON of the asked shape (pretty-printed, nothing around it)."""
        return json.dumps(self.json_value(fmt), ensure_ascii=False, indent=2)

    def json_value(self, fmt: Format) -> Any:
        """The JSON value: schema-filled, keyed, shaped like the example, or a plain answer object."""
        context = strip_instructions(self.prompt)
        if fmt.schema is not None:
            return fill_schema(fmt.schema, context, self.rng, self.phrase(), self.sentence, phrases=self.words)
        if fmt.keys:
            return {key: _guess(key, self) for key in fmt.keys}
        if fmt.example is not None:
            return _like(fmt.example, self, "")
        if fmt.array:
            return [head for head, _ in self._items(self.rng.randint(3, 5))]
        if self._known():
            return {"topic": self.phrase(), "items": [head for head, _ in self._items(len(self._known()))]}
        return {"topic": self.phrase(), "answer": self.sentence()}


def _code_body(language: str, task: str | None, name: str) -> str:
    if task is not None and language == "python":
        return _PYTHON[task]
    if task is not None and language in ("javascript", "typescript"):
        return _JAVASCRIPT[task]
    camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
    template = _GENERIC.get(language, _GENERIC["python"])
    return template.format(
        name=name, camel=camel, pascal=camel[:1].upper() + camel[1:], table=name if name != "solve" else "items"
    )


_PLACEHOLDER_RE = re.compile(r"^(?:|\.\.\.|…|string|str|text|value|xxx|todo|tbd|<[^>]*>|\{[^}]*\}|\?+)$", re.IGNORECASE)
_INT_KEYS = re.compile(
    r"(?:^|_)(?:age|count|number|num|year|n|qty|quantity|amount|total|size|length|score|rank|"
    r"rating|price|cost|population|level|возраст|количество|год|число|цена)(?:$|_)",
    re.IGNORECASE,
)
_BOOL_KEYS = re.compile(
    r"^(?:is|has|can|should|was|allow|enable)_|^(?:valid|ok|success|active|enabled)$", re.IGNORECASE
)
_LIST_KEYS = re.compile(r"(?:[a-z]s|list|items|ids|[а-яё][ыи]|список)$", re.IGNORECASE)


def _guess(key: str, writer: Writer) -> Any:
    """A value for a named key, typed from its name (``age`` → number, ``is_x`` → bool, ``tags`` → list)."""
    if _BOOL_KEYS.search(key):
        return True
    if _INT_KEYS.search(key):
        found = re.search(r"-?\d+", strip_instructions(writer.prompt))
        return int(found.group()) if found else 1
    if _LIST_KEYS.search(key) and not key.lower().endswith(("ss", "us", "is", "status")):
        return [head for head, _ in writer._items(2)]
    return fill_schema(
        {"type": "string"}, strip_instructions(writer.prompt), writer.rng, writer.phrase(), writer.sentence, name=key
    )


def _like(example: Any, writer: Writer, key: str) -> Any:
    """A value shaped like ``example``: real values kept, placeholders filled by their key and type."""
    if isinstance(example, dict):
        return {k: _like(v, writer, k) for k, v in example.items()}
    if isinstance(example, list):
        return [_like(item, writer, key) for item in example[:5]] or []
    if isinstance(example, str) and _PLACEHOLDER_RE.match(example.strip()):
        return _guess(key, writer) if key else writer.phrase()
    return example
