"""Keep httpx's own command-line client (click, rich, pygments) out of gigapy's processes.

``import httpx`` imports ``httpx._main`` (its ``httpx`` console command) whenever click, rich
and pygments are installed, as they are next to gigapy's CLI extra: a third of httpx's import
time, for a command gigapy never runs. Before gigapy's first ``import httpx`` a stand-in for
``httpx._main`` is registered; it loads the real module the first time anything of it is used
(``httpx.main()`` included), so httpx behaves the same, only later.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_NAME = "httpx._main"


def _load() -> types.ModuleType:
    import importlib

    if isinstance(sys.modules.get(_NAME), _Deferred):
        del sys.modules[_NAME]
    module = importlib.import_module(_NAME)
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(getattr(httpx, "_main", None), _Deferred):
        httpx._main = module  # type: ignore[attr-defined]
    return module


class _Deferred(types.ModuleType):
    """Stands in for ``httpx._main`` until something of it is used."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_load(), name)


def _main(*args: Any, **kwargs: Any) -> Any:
    return _load().main(*args, **kwargs)


def defer_httpx_cli() -> None:
    """Register the stand-in, unless httpx (or its CLI module) is already imported."""
    if "httpx" in sys.modules or _NAME in sys.modules:
        return
    stub = _Deferred(_NAME, "httpx's command-line client, loaded on first use")
    stub.main = _main  # type: ignore[attr-defined]
    sys.modules[_NAME] = stub
