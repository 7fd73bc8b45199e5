"""OpenAI Chat Completions (``POST /v1/chat/completions``) <-> GigaChat v1/v2.

:func:`chat_request` turns a request body into a :class:`~._request.Plan` (upload its
:attr:`~._request.Plan.uploads`, then :meth:`~._request.Plan.finish` gives the GigaChat
call); :func:`chat_completion` renders GigaChat's answer as a ``chat.completion``;
:class:`ChatCompletionStream` renders a GigaChat stream as ``chat.completion.chunk``
objects exactly as OpenAI streams them. :data:`PARAMETERS` says what happens to every
request parameter; anything not in it is refused, naming it (``docs/openai.md`` has the
table in prose).
"""

from __future__ import annotations

from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

from ._answer import (
    CallDone,
    Choice,
    Completion,
    Event,
    Finished,
    ReasoningDelta,
    Started,
    StreamDecoder,
    TextDelta,
    decode,
)
from ._common import (
    TranslateContext,
    bad_value,
    boolean,
    fail,
    finite,
    items,
    json_text,
    mapping,
    number,
    parse_arguments,
    result_json,
    session_id,
    string,
    unsupported,
)
from ._options import DEFAULT_OPTIONS, TranslateOptions
from ._request import Call, FileRef, GigaChatCall, Msg, Plan, Request, effort, function, json_schema_format, tool_choice
from ._uploads import from_url

#: GigaChat's own fields a client may add with ``extra_body`` (the OpenAI SDK merges them in).
EXTENSIONS = ("repetition_penalty", "update_interval", "profanity_check", "flags")

#: Every OpenAI Chat Completions parameter and its fate: ``mapped`` (sent to GigaChat),
#: ``emulated`` (done by the translation), ``no effect`` (accepted; harmless to ignore, for
#: the reason given), ``refused`` (a clear 400 unless the value is the neutral default).
PARAMETERS: dict[str, tuple[str, str]] = {
    "messages": ("mapped", "system/developer, user (text, images, files), assistant (text, tool calls), tool"),
    "model": ("mapped", "GigaChat model name (aliases from the options)"),
    "stream": ("mapped", "GigaChat SSE, re-emitted as chat.completion.chunk"),
    "stream_options": (
        "mapped",
        "include_usage: a last chunk with usage and empty choices; include_obfuscation: no effect (no padding is sent)",
    ),
    "temperature": ("mapped", "0 becomes 0.001 (GigaChat needs > 0; that value means greedy)"),
    "top_p": ("mapped", "as is"),
    "max_tokens": ("mapped", "max_tokens"),
    "max_completion_tokens": ("mapped", "max_tokens"),
    "n": ("mapped", "v1 n (1..4); forces v1"),
    "stop": ("emulated", "the text is cut at the earliest stop sequence; finish_reason stop"),
    "tools": (
        "mapped",
        "function tools -> GigaChat functions (schema reduced to GigaChat's dialect; "
        "strict has no GigaChat equivalent and is not enforced); custom tools refused",
    ),
    "tool_choice": (
        "mapped",
        "auto, none, a named function -> forced; required -> forced with one tool, "
        "v2 mode any with several (auto when v1 is forced or n > 1; refused then under "
        "strict_tool_choice)",
    ),
    "parallel_tool_calls": ("mapped", "true: v2 (several calls per answer); false: v1 (at most one)"),
    "functions": ("mapped", "legacy functions; the answer uses message.function_call"),
    "function_call": ("mapped", "legacy: auto, none, {name}"),
    "response_format": (
        "mapped",
        "json_schema -> GigaChat json_schema (strict kept); "
        "json_object -> json_schema with an object schema; text -> nothing",
    ),
    "reasoning_effort": ("mapped", "none: off; minimal/low -> low; medium; high/xhigh/max -> high"),
    "web_search_options": ("mapped", "GigaChat v2 built-in web_search (its sub-options refused)"),
    "prompt_cache_key": (
        "mapped",
        "X-Session-ID header (GigaChat's prompt cache is per session; hashed unless a plain ASCII token)",
    ),
    "user": ("mapped", "X-Session-ID header when prompt_cache_key is not given (hashed likewise)"),
    "seed": ("no effect", "GigaChat has no seeded sampling; OpenAI promises only best effort"),
    "metadata": ("no effect", "nothing is stored (store: true is refused)"),
    "safety_identifier": ("no effect", "GigaChat has no abuse-monitoring id"),
    "prompt_cache_options": ("no effect", "GigaChat caches prompt prefixes on its own"),
    "prompt_cache_retention": ("no effect", "GigaChat's cache lifetime is its own"),
    "service_tier": ("no effect", "auto/default only; other tiers refused"),
    "store": ("refused", "true (no stored completions); false accepted"),
    "frequency_penalty": ("refused", "non-zero (no additive penalty; use extra_body repetition_penalty)"),
    "presence_penalty": ("refused", "non-zero (no additive penalty; use extra_body repetition_penalty)"),
    "logit_bias": ("refused", "non-empty"),
    "logprobs": ("refused", "true"),
    "top_logprobs": ("refused", "non-zero"),
    "modalities": ("refused", "anything but ['text']"),
    "audio": ("refused", "no audio output"),
    "prediction": ("refused", "no predicted outputs"),
    "moderation": ("refused", "no moderation models"),
    "verbosity": ("refused", "anything but medium"),
}
for _name in EXTENSIONS:
    PARAMETERS[_name] = ("mapped", "GigaChat extension (extra_body), sent as GigaChat's own field")


def _zero(value: Any) -> bool:
    return value is None or value == 0 or value == {} or value is False


def chat_request(body: Mapping[str, Any], options: TranslateOptions = DEFAULT_OPTIONS) -> Plan:
    """A Chat Completions request body as a GigaChat plan; errors name the OpenAI parameter."""
    body = mapping(body, "body")
    finite(body, "")
    unknown = [key for key in body if key not in PARAMETERS]
    if unknown:
        raise unsupported(unknown[0], f"unknown parameter (GigaChat extensions are {', '.join(EXTENSIONS)})")
    model = string(body.get("model"), "model", empty=False)
    req = Request(model=options.model(model), api=options.api)
    _refusals(body)
    _tools(req, body, options)
    req.messages = _messages(req, items(body.get("messages"), "messages"))
    if not req.messages:
        raise fail("messages", "must hold at least one message")
    _sampling(req, body)
    stream = body.get("stream")
    req.stream = bool(stream is not None and boolean(stream, "stream"))
    so = body.get("stream_options")
    if so is not None:
        so = mapping(so, "stream_options")
        if not req.stream:
            raise fail("stream_options", "is only allowed with stream: true")
        if so.get("include_usage") is not None:
            req.include_usage = boolean(so["include_usage"], "stream_options.include_usage")
        other = [k for k in so if k not in ("include_usage", "include_obfuscation")]
        if other:
            raise unsupported(f"stream_options.{other[0]}", "unknown stream option")
    session = body.get("prompt_cache_key") or body.get("user")
    if session is not None:
        req.headers["X-Session-ID"] = session_id(
            string(session, "prompt_cache_key" if body.get("prompt_cache_key") else "user", empty=False)
        )
    return Plan(req)


def _refusals(body: Mapping[str, Any]) -> None:
    for name in ("frequency_penalty", "presence_penalty"):
        if not _zero(body.get(name)):
            raise unsupported(
                name,
                "GigaChat has no additive penalties; use extra_body={'repetition_penalty': x} "
                "(1.0 = neutral, > 1 discourages repeats)",
            )
    for name, why in (
        ("logit_bias", "no token biases"),
        ("logprobs", "no log probabilities on this bridge"),
        ("top_logprobs", "no log probabilities on this bridge"),
        ("audio", "no audio output"),
        ("prediction", "no predicted outputs"),
        ("moderation", "no moderation models"),
        ("store", "no stored completions"),
    ):
        if not _zero(body.get(name)):
            raise unsupported(name, why)
    modalities = body.get("modalities")
    if modalities is not None and list(items(modalities, "modalities")) != ["text"]:
        raise unsupported("modalities", "GigaChat answers with text only")
    if body.get("verbosity") not in (None, "medium"):
        raise unsupported("verbosity", "no verbosity control")
    if body.get("service_tier") not in (None, "auto", "default"):
        raise unsupported("service_tier", "GigaChat has one service tier")


def _sampling(req: Request, body: Mapping[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        degree = number(temperature, "temperature", low=0, high=2)
        req.temperature = degree if degree > 0 else 0.001
    if body.get("top_p") is not None:
        req.top_p = number(body["top_p"], "top_p", low=0, high=1)
    limits = {k: body[k] for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None}
    for key, limit in limits.items():
        number(limit, key, low=1, integer=True)
    if len(set(limits.values())) > 1:
        raise fail("max_tokens", "max_tokens and max_completion_tokens disagree; give one")
    if limits:
        req.max_tokens = int(next(iter(limits.values())))
    if body.get("n") is not None:
        req.n = int(number(body["n"], "n", low=1, integer=True))
        if req.n > 4:
            raise bad_value("n", f"GigaChat gives at most 4 choices, got {req.n}")
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(items(stop, "stop"))
        for i, s in enumerate(stops):
            string(s, f"stop[{i}]" if not isinstance(stop, str) else "stop", empty=False)
        req.stop = tuple(stops)
    req.reasoning_effort = effort(body.get("reasoning_effort"), "reasoning_effort")
    fmt = body.get("response_format")
    if fmt is not None:
        req.response_format = response_format(fmt, "response_format")
    for name in EXTENSIONS:
        if body.get(name) is None:
            continue
        value: Any = body[name]
        if name == "repetition_penalty":
            number(value, name, low=0)
            if value <= 0:
                raise fail(name, "must be > 0")
        elif name == "update_interval":
            number(value, name, low=0)
        elif name == "profanity_check":
            boolean(value, name)
        else:
            value = [string(f, f"flags[{i}]") for i, f in enumerate(items(value, name))]
        req.extra[name] = value


def response_format(fmt: Any, where: str) -> dict[str, Any] | None:
    """OpenAI's ``response_format`` as GigaChat's (None for plain text)."""
    fmt = mapping(fmt, where)
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_schema", "schema": {"type": "object"}}
    if kind == "json_schema":
        spec = mapping(fmt.get("json_schema"), f"{where}.json_schema")
        return json_schema_format(spec.get("schema"), spec.get("strict"), f"{where}.json_schema.schema")
    raise bad_value(f"{where}.type", f"unknown type {kind!r}; expected text, json_object or json_schema")


def _tools(req: Request, body: Mapping[str, Any], options: TranslateOptions) -> None:
    tools = body.get("tools")
    functions = body.get("functions")
    if tools is not None and functions is not None:
        raise fail("functions", "give tools or the legacy functions, not both")
    if tools is not None:
        for i, tool in enumerate(items(tools, "tools")):
            tool = mapping(tool, f"tools[{i}]")
            if tool.get("type") != "function":
                raise unsupported(f"tools[{i}].type", f"{tool.get('type')!r} tools (GigaChat calls functions only)")
            fn = mapping(tool.get("function"), f"tools[{i}].function")
            if fn.get("strict"):
                req.notes.add("strict function schemas are not enforced by GigaChat")
            req.functions.append(
                function(fn.get("name"), fn.get("description"), fn.get("parameters"), f"tools[{i}].function", req.notes)
            )
    if functions is not None:
        req.legacy_functions = True
        for i, fn in enumerate(items(functions, "functions")):
            fn = mapping(fn, f"functions[{i}]")
            req.functions.append(
                function(fn.get("name"), fn.get("description"), fn.get("parameters"), f"functions[{i}]", req.notes)
            )
    names = [fn.name for fn in req.functions]
    if len(set(names)) != len(names):
        raise fail("tools", "two tools have the same name")
    search = body.get("web_search_options")
    if search is not None:
        if mapping(search, "web_search_options"):
            first = next(iter(search))
            raise unsupported(f"web_search_options.{first}", "GigaChat's web search takes no options")
        req.builtins.append("web_search")
    if body.get("parallel_tool_calls") is not None:
        req.parallel_tool_calls = boolean(body["parallel_tool_calls"], "parallel_tool_calls")
    choice = body.get("tool_choice")
    if choice is not None and req.legacy_functions:
        raise fail("tool_choice", "goes with tools; legacy functions use function_call")
    legacy = body.get("function_call")
    if legacy is not None:
        if not req.legacy_functions:
            raise fail("function_call", "goes with the legacy functions; tools use tool_choice")
        choice = (
            legacy if isinstance(legacy, str) else {"type": "function", "function": mapping(legacy, "function_call")}
        )
    where = "function_call" if legacy is not None else "tool_choice"
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad_value(where, f"expected auto, none, required or a named function, got {choice!r}")
        tool_choice(req, choice, None, where, options.strict_tool_choice)
        return
    choice = mapping(choice, where)
    if choice.get("type") != "function":
        raise unsupported(f"{where}.type", f"{choice.get('type')!r} tool choices (name one function instead)")
    name = mapping(choice.get("function"), f"{where}.function").get("name")
    tool_choice(
        req, "forced", string(name, f"{where}.function.name"), f"{where}.function.name", options.strict_tool_choice
    )


def _text_of(content: Any, where: str, *, refusals: bool = False) -> str:
    """A message's content as text: a string, or text (and refusal) parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(items(content, where)):
        part = mapping(part, f"{where}[{j}]")
        kind = part.get("type")
        if kind == "text":
            texts.append(string(part.get("text"), f"{where}[{j}].text"))
        elif kind == "refusal" and refusals:
            texts.append(string(part.get("refusal"), f"{where}[{j}].refusal"))
        else:
            raise bad_value(f"{where}[{j}].type", f"{kind!r} parts are not allowed here (text only)")
    return "\n".join(texts)


def _user(req: Request, content: Any, where: str) -> Msg:
    msg = Msg("user", where)
    if isinstance(content, str):
        msg.text = content
        return msg
    texts = []
    for j, part in enumerate(items(content, where)):
        at = f"{where}[{j}]"
        part = mapping(part, at)
        kind = part.get("type")
        if kind == "text":
            texts.append(string(part.get("text"), f"{at}.text"))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image if isinstance(image, str) else mapping(image, f"{at}.image_url").get("url")
            upload = from_url(string(url, f"{at}.image_url.url", empty=False), f"{at}.image_url.url")
            req.uploads.append(upload)
            msg.files.append(FileRef(f"{at}.image_url.url", upload_key=upload.key))
        elif kind == "file":
            file = mapping(part.get("file"), f"{at}.file")
            if file.get("file_id"):
                msg.files.append(FileRef(f"{at}.file.file_id", file_id=string(file["file_id"], f"{at}.file.file_id")))
            elif file.get("file_data"):
                data = string(file["file_data"], f"{at}.file.file_data")
                name = file.get("filename") if isinstance(file.get("filename"), str) else None
                if not data.startswith("data:"):
                    data = "data:application/octet-stream;base64," + data
                upload = from_url(data, f"{at}.file.file_data", images_only=False, filename=name)
                req.uploads.append(upload)
                msg.files.append(FileRef(f"{at}.file.file_data", upload_key=upload.key))
            else:
                raise fail(f"{at}.file", "needs file_id (a GigaChat file id) or file_data")
        elif kind == "input_audio":
            raise unsupported(f"{at}.type", "audio input parts (upload the audio as a file part instead)")
        else:
            raise bad_value(f"{at}.type", f"unknown content part type {kind!r}")
    msg.text = "\n".join(texts)
    return msg


def _messages(req: Request, raw: Any) -> list[Msg]:
    out: list[Msg] = []
    legacy_calls: dict[str, str] = {}  # legacy function name -> the id given to its latest call
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        msg = mapping(item, where)
        role = msg.get("role")
        if role in ("system", "developer"):
            out.append(Msg("system", where, _text_of(msg.get("content"), f"{where}.content")))
        elif role == "user":
            if msg.get("content") is None:
                raise fail(f"{where}.content", "required")
            out.append(_user(req, msg["content"], f"{where}.content"))
        elif role == "assistant":
            if msg.get("audio") is not None:
                raise unsupported(f"{where}.audio", "no audio")
            text = _text_of(msg.get("content"), f"{where}.content", refusals=True)
            if not text and isinstance(msg.get("refusal"), str):
                text = msg["refusal"]
            turn = Msg("assistant", where, text)
            for j, tc in enumerate(items(msg.get("tool_calls") or [], f"{where}.tool_calls")):
                at = f"{where}.tool_calls[{j}]"
                tc = mapping(tc, at)
                if tc.get("type", "function") != "function":
                    raise unsupported(f"{at}.type", f"{tc.get('type')!r} tool calls")
                fn = mapping(tc.get("function"), f"{at}.function")
                turn.calls.append(
                    Call(
                        string(tc.get("id"), f"{at}.id", empty=False),
                        string(fn.get("name"), f"{at}.function.name", empty=False),
                        parse_arguments(fn.get("arguments"), f"{at}.function.arguments"),
                    )
                )
            fc = msg.get("function_call")
            if fc is not None:
                fc = mapping(fc, f"{where}.function_call")
                name = string(fc.get("name"), f"{where}.function_call.name", empty=False)
                call_id = f"legacy-{i}"
                legacy_calls[name] = call_id
                turn.calls.append(
                    Call(call_id, name, parse_arguments(fc.get("arguments"), f"{where}.function_call.arguments"))
                )
            out.append(turn)
        elif role == "tool":
            call_id = string(msg.get("tool_call_id"), f"{where}.tool_call_id", empty=False)
            out.append(
                Msg(
                    "tool", where, call_id=call_id, result=result_json(_text_of(msg.get("content"), f"{where}.content"))
                )
            )
        elif role == "function":
            name = string(msg.get("name"), f"{where}.name", empty=False)
            if name not in legacy_calls:
                raise fail(where, f"function result for {name!r}, which no earlier assistant message called")
            content = msg.get("content")
            out.append(
                Msg(
                    "tool",
                    where,
                    call_id=legacy_calls.pop(name),
                    name=name,
                    result=result_json(content if content is not None else ""),
                )
            )
        else:
            raise bad_value(f"{where}.role", f"unknown role {role!r}")
    return out


# --------------------------------------------------------------------------------- answers


def _usage(completion: Completion) -> dict[str, Any] | None:
    usage = completion.usage
    if usage is None:
        return None
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.total or usage.prompt + usage.completion,
    }
    if usage.cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached}
    return out


def _message(choice: Choice, legacy: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.text if choice.text or not choice.calls else None,
        "refusal": None,
    }
    if choice.calls and legacy:
        call = choice.calls[0]
        message["function_call"] = {"name": call.name, "arguments": json_text(call.arguments)}
    elif choice.calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json_text(c.arguments)}}
            for c in choice.calls
        ]
    if choice.reasoning:
        message["reasoning_content"] = choice.reasoning
    if choice.files:
        message["gigachat_files"] = choice.files
    return message


def finish_reason(choice: Choice, legacy: bool = False) -> str:
    """GigaChat's finish reason in OpenAI's terms (``function_call`` for the legacy functions)."""
    kind = choice.kind
    return "function_call" if kind == "tool_calls" and legacy else kind


def _choice_json(choice: Choice, legacy: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": choice.index,
        "message": _message(choice, legacy),
        "logprobs": None,
        "finish_reason": finish_reason(choice, legacy),
    }
    if choice.lossy:
        out["gigachat_finish_reason"] = choice.finish
    return out


def completion_id(ctx: TranslateContext, seed: str) -> str:
    """The ``chatcmpl-...`` id of an answer."""
    return ctx.ids("chatcmpl-", seed)


def render_completion(completion: Completion, ctx: TranslateContext, legacy: bool = False) -> dict[str, Any]:
    """A neutral completion as an OpenAI ``chat.completion`` object."""
    out: dict[str, Any] = {
        "id": completion_id(ctx, completion.seed),
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [_choice_json(c, legacy) for c in completion.choices],
        "system_fingerprint": None,
    }
    usage = _usage(completion)
    if usage is not None:
        out["usage"] = usage
    return out


def chat_completion(call: GigaChatCall, body: Mapping[str, Any], ctx: TranslateContext) -> dict[str, Any]:
    """GigaChat's whole answer to ``call`` as an OpenAI ``chat.completion`` object."""
    completion = decode(call.api, mapping(body, "response"), ctx, call.request.stop)
    return render_completion(completion, ctx, call.request.legacy_functions)


def chat_completion_json(call: GigaChatCall, body: Mapping[str, Any], ctx: TranslateContext) -> bytes | None:
    """The common answer (v1; text only; finish stop or length; no stop sequences) rendered
    straight to the JSON bytes of :func:`chat_completion` (compact, non-ASCII kept), with no
    objects in between; None for any other answer (render it with :func:`chat_completion`)."""
    if call.api != "v1" or call.request.stop:
        return None
    raw_choices = body.get("choices")
    if type(raw_choices) is not list:
        return None
    parts = []
    for position, item in enumerate(raw_choices):
        if type(item) is not dict:
            return None
        msg = item.get("message")
        if type(msg) is not dict or msg.get("function_call") is not None or msg.get("reasoning_content"):
            return None
        finish = item.get("finish_reason")
        if finish is not None and finish != "stop" and finish != "length":
            return None
        text = msg.get("content") or ""
        index = item.get("index", position)
        if type(text) is not str or type(index) is not int:
            return None
        parts.append(
            f'{{"index":{index},"message":{{"role":"assistant","content":{encode_basestring(text)},'
            f'"refusal":null}},"logprobs":null,"finish_reason":"{finish or "stop"}"}}'
        )
    model = body.get("model") or ""
    usage = body.get("usage")
    if type(model) is not str or (usage is not None and type(usage) is not dict):
        return None
    created = ctx.timestamp(body.get("created"))
    head = (
        f'{{"id":{encode_basestring(completion_id(ctx, ctx.seed(model, created)))},"object":"chat.completion",'
        f'"created":{created},"model":{encode_basestring(model)},"choices":[{",".join(parts)}],'
        '"system_fingerprint":null'
    )
    if usage is None:
        return (head + "}").encode()
    prompt, completion, total, cached = (
        usage.get("prompt_tokens", 0),
        usage.get("completion_tokens", 0),
        usage.get("total_tokens", 0),
        usage.get("precached_prompt_tokens"),
    )
    if type(prompt) is not int or type(completion) is not int or type(total) is not int:
        return None
    total = total or prompt + completion
    tail = f',"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{total}'
    if cached is None:
        return f"{head}{tail}}}}}".encode()
    if type(cached) is not int:
        return None
    return f'{head}{tail},"prompt_tokens_details":{{"cached_tokens":{cached}}}}}}}'.encode()


class ChatCompletionStream:
    """GigaChat stream payloads in, ``chat.completion.chunk`` objects out, in OpenAI's order.

    Per choice: a first chunk with the role, content deltas, each tool call as a chunk with
    its index, id and name then one with its arguments, a chunk with the finish reason;
    with ``stream_options.include_usage``, every chunk has ``usage: null`` and a last chunk
    with empty choices carries the usage. End the HTTP stream with :data:`DONE`.
    """

    def __init__(self, call: GigaChatCall, ctx: TranslateContext) -> None:
        self.call = call
        self.ctx = ctx
        self.decoder = StreamDecoder(call.api, ctx, call.request.stop)
        self._legacy = call.request.legacy_functions
        self._include_usage = call.request.include_usage
        self._opened: set[int] = set()
        self._tool_index: dict[int, int] = {}
        self._head: dict[str, Any] = {}

    def feed(self, data: Mapping[str, Any], event: str | None = None) -> list[dict[str, Any]]:
        """One decoded GigaChat payload (and its SSE event name, for v2) -> chunks to send."""
        return self._render(self.decoder.feed(data, event))

    def close(self) -> list[dict[str, Any]]:
        """The GigaChat stream ended -> the last chunks (finish reasons not yet sent, usage)."""
        out = self._render(self.decoder.close())
        if self._include_usage:
            chunk = self._chunk([])
            chunk["usage"] = _usage(self.decoder.completion())
            out.append(chunk)
        return out

    def completion(self) -> dict[str, Any]:
        """What was streamed, as the non-streaming ``chat.completion`` would have it."""
        return render_completion(self.decoder.completion(), self.ctx, self._legacy)

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk = {**self._head, "choices": choices}
        if self._include_usage:
            chunk["usage"] = None
        return chunk

    def _delta(self, index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return self._chunk([{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}])

    def _open(self, index: int, delta: dict[str, Any], out: list[dict[str, Any]]) -> None:
        """The first chunk of a choice carries the role (with content "" unless it starts with a call)."""
        if index in self._opened:
            out.append(self._delta(index, delta))
            return
        self._opened.add(index)
        if "content" in delta or "reasoning_content" in delta:
            out.append(self._delta(index, {"role": "assistant", "content": ""}))
            out.append(self._delta(index, delta))
        else:
            out.append(self._delta(index, {"role": "assistant", "content": None, **delta}))

    def _render(self, events: list[Event]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, Started):
                self._head = {
                    "id": completion_id(self.ctx, event.seed),
                    "object": "chat.completion.chunk",
                    "created": event.created,
                    "model": event.model,
                    "system_fingerprint": None,
                }
            elif isinstance(event, TextDelta):
                self._open(event.choice, {"content": event.text}, out)
            elif isinstance(event, ReasoningDelta):
                self._open(event.choice, {"reasoning_content": event.text}, out)
            elif isinstance(event, CallDone):
                self._call(event, out)
            elif isinstance(event, Finished):
                choice = event.choice
                if choice.index not in self._opened:
                    self._opened.add(choice.index)
                    out.append(self._delta(choice.index, {"role": "assistant", "content": ""}))
                chunk = self._delta(choice.index, {}, finish_reason(choice, self._legacy))
                if choice.lossy:
                    chunk["choices"][0]["gigachat_finish_reason"] = choice.finish
                out.append(chunk)
        return out

    def _call(self, event: CallDone, out: list[dict[str, Any]]) -> None:
        call: Call = event.call
        arguments = json_text(call.arguments)
        if self._legacy:
            if event.position == 0:
                self._open(event.choice, {"function_call": {"name": call.name, "arguments": ""}}, out)
                out.append(self._delta(event.choice, {"function_call": {"arguments": arguments}}))
            return
        index = self._tool_index.get(event.choice, 0)
        self._tool_index[event.choice] = index + 1
        self._open(
            event.choice,
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            },
            out,
        )
        out.append(self._delta(event.choice, {"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}))
