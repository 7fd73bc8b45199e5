"""The typer application: global options, command registration and error handling.

Every failure leaves as one readable line on stderr (what failed and how to fix it) and a
non-zero exit code; the traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from . import _batch, _certs, _chat, _doctor, _ops, _profiles, _serve
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


class GigapyGroup(TyperGroup):
    """The root command: turns every exception into one error line and an exit code."""

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
            import os

            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_ERROR) from None
        except Exception as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else State()
            raise typer.Exit(report(exc, state.debug)) from None


HELP = (
    "GigaChat from the terminal: chat, every API operation, bulk runs that lose nothing, setup diagnostics "
    "and certificates.\n\n"
    'Try it without an account: [bold]gigapy --emulator chat "Привет!"[/]\n\n'
    "Credentials come from GIGACHAT_CREDENTIALS (the authorization key from GigaChat Studio), other "
    "GIGACHAT_* variables, or a profile (gigapy profile --help)."
)

app = typer.Typer(
    name="gigapy",
    cls=GigapyGroup,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from gigapy import __version__

        typer.echo(f"gigapy {__version__}")
        raise typer.Exit()


@app.callback()
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


_chat.register(app)
_ops.register(app)
_batch.register(app)
_doctor.register(app)
_certs.register(app)
_profiles.register(app)
_serve.register(app)


@app.command("emulator", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             add_help_option=False, rich_help_panel="Setup")
def emulator_cmd(ctx: typer.Context) -> None:
    """Run the offline GigaChat emulator; prints export GIGACHAT_... lines (--env: only those)."""
    from gigapy.emulator import main

    try:
        main(list(ctx.args), prog="gigapy emulator")
    except SystemExit as exc:  # argparse printed the help, or the usage and the problem
        raise typer.Exit(EXIT_USAGE if exc.code else 0) from None


def run(args: Sequence[str]) -> None:
    """Run the app with ``args`` (the console script's entry)."""
    app(args=list(args), prog_name="gigapy")


__all__ = ["GigapyGroup", "app", "describe", "get_state", "report", "run"]
