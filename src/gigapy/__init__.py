"""gigapy: a fast, correct Python client for the GigaChat API."""

__version__ = "0.1.0"
