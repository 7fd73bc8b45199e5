"""The ``/batches`` API: JSONL tasks, their status and their output."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._core import params as P
from .._core.flow import (
    Blocking,
    Flow,
    Response,
    Sleep,
    dumps,
    missing_error,
    parse_model,
)
from ..errors import APITimeoutError, InvalidArgumentError
from ..types.batches import Batch, Batches, BatchResult
from .base import ClientCore, RequestOptions
from .files import download_file

BATCH_METHODS = {
    "chat_completions": "chat_completions",
    "chat": "chat_completions",
    "embedder": "embedder",
    "embeddings": "embedder",
}


def batch_jsonl(requests: Any, method: str, default_model: str) -> bytes:
    """Check batch input and return it as JSONL lines ``{"id": ..., "request": {...}}``.

    ``requests`` is a JSONL path, JSONL bytes, or an iterable of dicts. A request without
    ``model`` gets the client's model (chat) or ``Embeddings`` (embedder).
    """
    if isinstance(requests, (str, Path)):
        path = Path(requests)
        if not path.is_file():
            raise InvalidArgumentError("requests", f"file not found: {path}")
        requests = path.read_bytes()
    if isinstance(requests, (bytes, bytearray)):
        requests = _jsonl_items(bytes(requests))
    elif not isinstance(requests, Iterable):
        raise InvalidArgumentError("requests", "expected a JSONL path, JSONL bytes or a list of {id, request} dicts")
    seen: set[str] = set()
    model = default_model if method == "chat_completions" else "Embeddings"
    lines = [_check_batch_item(item, i, method, seen, model) for i, item in enumerate(requests)]
    if not lines:
        raise InvalidArgumentError("requests", "the batch is empty")
    return b"".join(dumps(line, f"requests[{i}]") + b"\n" for i, line in enumerate(lines))


def _jsonl_items(data: bytes) -> list[Any]:
    items = []
    for i, raw in enumerate(data.splitlines()):
        if raw.strip():
            try:
                items.append(json.loads(raw))
            except ValueError:
                raise InvalidArgumentError(f"requests line {i + 1}", "is not valid JSON") from None
    return items


def _check_batch_item(item: Any, i: int, method: str, seen: set[str], model: str) -> dict[str, Any]:
    where = f"requests[{i}]"
    if not isinstance(item, Mapping):
        raise InvalidArgumentError(where, "expected {'id': ..., 'request': {...}}")
    rid, request = item.get("id"), item.get("request")
    if not isinstance(rid, str) or not rid:
        raise InvalidArgumentError(f"{where}.id", "required: a non-empty string unique in the batch")
    if rid in seen:
        raise InvalidArgumentError(f"{where}.id", f"duplicate id {rid!r}")
    seen.add(rid)
    if not isinstance(request, Mapping):
        raise InvalidArgumentError(f"{where}.request", "required: the body of /chat/completions or /embeddings")
    body = dict(request)
    if method == "chat_completions":
        body["messages"] = P.messages_v1(request.get("messages"), f"{where}.request.messages")
    else:
        body["input"] = P.strings(request.get("input"), f"{where}.request.input")
    body.setdefault("model", model)
    return {"id": rid, "request": body}


def create_batch(core: ClientCore, requests: Any, method: str, options: RequestOptions) -> Flow[Batch]:
    """``POST /batches?method=...`` with a JSONL body."""
    wire = BATCH_METHODS.get(method)
    if wire is None:
        raise InvalidArgumentError("method", f"expected 'chat_completions' or 'embedder', got {method!r}")
    body: bytes = yield Blocking(lambda: batch_jsonl(requests, wire, core.settings.model))
    req = core.request(
        "POST", "/batches", options, content=body, content_type="application/octet-stream", params={"method": wire}
    )
    return (yield from core.call(req, lambda r: parse_model(Batch, r)))


def _batches_from(response: Response) -> list[Batch]:
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    # the other shapes parsed as the usual one (ASCII escapes: text we could not send may come
    # back); the response itself keeps the body the server sent
    if isinstance(data, list):
        response = dataclasses.replace(response, content=json.dumps({"batches": data}).encode())
    elif isinstance(data, dict) and "batches" not in data and "id" in data:
        response = dataclasses.replace(response, content=json.dumps({"batches": [data]}).encode())
    batches = parse_model(Batches, response)
    for b in batches.batches:
        b._meta = batches._meta
    return batches.batches


def get_batches(core: ClientCore, options: RequestOptions) -> Flow[list[Batch]]:
    """``GET /batches``."""
    req = core.request("GET", "/batches", options, idempotent=True, content_type="application/json")
    return core.call(req, _batches_from)


def get_batch(core: ClientCore, batch_id: str, options: RequestOptions) -> Flow[Batch]:
    """``GET /batches?batch_id=...``."""
    req = core.request(
        "GET",
        "/batches",
        options,
        idempotent=True,
        content_type="application/json",
        params={"batch_id": P.text(batch_id, "batch_id")},
    )
    response = yield from core.send(req)
    found = [b for b in _batches_from(response) if b.id == batch_id]
    if not found:
        raise missing_error(response, f"Batch task not found: no batch {batch_id!r} in the answer")
    return found[0]


def parse_batch_output(data: bytes) -> list[BatchResult]:
    """Read a batch output file. Tolerates the shapes seen in the wild:
    ``{id, response: {status_code, body}}``, ``{id, response: body}``, ``{id, result}``,
    ``{id, body}`` and ``{id, error}``."""
    results = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(item, dict) or "id" not in item:
            continue
        status: int | None = None
        body: Any = None
        resp = item.get("response", item.get("result", item.get("body")))
        if isinstance(resp, dict) and "body" in resp and ("status_code" in resp or "status" in resp):
            raw_status = resp.get("status_code", resp.get("status"))
            status = raw_status if isinstance(raw_status, int) else None
            body = resp.get("body")
        elif isinstance(resp, dict):
            body = resp
        error = item.get("error")
        if status is not None and status >= 400 and error is None:
            error = body if isinstance(body, dict) else {"status": status, "message": str(body)}
            body = None
        results.append(
            BatchResult(
                id=str(item["id"]),
                status_code=status,
                body=body if isinstance(body, dict) else None,
                error=error if isinstance(error, dict) else None,
            )
        )
    return results


def get_batch_results(core: ClientCore, batch: str | Batch, options: RequestOptions) -> Flow[list[BatchResult]]:
    """The results of a finished batch (downloads and parses its output file)."""
    current = batch if isinstance(batch, Batch) else (yield from get_batch(core, batch, options))
    if not current.output_file_id:
        raise InvalidArgumentError("batch", f"batch {current.id} has no results yet (status={current.status})")
    data = yield from download_file(core, current.output_file_id, None, options)
    assert isinstance(data, bytes)
    return parse_batch_output(data)


def wait_for_batch(
    core: ClientCore, batch_id: str, poll_interval: float, max_wait: float | None, options: RequestOptions
) -> Flow[Batch]:
    """Poll a batch until it is done; raises APITimeoutError after ``max_wait`` seconds."""
    P.number(poll_interval, "poll_interval", low=0, low_open=True)
    if max_wait is not None:
        P.number(max_wait, "max_wait", low=0, low_open=True)
    clock = core.policy.clock
    deadline = None if max_wait is None else clock.monotonic() + max_wait
    while True:
        batch = yield from get_batch(core, batch_id, options)
        if batch.is_done:
            return batch
        if deadline is not None and clock.monotonic() + poll_interval > deadline:
            raise APITimeoutError(f"batch {batch_id} still {batch.status} after {max_wait} s", phase="batch")
        yield Sleep(poll_interval)
