"""Deterministic text: the one token counter, language detection and answers built from the prompt."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable

# One token = optional leading spaces + up to 6 word characters, or one punctuation mark, or
# trailing spaces. Joining the pieces gives the text back, so streams and usage always agree.
_TOKEN_RE = re.compile(r"\s*(?:\w{1,6}|[^\w\s])|\s+")
_CYRILLIC_RE = re.compile(r"[А-Яа-яЁё]")
_LATIN_RE = re.compile(r"[A-Za-z]")
_WORD_RE = re.compile(r"[^\W\d_]{4,}")
_SAY_RE = re.compile(r"(?:\bsay|скажи|напиши)\s+[\"'«“]([^\"'»”]{1,200})[\"'»”]", re.IGNORECASE)
_COUNT_RE = re.compile(
    r"(?:count|посчитай|сосчитай)\D{0,20}?(-?\d{1,6})\D{1,10}?(-?\d{1,6})", re.IGNORECASE
)
_GREETING_RE = re.compile(
    r"^\s*(?:hi|hello|hey|good (?:morning|evening|afternoon)|привет\w*|здравствуй\w*|добрый \w+)\W*$",
    re.IGNORECASE,
)
_LANG_SAMPLE = 4000
_CHARS_PER_TOKEN = 4.5

_STOPWORDS = frozenset(
    """
    about above after again also because been before being below between both could does doing down
    during each from further have having here hers herself himself into itself just more most myself
    once only other ours over same should some such than that their theirs them themselves then there
    these they this those through under until very what when where which while whom will with would
    your yours please tell write give show explain describe make find list need want like know
    nothing else answer exactly only return naturally draw paint sketch picture image generate create
    этот эта это эти того тому этом чтобы когда тогда потом более менее также очень есть было будет
    быть может можно нужно надо какой какая какие каких какое который которая которые пожалуйста
    расскажи объясни напиши покажи найди дай скажи сделай меня тебя себя если даже только ещё уже
    него неё них нами вами ними всех весь всё чего кого сейчас сегодня почему зачем где куда откуда
    нарисуй нарисуйте изобрази сгенерируй создай картинку изображение рисунок
    продолжай продолжи подробнее дальше continue elaborate
    """.split()  # noqa: SIM905 (a word list reads better as text)
)

_EN_OPENERS = ("Good question.", "Let me explain.", "Here is a short answer.", "Sure.", "In short:")
_EN_BODY = (
    "The main idea behind {a} is fairly simple once you look at {b}.",
    "When people talk about {a}, they usually mean how it relates to {b}.",
    "A practical approach to {a} starts with a clear goal and a small first step.",
    "It helps to compare {a} with {b} and note where they differ.",
    "Most of the details of {a} depend on the context in which it is used.",
    "If you need more precision about {a}, look at concrete examples and measurable results.",
    "Keep in mind that {a} changes over time, so recent sources matter.",
    "One common mistake with {a} is to ignore {b}.",
    "In many cases {a} and {b} work best together.",
    "A useful rule of thumb: check your assumptions about {a} before drawing conclusions.",
    "Experts usually describe {a} in terms of costs, benefits and risks.",
    "Start with the basics of {a}, then move on to {b}.",
)
_EN_CLOSERS = ("I hope this helps.", "Let me know if you want more details.", "Feel free to ask a follow-up question.")
_EN_TOPIC = "this question"

_RU_OPENERS = ("Хороший вопрос.", "Давайте разберёмся.", "Коротко о главном.", "Конечно.", "Попробую объяснить.")
_RU_BODY = (
    "Если говорить о теме «{a}», главное — понять, как она связана с темой «{b}».",
    "Тема «{a}» проще, чем кажется, если рассматривать её по шагам.",
    "Практический подход к теме «{a}» начинается с ясной цели и небольшого первого шага.",
    "Полезно сравнить «{a}» и «{b}» и отметить, чем они отличаются.",
    "Многое в вопросе «{a}» зависит от контекста, в котором он возникает.",
    "Для точного ответа про «{a}» стоит опираться на конкретные примеры и проверяемые данные.",
    "Учтите, что представления о теме «{a}» со временем меняются, поэтому важны свежие источники.",
    "Частая ошибка — рассматривать «{a}» в отрыве от темы «{b}».",
    "Во многих случаях «{a}» и «{b}» хорошо дополняют друг друга.",
    "Специалисты обычно оценивают «{a}» с точки зрения пользы, затрат и рисков.",
    "Начните с основ темы «{a}», а затем переходите к «{b}».",
    "Полезное правило: прежде чем делать выводы о теме «{a}», проверьте исходные допущения.",
)
_RU_CLOSERS = ("Надеюсь, это помогло.", "Если нужно, могу рассказать подробнее.", "Задавайте уточняющие вопросы.")
_RU_TOPIC = "этот вопрос"


def tokenize(text: str) -> list[str]:
    """Split text into tokens whose concatenation is the text itself."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """The emulator's single token counter (usage, /tokens/count, max_tokens, context limits)."""
    return len(_TOKEN_RE.findall(text)) if text else 0


def is_russian(text: str) -> bool:
    """True when the text has more Cyrillic than Latin letters."""
    sample = text[-_LANG_SAMPLE:]
    return len(_CYRILLIC_RE.findall(sample)) > len(_LATIN_RE.findall(sample))


def stable_seed(*parts: object) -> int:
    """A process-independent 64-bit seed from the parts' text."""
    text = "\x1f".join(map(str, parts))
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()  # any text, never raises
    return int.from_bytes(digest, "big")


def keywords(text: str, limit: int = 6) -> list[str]:
    """Distinctive words of the text, in order of appearance, lowercased."""
    seen: dict[str, None] = {}
    for word in _WORD_RE.findall(text[-_LANG_SAMPLE:]):
        low = word.lower()
        if low not in _STOPWORDS:
            seen.setdefault(low, None)
            if len(seen) >= limit:
                break
    return list(seen)


def _intent_answer(prompt: str, russian: bool) -> str | None:
    """Short literal answers for prompts with an obvious single answer."""
    said = _SAY_RE.search(prompt)
    if said:
        phrase = said.group(1).strip()
        return phrase if phrase[-1:] in ".!?" else phrase + "."
    counted = _COUNT_RE.search(prompt)
    if counted:
        start, stop = int(counted.group(1)), int(counted.group(2))
        if 0 < stop - start <= 200:
            return ", ".join(str(i) for i in range(start, stop + 1))
    if _GREETING_RE.match(prompt):
        return "Здравствуйте! Чем могу помочь?" if russian else "Hello! How can I help you today?"
    return None


class Writer:
    """Builds answers in the prompt's language from its keywords; deterministic for a given rng."""

    def __init__(self, prompt: str, rng: random.Random, history: str = "") -> None:
        """``history``: earlier user turns, the topic of a follow-up with no keywords of its own ("Ещё")."""
        self.prompt = prompt
        self.rng = rng
        self.russian = is_russian(prompt)
        self.words = keywords(prompt) or keywords(history) or [_RU_TOPIC if self.russian else _EN_TOPIC]

    def _pair(self) -> tuple[str, str]:
        a = self.rng.choice(self.words)
        others = [w for w in self.words if w != a]
        return a, (self.rng.choice(others) if others else a)

    def sentences(self) -> Iterable[str]:
        """An endless, varied stream of sentences about the prompt's keywords."""
        openers, body = (_RU_OPENERS, _RU_BODY) if self.russian else (_EN_OPENERS, _EN_BODY)
        yield self.rng.choice(openers)
        while True:
            a, b = self._pair()
            yield self.rng.choice(body).format(a=a, b=b)

    def closer(self) -> str:
        """A closing sentence."""
        return self.rng.choice(_RU_CLOSERS if self.russian else _EN_CLOSERS)

    def paragraphs(self, min_tokens: int, closing: bool = True) -> str:
        """Sentences grouped into paragraphs until the text has roughly ``min_tokens`` tokens.

        Lengths are estimated from characters (a token is about 4.5 of them) to avoid
        tokenizing every sentence; ``exactly`` tops the text up when the estimate falls short.
        """
        parts: list[str] = []
        budget = min_tokens * _CHARS_PER_TOKEN
        size = 0
        for index, sentence in enumerate(self.sentences()):
            if size >= budget:
                break
            sep = "" if index == 0 else ("\n\n" if index % 4 == 0 else " ")
            parts.append(sep + sentence)
            size += len(sep) + len(sentence)
        if closing:
            parts.append(" " + self.closer())
        return "".join(parts)

    def answer(self) -> str:
        """A natural answer whose length grows with the prompt."""
        literal = _intent_answer(self.prompt, self.russian)
        if literal is not None:
            return literal
        target = 12 + self.rng.randint(0, 40) + min(count_tokens(self.prompt), 400) // 3
        return self.paragraphs(target)

    def exactly(self, tokens: int) -> list[str]:
        """Exactly ``tokens`` tokens of answer text, as token pieces."""
        pieces: list[str] = []
        while len(pieces) < tokens:
            more = self.paragraphs(tokens - len(pieces), closing=False)
            pieces.extend(tokenize((" " if pieces else "") + more))
        return pieces[:tokens]

    def phrase(self) -> str:
        """A short phrase built from the prompt's keywords."""
        return " ".join(self.words[:3])
