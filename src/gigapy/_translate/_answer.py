"""GigaChat answers (v1 and v2, whole or streamed) as one neutral completion.

:func:`decode` reads a whole response body; :class:`StreamDecoder` reads stream payloads
one by one and emits neutral events, accumulating the same :class:`Completion` the whole
body would give. Front ends (Chat Completions, Responses, Messages) render either.

Stop sequences are GigaChat-less: the text is cut at the earliest stop sequence (the stop
sequence itself is not shown, as OpenAI and Anthropic do). While streaming, characters that
may still begin a winning stop sequence are held back until that is decided, so the streamed
text equals the whole text cut, however it is chunked. The model may generate past the cut;
those tokens are still billed.

A v1 answer has no tool call ids; they are derived from the answer's seed (the request id)
and the call's position, so the stream and the whole-body translation agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._common import TranslateContext, loads
from ._request import Api, Call

FILTERED = frozenset({"blacklist", "request_blacklist", "response_blacklist", "request_whitelist", "request_filter"})


@dataclass
class Usage:
    """Token counts; ``cached`` came from GigaChat's prompt cache."""

    prompt: int = 0
    completion: int = 0
    total: int = 0
    cached: int | None = None


@dataclass
class Choice:
    """One answer: text, reasoning, calls, GigaChat's finish reason, the stop sequence that cut it."""

    index: int
    text: str = ""
    reasoning: str = ""
    calls: list[Call] = field(default_factory=list)
    finish: str | None = None
    stopped: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> Literal["stop", "length", "tool_calls", "content_filter"]:
        """The finish reason in OpenAI's terms (also the base of the Messages/Responses mapping)."""
        if self.stopped is not None:
            return "stop"
        if self.finish in FILTERED:
            return "content_filter"
        if self.calls:
            return "tool_calls"
        if self.finish == "length":
            return "length"
        return "stop"

    @property
    def lossy(self) -> bool:
        """True when GigaChat's finish reason has no exact OpenAI equivalent (it is kept aside then)."""
        return self.finish not in (None, "stop", "length", "function_call") and self.finish not in FILTERED


@dataclass
class Completion:
    """A whole answer: model (with its build suffix), created (seconds), choices, usage, id seed."""

    model: str
    created: int
    seed: str
    choices: list[Choice]
    usage: Usage | None = None


def finish_reason_from_openai(reason: str) -> str:
    """OpenAI's finish reason as GigaChat's (the reverse mapping)."""
    return {
        "tool_calls": "function_call",
        "function_call": "function_call",
        "content_filter": "blacklist",
        "length": "length",
    }.get(reason, "stop")


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def usage_v1(raw: Any) -> Usage | None:
    """v1 usage (``precached_prompt_tokens`` is the cached part)."""
    if not isinstance(raw, Mapping):
        return None
    cached = raw.get("precached_prompt_tokens")
    return Usage(
        _int(raw.get("prompt_tokens")),
        _int(raw.get("completion_tokens")),
        _int(raw.get("total_tokens")),
        cached if isinstance(cached, int) else None,
    )


def usage_v2(raw: Any) -> Usage | None:
    """v2 usage (``input_tokens_details.cached_tokens`` is the cached part)."""
    if not isinstance(raw, Mapping):
        return None
    details = raw.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return Usage(
        _int(raw.get("input_tokens")),
        _int(raw.get("output_tokens")),
        _int(raw.get("total_tokens")),
        cached if isinstance(cached, int) else None,
    )


def call_arguments(raw: Any) -> dict[str, Any]:
    """Function-call arguments: an object on the wire (a JSON string is parsed leniently)."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw.strip():
        try:
            value = loads(raw)
        except ValueError:
            return {"_raw": raw}
        return value if isinstance(value, dict) else {"_raw": value}
    return {}


def cut(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """``text`` cut before its earliest stop sequence, and that sequence (or None)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        at = text.find(stop)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, stop)
    return (text, None) if best is None else (text[: best[0]], best[1])


def decode(api: Api, body: Mapping[str, Any], ctx: TranslateContext, stops: tuple[str, ...] = ()) -> Completion:
    """A whole GigaChat response body as a neutral completion."""
    model = str(body.get("model") or "")
    if api == "v1":
        created = ctx.timestamp(body.get("created"))
        seed = ctx.seed(model, created)
        choices = []
        raw_choices: list[Any] = body["choices"] if isinstance(body.get("choices"), list) else []
        for position, item in enumerate(raw_choices):
            raw = _obj(item)
            index = _int(raw.get("index"), position)
            msg = _obj(raw.get("message"))
            choice = Choice(
                index,
                str(msg.get("content") or ""),
                str(msg.get("reasoning_content") or ""),
                finish=raw.get("finish_reason"),
            )
            fc = msg.get("function_call")
            if isinstance(fc, Mapping) and fc.get("name"):
                choice.calls.append(
                    Call(v1_call_id(ctx, seed, index, 0), str(fc["name"]), call_arguments(fc.get("arguments")))
                )
            choices.append(choice)
        completion = Completion(model, created, seed, choices, usage_v1(body.get("usage")))
    else:
        created = ctx.timestamp(body.get("created_at"))
        seed = ctx.seed(model, created)
        choice = Choice(0, finish=body.get("finish_reason"))
        for msg in body.get("messages") or ():
            if isinstance(msg, Mapping):
                choice.text += _read_parts(choice, msg, ctx, seed, None)[0]
        completion = Completion(model, created, seed, [choice], usage_v2(body.get("usage")))
    for choice in completion.choices:
        choice.text, choice.stopped = cut(choice.text, stops)
    return completion


def v1_call_id(ctx: TranslateContext, seed: str, choice: int, position: int) -> str:
    """The derived id of a v1 function call (v1 sends none)."""
    return ctx.ids("call_", f"{seed}:call:{choice}:{position}")


def _read_parts(
    choice: Choice, msg: Mapping[str, Any], ctx: TranslateContext, seed: str, seen: str | None
) -> tuple[str, list[Call]]:
    """Read a v2 message's parts: add its calls and files to ``choice``; return (its text, new calls).

    ``seen`` is given for the ``done`` event's message, which may repeat the whole answer:
    its text then counts only past the ``seen`` text, and calls seen before are not repeated.
    """
    if msg.get("role", "assistant") != "assistant":
        return "", []
    text_parts = []
    new_calls = []
    for part in msg.get("content") or ():
        if not isinstance(part, Mapping):
            continue
        if isinstance(part.get("text"), str):
            text_parts.append(part["text"])
        fc = part.get("function_call")
        if isinstance(fc, Mapping) and fc.get("name"):
            given = fc.get("id") if isinstance(fc.get("id"), str) and fc.get("id") else None
            args = call_arguments(fc.get("arguments"))
            if any(
                c.id == given or (given is None and c.name == fc["name"] and c.arguments == args) for c in choice.calls
            ):
                continue
            call = Call(given or v1_call_id(ctx, seed, choice.index, len(choice.calls)), str(fc["name"]), args)
            choice.calls.append(call)
            new_calls.append(call)
        files = part.get("files")
        if isinstance(files, list):
            choice.files.extend(dict(f) for f in files if isinstance(f, Mapping) and dict(f) not in choice.files)
    text = "".join(text_parts)
    if seen is not None and seen:
        text = text[len(seen) :] if text.startswith(seen) else ""
    return text, new_calls


# ----------------------------------------------------------------------------------- streams


@dataclass
class Started:
    """The first payload arrived: model and created are known."""

    model: str
    created: int
    seed: str


@dataclass
class TextDelta:
    """Visible text for one choice (already past the stop-sequence filter)."""

    choice: int
    text: str


@dataclass
class ReasoningDelta:
    """Reasoning text for one choice."""

    choice: int
    text: str


@dataclass
class CallDone:
    """One whole function call (GigaChat sends arguments whole, never in fragments)."""

    choice: int
    position: int
    call: Call


@dataclass
class Finished:
    """One choice ended; ``choice`` holds the whole answer of that choice."""

    choice: Choice


@dataclass
class UsageSeen:
    """Token counts (v1 sends them with the last chunk, v2 with ``done``)."""

    usage: Usage


Event = Started | TextDelta | ReasoningDelta | CallDone | Finished | UsageSeen


class StreamPayloadError(Exception):
    """The stream carried an error instead of a chunk; ``status`` and ``message`` as GigaChat sent them."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


def _pending(buffer: str, stops: tuple[str, ...], before: int, winner: int) -> int | None:
    """The earliest position where a stop sequence may still begin, once more text comes, and win
    over the match at ``before`` (found for ``stops[winner]``; -1 and len(buffer) when none was found).

    A later match wins only by starting earlier, or at the same place and earlier in ``stops``
    (the tie rule of :func:`cut`).
    """
    for q in range(max(0, len(buffer) - max(map(len, stops)) + 1), min(before, len(buffer) - 1) + 1):
        tail = buffer[q:]
        for j, stop in enumerate(stops):
            if len(tail) < len(stop) and stop.startswith(tail) and (q < before or j < winner):
                return q
    return None


def _first(text: str, stops: tuple[str, ...]) -> tuple[int, int]:
    """(position, index in ``stops``) of the earliest stop sequence in ``text``; (len(text), -1) if none."""
    best = (len(text), -1)
    for j, stop in enumerate(stops):
        at = text.find(stop)
        if 0 <= at < best[0]:
            best = (at, j)
    return best


class _Held:
    """Per-choice stop-sequence filter: holds back text that may still begin a stop sequence.

    The streamed text equals the whole text cut by :func:`cut`, however it is chunked: a
    match is committed only when no stop sequence that would win over it (one starting
    earlier, e.g. ``" aa"`` over ``"a"`` in ``" aa"``) can still complete.
    """

    __slots__ = ("buffer", "stopped", "stops")

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.buffer = ""
        self.stopped: str | None = None

    def push(self, text: str) -> str:
        if self.stopped is not None:
            return ""
        if not self.stops:
            return text
        self.buffer += text
        at, j = _first(self.buffer, self.stops)
        wait = _pending(self.buffer, self.stops, at, j if j >= 0 else len(self.stops))
        if wait is not None:
            out, self.buffer = self.buffer[:wait], self.buffer[wait:]
            return out
        if j >= 0:
            self.stopped = self.stops[j]
            out, self.buffer = self.buffer[:at], ""
            return out
        out, self.buffer = self.buffer, ""
        return out

    def flush(self) -> str:
        """The stream ended: what is held is cut as the whole text would be."""
        if self.stopped is not None:
            self.buffer = ""
            return ""
        out, stop = cut(self.buffer, self.stops)
        self.buffer = ""
        if stop is not None:
            self.stopped = stop
        return out


class StreamDecoder:
    """GigaChat stream payloads in, neutral events out (see the module docstring).

    Feed each decoded SSE payload with :meth:`feed` (v2 also gives the event name); call
    :meth:`close` at the end of the stream (``[DONE]`` in v1, ``done`` in v2, or EOF).
    """

    def __init__(self, api: Api, ctx: TranslateContext, stops: tuple[str, ...] = ()) -> None:
        self.api = api
        self.ctx = ctx
        self.stops = stops
        self.started: Started | None = None
        self.choices: dict[int, Choice] = {}
        self._held: dict[int, _Held] = {}
        self._v1_calls: dict[int, dict[str, Any]] = {}
        self._finished: set[int] = set()
        self.usage: Usage | None = None
        self.closed = False
        self._raw = ""  # v2: the text received so far, before the stop filter

    def _choice(self, index: int) -> Choice:
        choice = self.choices.get(index)
        if choice is None:
            choice = self.choices[index] = Choice(index)
            self._held[index] = _Held(self.stops)
        return choice

    def _start(self, data: Mapping[str, Any], key: str, out: list[Event]) -> Started:
        if self.started is None:
            model = str(data.get("model") or "")
            created = self.ctx.timestamp(data.get(key))
            self.started = Started(model, created, self.ctx.seed(model, created))
            out.append(self.started)
        return self.started

    def _text(self, index: int, text: str, out: list[Event]) -> None:
        if not text or index in self._finished:
            return
        visible = self._held[index].push(text)
        if visible:
            self.choices[index].text += visible
            out.append(TextDelta(index, visible))

    def _finish(self, index: int, reason: Any, out: list[Event]) -> None:
        if index in self._finished:
            return
        choice = self._choice(index)
        held = self._held[index]
        rest = held.flush()
        if rest:
            choice.text += rest
            out.append(TextDelta(index, rest))
        pending = self._v1_calls.pop(index, None)
        if pending is not None and pending.get("name"):
            seed = self.started.seed if self.started else self.ctx.seed()
            call = Call(v1_call_id(self.ctx, seed, index, 0), str(pending["name"]), pending["args"])
            choice.calls.append(call)
            out.append(CallDone(index, 0, call))
        choice.finish = reason if isinstance(reason, str) else choice.finish
        choice.stopped = held.stopped
        self._finished.add(index)
        out.append(Finished(choice))

    def feed(self, data: Mapping[str, Any], event: str | None = None) -> list[Event]:
        """One decoded payload (a JSON object); returns the events it produced."""
        out: list[Event] = []
        if self.closed:
            return out
        if event == "error" or _is_error(data):
            message = str(data.get("message") or data.get("error") or "stream error")
            raise StreamPayloadError(_int(data.get("status"), 500), message, data)
        if self.api == "v1":
            self._feed_v1(data, out)
        else:
            self._feed_v2(data, event, out)
        return out

    def _feed_v1(self, data: Mapping[str, Any], out: list[Event]) -> None:
        self._start(data, "created", out)
        for position, raw in enumerate(data.get("choices") or ()):
            if not isinstance(raw, Mapping):
                continue
            index = _int(raw.get("index"), position)
            self._choice(index)
            delta = _obj(raw.get("delta"))
            if delta.get("role") == "function_in_progress":
                continue  # a built-in's progress note, not part of the answer
            if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
                self.choices[index].reasoning += delta["reasoning_content"]
                out.append(ReasoningDelta(index, delta["reasoning_content"]))
            if isinstance(delta.get("content"), str):
                self._text(index, delta["content"], out)
            fc = delta.get("function_call")
            if isinstance(fc, Mapping):
                pending = self._v1_calls.setdefault(index, {"name": None, "args": {}, "text": ""})
                pending["name"] = fc.get("name") or pending["name"]
                args = fc.get("arguments")
                if isinstance(args, Mapping):
                    pending["args"].update(args)
                elif isinstance(args, str):
                    pending["text"] += args
                    pending["args"] = call_arguments(pending["text"])
            if raw.get("finish_reason"):
                self._finish(index, raw["finish_reason"], out)
        usage = usage_v1(data.get("usage"))
        if usage is not None:
            self.usage = usage
            out.append(UsageSeen(usage))

    def _feed_v2(self, data: Mapping[str, Any], event: str | None, out: list[Event]) -> None:
        started = self._start(data, "created_at", out)
        choice = self._choice(0)
        done = event == "response.message.done" or (event is None and "finish_reason" in data)
        if event in ("response.tool.in_progress", "response.tool.completed"):
            return  # built-in tool progress: no equivalent in the OpenAI/Anthropic shapes
        for msg in data.get("messages") or ():
            if not isinstance(msg, Mapping) or 0 in self._finished:
                continue
            text, calls = _read_parts(choice, msg, self.ctx, started.seed, self._raw if done else None)
            self._raw += text
            self._text(0, text, out)
            out.extend(CallDone(0, choice.calls.index(call), call) for call in calls)
        if done:
            self._finish(0, data.get("finish_reason"), out)
            usage = usage_v2(data.get("usage"))
            if usage is not None:
                self.usage = usage
                out.append(UsageSeen(usage))

    def close(self) -> list[Event]:
        """The stream ended: finish every open choice (a stream cut short ends as it is)."""
        out: list[Event] = []
        if self.closed:
            return out
        self.closed = True
        if self.started is None:
            self._start({}, "created", out)
        if not self.choices:
            self._choice(0)
        for index in sorted(self.choices):
            self._finish(index, None, out)
        return out

    def completion(self) -> Completion:
        """Everything received so far, as the whole-body translation would give it."""
        started = self.started or Started("", self.ctx.timestamp(None), self.ctx.seed())
        return Completion(
            started.model, started.created, started.seed, [self.choices[i] for i in sorted(self.choices)], self.usage
        )


def _is_error(data: Mapping[str, Any]) -> bool:
    return (
        not data.get("choices")
        and not data.get("messages")
        and "finish_reason" not in data
        and ("status" in data or "error" in data or ("message" in data and isinstance(data.get("message"), str)))
    )
