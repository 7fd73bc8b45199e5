"""The emulated model: turns a normalized conversation into an answer, a function call or a tool result.

Shared by v1 chat, v2 chat and batches; the wire modules only translate shapes.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._compose import Writer
from ._files import generate_image, generate_model3d
from ._http import ApiError, dumps, new_uuid4
from ._relevance import THRESHOLD, best_function, score
from ._structured import fill_schema, regex_sample
from ._textgen import count_tokens, is_russian, stable_seed, tokenize
from ._timing import Pace

if TYPE_CHECKING:
    from ._pipeline import Ctx

#: Put this in a user message to get ``finish_reason: "blacklist"`` (documented test trigger).
BLACKLIST_TRIGGER = "[emulator:blacklist]"
#: Put this in a user message to get a failed function call: ``finish_reason`` ``function_call_error``
#: (v1: ``error``) with ``error_details`` (documented test trigger).
CALL_ERROR_TRIGGER = "[emulator:function_call_error]"
#: Reasoning length (tokens) per effort; an effort the emulator does not know reasons like ``medium``.
REASONING_TOKENS = {"low": 24, "medium": 64, "high": 160}
#: Most alternatives ``top_logprobs`` may ask for (the spec's range is 1..5).
MAX_TOP_LOGPROBS = 5
IMAGE, MODEL3D, WEB_SEARCH, URL_EXTRACT, CODE = (
    "image_generate",
    "model_3d_generate",
    "web_search",
    "url_content_extraction",
    "code_interpreter",
)
MAX_ANSWER_TOKENS = 200_000
DEFAULT_CHUNK_TOKENS = 8
_BASE_PROMPT_TOKENS = 6
_MESSAGE_OVERHEAD = 3
_FILE_TOKENS = 20
_HISTORY_CHARS = 4000
_DRAW_RE = re.compile(
    r"нарису|изобрази|сгенерируй (?:изображение|картинку|рисунок)|картинк|\bdraw|\bpaint|\bsketch"
    r"|(?:generate|create|make) (?:an? )?(?:image|picture|icon|illustration)",
    re.IGNORECASE,
)
_MODEL3D_RE = re.compile(r"\b3d\b|3д|тр[её]хмерн", re.IGNORECASE)
_URL_RE = re.compile(r"https?://[^\s\"'<>»)]+")
_CODE_RE = re.compile(r"\bcode\b|calculat|compute|python|код|посчита|вычисл", re.IGNORECASE)
_BLACKLIST_ANSWER = (
    "I'd rather not discuss this topic. Let's talk about something else.",
    "Не люблю менять тему разговора, но вот сейчас тот самый случай.",
)


@dataclass(slots=True)
class Msg:
    """A normalized message (v1 and v2 both map to this).

    ``call``/``result`` are the first function call/result; ``calls``/``results`` hold every one as
    (id, name, arguments or value) — a v2 message may carry several, each with its call id.
    """

    role: str
    text: str = ""
    call: tuple[str, dict[str, Any]] | None = None
    result: tuple[str, Any] | None = None
    files: tuple[str, ...] = ()
    calls: tuple[tuple[str | None, str, dict[str, Any]], ...] = ()
    results: tuple[tuple[str | None, str, Any], ...] = ()


@dataclass(slots=True)
class Tools:
    """What the model may call: custom functions, built-in tools and the calling mode.

    ``allowed``: the functions mode ``any`` may call (None: every one); ``parallel``: several
    calls in one answer when the prompt is about several functions.
    """

    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    builtins: frozenset[str] = frozenset()
    mode: str = "none"
    forced: str | None = None
    allowed: tuple[str, ...] | None = None
    parallel: bool = False


@dataclass(slots=True)
class Params:
    """Generation knobs taken from the request and the test-hook headers.

    ``reasoning``: the effort asked for (None: no reasoning), ``reasoning_tokens`` its cap;
    ``top_logprobs``: alternatives per answer token (None: no logprobs).
    """

    model: str
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    answer_tokens: int | None = None
    reasoning: str | None = None
    reasoning_tokens: int | None = None
    top_logprobs: int | None = None


@dataclass(slots=True)
class Prompt:
    """Token accounting for the request's input, computed once per request."""

    tokens: int
    cached: int
    text: str
    #: Earlier user turns (the topic of a keyword-less follow-up, facts to recall).
    history: str = ""
    #: The system prompt (its format instructions count).
    system: str = ""


@dataclass(slots=True)
class GeneratedFile:
    """A file the model produced (image or 3D model)."""

    id: str
    target: str
    mime: str


@dataclass(slots=True)
class Outcome:
    """What the model produced for one choice."""

    pieces: list[str]
    finish_reason: str
    prompt: Prompt
    #: Function calls as (call id, name, arguments); several only with parallel calls (v2).
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    state_id: str | None = None
    files: list[GeneratedFile] = field(default_factory=list)
    tool: str | None = None
    extra_tokens: int = 0
    #: Web search citations (v2 ``inline_data.sources``).
    sources: dict[str, dict[str, str]] | None = None
    #: Reasoning text before the answer, as token pieces (empty: none asked).
    reasoning: list[str] = field(default_factory=list)
    #: One ``{chosen, top}`` per answer piece when ``top_logprobs`` was asked.
    logprobs: list[dict[str, Any]] | None = None
    #: ``error_details`` of a failed generation.
    error: dict[str, Any] | None = None

    @property
    def call(self) -> tuple[str, dict[str, Any]] | None:
        """The first function call as (name, arguments)."""
        return (self.calls[0][1], self.calls[0][2]) if self.calls else None

    @property
    def text(self) -> str:
        """The answer text."""
        return "".join(self.pieces)

    @property
    def reasoning_text(self) -> str:
        """The reasoning text ("" when none was asked)."""
        return "".join(self.reasoning)

    @property
    def completion_tokens(self) -> int:
        """Output tokens, counted with the one token counter (reasoning tokens included)."""
        return len(self.pieces) + len(self.reasoning) + self.extra_tokens


def _message_tokens(ctx: Ctx, msg: Msg) -> int:
    tokens = _MESSAGE_OVERHEAD + count_tokens(msg.text)
    calls = [args for _, _, args in msg.calls] or ([msg.call[1]] if msg.call is not None else [])
    results = [value for _, _, value in msg.results] or ([msg.result[1]] if msg.result is not None else [])
    for payload in (*calls, *results):
        tokens += count_tokens(dumps(payload)) + 2
    for file_id in msg.files:
        record = ctx.state.files.owned(file_id, ctx.auth.account.client_id)
        if record is None:
            raise ApiError(404, "File not found")
        tokens += record.tokens
    return tokens


def measure_prompt(ctx: Ctx, msgs: list[Msg], tools: Tools, cache_key: str | None = None) -> Prompt:
    """Prompt tokens (413 over the context window) and tokens cached under the caller's X-Session-ID.

    ``cache_key`` (a thread id) replaces the X-Session-ID: the service caches a thread's own history.
    """
    spec = dumps(list(tools.functions.values())) if tools.functions else ""
    total = _BASE_PROMPT_TOKENS + count_tokens(spec)
    prefix = [(hash(spec), total)]
    for msg in msgs:
        total += _message_tokens(ctx, msg)
        prefix.append(
            (
                hash(
                    (
                        msg.role,
                        msg.text,
                        repr(msg.call),
                        repr(msg.result),
                        msg.files,
                        repr(msg.calls[1:]),
                        repr(msg.results[1:]),
                    )
                ),
                total,
            )
        )
    if total > ctx.state.config.context_tokens:
        raise ApiError(413, "Payload too large")
    cached = 0
    key = cache_key or ctx.session_id
    if key is not None:
        cached = ctx.state.sessions.cached_tokens((ctx.auth.account.client_id, key), prefix)
    text = _last_user_text(msgs)
    history = " ".join(m.text for m in msgs if m.role == "user" and m.text and m.text is not text)
    system = next((m.text for m in msgs if m.role == "system"), "")
    return Prompt(total, min(cached, total), text, history[-_HISTORY_CHARS:], system[-_HISTORY_CHARS:])


def _last_user_text(msgs: list[Msg]) -> str:
    for msg in reversed(msgs):
        if msg.role == "user" and msg.text:
            return msg.text
    return next((m.text for m in reversed(msgs) if m.text), "")


def _auto_builtin(tools: Tools, prompt: str) -> str | None:
    builtins = tools.builtins
    if IMAGE in builtins and _DRAW_RE.search(prompt):
        return IMAGE
    if MODEL3D in builtins and _MODEL3D_RE.search(prompt):
        return MODEL3D
    if URL_EXTRACT in builtins and _URL_RE.search(prompt):
        return URL_EXTRACT
    if CODE in builtins and _CODE_RE.search(prompt):
        return CODE
    if WEB_SEARCH in builtins:
        return WEB_SEARCH
    return None


def choose_action(tools: Tools, prompt: str) -> str | None:
    """The tool or function to call (``None``: answer in text)."""
    chosen = choose_actions(tools, prompt)
    return chosen[0] if chosen else None


def choose_actions(tools: Tools, prompt: str) -> list[str]:
    """The tool or the functions to call (empty: answer in text).

    ``any`` always calls one of its allowed functions (the one the prompt is most about, else the
    first); with ``parallel``, ``auto`` and ``any`` call every function the prompt is about.
    """
    if tools.mode == "forced":
        return [tools.forced] if tools.forced else []
    if tools.mode == "any":
        names = tools.allowed or tuple(tools.functions)
        allowed = {name: tools.functions[name] for name in names if name in tools.functions}
        if not allowed:
            return []
        relevant = _relevant(allowed, prompt, tools.parallel)
        return relevant or [next(iter(allowed))]
    if tools.mode != "auto":
        return []
    builtin = _auto_builtin(tools, prompt)
    if builtin in (IMAGE, MODEL3D, URL_EXTRACT, CODE):
        return [builtin]
    if tools.functions:
        relevant = _relevant(tools.functions, prompt, tools.parallel)
        if relevant:
            return relevant
    return [builtin] if builtin else []


def _relevant(functions: dict[str, dict[str, Any]], prompt: str, parallel: bool) -> list[str]:
    """The best function the prompt is about, or (parallel) every one, best first."""
    if not parallel:
        best = best_function(functions, prompt)
        return [best] if best is not None else []
    scored = [(score(prompt, spec), index, name) for index, (name, spec) in enumerate(functions.items())]
    return [name for value, _, name in sorted(scored, key=lambda item: (-item[0], item[1])) if value >= THRESHOLD]


def _arguments(spec: dict[str, Any], prompt: str, writer: Writer) -> dict[str, Any]:
    params = spec.get("parameters")
    if not isinstance(params, dict):
        return {}
    props = params.get("properties")
    required = params.get("required")
    if isinstance(props, dict) and isinstance(required, list) and required:
        params = {**params, "properties": {k: v for k, v in props.items() if k in required}}
    value = fill_schema(params, prompt, writer.rng, writer.phrase(), writer.sentence)
    return value if isinstance(value, dict) else {}


def _summary(results: list[tuple[str, Any]], russian: bool) -> str:
    parts = []
    for name, value in results:
        if isinstance(value, dict) and value:
            facts = ", ".join(f"{k} — {v if not isinstance(v, (dict, list)) else dumps(v)}" for k, v in value.items())
        else:
            facts = value if isinstance(value, str) else dumps(value)
        parts.append(f"По данным функции {name}: {facts}." if russian else f"According to {name}: {facts}.")
    closing = "Если нужно, могу уточнить детали." if russian else "Let me know if you need anything else."
    return " ".join([*parts, closing])


def _last_results(msgs: list[Msg]) -> list[tuple[str, Any]]:
    """The function results the conversation ends with (every one of the last run of results)."""
    found: list[tuple[str, Any]] = []
    for msg in reversed(msgs):
        if msg.result is None:
            break
        found[:0] = [(name, value) for _, name, value in msg.results] or [msg.result]
    return found


def _builtin_text(tool: str, writer: Writer, prompt: str) -> str:
    ru = writer.russian
    if tool == IMAGE:
        return (
            f"Вот изображение по вашему запросу: {writer.phrase()}."
            if ru
            else (f"Here is the image you asked for: {writer.phrase()}.")
        )
    if tool == MODEL3D:
        return f"Готова 3D-модель: {writer.phrase()}." if ru else f"Here is the 3D model: {writer.phrase()}."
    lead = {
        WEB_SEARCH: ("По данным поиска в интернете: ", "According to web search results: "),
        URL_EXTRACT: ("Я прочитал страницу. ", "I have read the page. "),
        CODE: ("Я выполнил код, чтобы проверить ответ. ", "I ran code to check the answer. "),
    }[tool][0 if ru else 1]
    url = _URL_RE.search(prompt)
    source = f" [{url.group()}]" if tool == URL_EXTRACT and url else ""
    cited = " [sources=[1]]" if tool == WEB_SEARCH else ""
    return lead + writer.answer() + cited + source


def _search_sources(writer: Writer) -> dict[str, dict[str, str]]:
    """Web search citations, as the live service attaches them (``inline_data.sources``)."""
    return {
        str(index): {"url": f"https://example.org/{'-'.join(word.split())}", "title": word.capitalize()}
        for index, word in enumerate(writer.words[:2], start=1)
    }


def _structured_text(fmt: dict[str, Any] | None, prompt: str, writer: Writer) -> str | None:
    if not fmt:
        return None
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        value = fill_schema(fmt["schema"], prompt, writer.rng, writer.phrase(), writer.sentence)
        return json.dumps(value, ensure_ascii=False, indent=4)
    if fmt.get("type") == "regex" and isinstance(fmt.get("regex"), str):
        return regex_sample(fmt["regex"], writer.rng)
    return None


def generate(ctx: Ctx, msgs: list[Msg], tools: Tools, params: Params, prompt: Prompt, index: int = 0) -> Outcome:
    """One choice of the model's answer (reasoning first when asked; logprobs of the answer's tokens)."""
    seed = stable_seed(ctx.state.config.seed, params.model, index, *(m.role + m.text for m in msgs))
    outcome = _generate(ctx, msgs, tools, params, prompt, seed)
    if params.reasoning is not None:
        outcome.reasoning = _reasoning(prompt, params, seed)
    if params.top_logprobs is not None and outcome.pieces:
        outcome.logprobs = _logprobs(outcome.pieces, params.top_logprobs, seed)
    return outcome


def _generate(ctx: Ctx, msgs: list[Msg], tools: Tools, params: Params, prompt: Prompt, seed: int) -> Outcome:
    writer = Writer(prompt.text, random.Random(seed), prompt.history, prompt.system)
    last = msgs[-1]
    if BLACKLIST_TRIGGER in prompt.text.lower():
        return Outcome(tokenize(_BLACKLIST_ANSWER[writer.russian]), "blacklist", prompt)
    if CALL_ERROR_TRIGGER in prompt.text.lower():
        return _call_error(tools, prompt)
    actions = [] if last.result is not None else choose_actions(tools, prompt.text)
    called = [name for name in actions if name in tools.functions]
    if called:
        calls = [(new_uuid4(), name, _arguments(tools.functions[name], prompt.text, writer)) for name in called]
        extra = sum(count_tokens(dumps(args)) + 5 for _, _, args in calls)
        return Outcome([], "function_call", prompt, calls, new_uuid4(), extra_tokens=extra)
    action = actions[0] if actions else None
    outcome = Outcome([], "stop", prompt)
    if action is not None:
        outcome.tool, outcome.state_id = action, new_uuid4()
        text = _builtin_text(action, writer, prompt.text)
        outcome.files = _generated_files(ctx, action, prompt.text, seed)
        outcome.sources = _search_sources(writer) if action == WEB_SEARCH else None
        outcome.extra_tokens = _FILE_TOKENS * len(outcome.files)
    elif last.result is not None:
        outcome.state_id = new_uuid4()
        text = _summary(_last_results(msgs), is_russian(prompt.text))
    else:
        text = _structured_text(params.response_format, prompt.text, writer) or ""
    if params.answer_tokens is not None:
        outcome.pieces = writer.exactly(params.answer_tokens)
    else:
        outcome.pieces = tokenize(text or writer.answer())
    if params.max_tokens is not None and len(outcome.pieces) > params.max_tokens:
        del outcome.pieces[params.max_tokens :]
        outcome.finish_reason = "length"
    return outcome


def _call_error(tools: Tools, prompt: Prompt) -> Outcome:
    """The documented trigger's failed call: no call, ``error_details`` naming the function."""
    name = tools.forced if tools.forced in tools.functions else next(iter(tools.functions), None)
    what = f"function {name}" if name else "a function"
    error = {
        "code": "function_call_error",
        "message": f"the model generated invalid arguments for {what}: they do not match its parameters schema",
    }
    if name:
        error["function_name"] = name
    return Outcome([], "function_call_error", prompt, error=error, extra_tokens=5)


def _reasoning(prompt: Prompt, params: Params, seed: int) -> list[str]:
    """Reasoning on the prompt's topic: as long as the effort asks, cut at ``reasoning_tokens``.

    Written with its own generator, so asking for reasoning never changes the answer.
    """
    writer = Writer(prompt.text, random.Random(seed ^ 0x5EA5), prompt.history, prompt.system)
    budget = REASONING_TOKENS.get(str(params.reasoning), REASONING_TOKENS["medium"])
    if params.reasoning_tokens is not None:
        budget = min(budget, params.reasoning_tokens)
    lead = (
        f"Пользователь спрашивает: {writer.phrase()}. Сначала разберусь в теме. "
        if writer.russian
        else f"The user asks about {writer.phrase()}. Let me think it through first. "
    )
    pieces = tokenize(lead + writer.paragraphs(budget, closing=False))
    while len(pieces) < budget:
        pieces.extend(tokenize(" " + writer.paragraphs(budget - len(pieces), closing=False)))
    return pieces[:budget]


_ALTERNATIVES = (" the", " a", " and", ",", ".", " of", " в", " и", " на", " это", " is", " to")


def _logprobs(pieces: list[str], top: int, seed: int) -> list[dict[str, Any]]:
    """``{chosen: {token, token_id, logprob}, top: [...]}`` per answer token (the chosen one first in ``top``)."""
    rng = random.Random(seed ^ 0x106)
    out = []
    for piece in pieces:
        chosen = round(-rng.random() * 1.5, 4)
        entries = [{"token": piece, "token_id": _token_id(piece), "logprob": chosen}]
        others = [alt for alt in _ALTERNATIVES if alt != piece]
        rng.shuffle(others)
        value = chosen
        for alt in others[: max(0, top - 1)]:
            value = round(value - 0.5 - rng.random() * 2, 4)
            entries.append({"token": alt, "token_id": _token_id(alt), "logprob": value})
        out.append({"chosen": dict(entries[0]), "top": entries})
    return out


def _token_id(token: str) -> int:
    """A stable id for a token (the same token always gets the same id)."""
    return stable_seed("token", token) % 150_000


def complete(
    ctx: Ctx,
    msgs: list[Msg],
    tools: Tools,
    params: Params,
    n: int = 1,
    *,
    variant: int = 0,
    cache_key: str | None = None,
) -> list[Outcome]:
    """Measure the prompt, generate ``n`` choices and charge the caller's balance.

    ``variant`` shifts the seed (a regenerated answer differs); ``cache_key`` see ``measure_prompt``.
    """
    prompt = measure_prompt(ctx, msgs, tools, cache_key)
    outcomes = [generate(ctx, msgs, tools, params, prompt, variant + index) for index in range(n)]
    spend(ctx, params.model, prompt.tokens + sum(o.completion_tokens for o in outcomes))
    return outcomes


def _generated_files(ctx: Ctx, tool: str, prompt: str, seed: int) -> list[GeneratedFile]:
    owner = ctx.auth.account.client_id
    if tool == IMAGE:
        file_id = generate_image(ctx.state.files, owner, ctx.client_id, prompt, seed)
        return [GeneratedFile(file_id, "image", "image/jpeg")]
    if tool == MODEL3D:
        file_id = generate_model3d(ctx.state.files, owner, ctx.client_id, prompt)
        return [GeneratedFile(file_id, "3dmodel", "model/gltf-binary")]
    return []


def spend(ctx: Ctx, model: str, tokens: int) -> None:
    """Charge the balance line that matches the model."""
    usage = "GigaChat-Max" if "Max" in model or "Ultra" in model else "GigaChat-Pro" if "Pro" in model else "GigaChat"
    ctx.state.spend(ctx.auth.account.client_id, usage, tokens)


def answer_tokens_hook(ctx: Ctx) -> int | None:
    """``X-Emulator-Answer-Tokens: N``: force the answer to exactly N tokens."""
    return _int_header(ctx, "X-Emulator-Answer-Tokens", 0, MAX_ANSWER_TOKENS)


def chunk_tokens_hook(ctx: Ctx) -> int | None:
    """``X-Emulator-Chunk-Tokens: K``: tokens per stream chunk."""
    return _int_header(ctx, "X-Emulator-Chunk-Tokens", 1, MAX_ANSWER_TOKENS)


def chunk_size(ctx: Ctx, update_interval: float) -> int:
    """Tokens per stream chunk: the hook or a few words; more when ``update_interval`` spaces chunks."""
    size = chunk_tokens_hook(ctx) or DEFAULT_CHUNK_TOKENS
    if update_interval > 0:
        size = max(size, ctx.state.timing.chunk_tokens(update_interval))
    return size


def answer_seconds(ctx: Ctx, outcomes: list[Outcome]) -> float:
    """Generation time of a whole (non-streamed) answer: choices are generated side by side."""
    return ctx.state.timing.answer_seconds(max((o.completion_tokens for o in outcomes), default=0))


def stream_pace(ctx: Ctx, outcome: Outcome, size: int, update_interval: float) -> Pace:
    """When the events of a streamed answer go out.

    The first after the time to first token (a function call is sent whole, once generated), the
    others ``size`` tokens of generation apart, and never closer than ``update_interval``.
    """
    timing = ctx.state.timing
    first = timing.ttft + (timing.tokens_seconds(outcome.completion_tokens) if outcome.call else 0.0)
    return Pace(first, max(update_interval, timing.tokens_seconds(size)))


def _int_header(ctx: Ctx, name: str, low: int, high: int) -> int | None:
    raw = ctx.header(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be within [{low}, {high}]")
    return value
