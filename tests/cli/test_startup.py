"""``gigapy --help`` stays light: no httpx, aiohttp, pydantic or emulator, and a quick start."""

from __future__ import annotations

import resource
import subprocess
import sys
from typing import Any

from tests.cli.conftest import GIGAPY


def test_help_imports_no_heavy_modules() -> None:
    code = (
        "import sys\nfrom gigapy.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'httpx', 'aiohttp', 'pydantic', 'gigapy.emulator', 'gigapy._clients.sync_client',\n"
        "         'gigapy._clients.async_client'}\n"
        "sys.stderr.write('HEAVY=' + ','.join(sorted(heavy & set(sys.modules))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert "Usage" in proc.stdout
    assert proc.stderr.strip().endswith("HEAVY="), proc.stderr


def test_version_does_not_import_typer() -> None:
    code = (
        "import sys\nfrom gigapy.cli import main\nmain(['--version'])\n"
        "sys.stderr.write('TYPER=' + str('typer' in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.startswith("gigapy ")
    assert proc.stderr.strip().endswith("TYPER=False")


def _child_cpu(cmd: list[str]) -> float:
    """CPU seconds (user + system) one child process used: load on the machine barely moves it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


#: the floor any typer CLI pays: the framework and its rich help, for a one-command app
_TYPER_FLOOR = """
import typer
app = typer.Typer(rich_markup_mode="rich")
@app.command()
def hello(name: str = "x") -> None:
    "Say hello."
try:
    app(["--help"])
except SystemExit:
    pass
"""


def test_help_starts_quickly() -> None:
    """``gigapy --help`` costs little more CPU than a bare typer app's help (a ratio, not a time:
    benchmarks/bench_cli.py measures the start-up itself)."""
    ours = min(_child_cpu([GIGAPY, "--help"]) for _ in range(3))
    floor = min(_child_cpu([sys.executable, "-c", _TYPER_FLOOR]) for _ in range(3))
    assert ours < 2.0 * floor + 0.05, f"gigapy --help used {ours:.3f} s of CPU, a bare typer app {floor:.3f} s"


def test_one_shot_chat_loads_only_what_it_needs(subprocess_env: dict[str, str]) -> None:
    """``gigapy chat PROMPT`` answers from an app holding only ``chat``: no other command's module,
    no asyncio (the sync client), no httpx command-line client (click, rich, pygments)."""
    code = (
        "import sys\nfrom gigapy.cli import main\ntry:\n    main(['chat', 'What is the capital of France?'])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "unneeded = {'asyncio', 'gigapy.cli._batch', 'gigapy.cli._ops', 'gigapy.cli._doctor', 'pygments',\n"
        "            'gigapy.cli._serve', 'gigapy.cli._certs', 'gigapy.emulator'}\n"
        "sys.stderr.write('LOADED=' + ','.join(sorted(unneeded & set(sys.modules))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False, env=subprocess_env
    )
    assert proc.returncode == 0, proc.stderr
    assert "France" in proc.stdout
    assert proc.stderr.strip().endswith("LOADED="), proc.stderr


def test_full_app_still_serves_every_command(subprocess_env: dict[str, str]) -> None:
    """Other commands, typos and help go through the app with every command."""
    typo = subprocess.run(
        [GIGAPY, "chta", "hi"], capture_output=True, text=True, timeout=120, check=False, env=subprocess_env
    )
    assert typo.returncode != 0 and "chat" in typo.stderr
    models = subprocess.run(
        [GIGAPY, "models", "--json"], capture_output=True, text=True, timeout=120, check=False, env=subprocess_env
    )
    assert models.returncode == 0, models.stderr
    assert "GigaChat" in models.stdout
    helped = subprocess.run(
        [GIGAPY, "chat", "--help"], capture_output=True, text=True, timeout=120, check=False, env=subprocess_env
    )
    assert helped.returncode == 0 and "Usage: gigapy chat" in helped.stdout


def _every_click_command() -> list[tuple[str, Any]]:
    import typer

    from gigapy.cli._app import app

    out: list[tuple[str, Any]] = []

    def walk(name: str, command: Any) -> None:
        out.append((name, command))
        for sub_name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(f"{name} {sub_name}", sub)

    walk("gigapy", typer.main.get_command(app))
    return out


def _parse(command: Any, args: list[str]) -> Any:
    try:
        with command.make_context(command.name, list(args)) as ctx:
            return dict(ctx.params)
    except Exception as exc:  # a required argument missing: the same error either way
        return (type(exc).__name__, str(exc))


def test_missing_values_parse_as_typer_parses_them(monkeypatch: Any) -> None:
    """Every command and group, parsed with no arguments: the same values (or the same error) with
    the lazy coercion of missing values as with typer's own, which builds an adapter per parameter."""
    from typer.core import _TyperParameter

    commands = _every_click_command()
    assert len(commands) > 20
    lazy = [_parse(command, []) for _, command in commands]
    monkeypatch.setattr(_TyperParameter, "process_value", _TyperParameter.process_value.__wrapped__)
    typers = [_parse(command, []) for _, command in commands]
    assert lazy == typers
    assert any(isinstance(result, dict) and result for result in lazy)
    assert any(isinstance(result, tuple) and result[0] == "MissingParameter" for result in lazy)


def test_a_one_shot_chat_builds_a_converter_only_for_what_it_was_given() -> None:
    command = dict(_every_click_command())["gigapy chat"]
    for param in command.params:
        param._runtime_param = None
    params = _parse(command, ["hi", "--temperature", "0.5", "--tool", "web_search"])
    assert params["prompt"] == "hi" and params["temperature"] == 0.5 and list(params["tool"]) == ["web_search"]
    assert params["model"] is None and params["attach"] in ((), [], None)
    built = sorted(p.name for p in command.params if p._runtime_param is not None)
    assert built == ["prompt", "temperature", "tool"], built
