"""What a prompt is about: topic phrases, with stop words skipped and format instructions set aside.

A topic is a run of content words as the prompt wrote them ("квантовая запутанность", "history of
Rome"): words between stop words and punctuation, English "of" allowed inside. Stop words come
from Russian and English lists (pronouns, question words, auxiliaries, request verbs, numbers,
fillers). Format instructions (JSON schemas, "return only JSON", code fences) are removed first,
so an answer is about the question, not about the instructions.
"""

from __future__ import annotations

import re

_EN_STOP = frozenset(
    """
    a an the and or but if then else when while of at by for with about against between into through
    during before after above below to from up down in out on off over under again further once here there
    where why how all any both each few more most other some such no nor not only own same so than too very
    can will just should now i me my myself we our ours ourselves you your yours yourself yourselves he him
    his himself she her hers herself it its itself they them their theirs themselves what which who whom
    whose this that these those am is are was were be been being have has had having do does did doing would
    could might must shall may let lets please tell write give show explain describe make find list need
    want like know help get got say said think answer question ask return provide create generate draw paint
    sketch picture image also really much many lot lots thing things something anything everything nothing
    someone anyone everyone way ways kind sort thanks thank hello hi hey okay ok yes sure well even still yet
    already ever never always often sometimes usually maybe perhaps actually basically exactly simply briefly
    short brief detail details detailed example examples etc vs versus via per one two three four five six
    seven eight nine ten eleven twelve first second third top continue elaborate else use using used mean
    means meaning work works go going come take put keep look see try start begin end difference differences
    compare comparison between whether because since though although until unless within without across
    along around among upon onto toward towards i'm i've you're it's that's what's there's don't doesn't
    didn't can't won't isn't aren't wasn't weren't im ive youre whats dont cant wont isnt
    reply respond output format json words word sentence sentences paragraph paragraphs tips tip ideas idea
    reasons reason steps step facts fact points point keys key fields field function functions good bad best
    nice great interesting important main simple quick quickly short long small big option options user
    users query years old lives lived live likes loves named called person people
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
_RU_STOP = frozenset(
    """
    и в во не что он на я с со как а то все всё она так его но да ты к у же вы за бы по только ее её мне
    было вот от меня еще ещё нет о об обо из ему теперь когда даже ну вдруг ли если уже или ни быть был
    него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней для мы
    тебя их чем чём была сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того потому этого
    какой совсем ним здесь этом один почти мой тем чтобы нее неё сейчас были куда зачем всех никогда можно
    при наконец два другой хоть после над больше тот через эти нас про всего них какая много разве три эту
    моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю между
    это эта такое такая такие таких таком такую какие каких какое какую каком каким который которая которое
    которые которых котором которую которым чей чья чьё чьи весь вся всем всеми сама само сами самый самая
    самое самые свой своя своё свои своих своим мои моё мое моих твой твоя твоё твои ваш ваша ваше ваши наш
    наша наше наши ими нам нами вами ними тебе тобой мной мною собой те тех теми той тому этих этим этими
    этому пожалуйста расскажи расскажите объясни объясните напиши напишите покажи покажите найди найдите
    дай дайте скажи скажите сделай сделайте помоги помогите опиши опишите перечисли перечислите назови
    назовите приведи приведите подскажи подскажите ответь ответьте верни верните создай создайте
    сгенерируй сгенерируйте нарисуй нарисуйте изобрази изобразите картинку картинка изображение рисунок
    продолжай продолжи продолжайте подробнее дальше почему откуда сколько кем кому кого чему очень просто
    также либо кое вообще именно вроде типа например вопрос ответ значит является являются являться будь
    будут будем буду можешь могу могут нужно нужен нужна нужны хочу хочешь хотел хотела хотим знаешь знать
    думаешь умеешь умеет умеете привет здравствуй здравствуйте спасибо ладно ок сегодня вчера завтра одна
    одно две четыре пять шесть семь восемь девять десять первый второй третий несколько пару пара разница
    разницу отличие отличия отличается отличаются сравни сравните сравнение кратко коротко подробно пример
    примеры примера примеров вон зовут звать слово слова формат формате виде выведи выдай
    ответом ответа ответе шаги шаг шагов советы совет советов идеи идей способы способов причины причин факты
    фактов пункты пунктов ключи ключами поля полями функцию функции функция хороший хорошая хорошее лучший
    лучшая лучшие простой простая важный важные главный главные интересный интересные вариант варианты
    имени человек человека человеке человеку людей лет года живёт живет любит номер номера
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
STOPWORDS = _EN_STOP | _RU_STOP
#: Words that may join two content words inside one topic ("history of Rome").
_GLUE = frozenset({"of"})
_MAX_WORDS = 4
_TOKEN_RE = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*|[^\w\s]", re.UNICODE)
_BREAK_RE = re.compile(r"[.!?;:,()\[\]{}«»\"“”„<>—–/\\|]|\n|\s-\s")
_FENCE_RE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_INLINE_CODE_RE = re.compile(r"`[^`\n]*`")
_SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]*")
_INSTRUCTION_RE = re.compile(
    r"\bjson\b|\bschema\b|\bformat(?:ted|ting)?\b|\bmarkdown\b|backtick|code fence|well-formatted|"
    r"\boutput\b|\bcomma[- ]separated\b|\bbullet|numbered list|формат|схем[аеуы]|разметк|через запятую|"
    r"маркированн|нумерованн",
    re.IGNORECASE,
)


def strip_instructions(text: str) -> str:
    """``text`` without code fences, embedded JSON and sentences about the answer's format.

    Falls back to the text without fences and JSON when nothing else is left.
    """
    if "`" not in text and "{" not in text and "[" not in text and not _mentions_format(text):
        return text  # the common case: a plain question
    bare = _INLINE_CODE_RE.sub(" ", _FENCE_RE.sub(" ", text))
    bare = remove_json(bare)
    kept = [s for s in _SENTENCE_RE.findall(bare) if not _INSTRUCTION_RE.search(s)]
    rest = " ".join(kept)
    return rest if content_words(rest) else bare


_FORMAT_WORDS = (
    "json",
    "schema",
    "format",
    "markdown",
    "backtick",
    "fence",
    "output",
    "comma",
    "bullet",
    "numbered",
    "формат",
    "схем",
    "разметк",
    "запят",
    "маркир",
    "нумер",
)


def _mentions_format(text: str) -> bool:
    low = text.lower()
    return any(word in low for word in _FORMAT_WORDS) and _INSTRUCTION_RE.search(text) is not None


def remove_json(text: str) -> str:
    """``text`` with every balanced ``{...}`` / ``[...]`` span that parses as JSON blanked out."""
    from ._intents import json_spans  # local: _intents imports this module

    for start, end, _ in reversed(json_spans(text)):
        text = text[:start] + " " + text[end:]
    return text


def content_words(text: str) -> list[str]:
    """The words of ``text`` that are not stop words (lowercased)."""
    return [w.lower() for w in _TOKEN_RE.findall(text) if _is_content(w)]


def _is_content(word: str) -> bool:
    if not word[0].isalnum():
        return False
    low = word.lower().replace("ё", "е")
    if low in STOPWORDS or word.lower() in STOPWORDS:
        return False
    if word.isdigit():
        return False
    letters = sum(ch.isalpha() for ch in word)
    return letters >= 3 or (letters >= 2 and word.isupper())


def _as_written(word: str, sentence_start: bool) -> str:
    """The word as the prompt wrote it; a capital that only starts a sentence is dropped."""
    if sentence_start and word[:1].isupper() and word[1:].islower():
        return word.lower()
    return word


def topics(text: str, limit: int = 4, *, stripped: bool = False) -> list[str]:
    """Topic phrases of ``text`` in order of appearance (case-insensitively unique).

    ``stripped``: ``text`` has been through ``strip_instructions`` already.
    """
    found: dict[str, str] = {}
    for clause in _BREAK_RE.split((text if stripped else strip_instructions(text))[-4000:]):
        words = _TOKEN_RE.findall(clause)
        run: list[str] = []
        pending_glue: str | None = None
        sentence_start = True
        for index, word in enumerate(words):
            if _is_content(word):
                if pending_glue and run:
                    run.append(pending_glue)
                pending_glue = None
                run.append(_as_written(word, sentence_start and index == 0))
                if len([w for w in run if w not in _GLUE]) >= _MAX_WORDS:
                    _add(found, run)
                    run = []
            elif word.lower() in _GLUE and run:
                pending_glue = word.lower()
            else:
                _add(found, run)
                run, pending_glue = [], None
            sentence_start = False
        _add(found, run)
        if len(found) >= limit:
            break
    return list(found.values())[:limit]


def _add(found: dict[str, str], run: list[str]) -> None:
    if run:
        phrase = " ".join(run)
        found.setdefault(phrase.lower(), phrase)


def main_words(text: str) -> list[str]:
    """Content words of the topics, lowercased (for matching, naming and search links)."""
    return [w.lower() for phrase in topics(text) for w in phrase.split() if w not in _GLUE]
