"""Deterministic text: the one token counter, language detection and seeds (answers: ``_compose``)."""

from __future__ import annotations

import hashlib
import re

# One token = optional leading spaces + up to 6 word characters, or one punctuation mark, or
# trailing spaces. Joining the pieces gives the text back, so streams and usage always agree.
_TOKEN_RE = re.compile(r"\s*(?:\w{1,6}|[^\w\s])|\s+")
_CYRILLIC_RE = re.compile(r"[А-Яа-яЁё]")
_LATIN_RE = re.compile(r"[A-Za-z]")
_LANG_SAMPLE = 4000


def tokenize(text: str) -> list[str]:
    """Split text into tokens whose concatenation is the text itself."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """The emulator's single token counter (usage, /tokens/count, max_tokens, context limits)."""
    return len(_TOKEN_RE.findall(text)) if text else 0


def is_russian(text: str) -> bool:
    """True when the text has more Cyrillic than Latin letters."""
    sample = text[-_LANG_SAMPLE:]
    return len(_CYRILLIC_RE.findall(sample)) > len(_LATIN_RE.findall(sample))


def stable_seed(*parts: object) -> int:
    """A process-independent 64-bit seed from the parts' text."""
    text = "\x1f".join(map(str, parts))
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()  # any text, never raises
    return int.from_bytes(digest, "big")
