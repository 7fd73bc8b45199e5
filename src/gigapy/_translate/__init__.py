"""OpenAI- and Anthropic-shaped requests and answers <-> GigaChat v1/v2: pure, sans-IO.

No I/O happens here (no sockets, threads, sleeps, clocks or random numbers of its own):
the caller sends the GigaChat call, uploads the files a request needs, keeps the response
store, and feeds GigaChat's answer back. Ids are derived from an injected seed (the
request id) and clock and id factory are injected (:class:`TranslateContext`).

One flow for every front end::

    plan = chat_request(body, options)          # or responses_request / messages_request
    ids = {u.key: upload(u) for u in plan.uploads}   # the caller's I/O, cached by content hash
    call = plan.finish(ids)                     # GigaChatCall: api ("v1"/"v2"), body, headers, notes
    answer = chat_completion(call, gigachat_body, ctx)           # whole answers
    stream = ChatCompletionStream(call, ctx); stream.feed(payload, event) ... stream.close()

Which GigaChat API a request goes to is decided per request (see ``_request``): v2 when it
gives tools (call ids, parallel calls, the built-in web search), v1 otherwise and whenever
``n > 1`` or ``parallel_tool_calls`` is false. ``docs/openai.md`` has every mapping table,
including the fate of every request parameter of each API.
"""

from ._answer import StreamPayloadError, finish_reason_from_openai
from ._common import IdFactory, TranslateContext, UnsupportedParameterError, derived_id, request_json
from ._options import DEFAULT_OPTIONS, TranslateOptions
from ._request import GigaChatCall, Plan, choose_api
from ._uploads import PendingUpload, check_media
from .anthropic import MESSAGES_PARAMETERS, MessagesStream, message_response, messages_request
from .chat import PARAMETERS, ChatCompletionStream, chat_completion, chat_completion_json, chat_request
from .embeddings import EMBEDDING_PARAMETERS, embeddings_request, embeddings_response, models_response
from .errors import (
    ErrorReply,
    anthropic_error,
    anthropic_error_from_exception,
    openai_error,
    openai_error_from_exception,
)
from .framing import DONE, data_frame, named_frame
from .responses import (
    RESPONSES_PARAMETERS,
    MemoryResponseStore,
    ResponsesPlan,
    ResponsesStream,
    ResponseStore,
    responses_request,
    responses_response,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "DONE",
    "EMBEDDING_PARAMETERS",
    "MESSAGES_PARAMETERS",
    "PARAMETERS",
    "RESPONSES_PARAMETERS",
    "ChatCompletionStream",
    "ErrorReply",
    "GigaChatCall",
    "IdFactory",
    "MemoryResponseStore",
    "MessagesStream",
    "PendingUpload",
    "Plan",
    "ResponseStore",
    "ResponsesPlan",
    "ResponsesStream",
    "StreamPayloadError",
    "TranslateContext",
    "TranslateOptions",
    "UnsupportedParameterError",
    "anthropic_error",
    "anthropic_error_from_exception",
    "chat_completion",
    "chat_completion_json",
    "chat_request",
    "check_media",
    "choose_api",
    "data_frame",
    "derived_id",
    "embeddings_request",
    "embeddings_response",
    "finish_reason_from_openai",
    "message_response",
    "messages_request",
    "models_response",
    "named_frame",
    "openai_error",
    "openai_error_from_exception",
    "request_json",
    "responses_request",
    "responses_response",
]
