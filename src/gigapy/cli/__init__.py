"""The ``gigapy`` command."""


def main() -> None:
    """Entry point of the ``gigapy`` command."""
    raise SystemExit("gigapy CLI: not yet available")
