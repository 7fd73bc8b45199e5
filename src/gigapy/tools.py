"""Function calling made easy: ``client.run_tools(messages, tools=[fn, ...])``.

The loop asks the model, runs the functions it calls (sync or async), sends the results
back as JSON (the service rejects anything else) and stops at the first answer without a
function call, or raises :class:`~gigapy.errors.ToolLoopError` after ``max_steps``.
Arguments the model produced are validated against the function's signature first; a
validation error or an exception in the function is reported back to the model as
``{"error": ...}`` so it can correct itself (and is recorded in ``ToolRun.calls``).
It works on v1 (``client.run_tools``) and v2 (``client.v2.run_tools``); on v2 the model may ask
for several calls at once (``parallel_tool_calls``), and each result carries its call's ``id``.
The functions' schemas follow the client's ``schema_dialect`` (or ``schema_dialect=`` per call).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ._core import params as P
from ._core.flow import Flow, Invoke, InvokeFailed
from ._core.wire import json_error
from .errors import InvalidArgumentError, ToolLoopError
from .schema import FunctionSchema, arguments_model, function_schema


class Tool:
    """A Python function the model may call, with its GigaChat schema.

    ``dialect`` fixes its schema's dialect ("reduced" or "full"); by default the run's applies.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        dialect: str | None = None,
    ) -> None:
        if not callable(fn):
            raise InvalidArgumentError("tools", f"expected a function, got {fn!r}")
        if dialect is not None:
            P.schema_dialect(dialect, "dialect")
        self.fn = fn
        self.dialect = dialect
        self._naming = {"name": name, "description": description}
        self.schema: FunctionSchema = function_schema(
            fn, name=name, description=description, dialect=dialect or "reduced"
        )
        self._schemas = {self.schema_dialect: self.schema}
        self.arguments = arguments_model(fn)

    @property
    def schema_dialect(self) -> str:
        """The dialect of ``schema``."""
        return self.dialect or "reduced"

    @property
    def name(self) -> str:
        """The function's name as the model sees it."""
        return self.schema.name

    def spec(self, dialect: str = "reduced") -> dict[str, Any]:
        """The definition sent to the model, in the tool's own dialect or else ``dialect``."""
        chosen = self.dialect or dialect
        schema = self._schemas.get(chosen)
        if schema is None:
            schema = self._schemas[chosen] = function_schema(self.fn, dialect=chosen, **self._naming)
        return schema.to_dict()

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check the model's arguments against the signature; returns keyword arguments."""
        model = self.arguments.model_validate(dict(arguments))
        return {name: getattr(model, name) for name in type(model).model_fields}


@dataclass
class ToolCallRecord:
    """One function call made during a run (``id``: the call's, when the service gave one)."""

    name: str
    arguments: dict[str, Any]
    result: Any = None
    error: str | None = None
    id: str | None = None


@dataclass
class ToolRun:
    """The outcome of ``run_tools``: the final answer, the transcript and every call made."""

    completion: Any
    messages: list[Any]
    calls: list[ToolCallRecord] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The final answer's text."""
        return str(self.completion.text)


def as_tools(tools: Any) -> dict[str, Tool]:
    """Tools by name (functions are wrapped)."""
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence) or not tools:
        raise InvalidArgumentError("tools", "expected a non-empty list of functions")
    registry: dict[str, Tool] = {}
    for item in tools:
        tool = item if isinstance(item, Tool) else Tool(item)
        if tool.name in registry:
            raise InvalidArgumentError("tools", f"two tools are named {tool.name!r}")
        registry[tool.name] = tool
    return registry


def to_json_result(value: Any) -> Any:
    """A function's return value as a JSON object (the service accepts only JSON results)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if not isinstance(value, dict):
        value = {"result": value}
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:  # NaN or infinity: not JSON
        text = None
    if text is None:
        raise json_error(value, "result")
    return json.loads(text)


def run_tools_flow(
    ask: Callable[[list[Any], list[dict[str, Any]]], Flow[Any]],
    messages: Any,
    tools: Sequence[Callable[..., Any] | Tool],
    *,
    max_steps: int,
    v2: bool,
    dialect: str = "reduced",
) -> Flow[ToolRun]:
    """The tool loop. ``ask(history, specs)`` is the completion flow for one step; ``dialect`` is
    the schema dialect of tools that do not fix their own."""
    registry = as_tools(tools)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InvalidArgumentError("max_steps", f"expected an integer >= 1, got {max_steps!r}")
    dialect = P.schema_dialect(dialect)
    specs = [tool.spec(dialect) for tool in registry.values()]
    if isinstance(messages, str):
        history: list[Any] = [{"role": "user", "content": messages}]
    else:
        history = list(messages)
    calls: list[ToolCallRecord] = []
    for _ in range(max_steps):
        answer = yield from ask(history, specs)
        requested = list(answer.function_calls) if v2 else ([answer.function_call] if answer.function_call else [])
        message = answer.message.model_dump(mode="json", by_alias=True, exclude_none=True)
        history.append(message)
        if not requested:
            return ToolRun(answer, history, calls)
        for call in requested:
            record = ToolCallRecord(call.name, call.parsed_arguments, id=call.id)
            calls.append(record)
            yield from _execute(registry.get(call.name), record)
            result = record.result if record.error is None else {"error": record.error}
            if v2:
                reply: dict[str, Any] = {"name": call.name, "result": result}
                if call.id is not None:
                    reply = {"id": call.id, **reply}  # the result names the call it answers
                history.append({"role": "function", "content": [{"function_result": reply}]})
            else:
                history.append(
                    {
                        "role": "function",
                        "name": call.name,
                        "content": P.json_text(result, f"messages[{len(history)}].content"),
                    }
                )
    raise ToolLoopError(
        f"no final answer after {max_steps} steps of function calls; raise max_steps or check the tools",
        messages=history,
        calls=calls,
    )


def _execute(tool: Tool | None, record: ToolCallRecord) -> Flow[None]:
    if tool is None:
        record.error = f"unknown function {record.name!r}"
        return
    try:
        kwargs = tool.validate(record.arguments)
    except ValidationError as exc:
        record.error = f"invalid arguments: {exc.errors(include_url=False)}"
        return
    outcome = yield Invoke(tool.fn, kwargs)
    if isinstance(outcome, InvokeFailed):
        record.error = f"{type(outcome.exc).__name__}: {outcome.exc}"
    else:
        try:
            record.result = to_json_result(outcome)
        except InvalidArgumentError as exc:  # told to the model like any failure of the tool
            record.error = f"the function's result cannot be sent: {exc}"
