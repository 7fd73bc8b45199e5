"""The aiohttp application: every route, on both path styles (classic ``/api/v1`` and new ``/v1``)."""

from __future__ import annotations

from aiohttp import web

from . import _admin
from ._assistants import create_assistant, delete_assistant, delete_assistant_file, list_assistants, modify_assistant
from ._auth import oauth, user_token
from ._batches import create_batch, get_batches
from ._chat import chat_completions
from ._chat_v2 import chat_completions_v2
from ._config import EmulatorConfig
from ._embeddings import embeddings, tokens_count
from ._files import delete_file, file_content, get_file, list_files, upload
from ._http import error_response
from ._misc import ai_check, balance, convert_functions, filter_check, validate_function
from ._models import get_model, list_models
from ._pipeline import OAUTH, STATE_KEY, TOKEN, Handler, endpoint
from ._state import State
from ._threads import (
    add_messages,
    create_thread,
    delete_thread,
    get_messages,
    get_run,
    list_threads,
    rerun_messages,
    retrieve_threads,
    run_messages,
    run_thread,
)

#: (method, path under the version prefix, handler, route name used in stats)
V1_ROUTES: tuple[tuple[str, str, Handler, str], ...] = (
    ("GET", "/models", list_models, "models"),
    ("GET", "/models/{model}", get_model, "model"),
    ("POST", "/chat/completions", chat_completions, "chat"),
    ("POST", "/embeddings", embeddings, "embeddings"),
    ("POST", "/tokens/count", tokens_count, "tokens_count"),
    ("GET", "/balance", balance, "balance"),
    ("POST", "/files", upload, "files_upload"),
    ("GET", "/files", list_files, "files"),
    ("GET", "/files/{file}", get_file, "file"),
    ("POST", "/files/{file}/delete", delete_file, "file_delete"),
    ("GET", "/files/{file}/content", file_content, "file_content"),
    ("POST", "/ai/check", ai_check, "ai_check"),
    ("POST", "/functions/validate", validate_function, "functions_validate"),
    ("POST", "/functions/convert", convert_functions, "functions_convert"),
    ("POST", "/filter/check", filter_check, "filter_check"),
    ("POST", "/batches", create_batch, "batches_create"),
    ("GET", "/batches", get_batches, "batches"),
    ("GET", "/assistants", list_assistants, "assistants"),
    ("POST", "/assistants", create_assistant, "assistants_create"),
    ("POST", "/assistants/modify", modify_assistant, "assistants_modify"),
    ("POST", "/assistants/delete", delete_assistant, "assistants_delete"),
    ("POST", "/assistants/files/delete", delete_assistant_file, "assistants_files_delete"),
    ("GET", "/threads", list_threads, "threads"),
    ("POST", "/threads", create_thread, "threads_create"),
    ("POST", "/threads/retrieve", retrieve_threads, "threads_retrieve"),
    ("POST", "/threads/delete", delete_thread, "threads_delete"),
    ("GET", "/threads/messages", get_messages, "threads_messages"),
    ("POST", "/threads/messages", add_messages, "threads_messages_add"),
    ("GET", "/threads/run", get_run, "threads_run_get"),
    ("POST", "/threads/run", run_thread, "threads_run"),
    ("POST", "/threads/messages/run", run_messages, "threads_messages_run"),
    ("POST", "/threads/messages/rerun", rerun_messages, "threads_messages_rerun"),
)
V1_PREFIXES = ("/api/v1", "/v1")
V2_PREFIXES = ("/api/v2", "/v2")


async def _not_found(request: web.Request) -> web.Response:
    return error_response(404, "Not Found")


async def _stop_background(app: web.Application) -> None:
    app[STATE_KEY].batches.cancel_all()


def create_app(config: EmulatorConfig | None = None, *, state: State | None = None) -> web.Application:
    """Build the emulator application; ``state`` lets a restart keep tokens, files and batches."""
    config = config or EmulatorConfig()
    app = web.Application(client_max_size=config.max_body_bytes)
    app[STATE_KEY] = state if state is not None else State(config)
    router = app.router
    for prefix in V1_PREFIXES:
        for method, path, handler, name in V1_ROUTES:
            router.add_route(method, prefix + path, endpoint(handler, name))
    for prefix in V2_PREFIXES:
        router.add_post(prefix + "/chat/completions", endpoint(chat_completions_v2, "chat_v2"))
    router.add_post("/api/v2/oauth", endpoint(oauth, "oauth", OAUTH))
    router.add_post("/api/v1/token", endpoint(user_token, "token", TOKEN))
    _admin.add_routes(app)
    router.add_route("*", "/{tail:.*}", _not_found)
    app.on_cleanup.append(_stop_background)
    return app
