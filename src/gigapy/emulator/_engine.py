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
from ._relevance import best_function
from ._structured import fill_schema, regex_sample
from ._textgen import count_tokens, is_russian, stable_seed, tokenize
from ._timing import Pace

if TYPE_CHECKING:
    from ._pipeline import Ctx

#: Put this in a user message to get ``finish_reason: "blacklist"`` (documented test trigger).
BLACKLIST_TRIGGER = "[emulator:blacklist]"
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
    """A normalized message (v1 and v2 both map to this)."""

    role: str
    text: str = ""
    call: tuple[str, dict[str, Any]] | None = None
    result: tuple[str, Any] | None = None
    files: tuple[str, ...] = ()


@dataclass(slots=True)
class Tools:
    """What the model may call: custom functions, built-in tools and the calling mode."""

    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    builtins: frozenset[str] = frozenset()
    mode: str = "none"
    forced: str | None = None


@dataclass(slots=True)
class Params:
    """Generation knobs taken from the request and the test-hook headers."""

    model: str
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    answer_tokens: int | None = None


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
    call: tuple[str, dict[str, Any]] | None = None
    state_id: str | None = None
    files: list[GeneratedFile] = field(default_factory=list)
    tool: str | None = None
    extra_tokens: int = 0
    #: Web search citations (v2 ``inline_data.sources``).
    sources: dict[str, dict[str, str]] | None = None

    @property
    def text(self) -> str:
        """The answer text."""
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        """Output tokens, counted with the one token counter."""
        return len(self.pieces) + self.extra_tokens


def _message_tokens(ctx: Ctx, msg: Msg) -> int:
    tokens = _MESSAGE_OVERHEAD + count_tokens(msg.text)
    if msg.call is not None:
        tokens += count_tokens(dumps(msg.call[1])) + 2
    if msg.result is not None:
        tokens += count_tokens(dumps(msg.result[1])) + 2
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
        prefix.append((hash((msg.role, msg.text, repr(msg.call), repr(msg.result), msg.files)), total))
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
    if tools.mode == "forced":
        return tools.forced
    if tools.mode != "auto":
        return None
    builtin = _auto_builtin(tools, prompt)
    if builtin in (IMAGE, MODEL3D, URL_EXTRACT, CODE):
        return builtin
    if tools.functions:
        chosen = best_function(tools.functions, prompt)
        if chosen is not None:
            return chosen
    return builtin


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


def _summary(result: tuple[str, Any], russian: bool) -> str:
    name, value = result
    if isinstance(value, dict) and value:
        facts = ", ".join(f"{k} — {v if not isinstance(v, (dict, list)) else dumps(v)}" for k, v in value.items())
    else:
        facts = value if isinstance(value, str) else dumps(value)
    if russian:
        return f"По данным функции {name}: {facts}. Если нужно, могу уточнить детали."
    return f"According to {name}: {facts}. Let me know if you need anything else."


def _builtin_text(tool: str, writer: Writer, prompt: str) -> str:
    ru = writer.russian
    if tool == IMAGE:
        return f"Вот изображение по вашему запросу: {writer.phrase()}." if ru else (
            f"Here is the image you asked for: {writer.phrase()}."
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
    """One choice of the model's answer."""
    seed = stable_seed(ctx.state.config.seed, params.model, index, *(m.role + m.text for m in msgs))
    writer = Writer(prompt.text, random.Random(seed), prompt.history, prompt.system)
    last = msgs[-1]
    if BLACKLIST_TRIGGER in prompt.text.lower():
        return Outcome(tokenize(_BLACKLIST_ANSWER[writer.russian]), "blacklist", prompt)
    action = None if last.result is not None else choose_action(tools, prompt.text)
    if action is not None and action in tools.functions:
        args = _arguments(tools.functions[action], prompt.text, writer)
        extra = count_tokens(dumps(args)) + 5
        return Outcome([], "function_call", prompt, (action, args), new_uuid4(), extra_tokens=extra)
    outcome = Outcome([], "stop", prompt)
    if action is not None:
        outcome.tool, outcome.state_id = action, new_uuid4()
        text = _builtin_text(action, writer, prompt.text)
        outcome.files = _generated_files(ctx, action, prompt.text, seed)
        outcome.sources = _search_sources(writer) if action == WEB_SEARCH else None
        outcome.extra_tokens = _FILE_TOKENS * len(outcome.files)
    elif last.result is not None:
        outcome.state_id = new_uuid4()
        text = _summary(last.result, is_russian(prompt.text))
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


def complete(
    ctx: Ctx, msgs: list[Msg], tools: Tools, params: Params, n: int = 1, *, variant: int = 0,
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
