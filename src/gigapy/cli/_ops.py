"""One subcommand per API operation: a human table by default, ``--json`` on every one."""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import (
    EXIT_ERROR,
    EXIT_IO,
    EXIT_USAGE,
    fail,
    get_state,
    is_tty,
    out_console,
    print_json,
    read_text_arg,
    to_data,
)

if TYPE_CHECKING:
    from rich.table import Table

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")]


def _table(*columns: str, title: str | None = None) -> Table:
    from rich.table import Table

    table = Table(title=title, show_header=True, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in ("id", "model", "output file"))
    return table


def _print(renderable: Any) -> None:
    out_console().print(renderable, highlight=False)


def _when(ts: int | None) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _texts(values: Sequence[str] | None, what: str) -> list[str]:
    """Texts from arguments, or one per line of stdin when none are given."""
    if values:
        if list(values) == ["-"]:
            return [line for line in sys.stdin.read().splitlines() if line.strip()]
        return [read_text_arg(v, what) if v.startswith("@") else v for v in values]
    if not is_tty(sys.stdin):
        lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
        if lines:
            return lines
    fail(f"no {what} given", "pass them as arguments or one per line on stdin", EXIT_USAGE)


# --- models ----------------------------------------------------------------------------------

def models(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the models available to the account."""
    result = get_state(ctx).client().all_models()
    if json_out:
        print_json(result.to_dict())
        return
    table = _table("model", "type", "owned by")
    for m in result.data:
        table.add_row(m.id, m.type or "", m.owned_by or "")
    _print(table)


def model(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Model name, e.g. GigaChat-2-Max.")],
          json_out: JsonOpt = False) -> None:
    """Describe one model."""
    result = get_state(ctx).client().get_model(name)
    if json_out:
        print_json(result.to_dict())
        return
    table = _table("field", "value")
    for key, value in result.to_dict().items():
        table.add_row(key, str(value))
    _print(table)


# --- embeddings and tokens -------------------------------------------------------------------

def embed(ctx: typer.Context,
          texts: Annotated[list[str] | None, typer.Argument(
              help="Texts to embed (@FILE reads a file; none: one text per stdin line).", show_default=False)] = None,
          model_name: Annotated[str, typer.Option("--model", "-m", help="Embeddings model.")] = "Embeddings",
          json_out: JsonOpt = False) -> None:
    """Embed texts into vectors."""
    items = _texts(texts, "texts")
    result = get_state(ctx).client().embedding(items, model=model_name)
    if json_out:
        print_json(result.to_dict())
        return
    table = _table("#", "text", "tokens", "dims", "vector")
    for e in sorted(result.data, key=lambda e: e.index):
        head = ", ".join(f"{x:.4f}" for x in e.embedding[:4])
        text = items[e.index] if e.index < len(items) else ""
        table.add_row(str(e.index), _short(text), str(e.usage.prompt_tokens if e.usage else ""),
                      str(len(e.embedding)), f"[{head}, …]")
    _print(table)


def _short(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def tokens(ctx: typer.Context,
           texts: Annotated[list[str] | None, typer.Argument(
               help="Texts to count (@FILE reads a file; none: one text per stdin line).", show_default=False)] = None,
           model_name: Annotated[str | None, typer.Option("--model", "-m", help="Model (default: the client's).",
                                                          show_default=False)] = None,
           json_out: JsonOpt = False) -> None:
    """Count the tokens of texts for a model."""
    items = _texts(texts, "texts")
    state = get_state(ctx)
    result = state.client().count_tokens(items, model=model_name or state.model)
    if json_out:
        print_json(to_data(result))
        return
    table = _table("text", "tokens", "characters")
    for text, count in zip(items, result, strict=False):
        table.add_row(_short(text), str(count.tokens), str(count.characters))
    _print(table)


def balance(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Show the remaining prepaid tokens (prepaid scopes only)."""
    result = get_state(ctx).client().get_balance()
    if json_out:
        print_json(result.to_dict())
        return
    table = _table("usage", "tokens left")
    for item in result.balance:
        table.add_row(item.usage, f"{item.value:,.0f}")
    _print(table)


# --- files -----------------------------------------------------------------------------------

files_app = typer.Typer(help="Upload, list, describe, download and delete files.", no_args_is_help=True)


def _file_table(items: Sequence[Any]) -> Table:
    table = _table("id", "filename", "purpose", "bytes", "created", "access")
    for f in items:
        table.add_row(f.id, f.filename or "", f.purpose or "", str(f.bytes), _when(f.created_at), f.access_policy or "")
    return table


@files_app.command("upload")
def files_upload(ctx: typer.Context, path: Annotated[Path, typer.Argument(help="File to upload.")],
                 purpose: Annotated[str, typer.Option(help="general or assistant.")] = "general",
                 json_out: JsonOpt = False) -> None:
    """Upload a file (checked against the service's type and size limits first)."""
    if path.is_dir():
        fail(f"{path} is a directory: files upload takes one file",
             f"upload its files one by one: for f in {path}/*; do gigapy files upload \"$f\"; done", EXIT_USAGE)
    if not path.is_file():
        fail(f"file not found: {path}", exit_code=EXIT_USAGE)
    result = get_state(ctx).client().upload_file(str(path), purpose=purpose)
    if json_out:
        print_json(result.to_dict())
        return
    _print(_file_table([result]))


@files_app.command("list")
def files_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the account's files."""
    result = get_state(ctx).client().get_all_files()
    if json_out:
        print_json(to_data(result))
        return
    if not result:
        _print("no files")
        return
    _print(_file_table(result))


@files_app.command("info")
def files_info(ctx: typer.Context, file_id: Annotated[str, typer.Argument(help="File id.")],
               json_out: JsonOpt = False) -> None:
    """Describe one file."""
    result = get_state(ctx).client().get_file_info(file_id)
    if json_out:
        print_json(result.to_dict())
        return
    _print(_file_table([result]))


@files_app.command("download")
def files_download(ctx: typer.Context, file_id: Annotated[str, typer.Argument(help="File id.")],
                   output: Annotated[Path | None, typer.Option(
                       "--output", "-o", help="Where to save it (default: the file's name, or its id).",
                       show_default=False)] = None,
                   force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing file.")] = False,
                   client_id: Annotated[str | None, typer.Option(
                       help="X-Client-ID the file was generated with (images).", show_default=False)] = None,
                   json_out: JsonOpt = False) -> None:
    """Download a file's content (an existing file is kept unless --force)."""
    client = get_state(ctx).client()
    options: dict[str, Any] = {"client_id": client_id} if client_id else {}
    if output is None:
        info = client.get_file_info(file_id, **options)
        output = Path(safe_filename(info.filename or "", fallback=file_id))
    if output.is_dir():
        output = output / safe_filename(client.get_file_info(file_id, **options).filename or "", fallback=file_id)
    if output.exists() and not force:
        fail(f"{output} exists; not overwritten", "pass --force to replace it, or -o to save elsewhere", EXIT_USAGE)
    target = _download(client, file_id, output, options)
    size = target.stat().st_size
    if json_out:
        print_json({"id": file_id, "path": str(target), "bytes": size})
        return
    _print(f"saved {size} bytes to {target}")


def _download(client: Any, file_id: str, target: Path, options: dict[str, Any]) -> Path:
    """Download to ``target``; a write that fails (a full disk) exits with the disk-error code."""
    try:
        return Path(client.download_file(file_id, target, **options))
    except OSError as exc:
        import errno

        code = errno.errorcode.get(exc.errno or 0, "")
        fail(f"cannot write {target}: {exc.strerror or exc}{f' ({code})' if code else ''}",
             "free space (or raise the file-size limit, or save elsewhere with -o) and run the command again",
             EXIT_IO)


_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


def safe_filename(name: str, fallback: str = "download") -> str:
    """A server-given file name made safe to save in the current directory: no directories
    (``../``, ``/etc/``, ``C:\\``), no control or reserved characters, no leading dots, at most
    200 characters; ``fallback`` (sanitised too) when nothing is left."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip().lstrip(".").strip()
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 16 else base[:200]
    if not base or set(base) <= {"_", " "}:
        return safe_filename(fallback, "download") if fallback != name else "download"
    return base


@files_app.command("delete")
def files_delete(ctx: typer.Context, file_id: Annotated[str, typer.Argument(help="File id.")],
                 json_out: JsonOpt = False) -> None:
    """Delete a file."""
    result = get_state(ctx).client().delete_file(file_id)
    if json_out:
        print_json(result.to_dict())
        return
    _print(f"deleted {result.id}" if result.deleted else f"not deleted: {result.id}")


# --- images, AI check, functions ---------------------------------------------------------------

def _free_sibling(output: Path, number: int, taken: set[Path], force: bool) -> Path:
    """``FILE-N.ext`` for the N-th image: the next number that names no existing file (unless ``force``)."""
    while True:
        target = output.with_name(f"{output.stem}-{number}{output.suffix}")
        if target not in taken and (force or not target.exists()):
            return target
        number += 1


def image(ctx: typer.Context,
          prompt: Annotated[str, typer.Argument(help="What to draw.")],
          output: Annotated[Path, typer.Option("--output", "-o", help="Where to save the JPEG.")],
          model_name: Annotated[str | None, typer.Option("--model", "-m", help="Model (default: the client's).",
                                                         show_default=False)] = None,
          force: Annotated[bool, typer.Option("--force", "-f", help="Replace existing files.")] = False,
          json_out: JsonOpt = False) -> None:
    """Generate an image and save it (a second image goes to FILE-2.jpg, and so on; existing files are
    kept unless --force)."""
    if output.exists() and not force:
        fail(f"{output} exists; not overwritten", "pass --force to replace it, or -o to save elsewhere", EXIT_USAGE)
    state = get_state(ctx)
    client = state.client()
    client_id = str(uuid.uuid4())  # generated files are bound to the X-Client-ID that asked for them
    prompt_text = prompt if any(w in prompt.lower() for w in ("нарисуй", "draw", "изобраз")) else f"Нарисуй {prompt}"
    completion = client.completion(prompt_text, model=model_name or state.model or client.settings.model,
                                   function_call="auto", client_id=client_id)
    ids = completion.images
    if not ids:
        fail(f"the model answered without an image: {_short(completion.text, 200)}",
             "ask explicitly for a picture (\"Нарисуй ...\"), or try another model (-m GigaChat-2-Max)", EXIT_ERROR)
    saved = []
    taken: set[Path] = set()
    for i, file_id in enumerate(ids):
        target = output if i == 0 else _free_sibling(output, i + 1, taken, force)
        taken.add(target)
        _download(client, file_id, target, {"client_id": client_id})
        saved.append({"id": file_id, "path": str(target), "bytes": target.stat().st_size})
    if json_out:
        print_json({"images": saved, "completion": completion.to_dict()})
        return
    for item in saved:
        _print(f"saved {item['bytes']} bytes to {item['path']} (file {item['id']})")


def ai_check(ctx: typer.Context,
             text: Annotated[str | None, typer.Argument(help="Text to check (@FILE, '-' or stdin).",
                                                        show_default=False)] = None,
             model_name: Annotated[str, typer.Option("--model", "-m", help="Detector model.")] = (
                 "GigaCheckClassification"),
             json_out: JsonOpt = False) -> None:
    """Tell whether a text was written by AI."""
    body = read_text_arg(text, "text")
    result = get_state(ctx).client().check_ai(body, model=model_name)
    if json_out:
        print_json(result.to_dict())
        return
    table = _table("field", "value")
    table.add_row("category", result.category or "")
    table.add_row("characters", str(result.characters))
    table.add_row("tokens", str(result.tokens))
    for start, end in result.ai_intervals:
        table.add_row(f"AI span {start}..{end}", _short(body[start:end], 60))
    _print(table)


def validate_function(ctx: typer.Context,
                      definition: Annotated[str | None, typer.Argument(
                          help="Function definition: a JSON file, JSON text, or stdin.", show_default=False)] = None,
                      json_out: JsonOpt = False) -> None:
    """Ask the service whether a function definition is valid (exit 1 when it is not)."""
    raw = definition
    if raw is not None and not raw.lstrip().startswith("{") and raw != "-" and Path(raw).is_file():
        raw = Path(raw).read_text(encoding="utf-8")
    elif raw is None or raw == "-":
        raw = read_text_arg(raw, "function definition")
    try:
        function = json.loads(raw)
    except ValueError as exc:
        fail(f"the function definition is not valid JSON: {exc}", exit_code=EXIT_USAGE)
    if not isinstance(function, dict):
        fail("the function definition must be a JSON object", exit_code=EXIT_USAGE)
    result = get_state(ctx).client().validate_function(function)
    if json_out:
        print_json(result.to_dict())
    else:
        _print(f"{'valid' if result.is_valid else 'INVALID'}: {result.message}".rstrip(": "))
        for kind, issues in (("error", result.errors), ("warning", result.warnings)):
            for issue in issues:
                where = f" at {issue.schema_location}" if issue.schema_location else ""
                _print(f"  {kind}{where}: {issue.description}")
    if not result.is_valid:
        raise typer.Exit(EXIT_ERROR)


functions_app = typer.Typer(help="Function definitions: make them from OpenAPI.", no_args_is_help=True)


@functions_app.command("convert")
def functions_convert(ctx: typer.Context,
                      spec: Annotated[str, typer.Argument(help="OpenAPI 3 document (JSON or YAML): a file, or '-' "
                                                               "for stdin.")],
                      json_out: JsonOpt = False) -> None:
    """Turn an OpenAPI document into function definitions (one per operation), via /functions/convert."""
    if spec == "-":
        text = read_text_arg("-", "OpenAPI document")
    else:
        try:
            text = Path(spec).read_text(encoding="utf-8")
        except FileNotFoundError:
            fail(f"{spec}: no such file", "pass the path of an OpenAPI document, or '-' to read stdin", EXIT_USAGE)
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read {spec}: {getattr(exc, 'strerror', None) or exc}", exit_code=EXIT_USAGE)
    result = get_state(ctx).client().convert_functions(text)
    if json_out:
        print_json(result.to_dict())
        return
    table = _table("function", "description", "parameters")
    for function in result.functions:
        params = (function.parameters or {}).get("properties") or {}
        required = set((function.parameters or {}).get("required") or [])
        names = ", ".join(f"{k}*" if k in required else k for k in params)
        table.add_row(function.name, _short(function.description or "", 60), names)
    _print(table)
    _print(f"{len(result.functions)} function(s); * = required. --json prints them for functions=")


filter_app = typer.Typer(help="The service's topic filter (/filter/check).", no_args_is_help=True)


@filter_app.command("check")
def filter_check(ctx: typer.Context,
                 text: Annotated[str | None, typer.Argument(help="Text to check (@FILE, '-' or stdin).",
                                                            show_default=False)] = None,
                 model_name: Annotated[str, typer.Option("--model", "-m", help="Filter model.")] = "GigaFilter",
                 neuro: Annotated[bool, typer.Option(help="The neural censor.")] = True,
                 blacklist: Annotated[bool, typer.Option(help="Stop words.")] = True,
                 whitelist: Annotated[bool, typer.Option(help="Words that get a canned answer.")] = True,
                 json_out: JsonOpt = False) -> None:
    """Check a text against the account's topic restrictions (exit 1 when it breaks them)."""
    body = read_text_arg(text, "text")
    settings = {"neuro": neuro, "blacklist": blacklist, "whitelist": whitelist}
    result = get_state(ctx).client().check_filter(body, model=model_name,
                                                  settings=None if all(settings.values()) else settings)
    if json_out:
        print_json(result.to_dict())
    else:
        verdict = "restricted: the text breaks the topic restrictions" if result.is_profane else "clean"
        _print(f"{verdict} ({result.usage.filter_tokens} filter tokens)")
    if result.is_profane:
        raise typer.Exit(EXIT_ERROR)


# --- batches API -----------------------------------------------------------------------------

batches_app = typer.Typer(help="The service's own batches API (/batches).", no_args_is_help=True)


def _batch_table(items: Sequence[Any]) -> Table:
    """One row per batch; the id is never cut (the output file id is in ``get`` and ``--json``)."""
    table = _table("id", "method", "status", "done/total", "failed", "created")
    for b in items:
        c = b.request_counts
        table.add_row(b.id, b.method or "", b.status or "", f"{c.completed or 0}/{c.total}", str(c.failed or 0),
                      _when(b.created_at))
    return table


def _batch_details(b: Any) -> Table:
    """One batch as key/value rows, so every id fits an 80-column terminal."""
    table = _table("key", "value")
    c = b.request_counts
    for key, value in (("id", b.id), ("method", b.method or ""), ("status", b.status or ""),
                       ("requests", f"{c.total} total, {c.completed or 0} completed, {c.failed or 0} failed"),
                       ("created", _when(b.created_at)), ("output file", b.output_file_id or "")):
        table.add_row(key, value)
    return table


@batches_app.command("create")
def batches_create(ctx: typer.Context,
                   input_path: Annotated[Path, typer.Argument(help="JSONL: {\"id\", \"request\"} per line.")],
                   kind: Annotated[str, typer.Option(help="chat or embeddings (auto: from the first line).")] = "auto",
                   json_out: JsonOpt = False) -> None:
    """Submit a JSONL file as a batch."""
    from gigapy.batch import detect_kind

    method = "chat_completions" if (detect_kind(input_path) if kind == "auto" else kind) == "chat" else "embedder"
    result = get_state(ctx).client().create_batch(str(input_path), method=method)
    if json_out:
        print_json(result.to_dict())
        return
    _print(_batch_details(result))


@batches_app.command("list")
def batches_list(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List the account's batches."""
    result = get_state(ctx).client().get_batches()
    if json_out:
        print_json(to_data(result))
        return
    if not result:
        _print("no batches")
        return
    _print(_batch_table(result))


@batches_app.command("get")
def batches_get(ctx: typer.Context, batch_id: Annotated[str, typer.Argument(help="Batch id.")],
                json_out: JsonOpt = False) -> None:
    """Describe one batch."""
    result = get_state(ctx).client().get_batch(batch_id)
    if json_out:
        print_json(result.to_dict())
        return
    _print(_batch_details(result))


@batches_app.command("results")
def batches_results(ctx: typer.Context, batch_id: Annotated[str, typer.Argument(help="Batch id.")],
                    output: Annotated[Path | None, typer.Option(
                        "--output", "-o", help="Write OUTPUT.jsonl ({\"id\", \"response\"} lines; failures go to "
                                               "OUTPUT.errors.jsonl), as `gigapy batch` does.",
                        show_default=False)] = None,
                    json_out: JsonOpt = False) -> None:
    """Fetch the results of a finished batch."""
    results = get_state(ctx).client().get_batch_results(batch_id)
    if output is not None:
        from gigapy.batch import default_errors_path, write_batch_results

        ok, failed = write_batch_results(results, output)
        if json_out:
            print_json({"output": str(output), "done": ok, "failed": failed})
        else:
            _print(f"{ok} results written to {output}" + (f", {failed} failures to {default_errors_path(output)}"
                                                           if failed else ""))
        return
    if json_out:
        print_json(to_data(results))
        return
    table = _table("id", "status", "result")
    for r in results:
        if r.ok and r.body is not None:
            choices = r.body.get("choices")
            if isinstance(choices, list) and choices:
                summary = _short(str(choices[0].get("message", {}).get("content", "")), 60)
            else:
                summary = f"{len(r.body.get('data', []))} vectors" if "data" in r.body else "ok"
        else:
            summary = _short(json.dumps(r.error, ensure_ascii=False), 60)
        table.add_row(r.id, str(r.status_code or ("ok" if r.ok else "error")), summary)
    _print(table)


def register(app: typer.Typer) -> None:
    """Add the per-operation commands."""
    panel = "Chat and API operations"
    app.command("models", rich_help_panel=panel)(models)
    app.command("model", rich_help_panel=panel)(model)
    app.command("embed", rich_help_panel=panel)(embed)
    app.command("tokens", rich_help_panel=panel)(tokens)
    app.command("balance", rich_help_panel=panel)(balance)
    app.add_typer(files_app, name="files", rich_help_panel=panel)
    app.command("image", rich_help_panel=panel)(image)
    app.command("ai-check", rich_help_panel=panel)(ai_check)
    app.command("validate-function", rich_help_panel=panel)(validate_function)
    app.add_typer(functions_app, name="functions", rich_help_panel=panel)
    app.add_typer(filter_app, name="filter", rich_help_panel=panel)
    app.add_typer(batches_app, name="batches", rich_help_panel="Bulk runs")
