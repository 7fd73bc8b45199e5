"""``python -m gigapy.emulator``: serve the emulator until Ctrl-C."""

from __future__ import annotations

from ._cli import config_from_args
from ._runner import run


def main() -> None:
    """Entry point."""
    run(config_from_args())


if __name__ == "__main__":
    main()
