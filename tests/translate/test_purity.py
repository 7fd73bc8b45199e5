"""The translation is sans-IO: its modules import nothing that does I/O, waits, or draws randomness."""

from __future__ import annotations

import ast

from ..conftest import ROOT

PACKAGE = ROOT / "src" / "gigapy" / "_translate"
FORBIDDEN = {
    "httpx",
    "httpx2",
    "aiohttp",
    "asyncio",
    "threading",
    "socket",
    "ssl",
    "time",
    "random",
    "secrets",
    "uuid",
    "os",
    "io",
    "subprocess",
    "urllib",
    "pathlib",
    "shutil",
    "tempfile",
    "logging",
}
ALLOWED_GIGAPY = {"errors", "schema"}  # pure modules of ours the translation builds on
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval"}


def test_no_io_imports_or_calls() -> None:
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) >= 10
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {alias.name}"
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    assert (node.module or "").split(".")[0] not in FORBIDDEN, f"{path.name} imports {node.module}"
                elif node.level == 2:  # from ..x import y: gigapy itself
                    assert node.module in ALLOWED_GIGAPY, f"{path.name} imports gigapy.{node.module}"
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}()"
