"""The public API does not shrink or change: a snapshot of every public name.

For each public module (and every import path the README and docs show) the snapshot holds each
public name, its kind and, for classes and callables, their public members and signatures. The
clients' sub-APIs (``client.v2``, ``client.assistants``, ``client.threads``, ``client.conversation()``)
are recorded through an instance, so their class names may change but their methods may not.

New names and new optional parameters may be added; nothing may be removed or changed. Refresh
the file after an intended addition with ``python tests/test_public_api.py --update``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("public_api.json")

MODULES = [
    "gigapy",
    "gigapy.errors",
    "gigapy.types",
    "gigapy.batch",
    "gigapy.bulk",
    "gigapy.schema",
    "gigapy.tools",
    "gigapy.testing",
    "gigapy.emulator",
    "gigapy.usage",
    "gigapy.ray",
]

# "pkg.Name" prefixes inside annotation strings are spelling, not API (``TH.RunOptions`` and
# ``RunOptions`` are the same type).
_QUALIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\.(?=[A-Za-z_])")


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    return _QUALIFIER.sub("", text.replace("typing_extensions.", "").replace("typing.", ""))


def _default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    return repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__


def _signature(obj: Any) -> list[list[str]] | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [[p.name, p.kind.name, _default(p.default), _annotation(p.annotation)] for p in sig.parameters.values()]


def _public_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n))]
        names = [n for n in names if getattr(getattr(module, n), "__module__", module.__name__).startswith("gigapy")]
    return sorted(names)


def _members(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted(dir(cls)):
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("gigapy"):
            continue  # inherited from the standard library, pydantic, ...: not ours to pin
        raw = vars(owner)[name]
        if isinstance(raw, property):
            out[name] = {"kind": "property"}
        elif isinstance(raw, (staticmethod, classmethod)) or inspect.isfunction(raw):
            func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
            kind = "async method" if inspect.iscoroutinefunction(func) else "method"
            out[name] = {"kind": kind, "signature": _signature(func)}
        elif inspect.ismethoddescriptor(raw) or callable(raw):
            out[name] = {"kind": "callable"}
        else:
            out[name] = {"kind": "attribute"}
    return out


def _describe(obj: Any) -> dict[str, Any]:
    if inspect.isclass(obj):
        kind = "exception" if issubclass(obj, BaseException) else "class"
        if issubclass(obj, Warning):
            kind = "warning"
        out = {
            "kind": kind,
            "bases": sorted(b.__name__ for b in obj.__mro__[1:] if b.__module__.startswith("gigapy")),
            "members": _members(obj),
        }
        fields = getattr(obj, "model_fields", None)
        if isinstance(fields, dict):  # a pydantic model: its signature depends on when it was built
            out["fields"] = {name: {"kind": "field"} for name in fields}
        else:
            out["signature"] = _signature(obj)
        return out
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        kind = "async function" if inspect.iscoroutinefunction(obj) else "function"
        return {"kind": kind, "signature": _signature(obj)}
    if inspect.ismodule(obj):
        return {"kind": "module"}
    if callable(obj):
        return {"kind": "callable", "signature": _signature(obj)}
    return {"kind": type(obj).__name__}


def _faces() -> dict[str, Any]:
    """The sub-APIs reached through client instances (no request is sent)."""
    from gigapy import AsyncGigaChat, GigaChat

    out: dict[str, Any] = {}
    sync = GigaChat(credentials="c2VjcmV0OnNlY3JldA==", base_url="http://127.0.0.1:9/api/v1")
    try:
        for label, client in (
            ("GigaChat", sync),
            ("AsyncGigaChat", AsyncGigaChat(credentials="c2VjcmV0OnNlY3JldA==", base_url="http://127.0.0.1:9/api/v1")),
        ):
            for attr in ("v2", "assistants", "threads"):
                out[f"{label}.{attr}"] = {"members": _members(type(getattr(client, attr)))}
            out[f"{label}.conversation()"] = {"members": _members(type(client.conversation()))}
    finally:
        sync.close()
    return out


def snapshot() -> dict[str, Any]:
    """The current public API as a JSON-able dict."""
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in MODULES:
            module = importlib.import_module(name)
            out[name] = {attr: _describe(getattr(module, attr)) for attr in _public_names(module)}
        out["instances"] = _faces()
    return out


def _compatible(old: Any, new: Any, path: str, problems: list[str]) -> None:
    if isinstance(old, dict):
        if not isinstance(new, dict):
            problems.append(f"{path}: was {old!r}, now {new!r}")
            return
        for key, value in old.items():
            if key not in new:
                problems.append(f"{path}.{key}: removed")
            elif key == "signature":
                _compatible_signature(value, new[key], f"{path}.signature", problems)
            elif key == "bases":
                missing = set(value) - set(new[key])
                if missing:
                    problems.append(f"{path}.bases: lost {sorted(missing)}")
            else:
                _compatible(value, new[key], f"{path}.{key}", problems)
    elif old != new:
        problems.append(f"{path}: was {old!r}, now {new!r}")


def _compatible_signature(old: Any, new: Any, path: str, problems: list[str]) -> None:
    if old is None or new is None:
        if old != new:
            problems.append(f"{path}: was {old!r}, now {new!r}")
        return
    by_name = {p[0]: p for p in new}
    for param in old:
        if by_name.get(param[0]) != param:
            problems.append(f"{path}: parameter {param} is now {by_name.get(param[0])}")
    positional = [p[0] for p in old if p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
    if [p[0] for p in new if p[1] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")][: len(positional)] != positional:
        problems.append(f"{path}: positional order changed")
    for param in new:
        if param[0] not in {p[0] for p in old} and not param[2] and param[1] not in ("VAR_POSITIONAL", "VAR_KEYWORD"):
            problems.append(f"{path}: new required parameter {param[0]}")


def test_public_api_unchanged() -> None:
    recorded = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    problems: list[str] = []
    _compatible(recorded, snapshot(), "api", problems)
    assert not problems, "public API changed:\n" + "\n".join(problems[:50])


def test_snapshot_covers_documented_imports() -> None:
    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    pattern = re.compile(r"^\s*from (gigapy[\w.]*) import ([\w, ]+)", re.MULTILINE)
    recorded = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    seen = 0
    for page in pages:
        for module, names in pattern.findall(page.read_text(encoding="utf-8")):
            for name in (n.split(" as ")[0].strip() for n in names.split(",")):
                if not name:
                    continue
                seen += 1
                if module in recorded:
                    assert name in recorded[module], f"{page.name}: {module}.{name} is not in the snapshot"
                else:  # a module the snapshot does not pin (yet): the shown import must still work
                    assert hasattr(importlib.import_module(module), name), f"{page.name}: {module}.{name}"
    assert seen > 20


if __name__ == "__main__":
    if "--update" in sys.argv:
        SNAPSHOT.write_text(
            json.dumps(snapshot(), indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote {SNAPSHOT}")
