"""``gigapy chat``: one streamed answer, or an interactive chat that keeps the history."""

from __future__ import annotations

import contextlib
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
    "(/system, /model, /reset, /save FILE, /load FILE, /attach FILE, /exit).\n\n"
    "Every conversation is kept (the last one in gigapy's config directory, chats/last.json): "
    "--continue goes on with it, in a new interactive chat or with one more PROMPT.\n\n"
    "A prompt piped on stdin is read (and appended to PROMPT when both are given). Markdown is rendered on "
    "a terminal; piped output is plain text."
)

INTERACTIVE_HELP = """\
Commands:
  /system [TEXT]   show or set the system prompt
  /model [NAME]    show or switch the model
  /reset           forget the conversation (keeps the system prompt)
  /save FILE       save the conversation as JSON
  /load FILE       go on with a conversation saved by /save (or chats/last.json)
  /attach FILE     upload a file and attach it to the next message
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


def history_dir() -> Path:
    """Where conversations are kept: ``chats/`` in gigapy's config directory."""
    from gigapy._transports.tls import config_dir

    return config_dir() / "chats"


def last_conversation_path() -> Path:
    """The conversation ``--continue`` goes on with."""
    return history_dir() / "last.json"


def read_conversation(path: Path) -> dict[str, Any]:
    """A conversation file (``/save``'s format: ``{"model", "messages"}``), checked."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"no conversation at {path}", "start one: gigapy chat (conversations are kept as you chat)", EXIT_USAGE)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the conversation {path}: {getattr(exc, 'strerror', None) or exc}", exit_code=EXIT_USAGE)
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in messages):
        fail(f"{path} is not a conversation: expected {{\"messages\": [{{\"role\": ..., \"content\": ...}}]}}",
             exit_code=EXIT_USAGE)
    return {"model": data.get("model") if isinstance(data.get("model"), str) else None, "messages": messages}


def write_conversation(path: Path, model: str, messages: list[dict[str, Any]]) -> Path:
    """Write a conversation atomically (mode 0600: it is the user's own text)."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".chat-", suffix=".json", dir=path.parent)
    try:
        os.chmod(tmp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps({"model": model, "messages": messages}, ensure_ascii=False, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class ChatSession:
    """The state of a chat: model, system prompt, history, attachments, tools and the session id."""

    def __init__(self, client: GigaChat, model: str | None, system: str | None, params: dict[str, Any],
                 markdown: bool, session_id: str | None = None, *, tools: list[str] | None = None,
                 keep: bool = True) -> None:
        self.client = client
        self.model = model or client.settings.model
        self.params = params
        self.markdown = markdown
        self.tools = list(tools or [])
        #: Save the conversation to chats/last.json after every answer.
        self.keep = keep
        #: File ids attached to the next message (-a FILE, /attach FILE).
        self.pending: list[str] = []
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

    def load(self, data: dict[str, Any], model: str | None = None) -> None:
        """Go on with a saved conversation (its model unless ``model`` is given); a system prompt
        given for this chat replaces the saved one."""
        system = self.system
        self.history = [dict(m) for m in data["messages"]]
        if system is not None:
            self.set_system(system)
        self.model = model or data.get("model") or self.model

    def attach(self, path: Path) -> str:
        """Upload ``path`` and attach it to the next message; returns the file id."""
        if path.is_dir():
            fail(f"{path} is a directory: attach files one by one", exit_code=EXIT_USAGE)
        if not path.is_file():
            fail(f"file not found: {path}", exit_code=EXIT_USAGE)
        uploaded = self.client.upload_file(str(path), purpose="general")
        self.pending.append(uploaded.id)
        return str(uploaded.id)

    def ask(self, text: str) -> str:
        """Send a user message, stream the answer to stdout, keep both in the history."""
        message: dict[str, Any] = {"role": "user", "content": text}
        if self.pending:
            message["attachments"] = list(self.pending)
        messages = [*self.history, message]
        answer = stream_answer(self.client, messages, self.model, self.params, self.markdown,
                               session_id=self.session_id, tools=self.tools)
        self.pending = []
        self.history.append(message)
        self.history.append({"role": "assistant", "content": answer})
        self.remember()
        return answer

    def remember(self) -> None:
        """Keep the conversation for ``--continue`` (a failure to write it is a warning only)."""
        if not self.keep:
            return
        try:
            write_conversation(last_conversation_path(), self.model, self.history)
        except OSError as exc:
            out_console().print(f"warning: the conversation was not kept ({exc.strerror or exc})", style="yellow",
                                highlight=False)
            self.keep = False

    def save(self, path: str) -> Path:
        """Write the conversation as JSON: ``{"model": ..., "messages": [...]}``."""
        return write_conversation(Path(path).expanduser(), self.model, self.history)


def stream_answer(client: GigaChat, messages: list[dict[str, Any]], model: str, params: dict[str, Any],
                  markdown: bool, *, session_id: str | None = None, tools: list[str] | None = None) -> str:
    """Stream one answer: live markdown on a terminal, plain text otherwise; returns the text.

    With ``tools`` (built-in tools such as ``web_search``) the v2 chat API answers."""
    options: dict[str, Any] = dict(params)
    if session_id:
        options["session_id"] = session_id
    parts: list[str] = []
    if tools:
        opened: Any = client.v2.completion_stream(messages, model=model, tools=list(tools), **options)
    else:
        opened = client.completion_stream(messages, model=model, **options)
    with opened as stream:
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
    tty = is_tty(sys.stdin)
    lines = _LineHistory(session.keep) if tty else None
    try:
        _loop(session, tty)
    finally:
        if lines is not None:
            lines.save()


class _LineHistory:
    """Line editing, and the lines typed kept across chats (chats/input_history; up-arrow recalls them)."""

    def __init__(self, keep: bool) -> None:
        self.path = history_dir() / "input_history" if keep else None
        try:
            import readline
        except ImportError:  # pragma: no cover - Windows
            self.readline: Any = None
            return
        self.readline = readline
        if self.path is not None and self.path.is_file():
            with contextlib.suppress(OSError):
                readline.read_history_file(str(self.path))

    def save(self) -> None:
        """Write the typed lines back (the last 1,000)."""
        if self.readline is None or self.path is None:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.readline.set_history_length(1000)
            self.readline.write_history_file(str(self.path))
            os.chmod(self.path, 0o600)


def _loop(session: ChatSession, tty: bool) -> None:
    from gigapy.errors import GigaChatError

    from ._app import describe
    from ._common import CliError

    console = out_console()
    turns = sum(1 for m in session.history if m.get("role") == "user")
    again = f" (going on with {turns} earlier messages)" if turns else ""
    console.print(f"Chat with {session.model}{again}. /help for commands, /exit or Ctrl-D to quit.", highlight=False)
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
            try:
                if not _command(session, text):
                    break
            except (CliError, GigaChatError) as exc:
                message, fix, _ = describe(exc)
                console.print(f"[bold red]error:[/] {_escape(message)}", highlight=False)
                if fix:
                    console.print(f"[yellow]fix:[/] {_escape(fix)}", highlight=False)
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
    elif name == "/load":
        if not arg:
            console.print("usage: /load FILE", highlight=False)
        else:
            session.load(read_conversation(Path(arg).expanduser()))
            console.print(f"loaded {len(session.history)} messages (model {session.model})", highlight=False)
    elif name == "/attach":
        if not arg:
            console.print("usage: /attach FILE", highlight=False)
        else:
            file_id = session.attach(Path(arg).expanduser())
            console.print(f"attached {arg} (file {file_id}) to the next message", highlight=False)
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
    top_p: Annotated[float | None, typer.Option(
        "--top-p", help="Nucleus sampling: the share of likely tokens to pick from (0-1).", show_default=False)] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, tokens.", show_default=False)] = None,
    reasoning_effort: Annotated[str | None, typer.Option(
        help="Let the model reason first: low, medium, high (or a newer effort the service knows).",
        show_default=False)] = None,
    reasoning_max_tokens: Annotated[int | None, typer.Option(
        help="Most tokens the model may reason before it answers.", show_default=False)] = None,
    attach: Annotated[list[Path] | None, typer.Option(
        "--attach", "-a", metavar="FILE", help="Upload FILE and attach it to the (first) message; repeatable.",
        show_default=False)] = None,
    tool: Annotated[list[str] | None, typer.Option(
        "--tool", "-t", metavar="NAME", help="A built-in tool the model may use (v2 API): web_search, "
        "image_generate, url_content_extraction, code_interpreter, model_3d_generate; repeatable.",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--continue", "-c", help="Go on with the last conversation (chats/last.json).")] = False,
    no_history: Annotated[bool, typer.Option(
        "--no-history", help="Do not keep this conversation (nor the lines typed).")] = False,
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
    given = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens,
             "reasoning_effort": reasoning_effort, "reasoning_max_tokens": reasoning_max_tokens}
    params: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    tools = _tools(tool or [])
    files = [_attachment(path) for path in attach or []]
    render = is_tty(sys.stdout) if markdown is None else markdown
    saved = read_conversation(last_conversation_path()) if resume else None
    interactive_chat = interactive_mode or (prompt is None and is_tty(sys.stdin))
    if interactive_chat and json_out:
        fail("--json needs a prompt (it prints one completion)", exit_code=EXIT_USAGE)
    text = ""
    if not interactive_chat:
        text = prompt if prompt not in (None, "-") else ""
        if prompt == "-" or _stdin_has_data():
            piped = sys.stdin.read()
            if piped.strip():
                text = f"{text}\n\n{piped}" if text else piped
        if not text.strip():
            fail("no prompt: pass PROMPT, pipe it on stdin, or run `gigapy chat` in a terminal", exit_code=EXIT_USAGE)
    client = state.client()
    session = ChatSession(client, model or state.model, system, params, render, session_id, tools=tools,
                          keep=not no_history)
    if saved is not None:
        session.load(saved, model or state.model)
    for path in files:
        session.attach(path)
    if interactive_chat:
        if prompt:
            session.ask(prompt)
        interactive(session)
        return
    if json_out:
        message: dict[str, Any] = {"role": "user", "content": text}
        if session.pending:
            message["attachments"] = list(session.pending)
        options = dict(params, session_id=session_id) if session_id else dict(params)
        messages = [*session.history, message]
        if tools:
            completion: Any = client.v2.completion(messages, model=session.model, tools=tools, **options)
        else:
            completion = client.completion(messages, model=session.model, **options)
        print_json(completion.to_dict())
        session.history += [message, {"role": "assistant", "content": completion.text}]
        session.remember()
        return
    session.ask(text)


def _tools(names: list[str]) -> list[str]:
    """The --tool names, checked before anything is sent (did you mean)."""
    from gigapy._core.params_v2 import BUILTIN_TOOLS

    checked = []
    for raw in names:
        for name in (n.strip() for n in raw.split(",")):
            if name in BUILTIN_TOOLS:
                checked.append(name)
                continue
            import difflib

            close = difflib.get_close_matches(name, BUILTIN_TOOLS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            fail(f"--tool: unknown built-in tool {name!r}", f"{hint}built-in tools: {', '.join(BUILTIN_TOOLS)}",
                 EXIT_USAGE)
    return list(dict.fromkeys(checked))


def _attachment(path: Path) -> Path:
    """An -a FILE, checked before anything is uploaded."""
    if path.is_dir():
        fail(f"--attach {path}: a directory; attach files one by one", exit_code=EXIT_USAGE)
    if not path.is_file():
        fail(f"--attach {path}: file not found", exit_code=EXIT_USAGE)
    return path


def register(app: typer.Typer) -> None:
    """Add ``chat``."""
    app.command("chat", help=CHAT_HELP, rich_help_panel="Chat and API operations")(chat)
