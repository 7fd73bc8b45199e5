"""The layers keep their rules, checked on the source text (``ast``).

- ``_core/`` is sans-IO: no HTTP library, no event loop, no threads or sockets, no sleeping and
  no module-level ``random`` (the clock and the jitter are passed in).
- No module of gigapy uses another module's ``_private`` name: what crosses a module boundary is
  a public name (inside the private packages too).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "gigapy"
CORE = SRC / "_core"
FORBIDDEN_IMPORTS = {"httpx", "httpcore", "aiohttp", "asyncio", "threading", "socket", "selectors", "ssl"}


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def core_violations(path: Path) -> list[str]:
    """What in ``path`` breaks the sans-IO rule."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    random_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_IMPORTS:
                    found.append(f"{path.name}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_IMPORTS:
                found.append(f"{path.name}:{node.lineno}: from {node.module} import ...")
            if top == "time" and any(a.name == "sleep" for a in node.names):
                found.append(f"{path.name}:{node.lineno}: from time import sleep")
            if top == "random":
                random_names.update(a.asname or a.name for a in node.names if a.name != "Random")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "time" and node.attr == "sleep":
                found.append(f"{path.name}:{node.lineno}: time.sleep")
            if node.value.id == "random" and node.attr not in ("Random", "SystemRandom"):
                found.append(f"{path.name}:{node.lineno}: module-level random.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in random_names:
            found.append(f"{path.name}:{node.lineno}: module-level random {node.id}")
    return found


def private_crossings(path: Path) -> list[str]:
    """Uses, in ``path``, of a ``_private`` name that lives in another module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    imported_modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            ours = node.level > 0 or (node.module or "").split(".")[0] == "gigapy"
            for alias in node.names:
                if not ours:
                    continue
                if _private(alias.name) and not _is_module(path, node, alias.name):
                    where = f"{path.relative_to(SRC)}:{node.lineno}"
                    found.append(f"{where}: from {node.module or '.'} import {alias.name}")
                elif _is_module(path, node, alias.name):
                    imported_modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("gigapy"):
                    imported_modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and _private(node.attr)
            and node.value.id in imported_modules
        ):
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def _is_module(path: Path, node: ast.ImportFrom, name: str) -> bool:
    """Whether ``from <module> import <name>`` names a module or package of gigapy."""
    if node.level == 0:
        if not (node.module or "").startswith("gigapy"):
            return False
        base = SRC.parent.joinpath(*(node.module or "").split("."))
    else:
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
        if node.module:
            base = base.joinpath(*node.module.split("."))
    return (base / f"{name}.py").is_file() or (base / name / "__init__.py").is_file()


def test_core_is_sans_io() -> None:
    modules = _modules(CORE)
    assert len(modules) >= 5
    problems = [p for m in modules for p in core_violations(m)]
    assert not problems, "\n".join(problems)


def test_no_private_names_cross_modules() -> None:
    problems = [p for m in _modules(SRC) for p in private_crossings(m)]
    assert not problems, f"{len(problems)} uses of another module's private name:\n" + "\n".join(problems)


def test_the_checks_catch_what_they_forbid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import asyncio\nimport random\nimport time\nfrom httpx import Client\ntime.sleep(1)\nx = random.random()\n",
        encoding="utf-8",
    )
    found = core_violations(bad)
    assert len(found) == 4, found
    ok = tmp_path / "ok.py"
    ok.write_text("import random\nimport time\nRNG = random.Random()\nnow = time.monotonic()\n", encoding="utf-8")
    assert core_violations(ok) == []
