"""GigaChat as a Ray Data stage: rows in, rows out with answer, usage and error columns.

Shaped like ``ray.data.llm``'s processors: a config, a processor built from it (with optional
``preprocess`` / ``postprocess`` row functions), and the callable class behind it, ready for
``Dataset.map_batches``::

    import ray
    from gigapy.ray import GigaChatConfig, build_processor

    config = GigaChatConfig(
        model="GigaChat-2-Max",
        params={"temperature": 0.2, "max_tokens": 200},
        coordinator="redis://redis.internal:6379/0",  # one account's quota for every actor
        concurrency=4,  # actors
        requests_per_actor=8,  # requests in flight in each actor
    )
    processor = build_processor(config, preprocess=lambda row: {"prompt": f"Summarize: {row['text']}"})
    answers = processor(ray.data.read_parquet("texts.parquet"))

Every row comes back once, with the columns :data:`COLUMNS` added: a failed request (bad input,
an API error, a timeout) is that row's ``status="error"`` with ``error`` and ``error_type``, never
a failed task. Each actor runs one event loop (Ray's, for async callable classes) with one
client, at most ``requests_per_actor`` requests at once. The ``ray`` extra installs Ray Data:
``pip install 'gigapy[ray]'``; ``import gigapy.ray`` itself does not import Ray.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import BatchJobError, ConfigurationError, InvalidArgumentError

if TYPE_CHECKING:
    from ._clients.async_client import AsyncGigaChat
    from .types.chat import ChatCompletion

__all__ = ["COLUMNS", "GigaChatConfig", "GigaChatUDF", "Processor", "build_processor"]

#: The columns every output row gets, in this order.
COLUMNS = (
    "answer",
    "finish_reason",
    "model",
    "request_id",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "status",
    "status_code",
    "error",
    "error_type",
    "batch_id",
)
_AUTH_KEYS = frozenset({"credentials", "user", "password", "access_token", "cert_file", "key_file"})
_INT_COLUMNS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "status_code"})


@dataclass(frozen=True)
class GigaChatConfig:
    """What a GigaChat stage does and where. Checked when it is made (bad fields raise
    :class:`~gigapy.errors.InvalidArgumentError` naming the field, before anything is sent).

    - ``model``: the chat model (None: the client's, ``GIGACHAT_MODEL`` or ``GigaChat``).
    - ``prompt_column``: a string (one user message) or a list of ``{"role", "content"}`` messages;
      ``system`` is put before it as a system message when given.
    - ``params``: request fields for every row (``temperature``, ``max_tokens``, ``top_p``, ...);
      a dict in ``params_column`` overrides them for its row (its None values are ignored).
    - ``settings``: client settings (``credentials``, ``scope``, ``base_url``, ``auth_url``, ...);
      ``profile`` reads a profile of ``gigapy profile`` here, on the driver. Both are shipped to
      the actors with the config; settings left out come from each actor's ``GIGACHAT_*``
      variables (Ray's ``runtime_env={"env_vars": ...}`` sets them). Never shown in the repr.
    - ``coordinator``: ``redis://...`` or ``file:///dir`` (one host): every actor shares one
      token and the account's concurrency (see the fleet guide). Without it each actor only
      bounds itself, so the quota is ``concurrency * requests_per_actor``.
    - ``concurrency``: actors; ``requests_per_actor``: requests in flight in each; ``batch_size``:
      rows per Ray batch; ``num_cpus``: Ray CPUs reserved per actor (the work is waiting on I/O).
    - ``via_batches_api``: send each Ray batch as one ``/batches`` job (pay-as-you-go CORP scope)
      and wait for it (``batch_poll_interval``, ``batch_max_wait`` seconds). With a shared
      coordinator a retried Ray task finds the job it submitted instead of paying twice.
    - ``run_id``: names this run in the coordinator (a fresh one per config).
    """

    model: str | None = None
    prompt_column: str = "prompt"
    system: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    params_column: str | None = "params"
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)
    profile: str | None = None
    coordinator: str | None = field(default=None, repr=False)
    concurrency: int = 2
    requests_per_actor: int = 8
    batch_size: int = 64
    num_cpus: float = 0.5
    via_batches_api: bool = False
    batch_poll_interval: float = 5.0
    batch_max_wait: float | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        _text(self.prompt_column, "prompt_column")
        if self.params_column is not None:
            _text(self.params_column, "params_column")
        if self.model is not None:
            _text(self.model, "model")
        if self.system is not None and not isinstance(self.system, str):
            raise InvalidArgumentError("system", f"expected a string or None, got {type(self.system).__name__}")
        if not isinstance(self.params, Mapping):
            raise InvalidArgumentError("params", f"expected a dict of request fields, got {type(self.params).__name__}")
        for name in ("messages", "stream"):
            if name in self.params:
                raise InvalidArgumentError(f"params.{name}", "is set by the stage (messages come from prompt_column)")
        if not isinstance(self.settings, Mapping):
            raise InvalidArgumentError(
                "settings", f"expected a dict of client settings, got {type(self.settings).__name__}"
            )
        for name, low in (("concurrency", 1), ("requests_per_actor", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidArgumentError(name, f"must be an integer >= {low}, got {value!r}")
        _positive(self.num_cpus, "num_cpus", allow_zero=True)
        _positive(self.batch_poll_interval, "batch_poll_interval")
        if self.batch_max_wait is not None:
            _positive(self.batch_max_wait, "batch_max_wait")
        _text(self.run_id, "run_id")
        resolved: dict[str, Any] = {}
        if self.profile is not None:
            resolved.update(_load_profile(_text(self.profile, "profile")))
        resolved.update(self.settings)
        if self.model is not None:
            resolved["model"] = self.model
        if self.coordinator is not None:
            resolved["coordinator"] = _text(self.coordinator, "coordinator")
        from ._config import load_settings

        try:  # every setting checked here, on the driver, before a single actor starts
            try:
                load_settings(resolved)
            except ConfigurationError as exc:
                if exc.field != "credentials" or _AUTH_KEYS & set(resolved):
                    raise
                # no credentials here: the actors may have theirs (GIGACHAT_* on the nodes); the rest is checked
                load_settings({**resolved, "access_token": "placeholder"})
        except ConfigurationError as exc:
            raise ConfigurationError(f"settings.{exc.field}", exc.reason) from None
        object.__setattr__(self, "_resolved", resolved)

    def client_settings(self) -> dict[str, Any]:
        """Keyword arguments for the actors' ``AsyncGigaChat`` (secrets included: do not print)."""
        resolved: Mapping[str, Any] = self.__dict__["_resolved"]
        return dict(resolved)

    def map_batches_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``ds.map_batches(GigaChatUDF, **config.map_batches_kwargs())``."""
        from ray.data import ActorPoolStrategy

        return {
            "fn_constructor_kwargs": {"config": self},
            "batch_size": self.batch_size,
            "batch_format": "pyarrow",
            "compute": ActorPoolStrategy(size=self.concurrency),
            "num_cpus": self.num_cpus,
        }


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(name, f"expected a non-empty string, got {value!r}")
    return value


def _positive(value: Any, name: str, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgumentError(name, f"must be a {'' if allow_zero else 'positive '}number, got {value!r}")


def _load_profile(name: str) -> dict[str, Any]:
    try:
        from .cli._profiles import load_profile
    except ImportError:
        raise ConfigurationError("profile", "reading profiles needs the cli extra: pip install 'gigapy[cli]'") from None
    from .cli._common import CliError

    try:
        return dict(load_profile(name))
    except CliError as exc:
        raise ConfigurationError("profile", str(exc)) from None


class GigaChatUDF:
    """The callable class for ``Dataset.map_batches``: one client and one event loop per actor,
    at most ``config.requests_per_actor`` requests in flight, the :data:`COLUMNS` added to every row.

    ``ds.map_batches(GigaChatUDF, **config.map_batches_kwargs())`` runs it on Ray's actors;
    ``await GigaChatUDF(config).process(batch)`` runs one batch (a ``pyarrow.Table``, a pandas
    DataFrame or a dict of columns) in your own event loop.
    """

    def __init__(self, config: GigaChatConfig) -> None:
        if not isinstance(config, GigaChatConfig):
            raise InvalidArgumentError("config", f"expected a GigaChatConfig, got {type(config).__name__}")
        self.config = config
        self._client: AsyncGigaChat | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"GigaChatUDF({self.config!r})"

    async def __call__(self, batch: Any) -> AsyncIterator[Any]:
        """Ray's entry point (an async generator: Ray runs several batches at once on the actor)."""
        yield await self.process(batch)

    async def process(self, batch: Any) -> Any:
        """One batch in, the same batch with the answer columns out (same format, same row order)."""
        n, column = _reader(batch)
        prompts = column(self.config.prompt_column)
        params = column(self.config.params_column) if self.config.params_column else None
        rows = [
            (prompts[i] if prompts is not None else _MISSING, params[i] if params is not None else None)
            for i in range(n)
        ]
        if self.config.via_batches_api:
            results = await self._via_batches(rows)
        else:
            results = list(await asyncio.gather(*(self._one(prompt, extra) for prompt, extra in rows)))
        return _with_columns(batch, results)

    async def aclose(self) -> None:
        """Close this actor's client (Ray ends actors without it; the connections close with them)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # --- one request --------------------------------------------------------------------------

    def _prepare(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (another caller's): new gate, new client
            self._loop, self._client = loop, None
            self._gate = asyncio.Semaphore(self.config.requests_per_actor)

    def _client_now(self) -> AsyncGigaChat:
        if self._client is None:
            from ._clients.async_client import AsyncGigaChat

            self._client = AsyncGigaChat(**self.config.client_settings())
        return self._client

    def _request(self, prompt: Any, extra: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The messages and fields of one row (InvalidArgumentError names what is wrong)."""
        name = self.config.prompt_column
        if prompt is _MISSING:
            raise InvalidArgumentError(name, f"the row has no {name!r} column")
        if isinstance(prompt, str):
            if not prompt.strip():
                raise InvalidArgumentError(name, "is empty")
            messages = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, Sequence) and not isinstance(prompt, (bytes, bytearray)) and prompt:
            messages = [_plain(m) for m in prompt]
            if not all(isinstance(m, Mapping) for m in messages):
                raise InvalidArgumentError(name, "expected a string or a list of {'role', 'content'} messages")
        else:
            raise InvalidArgumentError(name, f"expected a string or a list of messages, got {prompt!r}")
        if self.config.system is not None and not (messages and messages[0].get("role") == "system"):
            messages.insert(0, {"role": "system", "content": self.config.system})
        fields = dict(self.config.params)
        if extra is not None:
            where = self.config.params_column or "params"
            if not isinstance(extra, Mapping):
                raise InvalidArgumentError(where, f"expected a dict of request fields, got {extra!r}")
            for key, value in extra.items():
                if key in ("messages", "stream"):
                    raise InvalidArgumentError(f"{where}.{key}", "is set by the stage")
                if value is not None:
                    fields[key] = _plain(value)
        return messages, fields

    async def _one(self, prompt: Any, extra: Any) -> dict[str, Any]:
        self._prepare()
        assert self._gate is not None
        async with self._gate:
            try:
                messages, fields = self._request(prompt, extra)
                completion = await self._client_now().completion(messages, **fields)
            except Exception as exc:  # every failure is this row's error columns, never the task's
                return _failure(exc)
            return _answer(completion)

    # --- the /batches API ---------------------------------------------------------------------

    async def _via_batches(self, rows: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
        from ._ops.batches import batch_jsonl

        self._prepare()
        results: list[dict[str, Any] | None] = [None] * len(rows)
        items: list[dict[str, Any]] = []
        index_of: dict[str, int] = {}
        try:
            client = self._client_now()
            model = client._core.settings.model
        except Exception as exc:
            return [_failure(exc) for _ in rows]
        for i, (prompt, extra) in enumerate(rows):
            try:
                messages, fields = self._request(prompt, extra)
                item: dict[str, Any] = {"id": f"row-{i}", "request": {**fields, "messages": messages}}
                batch_jsonl([item], "chat_completions", model)  # the service's checks, row by row
            except Exception as exc:
                results[i] = _failure(exc)
                continue
            items.append(item)
            index_of[f"row-{i}"] = i
        if items:
            try:
                answered = await self._run_batch(client, items)
            except Exception as exc:
                answered = {item["id"]: _failure(exc) for item in items}
            for row_id, i in index_of.items():
                results[i] = answered[row_id]
        return [r if r is not None else _failure(RuntimeError("no result")) for r in results]

    async def _run_batch(self, client: AsyncGigaChat, items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        assert self._gate is not None
        digest = hashlib.sha256(json.dumps(items, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        key = f"ray-batches:{self.config.run_id}:{digest}"
        store = _shared_coordinator(self.config.coordinator)
        batch_id = await asyncio.to_thread(store.value, key) if store is not None else None
        if batch_id is None:
            async with self._gate:
                batch = await client.create_batch(items, method="chat_completions")
            batch_id = batch.id
            if store is not None:  # a retried Ray task (its actor died) polls this job instead of paying twice
                await asyncio.to_thread(store.set_value, key, batch_id)
        done = await client.wait_for_batch(
            batch_id, poll_interval=self.config.batch_poll_interval, max_wait=self.config.batch_max_wait
        )
        if done.status != "completed" or not done.output_file_id:
            failed = BatchJobError(f"batch {batch_id} ended {done.status}")
            return {item["id"]: _failure(failed, batch_id) for item in items}
        by_id = {r.id: r for r in await client.get_batch_results(done)}
        out: dict[str, dict[str, Any]] = {}
        for item in items:
            found = by_id.get(item["id"])
            if found is None:
                out[item["id"]] = _failure(BatchJobError(f"batch {batch_id} has no result for this row"), batch_id)
            elif found.ok and found.body is not None:
                out[item["id"]] = _answer_body(found.body, batch_id)
            else:
                error = found.error or {}
                message = str(error.get("message") or error.get("error") or error or "failed")
                row = _failure(BatchJobError(message), batch_id)
                row["status_code"] = found.status_code if found.status_code is not None else _int(error.get("status"))
                out[item["id"]] = row
        return out


def _shared_coordinator(url: str | None) -> Any:
    if url is None:
        return None
    from .coordinator import shared
    from .coordinator._hook import split_limit

    coordinator = shared(split_limit(url)[0])
    return coordinator if coordinator.shared else None


# --- rows and columns ---------------------------------------------------------------------------

_MISSING: Any = object()


def _plain(value: Any) -> Any:
    """Plain Python values from what Arrow, pandas and numpy hand over."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    return _plain(tolist()) if callable(tolist) else value


def _reader(batch: Any) -> tuple[int, Callable[[str], list[Any] | None]]:
    """The batch's row count and a column getter (None for a column it lacks)."""
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - Ray Data depends on pyarrow
        pa = None
    if pa is not None and isinstance(batch, pa.Table):
        table = batch

        def arrow(name: str) -> list[Any] | None:
            return table.column(name).to_pylist() if name in table.column_names else None

        return table.num_rows, arrow
    if isinstance(batch, Mapping):
        lengths = {len(v) for v in batch.values()}
        if len(lengths) > 1:
            raise InvalidArgumentError("batch", f"columns of different lengths: {sorted(lengths)}")
        mapping = batch

        def plain(name: str) -> list[Any] | None:
            return [_plain(v) for v in mapping[name]] if name in mapping else None

        return (lengths.pop() if lengths else 0), plain
    columns = getattr(batch, "columns", None)
    if columns is not None and hasattr(batch, "to_dict"):  # a pandas DataFrame
        frame = batch

        def pandas(name: str) -> list[Any] | None:
            return [_plain(v) for v in frame[name].tolist()] if name in list(columns) else None

        return len(frame), pandas
    raise InvalidArgumentError("batch", f"expected a pyarrow Table, a pandas DataFrame or a dict, got {type(batch)}")


def _with_columns(batch: Any, results: list[dict[str, Any]]) -> Any:
    values = {name: [r.get(name) for r in results] for name in COLUMNS}
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover
        pa = None
    if pa is not None and isinstance(batch, pa.Table):
        table = batch
        for name in COLUMNS:
            kind = pa.int64() if name in _INT_COLUMNS else pa.string()
            array = pa.array(values[name], type=kind)
            if name in table.column_names:  # a rerun over its own output: the new answer wins
                table = table.set_column(table.column_names.index(name), name, array)
            else:
                table = table.append_column(name, array)
        return table
    if isinstance(batch, Mapping):
        import numpy as np

        out = dict(batch)
        for name in COLUMNS:
            out[name] = np.array(values[name], dtype=object)
        return out
    frame = batch.copy()
    for name in COLUMNS:
        frame[name] = values[name]
    return frame


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _answer(completion: ChatCompletion) -> dict[str, Any]:
    usage = completion.usage
    return {
        "answer": completion.text,
        "finish_reason": completion.finish_reason,
        "model": completion.model,
        "request_id": completion.request_id,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "total_tokens": usage.total_tokens if usage else None,
        "cached_tokens": usage.precached_prompt_tokens if usage else None,
        "status": "ok",
    }


def _answer_body(body: Mapping[str, Any], batch_id: str) -> dict[str, Any]:
    def part(value: Any) -> Mapping[str, Any]:
        return value if isinstance(value, Mapping) else {}

    choices = body.get("choices")
    first = part(choices[0] if isinstance(choices, list) and choices else None)
    message, usage = part(first.get("message")), part(body.get("usage"))
    return {
        "answer": str(message.get("content") or ""),
        "finish_reason": first.get("finish_reason"),
        "model": body.get("model"),
        "request_id": body.get("id") if isinstance(body.get("id"), str) else None,
        "prompt_tokens": _int(usage.get("prompt_tokens")),
        "completion_tokens": _int(usage.get("completion_tokens")),
        "total_tokens": _int(usage.get("total_tokens")),
        "cached_tokens": _int(usage.get("precached_prompt_tokens")),
        "status": "ok",
        "batch_id": batch_id,
    }


def _failure(exc: BaseException, batch_id: str | None = None) -> dict[str, Any]:
    return {
        "status": "error",
        "status_code": _int(getattr(exc, "status_code", None)),
        "error": str(exc) or type(exc).__name__,
        "error_type": type(exc).__name__,
        "request_id": getattr(exc, "request_id", None),
        "batch_id": batch_id,
    }


# --- the processor --------------------------------------------------------------------------------

RowFn = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Processor:
    """``preprocess`` (a row function), the GigaChat stage, ``postprocess``: ``processor(ds)`` is
    the dataset with the answers (lazy, as Ray datasets are)."""

    config: GigaChatConfig
    preprocess: RowFn | None = None
    postprocess: RowFn | None = None
    preprocess_map_kwargs: Mapping[str, Any] = field(default_factory=dict)
    postprocess_map_kwargs: Mapping[str, Any] = field(default_factory=dict)
    map_batches_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, dataset: Any) -> Any:
        """The stages applied to ``dataset`` (a ``ray.data.Dataset``)."""
        if self.preprocess is not None:
            dataset = dataset.map(self.preprocess, **self.preprocess_map_kwargs)
        dataset = dataset.map_batches(GigaChatUDF, **{**self.config.map_batches_kwargs(), **self.map_batches_kwargs})
        if self.postprocess is not None:
            dataset = dataset.map(self.postprocess, **self.postprocess_map_kwargs)
        return dataset


def build_processor(
    config: GigaChatConfig,
    *,
    preprocess: RowFn | None = None,
    postprocess: RowFn | None = None,
    preprocess_map_kwargs: Mapping[str, Any] | None = None,
    postprocess_map_kwargs: Mapping[str, Any] | None = None,
    map_batches_kwargs: Mapping[str, Any] | None = None,
) -> Processor:
    """A :class:`Processor` for ``config``. ``preprocess`` turns an input row into one with the
    prompt column (and optionally the params column); ``postprocess`` shapes each answered row
    (``{**row, ...}`` keeps every column). The ``*_map_kwargs`` go to Ray (``num_cpus``, ...)."""
    if not isinstance(config, GigaChatConfig):
        raise InvalidArgumentError("config", f"expected a GigaChatConfig, got {type(config).__name__}")
    for name, fn in (("preprocess", preprocess), ("postprocess", postprocess)):
        if fn is not None and not callable(fn):
            raise InvalidArgumentError(name, f"expected a function of a row, got {fn!r}")
    return Processor(
        config,
        preprocess,
        postprocess,
        dict(preprocess_map_kwargs or {}),
        dict(postprocess_map_kwargs or {}),
        dict(map_batches_kwargs or {}),
    )
