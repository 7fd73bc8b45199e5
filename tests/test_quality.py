"""The code quality bar, enforced by the suite: ruff clean, mypy --strict clean, light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_is_clean() -> None:
    proc = run(str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "examples", "scripts")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean() -> None:
    roots = ("src", "tests", "benchmarks", "reliability", "examples", "scripts")
    proc = run(str(BIN / "ruff"), "format", "--check", *roots)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_is_clean_on_src() -> None:
    proc = run(str(BIN / "mypy"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_gigapy_is_light() -> None:
    code = (
        "import sys, gigapy; heavy = {'httpx', 'aiohttp', 'pydantic', 'gigapy.emulator', 'gigapy.cli', "
        "'typer', 'rich', 'ray', 'gigapy.ray', 'pyarrow'} & set(sys.modules); print(sorted(heavy))"
    )
    proc = run(sys.executable, "-c", code)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_telemetry_off_imports_no_opentelemetry() -> None:
    """Off (the default), neither ``import gigapy`` nor building clients and a request imports
    opentelemetry (tests/client/test_telemetry.py makes real calls the same way)."""
    code = (
        "import sys, gigapy; from gigapy._ops import base; from gigapy import GigaChat, AsyncGigaChat; "
        "GigaChat(access_token='t'); AsyncGigaChat(access_token='t'); "
        "c = base.ClientCore(GigaChat(access_token='t').settings); assert c.hook() is None; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))"
    )
    proc = run(sys.executable, "-c", code)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_the_version_is_written_once() -> None:
    import re

    import gigapy

    literal = re.compile(r"""["']\d+\.\d+\.\d+(?:[.\-+]?\w+)*["']""")
    found = []
    for path in sorted((ROOT / "src" / "gigapy").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        found += [(path.name, m) for m in literal.findall(text) if m.strip("'\"") == gigapy.__version__]
    assert found == [("_version.py", f'"{gigapy.__version__}"')], found
    assert 'path = "src/gigapy/_version.py"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    from gigapy._ops.base import USER_AGENT

    assert USER_AGENT.startswith(f"gigapy/{gigapy.__version__} ")


def test_no_issue_number_references() -> None:
    """A reader cannot look up an issue by its number: code, docs, tests and reports say what they mean."""
    import re

    pattern = re.compile(r"\b[Ii]ssue #?\d+\b")
    roots = ["src", "tests", "benchmarks", "reliability", "docs", "examples"]
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for root in roots:
        files += [p for p in (ROOT / root).rglob("*") if p.suffix in (".py", ".md", ".yml", ".toml", ".txt")]
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in files
        if p.is_file()
        for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def test_reports_live_together() -> None:
    assert (ROOT / "benchmarks" / "RESULTS.md").is_file() and (ROOT / "benchmarks" / "RELIABILITY.md").is_file()
    assert not (ROOT / "RELIABILITY.md").exists()


def test_sync_client_imports_no_asyncio_and_no_httpx_cli() -> None:
    """The sync client's import leaves asyncio and httpx's own CLI (click, rich, pygments) out;
    httpx's ``main`` still works when called (loaded then)."""
    code = (
        "import sys\nfrom gigapy import GigaChat\nimport httpx\n"
        "print(sorted({'asyncio', 'click', 'rich', 'pygments', 'typer'} & set(sys.modules)))\n"
        "from httpx._main import print_response\nprint(callable(httpx.main), callable(print_response))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.split("\n")[:2] == ["[]", "True True"], proc.stdout
