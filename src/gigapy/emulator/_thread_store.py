"""Threads kept server-side: messages, the last run, bounded storage and conversation assembly.

Used by the ``/threads`` routes and by v1 chat's ``storage``. A run started without ``stream``
completes in the background: its answer is committed lazily, on the first read after
``thread_run_delay`` seconds, so no task has to outlive a request (or a restart).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._engine import Msg, Outcome
from ._http import ApiError, dumps, new_uuid4

if TYPE_CHECKING:
    from ._assistants import Assistant
    from ._pipeline import Ctx

NOT_FOUND = "Thread not found"
BUSY = "Thread is locked: a run is in progress"
_MESSAGE_OVERHEAD = 64


@dataclass(slots=True)
class ThreadMessage:
    """One stored message."""

    id: str
    msg: Msg
    created_at: int
    model: str
    attachments: list[tuple[str, str]] = field(default_factory=list)
    finish_reason: str | None = None
    state_id: str | None = None

    @property
    def size(self) -> int:
        """Characters charged against the store's cap."""
        call = dumps(self.msg.call[1]) if self.msg.call else ""
        return len(self.msg.text) + len(call) + _MESSAGE_OVERHEAD

    def to_json(self, with_model: bool = True) -> dict[str, Any]:
        """The ThreadMessage object (``model`` as in ``GET /threads/messages``; runs omit it)."""
        msg = self.msg
        body: dict[str, Any] = {"message_id": self.id, "role": msg.role, "content": msg.text}
        if self.attachments:
            body["attachments"] = [{"file_id": file_id, "name": name} for file_id, name in self.attachments]
        body["created_at"] = self.created_at
        if msg.role == "function" and msg.result is not None:
            body["name"] = msg.result[0]
        if msg.call is not None:
            call_id = msg.calls[0][0] if msg.calls else None
            body["function_call"] = {
                **({"id": call_id} if call_id else {}),
                "name": msg.call[0],
                "arguments": msg.call[1],
            }
        if self.state_id is not None:
            body["functions_state_id"] = self.state_id
        if self.finish_reason is not None:
            body["finish_reason"] = self.finish_reason
        if with_model:
            body["model"] = self.model
        return body


@dataclass(slots=True)
class Run:
    """The thread's last run: the messages it answered and its answer (committed when ready)."""

    inputs: list[ThreadMessage]
    answer: ThreadMessage
    model: str
    ready_at: float = 0.0
    done: bool = True


@dataclass
class Thread:
    """One thread."""

    id: str
    owner: str
    model: str
    created_at: int
    updated_at: int
    assistant_id: str | None = None
    metadata: dict[str, Any] | None = None
    messages: list[ThreadMessage] = field(default_factory=list)
    run: Run | None = None
    deleted: bool = False
    reruns: int = 0
    chars: int = 0

    @property
    def pending(self) -> bool:
        """A run is in progress (``run_lock``)."""
        return self.run is not None and not self.run.done

    @property
    def status(self) -> str:
        """``in_progress``, ``ready`` or ``deleted``."""
        return "deleted" if self.deleted else "in_progress" if self.pending else "ready"

    def to_json(self) -> dict[str, Any]:
        """The Thread object (``assistant_id`` only when the thread has one, as recorded)."""
        body: dict[str, Any] = {"id": self.id, "model": self.model}
        if self.assistant_id is not None:
            body["assistant_id"] = self.assistant_id
        body.update(created_at=self.created_at, updated_at=self.updated_at, status=self.status, run_lock=self.pending)
        return body

    def since_last_answer(self) -> list[ThreadMessage]:
        """Messages after the last assistant message: what the next run answers."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].msg.role == "assistant":
                return self.messages[index + 1 :]
        return list(self.messages)


class ThreadStore:
    """Threads of every account, capped by count, messages per thread and total characters.

    The least recently updated threads are evicted first; a thread over its message cap loses its
    oldest messages (a leading system message is kept).
    """

    def __init__(self, capacity: int, max_messages: int, max_chars: int) -> None:
        self.capacity = capacity
        self.max_messages = max(max_messages, 2)
        self.max_chars = max_chars
        self._items: OrderedDict[str, Thread] = OrderedDict()
        self._chars = 0

    @staticmethod
    def new(owner: str, model: str, assistant_id: str | None = None, metadata: dict[str, Any] | None = None) -> Thread:
        """A new empty thread, not stored yet (``register`` it once the request has succeeded)."""
        now = int(time.time())
        return Thread(new_uuid4(), owner, model, now, now, assistant_id, metadata)

    def register(self, thread: Thread) -> None:
        """Store a thread made by ``new`` (no-op when already stored)."""
        if thread.id not in self._items:
            self._items[thread.id] = thread
            self._chars += thread.chars
            self._evict(thread)

    def get(self, thread_id: str, owner: str) -> Thread | None:
        """The owner's thread (deleted ones too), with a finished background run committed."""
        thread = self._items.get(thread_id)
        if thread is None or thread.owner != owner:
            return None
        self.settle(thread)
        return thread

    def of_owner(self, owner: str) -> list[Thread]:
        """Every live thread of an owner."""
        threads = [t for t in self._items.values() if t.owner == owner and not t.deleted]
        for thread in threads:
            self.settle(thread)
        return threads

    def per_assistant(self, owner: str) -> Counter[str]:
        """Live threads per assistant id."""
        return Counter(
            t.assistant_id
            for t in self._items.values()
            if t.owner == owner and not t.deleted and t.assistant_id is not None
        )

    def settle(self, thread: Thread) -> None:
        """Commit the answer of a background run whose time has come."""
        run = thread.run
        if run is not None and not run.done and time.monotonic() >= run.ready_at:
            run.done = True
            self.append(thread, [run.answer])

    def append(self, thread: Thread, messages: list[ThreadMessage]) -> None:
        """Add messages; a system message goes first, replacing the thread's own."""
        if messages and messages[0].msg.role == "system":
            if thread.messages and thread.messages[0].msg.role == "system":
                self._drop(thread, 0)
            thread.messages.insert(0, messages[0])
            self._charge(thread, messages[0].size)
            messages = messages[1:]
        for message in messages:
            thread.messages.append(message)
            self._charge(thread, message.size)
        keep = 1 if thread.messages and thread.messages[0].msg.role == "system" else 0
        while len(thread.messages) > self.max_messages:
            self._drop(thread, keep)
        self.touch(thread)

    def replace(self, thread: Thread, messages: list[ThreadMessage]) -> None:
        """Make ``messages`` the whole history."""
        while thread.messages:
            self._drop(thread, len(thread.messages) - 1)
        self.append(thread, messages)

    def delete(self, thread: Thread) -> None:
        """Mark deleted (``retrieve`` still shows it as ``deleted``) and free its messages."""
        self.replace(thread, [])
        thread.run, thread.deleted = None, True

    def touch(self, thread: Thread) -> None:
        """Mark the thread updated now (eviction order follows)."""
        thread.updated_at = int(time.time())
        if thread.id in self._items:
            self._items.move_to_end(thread.id)
        self._evict(thread)

    def pop_last(self, thread: Thread) -> ThreadMessage:
        """Remove and return the thread's last message."""
        message = thread.messages[-1]
        self._drop(thread, len(thread.messages) - 1)
        return message

    def _drop(self, thread: Thread, index: int) -> None:
        self._charge(thread, -thread.messages.pop(index).size)

    def _charge(self, thread: Thread, chars: int) -> None:
        thread.chars += chars
        if thread.id in self._items:
            self._chars += chars

    def _evict(self, keep: Thread) -> None:
        while len(self._items) > self.capacity or (self._chars > self.max_chars and len(self._items) > 1):
            oldest = next(iter(self._items.values()))
            if oldest is keep:
                self._items.move_to_end(keep.id)
                if len(self._items) == 1:
                    break
                continue
            del self._items[oldest.id]
            self._chars -= oldest.chars

    def __len__(self) -> int:
        return len(self._items)


def owned_thread(ctx: Ctx, thread_id: str, *, idle: bool = False) -> Thread:
    """The caller's live thread (404 otherwise); ``idle``: 409 while a run is in progress."""
    thread = ctx.state.threads.get(thread_id, ctx.auth.account.client_id)
    if thread is None or thread.deleted:
        raise ApiError(404, NOT_FOUND)
    if idle and thread.pending:
        raise ApiError(409, BUSY)
    return thread


def stored_message(ctx: Ctx, msg: Msg, model: str) -> ThreadMessage:
    """A request message as the thread keeps it (attachments must be the caller's files)."""
    attachments = []
    for file_id in msg.files:
        record = ctx.state.files.owned(file_id, ctx.auth.account.client_id)
        if record is None:
            raise ApiError(404, "File not found")
        attachments.append((file_id, record.filename))
    return ThreadMessage(new_uuid4(), msg, int(time.time()), model, attachments)


def image_tags(outcome: Outcome) -> str:
    """``<img src="<file id>" fuse="true"/> `` for every generated file."""
    return "".join(f'<img src="{f.id}" fuse="true"/> ' for f in outcome.files)


def answer_content(outcome: Outcome) -> str:
    """The assistant content as v1 returns it: image tags, then the text."""
    return image_tags(outcome) + outcome.text


def answer_message(outcome: Outcome, model: str) -> ThreadMessage:
    """The model's answer as a thread message."""
    msg = Msg("assistant", answer_content(outcome), outcome.call, calls=tuple(outcome.calls))
    return ThreadMessage(
        new_uuid4(), msg, int(time.time()), model, finish_reason=outcome.finish_reason, state_id=outcome.state_id
    )


def conversation(
    history: list[Msg], new: list[Msg], assistant: Assistant | None, limit: int | None, ctx: Ctx
) -> list[Msg]:
    """What the model sees: the system prompt (the thread's, a new one, or the assistant's
    instructions with its files), then the last ``limit`` messages of history + new messages."""
    merged = [*history, *new]
    system = None
    if new and new[0].role == "system":
        system = new[0]
        merged = [m for m in history if m.role != "system"] + new[1:]
    elif merged and merged[0].role == "system":
        system, merged = merged[0], merged[1:]
    elif assistant is not None and (assistant.instructions or assistant.file_ids):
        owner = ctx.auth.account.client_id
        files = tuple(f for f in assistant.file_ids if ctx.state.files.owned(f, owner) is not None)
        system = Msg("system", assistant.instructions or "", files=files)
    if limit is not None:
        merged = merged[-limit:]
    if not merged:
        raise ApiError(422, "Invalid params: thread has no messages to answer")
    return ([system] if system is not None else []) + merged
