"""The typer application: global options, command registration and error handling.

Every failure leaves as one readable line on stderr (what failed and how to fix it) and a
non-zero exit code; the traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup, TyperOption

from ._common import (
    EXIT_CONNECTION,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_IO,
    EXIT_USAGE,
    CliError,
    State,
    err_console,
    get_state,
)

try:  # typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer with click installed
    from click.exceptions import ClickException  # type: ignore[import-not-found,no-redef,assignment,unused-ignore]

def _flag_type(self: Any, ctx: Any) -> str | None:
    """The type column of ``--help``: nothing for an on/off flag (not ``<bool>``)."""
    if getattr(self, "is_flag", False) and not getattr(self, "count", False):
        return None
    return _display_type_rich(self, ctx)


def _no_range(self: Any) -> None:
    """No ``[1<=x<=1000]`` in the type column: it cuts option names at 80 columns (the help says the range)."""
    return None


def _help_table_class() -> type:
    """typer's help tables, with the name and type columns never wrapped or cut: only the help
    text column wraps, so ``--retry-non-idempotent`` stays whole at 80 columns."""
    from rich.table import Table

    class HelpTable(Table):
        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            if not self.columns:
                for _ in renderables[:-1]:
                    self.add_column(no_wrap=True)
                self.add_column(ratio=1)
            super().add_row(*renderables, **kwargs)

    return HelpTable


def _patch_help_tables() -> None:
    """Install HelpTable in typer's help rendering (once; only when help is shown: the module is heavy)."""
    import typer.rich_utils

    if getattr(getattr(typer.rich_utils, "Table", None), "__name__", "") != "HelpTable":
        setattr(typer.rich_utils, "Table", _help_table_class())  # noqa: B010 - the module reads its global


def _coerce_missing_without_adapters() -> None:
    """typer 0.29 builds a pydantic TypeAdapter for every parameter of the command that runs, also
    for each one not given, whose value (None) its coercion returns unchanged: a few ms each, most
    of what a one-shot ``gigapy chat`` costs beyond a script doing the same. A missing value is
    coerced here as typer does (None, or () for a repeatable option); the adapter is built only for
    a value to convert. Given values, required checks and callbacks run as before."""
    from typer._click.exceptions import MissingParameter
    from typer.core import _TyperParameter

    if not hasattr(_TyperParameter, "get_runtime_param"):  # pragma: no cover - another typer design
        return
    process_value = _TyperParameter.process_value

    def lazy_process_value(self: Any, ctx: Any, value: Any) -> Any:
        if value is not None or self._runtime_param is not None:
            return process_value(self, ctx, value)
        if self.multiple or self.nargs == -1:
            value = ()
        if self.required and self.value_is_missing(value):
            raise MissingParameter(ctx=ctx, param=self)
        if self.callback is not None:
            value = self.callback(ctx, self, value)
        return value

    lazy_process_value.__wrapped__ = process_value  # type: ignore[attr-defined]  # typer's own, for the tests
    _TyperParameter.process_value = lazy_process_value  # type: ignore[method-assign]


_HELP_WORDS = frozenset({"-h", "--help"})
_display_type_rich = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]
TyperOption._get_number_range_help_str = _no_range  # type: ignore[method-assign]
_coerce_missing_without_adapters()

_ADVICE_403 = (
    ("/balance", "the balance exists only for prepaid scopes (GIGACHAT_API_PERS, GIGACHAT_API_B2B); "
                 "GIGACHAT_API_CORP is pay-as-you-go"),
    ("/ai/check", "AI-text checks are available to pay-as-you-go accounts: use --scope GIGACHAT_API_CORP"),
    ("/batches", "the batches API is available to pay-as-you-go accounts: use --scope GIGACHAT_API_CORP, "
                 "or run the requests yourself with `gigapy batch` (without --via-batches-api)"),
)


def _disk_errnos() -> frozenset[int]:
    import errno

    names = ("ENOSPC", "EFBIG", "EIO", "EDQUOT", "EROFS")
    return frozenset(getattr(errno, name) for name in names if hasattr(errno, name))


#: Errors of a write that the disk refused (full, file too large, I/O error, quota, read-only).
_DISK_ERRNOS = _disk_errnos()


def describe(exc: BaseException) -> tuple[str, str | None, int]:
    """(message, fix, exit code) for an exception raised by a command."""
    from gigapy import errors

    if isinstance(exc, CliError):
        return exc.message, exc.fix, exc.exit_code
    if isinstance(exc, errors.ConfigurationError):
        fix = None
        if exc.field == "credentials" and "no way to authenticate" in exc.reason:
            return ("no credentials: set GIGACHAT_CREDENTIALS to the authorization key from GigaChat Studio",
                    "or store it in a profile (gigapy profile set default credentials); "
                    "to try gigapy without an account: gigapy --emulator chat \"Привет!\"", EXIT_USAGE)
        return str(exc), fix, EXIT_USAGE
    if isinstance(exc, errors.InvalidArgumentError):
        return str(exc), None, EXIT_USAGE
    if isinstance(exc, errors.APIConnectionError):
        fix = None
        if not isinstance(exc, errors.TLSVerificationError):
            fix = "check the address (--base-url/--auth-url), the network and proxies; `gigapy doctor` tests each step"
        return str(exc), fix, EXIT_CONNECTION
    if isinstance(exc, errors.APIStatusError):
        fix = None
        if exc.status_code == 403:
            url = getattr(exc, "url", "") or ""
            fix = next((advice for path, advice in _ADVICE_403 if path in url), None)
        elif exc.status_code == 404 and "model" in str(exc).lower():
            fix = "`gigapy models` lists the models your account can use (names are case-sensitive: GigaChat-2-Max)"
        return str(exc), fix, EXIT_ERROR
    if isinstance(exc, errors.GigaChatError):
        from gigapy.batch import BatchWriteError

        return str(exc), None, EXIT_IO if isinstance(exc, BatchWriteError) else EXIT_ERROR
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename}", None, EXIT_ERROR
    if isinstance(exc, OSError):
        import errno

        code = errno.errorcode.get(exc.errno or 0, "")
        if exc.errno in _DISK_ERRNOS:  # a file could not be written: the documented disk-error exit code
            target = f"cannot write {exc.filename}: " if exc.filename else "cannot write: "
            return (f"{target}{exc.strerror or exc} ({code})", "free space (or raise the file-size limit) and run "
                    "the command again", EXIT_IO)
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", None, EXIT_ERROR
    return (f"unexpected {type(exc).__name__}: {exc}", "run again with --debug for the traceback; "
            "please report it if it persists", EXIT_ERROR)


def report(exc: BaseException, debug: bool) -> int:
    """Print the error line (and the traceback with --debug); return the exit code."""
    from rich.markup import escape

    message, fix, code = describe(exc)
    console = err_console()
    if debug:
        import traceback

        sys.stderr.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        sys.stderr.flush()
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    if fix:
        console.print(f"[yellow]fix:[/] {escape(fix)}", highlight=False)
    return code


def _drop_unwritable_stdout() -> None:
    """After a failed write to stdout (a full disk, /dev/full), send what is still buffered to
    /dev/null: else Python's own flush at exit fails again and prints a second error."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class GigapyGroup(TyperGroup):
    """The root command: turns every exception into one error line and an exit code."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """Parse the root's arguments (help tables are prepared first when help will be shown)."""
        if not args or _HELP_WORDS.intersection(args):
            _patch_help_tables()
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; report failures without a traceback (unless --debug)."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except KeyboardInterrupt:
            err_console().print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:  # the reader went away (`gigapy ... | head`): stop quietly
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_ERROR) from None
        except Exception as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else State()
            code = report(exc, state.debug)
            _drop_unwritable_stdout()
            raise typer.Exit(code) from None


HELP = (
    "GigaChat from the terminal: chat, every API operation, bulk runs that lose nothing, setup diagnostics "
    "and certificates.\n\n"
    'Try it without an account: [bold]gigapy --emulator chat "Привет!"[/]\n\n'
    "Credentials come from GIGACHAT_CREDENTIALS (the authorization key from GigaChat Studio), other "
    "GIGACHAT_* variables, or a profile (gigapy profile --help)."
)

APP_SETTINGS: dict[str, Any] = {
    "name": "gigapy",
    "cls": GigapyGroup,
    "help": HELP,
    "no_args_is_help": True,
    "add_completion": True,
    "rich_markup_mode": "rich",
    "pretty_exceptions_enable": False,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


def _version(value: bool) -> None:
    if value:
        from gigapy import __version__

        typer.echo(f"gigapy {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    emulator: Annotated[bool, typer.Option(
        "--emulator", help="Start an in-process GigaChat emulator and use it (no credentials needed).")] = False,
    base_url: Annotated[str | None, typer.Option(
        help="API base URL \\[env: GIGACHAT_BASE_URL].", show_default=False)] = None,
    auth_url: Annotated[str | None, typer.Option(
        help="OAuth URL \\[env: GIGACHAT_AUTH_URL].", show_default=False)] = None,
    scope: Annotated[str | None, typer.Option(
        help="GIGACHAT_API_PERS, GIGACHAT_API_B2B or GIGACHAT_API_CORP \\[env: GIGACHAT_SCOPE].",
        show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        help="Default model \\[env: GIGACHAT_MODEL].", show_default=False)] = None,
    profile: Annotated[str | None, typer.Option(
        envvar="GIGAPY_PROFILE", help="Settings profile from config.ini \\[env: GIGAPY_PROFILE].",
        show_default=False, show_envvar=False)] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Request timeout, seconds \\[env: GIGACHAT_TIMEOUT].", show_default=False)] = None,
    max_retries: Annotated[int | None, typer.Option(
        help="Client retries per request \\[env: GIGACHAT_MAX_RETRIES].", show_default=False)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Log every request and show tracebacks.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """GigaChat from the terminal."""
    state = State(emulator=emulator, base_url=base_url, auth_url=auth_url, scope=scope, model=model,
                  profile=profile, timeout=timeout, max_retries=max_retries, debug=debug)
    ctx.obj = state
    ctx.call_on_close(state.close)
    if debug:
        logger = logging.getLogger("gigapy")
        logger.setLevel(logging.DEBUG)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        ctx.call_on_close(lambda: logger.removeHandler(handler))


def emulator_cmd(ctx: typer.Context) -> None:
    """Run the offline GigaChat emulator; prints export GIGACHAT_... lines (--env: only those)."""
    from gigapy.emulator import main

    if any(arg in ("-h", "--help") for arg in ctx.args):
        _emulator_help().main(["--help"], prog_name="gigapy emulator", standalone_mode=False)
        return
    try:
        main(list(ctx.args), prog="gigapy emulator")
    except SystemExit as exc:  # argparse printed the help, or the usage and the problem
        raise typer.Exit(EXIT_USAGE if exc.code else 0) from None


EMULATOR_HELP = (
    "Run the offline GigaChat emulator (loopback only) until Ctrl-C.\n\n"
    "It prints ready-to-paste export GIGACHAT_... lines for the client, the CLI and the examples; "
    "--env prints only those (eval \"$(gigapy emulator --env --port 0 &)\")."
)


def _emulator_help() -> Any:
    """The emulator's options (its argparse parser) as a typer command, for a --help styled like the rest."""
    import argparse
    import inspect

    from gigapy.emulator._cli import build_parser

    parser = build_parser("gigapy emulator")
    formatter = parser._get_formatter()
    params = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        text = formatter._expand_help(action) if action.help else ""
        text = text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
        if action.nargs == 0:
            option = typer.Option(*action.option_strings, help=text)
            annotation: Any = Annotated[bool, option]
            default: Any = False
        else:
            metavar = action.metavar or ("|".join(action.choices) if action.choices else action.dest.upper())
            option = typer.Option(*action.option_strings, help=text, metavar=str(metavar), show_default=False)
            annotation, default = Annotated[str | None, option], None
        params.append(inspect.Parameter(action.dest, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))

    def emulator(**kwargs: Any) -> None:  # pragma: no cover - only its help is shown
        """Never run: argparse parses the real arguments."""

    emulator.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    emulator.__annotations__ = {p.name: p.annotation for p in params}
    helper = typer.Typer(rich_markup_mode="rich", add_completion=False,
                         context_settings={"help_option_names": ["-h", "--help"]})
    helper.command(help=EMULATOR_HELP)(emulator)
    return typer.main.get_command(helper)


def _new_app() -> typer.Typer:
    """The root command with its global options and no subcommand yet."""
    new = typer.Typer(**APP_SETTINGS)
    new.callback()(root)
    return new


def _full_app() -> typer.Typer:
    """Every command (help, completion, and any command without a one-command app)."""
    from . import _batch, _certs, _chat, _doctor, _ops, _profiles, _serve

    full = _new_app()
    for module in (_chat, _ops, _batch, _doctor, _certs, _profiles, _serve):
        module.register(full)
    full.command("emulator", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                 add_help_option=False, rich_help_panel="Setup")(emulator_cmd)
    return full


# Commands run from an app holding only themselves: typer builds (and pydantic-adapts) the
# parameters of every registered command before it runs one, which a one-shot ``gigapy chat``
# would otherwise pay for every other command (and their modules' imports).
_ONE_COMMAND = {"chat": "_chat"}
_VALUELESS_ROOT_FLAGS = frozenset({"--emulator", "--debug"})


def _app_for(args: Sequence[str]) -> typer.Typer:
    """The app to run ``args`` with: a one-command app when that is safe, else every command."""
    if "_GIGAPY_COMPLETE" in os.environ or _HELP_WORDS.intersection(args):
        return _every_command()
    for word in args:
        if word in _VALUELESS_ROOT_FLAGS or (word.startswith("--") and "=" in word):
            continue
        module = _ONE_COMMAND.get(word)
        if module is None:
            break
        import importlib

        one = _new_app()
        importlib.import_module(f".{module}", __package__).register(one)
        return one
    return _every_command()


def _every_command() -> typer.Typer:
    """The app with every command, built once, on first use (also ``_app.app``)."""
    full = globals().get("app")
    if full is None:
        full = globals()["app"] = _full_app()
    return full


def __getattr__(name: str) -> Any:
    if name == "app":
        return _every_command()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _option_table(params: Sequence[Any]) -> dict[str, Any]:
    return {name: p for p in params if getattr(p, "param_type_name", "") == "option"
            for name in (*p.opts, *p.secondary_opts)}


def _takes_value(param: Any, word: str) -> bool:
    return not param.is_flag and not param.count and "=" not in word


def hoist_global_options(args: Sequence[str], command_app: typer.Typer | None = None) -> list[str]:
    """Move global options given after the command before it: ``gigapy chat --scope X "hi"`` works
    like ``gigapy --scope X chat "hi"``. An option the command has itself (chat's ``--model``) stays
    the command's; nothing after ``--`` moves; ``gigapy emulator`` keeps its arguments."""
    args = list(args)
    first = next((i for i, word in enumerate(args) if not word.startswith("-")), None)
    if first is None or not any(word.startswith("-") for word in args[first + 1:]):
        return args  # nothing after the command looks like an option (and --help stays fast)
    root = typer.main.get_command(command_app or _every_command())
    shared = _option_table(root.params)
    head: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        word = args[i]
        head.append(word)
        i += 1
        param = shared.get(word.split("=", 1)[0])
        if param is not None and _takes_value(param, word) and i < len(args):
            head.append(args[i])
            i += 1
    command: Any = root
    path: list[str] = []
    while i < len(args) and getattr(command, "commands", None) is not None and args[i] in command.commands:
        command = command.commands[args[i]]
        path.append(args[i])
        i += 1
    if not path or path[0] == "emulator":
        return args
    own = _option_table(command.params)
    moved: list[str] = []
    rest: list[str] = []
    while i < len(args):
        word = args[i]
        name = word.split("=", 1)[0] if word.startswith("--") else word
        if word == "--":
            rest.extend(args[i:])
            break
        target = rest if name in own or name not in shared or name in ("-h", "--help") else moved
        param = own.get(name) or shared.get(name)
        target.append(word)
        i += 1
        if param is not None and _takes_value(param, word) and i < len(args):
            target.append(args[i])
            i += 1
    return [*head, *moved, *path, *rest]


def run(args: Sequence[str]) -> None:
    """Run the app with ``args`` (the console script's entry)."""
    command_app = _app_for(args)
    if "_GIGAPY_COMPLETE" not in os.environ:  # shell completion parses the words itself
        args = hoist_global_options(args, command_app)
    command_app(args=list(args), prog_name="gigapy")


__all__ = ["GigapyGroup", "app", "describe", "get_state", "report", "run"]  # noqa: F822 - app: module __getattr__
