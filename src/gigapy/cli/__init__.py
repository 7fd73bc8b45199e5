"""The ``gigapy`` command: chat, every API operation, bulk runs, doctor, certificates.

Installed as the ``gigapy`` console script (extra ``cli``: typer and rich). Start here::

    gigapy --emulator chat "Привет!"      # no credentials needed: an in-process emulator
    gigapy --help

``main()`` answers ``--version`` without importing typer; every command imports the
client (httpx, aiohttp, pydantic) only when it runs, so ``gigapy --help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``gigapy`` command (exits with the command's exit code)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        from gigapy import __version__

        sys.stdout.write(f"gigapy {__version__}\n")
        return
    try:
        from ._app import run
    except ImportError as exc:  # typer/rich missing: the CLI extra is not installed
        sys.stderr.write(f"error: the gigapy command needs the 'cli' extra: pip install 'gigapy[cli]' ({exc})\n")
        raise SystemExit(2) from None
    run(args)
