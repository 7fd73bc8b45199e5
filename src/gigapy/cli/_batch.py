"""``gigapy batch``: a progress UI over :mod:`gigapy.batch` (the runner is a library)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_IO, EXIT_USAGE, CliError, fail, get_state, is_tty

if TYPE_CHECKING:
    import asyncio

    from gigapy.batch import BatchProgress, BatchSummary

BATCH_HELP = (
    "Run a JSONL file of requests: resumable, exactly once, adaptive concurrency.\n\n"
    'INPUT lines use the service\'s batch format: {"id": "...", "request": {...}} where request is the body '
    'of /chat/completions or /embeddings. OUTPUT gets {"id": ..., "response": {...}} per finished request, '
    "appended as each finishes; requests that still fail after retries go to OUTPUT.errors.jsonl with the "
    "typed error.\n\n"
    "A line that cannot be sent (not JSON, no usable id, text UTF-8 cannot encode) goes to the errors file with its "
    "line number; the run goes on.\n\n"
    "Interrupted (Ctrl-C, crash, kill -9, a full disk)? Rerun the same command: it resumes, skipping what is done, "
    "with no duplicates. --retry-failed runs the failed ids again; lines refused as bad input are checked again "
    "on every run.\n\n"
    "A request that may have reached the model (a 502 or 504, a timeout or a connection lost after sending) is "
    "recorded as failed, never sent twice, unless --retry-non-idempotent. When the service cannot be reached at "
    "all, the run stops within seconds and records nothing as failed: rerun once it is reachable.\n\n"
    'OpenAI batch lines ({"custom_id": ..., "url": "/v1/chat/completions", "body": {...}}) are accepted too.\n\n'
    "Exit code: 0 all done, 1 some lines failed, 2 bad arguments (or another run holds OUTPUT), 4 OUTPUT or the "
    "errors file could not be written, 130 interrupted."
)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def progress_line(p: BatchProgress) -> str:
    """One plain line of progress (logs, pipes, CI)."""
    pct = 100.0 * p.finished / p.total if p.total else 100.0
    head = f"batch: {p.finished}/{p.total} ({pct:.1f}%) done={p.done} failed={p.failed} "
    if p.status == "polling":  # --via-batches-api: the service runs the requests
        return head + f"service batches running={p.in_flight} ETA {_fmt_eta(p.eta)}"
    return head + (f"{p.requests_per_second:.1f} req/s tokens={p.tokens} ETA {_fmt_eta(p.eta)} "
                   f"concurrency={p.concurrency:.0f}")


@contextlib.contextmanager
def progress_display(enabled: bool, interval: float) -> Iterator[Callable[[BatchProgress], None]]:
    """A progress callback: a rich bar on a terminal, a plain line every ``interval`` s otherwise."""
    if not enabled:
        yield lambda p: None
        return
    if is_tty(sys.stderr):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from ._common import err_console

        columns = (
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"), TextColumn("{task.fields[rate]} req/s"),
            TextColumn("{task.fields[tokens]} tokens"), TextColumn("ETA {task.fields[eta]}"),
            TextColumn("[dim]concurrency {task.fields[conc]}"),
        )
        with Progress(*columns, console=err_console(), refresh_per_second=8) as bar:
            task = bar.add_task("batch", total=None, failed=0, rate="0.0", tokens="0", eta="--:--", conc="-")

            def update(p: BatchProgress) -> None:
                bar.update(task, total=p.total, completed=p.finished, failed=p.failed,
                           rate=f"{p.requests_per_second:.1f}", tokens=f"{p.tokens:,}", eta=_fmt_eta(p.eta),
                           conc=f"{p.concurrency:.0f}")

            yield update
        return
    last = [0.0]

    def plain(p: BatchProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= interval:
            last[0] = now
            try:
                sys.stderr.write(progress_line(p) + "\n")
                sys.stderr.flush()
            except (OSError, ValueError):  # stderr is gone or full: progress is not worth stopping the run for
                last[0] = float("inf")

    yield plain


def _summary_text(s: BatchSummary, via_api: bool) -> str:
    head = "interrupted" if s.interrupted else "finished"
    text = (f"{head}: {s.done}/{s.total} done, {s.failed} failed, {s.remaining} left; "
            f"this run: {s.completed_this_run} in {s.elapsed:.1f} s")
    if not via_api:
        text += f" ({s.requests_per_second:.1f} req/s, {s.tokens:,} tokens)"
    text += f"\n  output: {s.output_path}"
    if s.failed > s.rejected:
        text += f"\n  errors: {s.errors_path} (rerun with --retry-failed to try them again)"
    if s.rejected:
        text += (f"\n  {s.rejected} lines could not be sent (bad input, in {s.errors_path} with their line numbers; "
                 "fix them and rerun: they are checked again on every run)")
    cost = getattr(s, "cost", None) or {}
    for model, u in (getattr(s, "usage", None) or {}).items():
        rub = cost.get("by_model", {}).get(model)
        price = f", ~{rub:.2f} RUB (estimate)" if rub is not None else ""
        text += (f"\n  usage {model}: {u['requests']} requests, {u['errors']} errors, {u['prompt_tokens']:,} prompt + "
                 f"{u['completion_tokens']:,} completion tokens ({u['cached_tokens']:,} cached){price}")
    if getattr(s, "budget_reached", False):
        text += (f"\n  budget reached: stopped before the estimate passed it; {s.remaining} requests not sent, "
                 "rerun with a larger --budget to send them")
    if s.duplicate_ids:
        shown = ", ".join(s.duplicate_ids[:5]) + (", ..." if len(s.duplicate_ids) > 5 else "")
        text += f"\n  warning: {len(s.duplicate_ids)} duplicate ids in the input were run once: {shown}"
    for warning in s.warnings:
        text += f"\n  warning: {warning}"
    if s.interrupted:
        text += "\n  rerun the same command to resume"
    return text


def batch(
    ctx: typer.Context,
    input_path: Annotated[Path, typer.Argument(metavar="INPUT.jsonl", help="Requests, one JSON object per line.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE",
                                         help="Answers are appended here.")],
    kind: Annotated[str, typer.Option(help="chat, embeddings, or auto (from the first request).")] = "auto",
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", "-c", min=1, max=1000, metavar="N",
        help="Most requests in flight, 1-1000 (default: the account's limit, found by the client).")] = None,
    retries: Annotated[int, typer.Option(min=0, max=100, metavar="N",
                                         help="Extra attempts per request after the client's own retries, 0-100.")] = 3,
    errors: Annotated[Path | None, typer.Option("--errors", metavar="FILE",
                                                help="Errors file (default: OUTPUT with .errors.jsonl for .jsonl).",
                                                show_default=False)] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed",
                                               help="Run the ids in the errors file again.")] = False,
    retry_non_idempotent: Annotated[bool, typer.Option(
        "--retry-non-idempotent",
        help="Send a request again after a 502, 504, timeout or lost connection (it may run twice).")] = False,
    via_batches_api: Annotated[bool, typer.Option(
        "--via-batches-api", help="Submit through the service's /batches API, poll, write the same OUTPUT.")] = False,
    batch_size: Annotated[int, typer.Option(
        min=1, metavar="N", help="Lines per service batch (with the /batches API).")] = 10_000,
    poll_interval: Annotated[float, typer.Option(
        min=0.05, metavar="SECONDS", help="Seconds between polls (with the /batches API).")] = 5.0,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Show progress on stderr (default: on).", show_default=False)] = None,
    progress_interval: Annotated[float, typer.Option(
        min=0.05, metavar="SECONDS", help="Seconds between plain progress lines when stderr is not a terminal.")] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    coordinator: Annotated[str | None, typer.Option(
        "--coordinator", metavar="URL", envvar="GIGACHAT_COORDINATOR", show_envvar=False,
        help="Share the account and the input with other workers: a redis:// or rediss:// URL, or "
             "file:///dir (one host). Each worker gets its own --output; every id lands once in their union.",
        show_default=False)] = None,
    job: Annotated[str | None, typer.Option(
        "--job", metavar="NAME", help="Name of the shared job (default: a digest of INPUT).",
        show_default=False)] = None,
    budget: Annotated[float | None, typer.Option(
        "--budget", metavar="RUB", min=0,
        help="Stop before this run's cost estimate (roubles) would pass RUB; what is not sent stays pending.",
        show_default=False)] = None,
    prices: Annotated[Path | None, typer.Option(
        "--prices", metavar="PRICES.json",
        help="Price table for the cost estimate (default: GIGAPY_PRICES or the built-in estimate).",
        show_default=False)] = None,
) -> None:
    """Run a JSONL file of requests: resumable, exactly once, adaptive concurrency."""
    import asyncio  # here: the other commands never load it

    from gigapy.batch import BatchAborted, BatchWriteError, run_batch, run_via_batches_api

    if kind not in ("auto", "chat", "embeddings"):
        fail(f"--kind: expected chat, embeddings or auto, got {kind!r}", exit_code=EXIT_USAGE)
    if not input_path.is_file():
        fail(f"input file not found: {input_path}", exit_code=EXIT_USAGE)
    if budget is not None and via_batches_api:
        fail("--budget: not available with --via-batches-api (the service runs the requests)", exit_code=EXIT_USAGE)
    table = None
    if prices is not None:
        from gigapy.errors import ConfigurationError
        from gigapy.usage import PriceTable

        try:
            table = PriceTable.load(prices)
        except ConfigurationError as exc:
            fail(f"--prices: {exc}", exit_code=EXIT_USAGE)
    state = get_state(ctx)
    show = True if progress is None else progress

    async def main(update: Callable[[BatchProgress], None]) -> BatchSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = _install_handlers(loop, stop)
        overrides: dict[str, object] = {"max_connections": max(100, concurrency or 0)}
        if retry_non_idempotent:
            overrides["retry_non_idempotent"] = True
        if coordinator is not None:
            overrides["coordinator"] = coordinator
        client = state.async_client(**overrides)
        try:
            if via_batches_api:
                return await run_via_batches_api(client, input_path, output, kind=kind, errors_path=errors,
                                                 retry_failed=retry_failed, batch_size=batch_size,
                                                 poll_interval=poll_interval, on_progress=update, stop=stop)
            return await run_batch(client, input_path, output, kind=kind, concurrency=concurrency,
                                   errors_path=errors, retry_failed=retry_failed, retries=retries,
                                   retry_non_idempotent=retry_non_idempotent or None,
                                   budget_rub=budget, prices=table, on_progress=update,
                                   progress_interval=min(0.25, progress_interval), stop=stop,
                                   coordinator=coordinator, job=job)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await client.aclose()

    try:
        import gc

        gc.collect()
        gc.freeze()  # start-up objects (typer, rich, the client's modules) leave the collector's scans
        with _file_size_errors(), progress_display(show, progress_interval) as update:
            summary = asyncio.run(main(update))
    except BatchWriteError as exc:
        saved = ""
        if exc.summary is not None:
            s = exc.summary
            saved = (f"the {s.done} finished answers in {s.output_path} and {s.failed} failures in {s.errors_path} "
                     "are saved, each a whole line; ")
        raise CliError(f"batch stopped: {exc}", f"{saved}free space (or raise the file-size limit) and rerun the "
                                                "same command to resume", EXIT_IO) from None
    except BatchAborted as exc:
        from gigapy.errors import APIConnectionError

        from ._app import describe

        cause = exc.__cause__ or exc
        message, fix, code = describe(cause)
        s = exc.summary
        if isinstance(cause, APIConnectionError) and not cause.sent:  # the circuit breaker
            raise CliError(f"batch stopped: cannot reach the service: {message}",
                           f"{fix + '; ' if fix else ''}the {s.remaining} requests not answered yet are not recorded "
                           f"as failed and the {s.done} finished answers are saved in {s.output_path}; rerun the same "
                           "command once the service is reachable", code) from None
        raise CliError(f"batch stopped: {message}",
                       f"{fix + '; ' if fix else ''}the {s.done} finished answers are saved in {s.output_path}; "
                       "fix the cause and rerun the same command to resume", code) from None
    _print_summary(summary, via_batches_api, json_out)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_ERROR)


def _print_summary(summary: BatchSummary, via_api: bool, json_out: bool) -> None:
    """The summary on stdout, checked: a failed write is an I/O error, not a silent success."""
    import errno
    import os

    from gigapy._bulk_files import write_all

    text = (json.dumps(summary.to_dict(), ensure_ascii=False, indent=2) if json_out
            else _summary_text(summary, via_api)) + "\n"
    try:
        try:
            fd = sys.stdout.fileno()
        except (OSError, ValueError, AttributeError):  # an in-memory stream (test runners)
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        sys.stdout.flush()
        # bytes straight to the descriptor: the text layer over an unbuffered stdout (PYTHONUNBUFFERED,
        # python -u) drops the rest of a short write without a word
        write_all(fd, text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict"))
    except OSError as exc:
        with contextlib.suppress(OSError, ValueError):  # drop the unwritten rest: no second failure at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = errno.errorcode.get(exc.errno or 0, "")
        raise CliError(f"cannot write the summary to stdout: {exc.strerror or exc}{f' ({code})' if code else ''}",
                       f"the results are complete in {summary.output_path}; rerun the same command (it sends "
                       "nothing more) to print the summary", EXIT_IO) from None


@contextlib.contextmanager
def _file_size_errors() -> Iterator[None]:
    """Under a file-size limit (``ulimit -f``) a write past it fails with EFBIG, reported like a
    full disk, instead of SIGXFSZ killing the process."""
    sig = getattr(signal, "SIGXFSZ", None)
    try:
        previous = signal.signal(sig, signal.SIG_IGN) if sig is not None else None
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if sig is not None and previous is not None:
            signal.signal(sig, previous)


def _install_handlers(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[int]:
    """Ctrl-C and SIGTERM stop the run cleanly (what finished is saved)."""
    installed: list[int] = []
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stopper(stop, loop, sig))
            installed.append(sig)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        pass
    return installed


def _stopper(stop: asyncio.Event, loop: asyncio.AbstractEventLoop, sig: int) -> Callable[[], None]:
    def handler() -> None:
        if stop.is_set():  # a second Ctrl-C: stop hard
            loop.remove_signal_handler(sig)
            raise KeyboardInterrupt
        sys.stderr.write("\nstopping: saving what is finished (Ctrl-C again to quit at once)\n")
        stop.set()

    return handler


def register(app: typer.Typer) -> None:
    """Add ``batch`` and its alias ``bulk`` (the bulk runner's own name)."""
    app.command("batch", help=BATCH_HELP, rich_help_panel="Bulk runs")(batch)
    app.command("bulk", help="The same as `gigapy batch` (an alias).", rich_help_panel="Bulk runs")(batch)


__all__ = ["batch", "progress_line", "register"]
