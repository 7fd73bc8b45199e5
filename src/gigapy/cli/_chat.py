"""``gigapy chat``: one streamed answer, or an interactive chat that keeps the history."""

from __future__ import annotations

import json
import os
import stat
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import EXIT_USAGE, fail, get_state, is_tty, out_console, print_json

if TYPE_CHECKING:
    from gigapy import GigaChat

CHAT_HELP = (
    "Chat with GigaChat: stream one answer, or talk interactively.\n\n"
    "With PROMPT: stream one answer. Without: an interactive chat that keeps the history "
    "(/system, /model, /reset, /save FILE, /exit).\n\n"
    "A prompt piped on stdin is read (and appended to PROMPT when both are given). Markdown is rendered on "
    "a terminal; piped output is plain text."
)

INTERACTIVE_HELP = """\
Commands:
  /system [TEXT]   show or set the system prompt
  /model [NAME]    show or switch the model
  /reset           forget the conversation (keeps the system prompt)
  /save FILE       save the conversation as JSON
  /help            this help
  /exit            quit (also Ctrl-D)"""


def _stdin_has_data() -> bool:
    """True when stdin is a pipe or a file (not a terminal, not /dev/null or a socket)."""
    if is_tty(sys.stdin):
        return False
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return True  # an in-memory stream, as under test runners
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


class ChatSession:
    """The state of a chat: model, system prompt, history and the session id (prompt cache)."""

    def __init__(self, client: GigaChat, model: str | None, system: str | None, params: dict[str, Any],
                 markdown: bool, session_id: str | None = None) -> None:
        self.client = client
        self.model = model or client.settings.model
        self.params = params
        self.markdown = markdown
        #: A session id given (--session-id, GIGACHAT_SESSION_ID) is kept; else one per conversation.
        self.fixed_session = session_id or client.settings.session_id
        self.session_id = self.fixed_session or str(uuid.uuid4())
        self.history: list[dict[str, Any]] = []
        if system:
            self.history.append({"role": "system", "content": system})

    @property
    def system(self) -> str | None:
        """The current system prompt."""
        if self.history and self.history[0]["role"] == "system":
            return str(self.history[0]["content"])
        return None

    def set_system(self, text: str) -> None:
        """Replace (or add) the system prompt."""
        if self.system is not None:
            self.history[0] = {"role": "system", "content": text}
        else:
            self.history.insert(0, {"role": "system", "content": text})

    def reset(self) -> None:
        """Forget the conversation, keep the system prompt."""
        system = self.system
        self.history = [{"role": "system", "content": system}] if system is not None else []
        self.session_id = self.fixed_session or str(uuid.uuid4())

    def ask(self, text: str) -> str:
        """Send a user message, stream the answer to stdout, keep both in the history."""
        messages = [*self.history, {"role": "user", "content": text}]
        answer = stream_answer(self.client, messages, self.model, self.params, self.markdown,
                               session_id=self.session_id)
        self.history.append({"role": "user", "content": text})
        self.history.append({"role": "assistant", "content": answer})
        return answer

    def save(self, path: str) -> Path:
        """Write the conversation as JSON: ``{"model": ..., "messages": [...]}``."""
        target = Path(path).expanduser()
        data = {"model": self.model, "messages": self.history}
        target.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return target


def stream_answer(client: GigaChat, messages: list[dict[str, Any]], model: str, params: dict[str, Any],
                  markdown: bool, *, session_id: str | None = None) -> str:
    """Stream one answer: live markdown on a terminal, plain text otherwise; returns the text."""
    options: dict[str, Any] = dict(params)
    if session_id:
        options["session_id"] = session_id
    parts: list[str] = []
    with client.completion_stream(messages, model=model, **options) as stream:
        if markdown:
            from ._live import MarkdownStream

            with MarkdownStream(out_console()) as live:
                for piece in stream.text_stream:
                    parts.append(piece)
                    live.update("".join(parts))
        else:
            write, flush = sys.stdout.write, sys.stdout.flush
            try:
                for piece in stream.text_stream:
                    parts.append(piece)
                    write(piece)
                    flush()
            finally:  # the answer, even an interrupted one, ends its line
                if parts and not parts[-1].endswith("\n"):
                    write("\n")
                    flush()
    return "".join(parts)


def interactive(session: ChatSession) -> None:
    """The read-eval-print loop of the interactive chat."""
    from gigapy.errors import GigaChatError

    from ._app import describe

    tty = is_tty(sys.stdin)
    if tty:
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:  # pragma: no cover - Windows
            pass
    console = out_console()
    console.print(f"Chat with {session.model}. /help for commands, /exit or Ctrl-D to quit.", highlight=False)
    while True:
        try:
            line = input("you> ")
        except EOFError:
            if tty:
                sys.stdout.write("\n")
            break
        except KeyboardInterrupt:  # like a shell: drop the line, keep the chat
            sys.stdout.write("\n")
            console.print("(/exit or Ctrl-D to quit)", highlight=False, style="dim")
            continue
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if not _command(session, text):
                break
            continue
        try:
            session.ask(text)
        except KeyboardInterrupt:  # the partial answer has ended its line: nothing printed twice
            console.print("(answer interrupted; not added to the history)", highlight=False, style="dim")
        except GigaChatError as exc:
            message, fix, _ = describe(exc)
            console.print(f"[bold red]error:[/] {_escape(message)}", highlight=False)
            if fix:
                console.print(f"[yellow]fix:[/] {_escape(fix)}", highlight=False)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _command(session: ChatSession, text: str) -> bool:
    """Run a /command; False means quit."""
    name, _, arg = text.partition(" ")
    arg = arg.strip()
    console = out_console()
    if name in ("/exit", "/quit", "/q"):
        return False
    if name == "/help":
        console.print(INTERACTIVE_HELP, highlight=False)
    elif name == "/system":
        if arg:
            session.set_system(arg)
            console.print("system prompt set", highlight=False)
        else:
            console.print(f"system prompt: {session.system or '(none)'}", highlight=False)
    elif name == "/model":
        if arg:
            session.model = arg
            console.print(f"model: {arg}", highlight=False)
        else:
            console.print(f"model: {session.model}", highlight=False)
    elif name == "/reset":
        session.reset()
        console.print("conversation reset", highlight=False)
    elif name == "/save":
        if not arg:
            console.print("usage: /save FILE", highlight=False)
        else:
            try:
                target = session.save(arg)
            except OSError as exc:
                console.print(f"[bold red]error:[/] cannot save {_escape(arg)}: {exc.strerror or exc}",
                              highlight=False)
            else:
                console.print(f"saved {len(session.history)} messages to {target}", highlight=False)
    else:
        console.print(f"unknown command {name}; /help lists them", highlight=False)
    return True


def chat(
    ctx: typer.Context,
    prompt: Annotated[str | None, typer.Argument(
        help="The prompt ('-' reads stdin). Omit it for an interactive chat.", show_default=False)] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.", show_default=False)] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model (default: the global --model).",
                                              show_default=False)] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (> 0).", show_default=False)] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, tokens.", show_default=False)] = None,
    reasoning_effort: Annotated[str | None, typer.Option(
        help="Let the model reason first: low, medium, high (or a newer effort the service knows).",
        show_default=False)] = None,
    reasoning_max_tokens: Annotated[int | None, typer.Option(
        help="Most tokens the model may reason before it answers.", show_default=False)] = None,
    session_id: Annotated[str | None, typer.Option(
        help="X-Session-ID of the requests (reuses the prompt cache; default: GIGACHAT_SESSION_ID, or one per "
             "chat).", show_default=False)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the final completion as JSON.")] = False,
    markdown: Annotated[bool | None, typer.Option(
        "--markdown/--plain", help="Render markdown (default: on a terminal only).", show_default=False)] = None,
    interactive_mode: Annotated[bool, typer.Option(
        "--interactive", "-i", help="Interactive chat even when stdin is not a terminal.")] = False,
) -> None:
    """Chat with GigaChat: stream one answer, or talk interactively."""
    state = get_state(ctx)
    params: dict[str, Any] = {}
    if temperature is not None:
        params["temperature"] = temperature
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if reasoning_effort is not None:
        params["reasoning_effort"] = reasoning_effort
    if reasoning_max_tokens is not None:
        params["reasoning_max_tokens"] = reasoning_max_tokens
    render = is_tty(sys.stdout) if markdown is None else markdown
    if interactive_mode or (prompt is None and is_tty(sys.stdin)):
        if json_out:
            fail("--json needs a prompt (it prints one completion)", exit_code=EXIT_USAGE)
        client = state.client()
        session = ChatSession(client, model or state.model, system, params, render, session_id)
        if prompt:
            session.ask(prompt)
        interactive(session)
        return
    text = prompt if prompt not in (None, "-") else ""
    if prompt == "-" or _stdin_has_data():
        piped = sys.stdin.read()
        if piped.strip():
            text = f"{text}\n\n{piped}" if text else piped
    if not text.strip():
        fail("no prompt: pass PROMPT, pipe it on stdin, or run `gigapy chat` in a terminal", exit_code=EXIT_USAGE)
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": text})
    client = state.client()
    chosen = model or state.model or client.settings.model
    if json_out:
        if session_id:
            params["session_id"] = session_id
        print_json(client.completion(messages, model=chosen, **params).to_dict())
        return
    stream_answer(client, messages, chosen, params, render, session_id=session_id)


def register(app: typer.Typer) -> None:
    """Add ``chat``."""
    app.command("chat", help=CHAT_HELP, rich_help_panel="Chat and API operations")(chat)
