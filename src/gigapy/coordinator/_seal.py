"""Sealing tokens kept in a shared store, so the store alone does not reveal them.

A token is sealed with a key derived from the account's own secret (the authorization key, or
user and password): every process that may fetch the account's token already holds that secret,
and anyone who can read the store but does not hold it sees only ciphertext.

The construction uses the standard library only: HMAC-SHA256 as a pseudo-random function, in
counter mode for the keystream (encrypt), then HMAC-SHA256 over nonce and ciphertext (MAC).
Encryption and MAC keys are derived separately (HKDF-style expand) from the account secret and
the store's namespace. A blob that fails its MAC is treated as absent (a fresh token is fetched).
"""

from __future__ import annotations

import hashlib
import hmac
import os

_VERSION = b"g1"
_NONCE = 16
_TAG = 32


def derive_key(secret: bytes, namespace: str) -> bytes:
    """A 64-byte key (encryption half, MAC half) for one account secret in one namespace."""
    prk = hmac.new(b"gigapy-coordinator-seal", secret, hashlib.sha256).digest()
    info = b"token-seal:" + namespace.encode()
    first = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
    second = hmac.new(prk, first + info + b"\x02", hashlib.sha256).digest()
    return first + second


def _keystream(key: bytes, nonce: bytes, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:size])


def seal(key: bytes, plain: bytes) -> bytes:
    """Encrypt and authenticate ``plain``: version, nonce, ciphertext, tag."""
    nonce = os.urandom(_NONCE)
    stream = _keystream(key[:32], nonce, len(plain))
    body = bytes(a ^ b for a, b in zip(plain, stream, strict=True))
    tag = hmac.new(key[32:], _VERSION + nonce + body, hashlib.sha256).digest()
    return _VERSION + nonce + body + tag


def unseal(key: bytes, blob: bytes) -> bytes | None:
    """The plain bytes, or None when the blob is not ours, damaged or sealed with another key."""
    if len(blob) < len(_VERSION) + _NONCE + _TAG or not blob.startswith(_VERSION):
        return None
    nonce = blob[len(_VERSION) : len(_VERSION) + _NONCE]
    body, tag = blob[len(_VERSION) + _NONCE : -_TAG], blob[-_TAG:]
    expected = hmac.new(key[32:], _VERSION + nonce + body, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        return None
    stream = _keystream(key[:32], nonce, len(body))
    return bytes(a ^ b for a, b in zip(body, stream, strict=True))
