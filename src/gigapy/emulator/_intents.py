"""What shape an answer must take: the format a prompt asks for, and the kind of question it is.

Formats, strongest first: JSON (a JSON Schema embedded as LangChain's and pydantic's format
instructions do, named keys, an example object, or just "return nothing but JSON"), code (a
fenced block in the language asked for), comma-separated values, a markdown list; otherwise prose.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_DECODER = json.JSONDecoder()
_SCAN_CHARS = 64 * 1024
_SCAN_TRIES = 64

# JSON: strong signals win over a request for code ("a function that returns JSON" is code).
_JSON_STRONG_RE = re.compile(
    r"nothing but (?:valid )?json|only (?:valid |the |a |one )?json|json only|just (?:the |a )?json|"
    r"(?:respond|reply|answer|output)\w*\s+(?:only\s+)?(?:in|with|as|using)\s+(?:a\s+|valid\s+)?json|"
    r"\b(?:in|as)\s+(?:a\s+)?(?:valid\s+)?json(?:\s+format)?\b(?!\s+(?:file|files|parser|library))|"
    r"formatted as a json|json instance|conforms? to the json schema|"
    r"только\s+(?:в\s+виде\s+|в\s+формате\s+)?json|в\s+(?:виде|формате)\s+json|json[- ]?(?:объект|формат)|"
    r"(?:ответь|отвечай|ответ)\w*\s+(?:только\s+)?(?:в\s+)?json",
    re.IGNORECASE,
)
_JSON_WEAK_RE = re.compile(
    r"\b(?:return|give|send|produce|provide|output|generate|create|build|make)\b(?:\s+me)?[^.\n?]{0,40}\bjson\b|"
    r"\bjson\b[^.\n?]{0,20}\b(?:with|containing|having)\s+(?:the\s+)?(?:keys|fields|properties)|"
    r"(?:верни|выведи|выдай|дай|пришли|сформируй|составь|представь|оформи|сгенерируй|создай)\w*[^.\n?]{0,40}json",
    re.IGNORECASE,
)
_JSON_ARRAY_RE = re.compile(r"json\s+(?:array|list)|(?:массив|список)\w*\s+(?:в\s+)?json|json[- ]массив", re.IGNORECASE)
_HOW_TO_RE = re.compile(r"\bhow (?:to|do|can|should)\b|\bкак\b|\bexplain\b|\bобъясни", re.IGNORECASE)
_KEYS_RE = re.compile(
    r"(?:keys|fields|properties|attributes|ключ(?:ами|и|ом)|пол(?:ями|я|ем)|атрибут(?:ами|ы))\s*[:\-—]?\s*"
    r"((?:[\"'`«“]?[A-Za-zА-Яа-яЁё_][\wЁё-]*[\"'`»”]?(?:\s*(?:,|\band\b|\bи\b|\bor\b)\s*)?){1,20})",
    re.IGNORECASE,
)
_KEY_RE = re.compile(r"[\"'`«“]?([A-Za-zА-Яа-яЁё_][\wЁё-]*)[\"'`»”]?")
_NOT_KEYS = frozenset(
    {
        "and",
        "or",
        "и",
        "или",
        "the",
        "a",
        "an",
        "with",
        "of",
        "their",
        "its",
        "for",
        "in",
        "to",
        "that",
        "which",
        "each",
        "values",
        "value",
        "значениями",
        "значения",
        "для",
        "в",
        "с",
    }
)

_CODE_RE = re.compile(
    r"\b(?:write|create|implement|code|give me|show me|generate|make|build|provide)\b[^.\n?]{0,60}"
    r"\b(?:function|code|script|program|class|method|snippet|query|algorithm|implementation|module|cli)\b|"
    r"\bcode (?:block|snippet|example)\b|\bin (?:python|javascript|typescript|java|golang|rust|c\+\+|c#|kotlin|"
    r"php|ruby|swift|bash|sql)\b|"
    r"(?:напиши|создай|реализуй|покажи|сгенерируй|приведи|дай|составь)\w*[^.\n?]{0,60}"
    r"(?:функци|код|скрипт|программ|класс|метод|запрос|алгоритм|реализаци|модул)|пример\w* кода",
    re.IGNORECASE,
)
_LANGUAGES = (
    ("typescript", r"typescript|\bts\b"),
    ("javascript", r"javascript|\bjs\b|node\.?js"),
    ("python", r"python|питон|пайтон"),
    ("java", r"\bjava\b|джав"),
    ("go", r"\bgolang\b|\bgo\b|\bна go\b"),
    ("rust", r"\brust\b|раст"),
    ("cpp", r"c\+\+|\bcpp\b|плюсах"),
    ("csharp", r"c#|\bcsharp\b|си шарп"),
    ("kotlin", r"kotlin|котлин"),
    ("php", r"\bphp\b"),
    ("ruby", r"\bruby\b"),
    ("swift", r"\bswift\b"),
    ("bash", r"\bbash\b|shell|\bsh\b|баш"),
    ("sql", r"\bsql\b|select|запрос к (?:базе|бд|таблице)"),
)
_CSV_RE = re.compile(r"comma[- ]separated|separated by commas|через запятую", re.IGNORECASE)
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "один": 1,
    "одну": 1,
    "одна": 1,
    "два": 2,
    "две": 2,
    "двух": 2,
    "три": 3,
    "трёх": 3,
    "трех": 3,
    "четыре": 4,
    "четырёх": 4,
    "четырех": 4,
    "пять": 5,
    "пяти": 5,
    "шесть": 6,
    "шести": 6,
    "семь": 7,
    "семи": 7,
    "восемь": 8,
    "восьми": 8,
    "девять": 9,
    "девяти": 9,
    "десять": 10,
    "десяти": 10,
    "пару": 2,
    "пара": 2,
    "a couple of": 2,
    "a few": 3,
    "several": 4,
    "несколько": 4,
}
_COUNT = r"(\d{1,2}|" + "|".join(sorted((re.escape(k) for k in _NUMBER_WORDS), key=len, reverse=True)) + r")"
_LIST_COUNT_RE = re.compile(
    r"\b(?:list|name|give(?: me)?|enumerate|suggest|recommend|provide|show(?: me)?|write|top)\s+(?:me\s+)?(?:the\s+)?"
    + _COUNT
    + r"\b|"
    r"(?:перечисли|назови|приведи|дай|предложи|посоветуй|напиши|выдели|топ[- ]?)\w*\s+(?:мне\s+)?" + _COUNT + r"\b|"
    r"\b" + _COUNT + r"\s+(?:ways|reasons|tips|ideas|examples|steps|things|facts|способ\w*|причин\w*|совет\w*|"
    r"иде\w*|пример\w*|шаг\w*|факт\w*|пункт\w*)",
    re.IGNORECASE,
)
_LIST_RE = re.compile(
    r"\blist\b|\bbullet|\bnumbered\b|\bsteps?\b|step[- ]by[- ]step|\benumerate\b|\btop \d+|markdown list|"
    r"перечисли|список|пункт|по шагам|пошагов|шаги|топ[- ]?\d+|маркированн|нумерованн",
    re.IGNORECASE,
)
_NUMBERED_RE = re.compile(
    r"numbered|\bsteps?\b|step[- ]by[- ]step|\btop\b|rank|нумерованн|по шагам|пошагов|шаг|"
    r"по порядку|топ",
    re.IGNORECASE,
)
_BULLETS_RE = re.compile(r"bullet|markdown list|маркированн|- foo", re.IGNORECASE)

_KINDS = (
    (
        "compare",
        r"difference between|differ(?:s|ence)?\b|\bvs\.?\b|versus|compare|чем отлича|разница между|"
        r"отличие|сравни|что лучше",
    ),
    (
        "definition",
        r"^\s*(?:what(?:'s| is| are)|who (?:is|was|are)|define)\b|что так(?:ое|ой|ая)|кто так|"
        r"что значит|что означает|^\s*что это",
    ),
    ("how", r"\bhow (?:to|do|does|can|should|would)\b|^\s*как\b|каким образом|что нужно, чтобы"),
    ("why", r"^\s*why\b|\bwhy (?:is|are|do|does)\b|почему|зачем|по какой причине"),
    (
        "yesno",
        r"^\s*(?:is|are|can|should|do|does|will|would|could)\b|можно ли|стоит ли|нужно ли|правда ли|"
        r"есть ли|^\s*(?:is it|ли)\b",
    ),
)


# Cheap prefilters: a pattern is searched only when one of its words occurs in the lowercased
# text (case-insensitive Unicode alternations cost ~10 us per search even when nothing matches).
_CODE_WORDS = (
    "function",
    "code",
    "script",
    "program",
    "class",
    "method",
    "snippet",
    "query",
    "algorithm",
    "implement",
    "module",
    "cli",
    "python",
    "javascript",
    "typescript",
    "java",
    "golang",
    "rust",
    "c++",
    "c#",
    "kotlin",
    "php",
    "ruby",
    "swift",
    "bash",
    "sql",
    "функци",
    "код",
    "скрипт",
    "программ",
    "класс",
    "метод",
    "запрос",
    "алгоритм",
    "реализ",
    "модул",
)
_LIST_WORDS = (
    "list",
    "name",
    "give",
    "enumerat",
    "suggest",
    "recommend",
    "provide",
    "show",
    "write",
    "top",
    "way",
    "reason",
    "tip",
    "idea",
    "example",
    "step",
    "thing",
    "fact",
    "bullet",
    "numbered",
    "markdown",
    "перечисл",
    "назови",
    "приведи",
    "дай",
    "предлож",
    "посовет",
    "напиши",
    "выдели",
    "топ",
    "способ",
    "причин",
    "совет",
    "иде",
    "пример",
    "шаг",
    "факт",
    "пункт",
    "список",
    "маркир",
    "нумер",
)
_CSV_WORDS = ("comma", "запят")
_KIND_WORDS = (
    "what",
    "who",
    "define",
    "how",
    "why",
    "differ",
    "vs",
    "versus",
    "compar",
    "is ",
    "are ",
    "can ",
    "should ",
    "do ",
    "does ",
    "will ",
    "would ",
    "could ",
    "что",
    "кто",
    "как",
    "каким",
    "почему",
    "зачем",
    "причин",
    "отлич",
    "разниц",
    "сравни",
    "лучше",
    "ли ",
)


def _has(low: str, words: tuple[str, ...]) -> bool:
    for word in words:  # noqa: SIM110 (a plain loop is faster than any() over a generator here)
        if word in low:
            return True
    return False


_KIND_PATTERNS = tuple((kind, re.compile(pattern, re.MULTILINE)) for kind, pattern in _KINDS)


@dataclass(frozen=True, slots=True)
class Format:
    """The answer's required shape."""

    kind: str = "prose"  # prose | json | code | csv | list
    schema: dict[str, Any] | None = None
    keys: tuple[str, ...] | None = None
    example: Any = None
    array: bool = False
    language: str = "python"
    count: int | None = None
    numbered: bool = False


def json_spans(text: str) -> list[tuple[int, int, Any]]:
    """Every top-level JSON object or array in ``text``: (start, end, value), in order.

    Bounded: the first ``_SCAN_CHARS`` characters and ``_SCAN_TRIES`` failed starts at most, so
    a huge unterminated array costs linear time, not quadratic.
    """
    spans: list[tuple[int, int, Any]] = []
    text = text[:_SCAN_CHARS]
    index, size, failures = 0, len(text), 0
    while index < size and failures < _SCAN_TRIES:
        start = min((i for i in (text.find("{", index), text.find("[", index)) if i >= 0), default=-1)
        if start < 0:
            break
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            index = start + 1
            failures += 1
            continue
        if isinstance(value, (dict, list)) and value:
            spans.append((start, end, value))
        index = end
    return spans


def _is_schema(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    props = value.get("properties")
    if isinstance(props, dict) and props and all(isinstance(v, dict) for v in props.values()):
        return True
    if isinstance(value.get("$defs"), dict) or isinstance(value.get("definitions"), dict):
        return True
    return value.get("type") in ("object", "array") and ("items" in value or "properties" in value)


def _keys(text: str) -> tuple[str, ...] | None:
    found = _KEYS_RE.search(text)
    if not found:
        return None
    keys = [k for k in _KEY_RE.findall(found.group(1)) if k.lower() not in _NOT_KEYS]
    return tuple(dict.fromkeys(keys)) or None


def _count(text: str) -> int | None:
    found = _LIST_COUNT_RE.search(text)
    if not found:
        return None
    raw = next(group for group in found.groups() if group)
    value = int(raw) if raw.isdigit() else _NUMBER_WORDS.get(raw.lower(), 3)
    return max(1, min(value, 20))


def language(text: str) -> str:
    """The programming language named in ``text`` (Python when none is)."""
    for name, pattern in _LANGUAGES:
        if re.search(pattern, text, re.IGNORECASE):
            return name
    return "python"


def detect(text: str) -> Format:
    """The format ``text`` (system prompt + user prompt) asks the answer to have."""
    low = text.lower()
    spans = json_spans(text) if "{" in text or "[" in text else []
    schemas = [value for _, _, value in spans if _is_schema(value)]
    mentions_json = "json" in low
    strong = mentions_json and _JSON_STRONG_RE.search(text) is not None
    weak_at = _JSON_WEAK_RE.search(text) if mentions_json else None
    # "how to return JSON from Flask" asks about JSON; "return JSON with keys ..." asks for it
    weak = weak_at is not None and not _HOW_TO_RE.search(text[max(0, weak_at.start() - 30) : weak_at.start() + 1])
    code = _has(low, _CODE_WORDS) and _CODE_RE.search(text) is not None
    if strong or (schemas and mentions_json) or (weak and not code):
        array = _JSON_ARRAY_RE.search(text) is not None
        if schemas:  # LangChain shows an example schema first, the real one last
            return Format("json", schema=schemas[-1], array=array)
        keys = _keys(text)
        examples = [value for _, _, value in spans if not _is_schema(value)]
        return Format("json", keys=keys, example=examples[-1] if examples and keys is None else None, array=array)
    if code:
        return Format("code", language=language(text))
    if _has(low, _CSV_WORDS) and _CSV_RE.search(text):
        return Format("csv", count=_count(text))
    if not _has(low, _LIST_WORDS):
        return Format()
    count = _count(text)
    if count is not None or _LIST_RE.search(text):
        numbered = _NUMBERED_RE.search(text) is not None and _BULLETS_RE.search(text) is None
        return Format("list", count=count, numbered=numbered)
    return Format()


def question_kind(text: str) -> str:
    """``definition``, ``how``, ``why``, ``compare``, ``yesno`` or ``general``."""
    low = text.lower()
    if _has(low, _KIND_WORDS):
        for kind, pattern in _KIND_PATTERNS:
            if pattern.search(low):
                return kind
    return "general"


# --- literal answers ---------------------------------------------------------------------------

_SAY_RE = re.compile(r"(?:\bsay|скажи|напиши)\s+[\"'«“]([^\"'»”]{1,200})[\"'»”]", re.IGNORECASE)
_COUNT_RE = re.compile(r"(?:count|посчитай|сосчитай)\D{0,20}?(-?\d{1,6})\D{1,10}?(-?\d{1,6})", re.IGNORECASE)
_GREETING = r"(?:hi|hello|hey|good (?:morning|evening|afternoon)|привет\w*|здравствуй\w*|добрый \w+|доброе утро)"
_GREETING_RE = re.compile(rf"^\s*{_GREETING}\W*$", re.IGNORECASE)
_GREETING_START_RE = re.compile(rf"^\s*{_GREETING}\b[\s!,.]*", re.IGNORECASE)
_ABOUT_YOU_RE = re.compile(
    r"what can you do|what are you able|who are you|what are you\b|tell me about yourself|introduce yourself|"
    r"что ты (?:умеешь|можешь|такое)|кто ты|что умеешь|расскажи о себе|представься|чем (?:ты )?можешь помочь",
    re.IGNORECASE,
)
_MY_NAME_RE = re.compile(
    r"\b(?i:my name is|i am called|call me)\s+([A-Z][\w-]{1,30})|"
    r"(?i:меня зовут|моё имя|мое имя|зови меня)\s+([А-ЯЁA-Z][\wЁё-]{1,30})"
)
_ASK_NAME_RE = re.compile(
    r"what(?:'s| is) my name|do you (?:know|remember) my name|как меня зовут|"
    r"как моё имя|как мое имя|помнишь,? как меня зовут|кто я\b",
    re.IGNORECASE,
)
_MY_CITY_RE = re.compile(r"\b(?i:i live in)\s+([A-Z][\w-]{1,40})|(?i:я живу в)\s+([А-ЯЁA-Z][\wЁё-]{1,40})")
_ASK_CITY_RE = re.compile(r"where do i live|в каком городе я живу|где я живу", re.IGNORECASE)

CAPABILITIES = (
    "I am an offline GigaChat emulator for tests and demos: I answer questions, write lists, code and JSON, "
    "call functions and draw pictures. My answers are assembled from the words of your request, so they check "
    "an integration, not facts.",
    "Я — офлайн-эмулятор GigaChat для тестов и демонстраций: отвечаю на вопросы, пишу списки, код и JSON, "
    "вызываю функции и рисую картинки. Ответы я собираю из слов вашего запроса, поэтому они проверяют "
    "интеграцию, а не факты.",
)


def _remembered(pattern: re.Pattern[str], history: str) -> str | None:
    """The last value ``pattern`` found in the earlier turns."""
    matches = list(pattern.finditer(history))
    return next((g for g in matches[-1].groups() if g), None) if matches else None


def literal(prompt: str, history: str, russian: bool) -> str | None:
    """A fixed answer for prompts with one obvious answer (say X, count, greet, who are you, recall)."""
    low = prompt.lower()
    said = _SAY_RE.search(prompt) if _has(low, ("say", "скажи", "напиши")) else None
    if said:
        phrase = said.group(1).strip()
        return phrase if phrase[-1:] in ".!?" else phrase + "."
    counted = _COUNT_RE.search(prompt) if _has(low, ("count", "считай")) else None
    if counted:
        start, stop = int(counted.group(1)), int(counted.group(2))
        if 0 < stop - start <= 200:
            return ", ".join(str(i) for i in range(start, stop + 1))
    if _GREETING_RE.match(prompt):
        return "Здравствуйте! Чем могу помочь?" if russian else "Hello! How can I help you today?"
    greeting = ("Здравствуйте! " if russian else "Hello! ") if _GREETING_START_RE.match(prompt) else ""
    if _has(low, ("you", "ты", "себе", "представ", "умеешь")) and _ABOUT_YOU_RE.search(prompt):
        return greeting + CAPABILITIES[russian]
    if _has(low, ("name", "зовут", "имя", "кто я")) and _ASK_NAME_RE.search(prompt):
        name = _remembered(_MY_NAME_RE, history)
        if name:
            return greeting + (f"Вас зовут {name}." if russian else f"Your name is {name}.")
    if _has(low, ("live", "живу")) and _ASK_CITY_RE.search(prompt):
        city = _remembered(_MY_CITY_RE, history)
        if city:
            return greeting + (f"Вы говорили, что живёте в {city}." if russian else f"You said you live in {city}.")
    return None


def learned(prompt: str) -> str | None:
    """An acknowledgement for a prompt that only tells a fact to remember ("My name is Alex.")."""
    low = prompt.lower()
    name = _MY_NAME_RE.search(prompt) if _has(low, ("name", "call", "зовут", "имя", "зови")) else None
    if name and len(prompt) < 200:
        value = next(g for g in name.groups() if g)
        if re.search(r"[А-Яа-яЁё]", prompt):
            return f"Приятно познакомиться, {value}! Запомнил: вас зовут {value}."
        return f"Nice to meet you, {value}! I will remember that your name is {value}."
    return None
