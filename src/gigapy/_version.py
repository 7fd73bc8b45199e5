"""The one place the package version is written (pyproject reads it, so do ``gigapy.__version__``,
the CLI and the User-Agent)."""

__version__ = "0.1.0"
