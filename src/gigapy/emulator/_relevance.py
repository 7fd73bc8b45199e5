"""Is a prompt about a function? Shared stems between the prompt and the function's own words.

``function_call: "auto"`` (v1) and ``tool_config.mode: "auto"`` (v2) call a custom function only when
the prompt relates to it, as the real model does; otherwise the model answers in text.

A function is described by its name (``get_weather`` → get, weather), description and few-shot
requests (weight 2) and by its parameters' names, descriptions and enum values (weight 1). Words
are lower-cased, stop words dropped, one Russian or English ending stripped and the rest cut to
six letters, so "погода", "погоду" and "погоде" meet, as do "orders" and "order". A small glossary
links common Russian API words to English ones ("погода" → weather), so a Russian prompt finds a
function described in English and the other way round. A prompt must score at least 2: a word of
the name or description, or two parameter words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

THRESHOLD = 2
_STEM_LEN = 6
_WORD_RE = re.compile(r"[^\W\d_]{3,}")
_CAMEL_RE = re.compile(r"([a-zа-яё])([A-ZА-ЯЁ])")
_RU_ENDINGS = tuple(
    sorted(
        """
    иями ями ами ого его ому ему ыми ими ых их ой ей ий ый ая яя ое ее ую юю ов ев ах ях ам ям ом ем
    ию ия ие ть ет ит ут ют ат ят а я о е у ю ы и ь й
    """.split(),  # noqa: SIM905 (a word list reads better as text)
        key=len,
        reverse=True,
    )
)
_EN_ENDINGS = ("ings", "ing", "ies", "ed", "es", "ly", "s")
_STOPWORDS = frozenset(
    """
    the and for with what which who whom whose how why when where this that these those there here are was
    were been being have has had does did doing you your yours our ours their them they she her his him
    its can could would should shall will may might must please tell about from into onto over under
    than then also just very more most much many some any all not but get set give make show let like
    want need know say see use using now today out off own same such only other each both few one two
    new old way well yes okay hello thanks thank
    name number value type string integer boolean object array list field param parameter parameters
    data info information result results request response function call text message user
    что как где когда какой какая какое какие каких какую кто чем чего кого это этот эта эти того тому
    для или при про без над под ради мне меня мой моя моё мое мои ты тебя тебе вы вас вам ваш ваша ваши
    его её она оно они них ним нам нас наш наша наши там тут так уже ещё еще все всё весь вся всех тоже
    также очень есть был была было были будет быть может можно нужно надо пожалуйста расскажи скажи
    покажи дай сделай найди узнай напиши хочу хочешь можешь сейчас сегодня почему зачем куда откуда
    если чтобы даже только сколько привет спасибо
    имя название номер число значение тип список строка поле параметр параметры данные информация
    результат запрос ответ функция функции вызов текст сообщение пользователь
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
#: Russian stem prefixes of common API words → the English word they stand for.
_GLOSSARY = (
    ("погод", "weather"),
    ("прогноз", "forecast"),
    ("темпер", "temperature"),
    ("врем", "time"),
    ("дат", "date"),
    ("заказ", "order"),
    ("статус", "status"),
    ("достав", "delivery"),
    ("валют", "currency"),
    ("курс", "rate"),
    ("город", "city"),
    ("цен", "price"),
    ("стоим", "cost"),
    ("билет", "ticket"),
    ("рейс", "flight"),
    ("отел", "hotel"),
    ("бронир", "booking"),
    ("письм", "email"),
    ("почт", "mail"),
    ("смс", "sms"),
    ("поиск", "search"),
    ("перев", "translate"),
    ("календар", "calendar"),
    ("встреч", "meeting"),
    ("задач", "task"),
    ("напомин", "reminder"),
    ("пользоват", "account"),
    ("баланс", "balance"),
    ("платеж", "payment"),
    ("оплат", "payment"),
    ("счет", "account"),
    ("акци", "stock"),
    ("новост", "news"),
    ("музык", "music"),
    ("фильм", "movie"),
    ("книг", "book"),
    ("товар", "product"),
    ("продукт", "product"),
    ("клиент", "customer"),
    ("сотрудник", "employee"),
    ("файл", "file"),
    ("документ", "document"),
    ("карт", "map"),
    ("маршрут", "route"),
    ("адрес", "address"),
    ("телефон", "phone"),
    ("контакт", "contact"),
)


def _strip(word: str) -> str:
    endings = _RU_ENDINGS if "а" <= word[-1] <= "я" or word[-1] in "ёй" else _EN_ENDINGS
    for ending in endings:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            if ending == "ies":
                return word[:-3] + "y"
            if ending == "s" and word.endswith(("ss", "us", "is")):
                continue
            return word[: -len(ending)]
    return word


def stem(word: str) -> str:
    """One ending stripped, cut to six letters."""
    return _strip(word.lower().replace("ё", "е"))[:_STEM_LEN]


_EN_FOR_RU = tuple((prefix, stem(english)) for prefix, english in _GLOSSARY)


def stems(text: str) -> set[str]:
    """The content stems of a text (identifiers split at ``_``, ``-``, ``.`` and camelCase)."""
    spaced = _CAMEL_RE.sub(r"\1 \2", text).replace("_", " ").replace("-", " ").replace(".", " ")
    found = set()
    for word in _WORD_RE.findall(spaced):
        lower = word.lower().replace("ё", "е")
        if lower in _STOPWORDS:
            continue
        found.add(stem(lower))
    found.update(en for word in tuple(found) for prefix, en in _EN_FOR_RU if word.startswith(prefix))
    return found


def _schema_words(schema: object, out: list[str], depth: int = 0) -> None:
    """Property names, descriptions and enum values of a JSON schema (bounded depth)."""
    if not isinstance(schema, dict) or depth > 8:
        return
    out.extend(schema[key] for key in ("description", "title") if isinstance(schema.get(key), str))
    enum = schema.get("enum")
    if isinstance(enum, list):
        out.extend(str(value) for value in enum[:50])
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, sub in list(props.items())[:100]:
            out.append(str(name))
            _schema_words(sub, out, depth + 1)
    _schema_words(schema.get("items"), out, depth + 1)


def _weights(spec: dict[str, Any]) -> dict[str, int]:
    strong: list[str] = [str(spec.get("name", ""))]
    if isinstance(spec.get("description"), str):
        strong.append(spec["description"])
    examples = spec.get("few_shot_examples")
    if isinstance(examples, list):
        strong.extend(e["request"] for e in examples[:20] if isinstance(e, dict) and isinstance(e.get("request"), str))
    weak: list[str] = []
    _schema_words(spec.get("parameters"), weak)
    weights = dict.fromkeys(_all_stems(weak), 1)
    weights.update(dict.fromkeys(_all_stems(strong), 2))
    return weights


def _all_stems(texts: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for text in texts:
        found |= stems(text)
    return found


def score(prompt: str, spec: dict[str, Any]) -> int:
    """How strongly the prompt is about the function (0: not at all)."""
    weights = _weights(spec)
    return sum(weights.get(s, 0) for s in stems(prompt))


def best_function(functions: dict[str, dict[str, Any]], prompt: str) -> str | None:
    """The function the prompt is most about, if any scores at least ``THRESHOLD`` (ties: the first)."""
    best, best_score = None, THRESHOLD - 1
    for name, spec in functions.items():
        value = score(prompt, spec)
        if value > best_score:
            best, best_score = name, value
    return best
