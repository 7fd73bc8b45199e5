"""TLS: the SSLContext every client uses, built once per configuration and reused.

Trust = certifi's bundle + the Russian Trusted Root CA (which signs every GigaChat host)
when ``gigapy certs install`` has stored it + ``ca_bundle_file`` when given. mTLS adds
the client certificate. Turning verification off works but warns, once per process.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import logging
import os
import ssl
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from .._config import Settings

from ..errors import ConfigurationError
from ..errors import InsecureTLSWarning as InsecureTLSWarning  # its old home

log = logging.getLogger("gigapy")

RUSSIAN_CA_FILENAME = "russian_trusted_root_ca.pem"


def config_dir() -> Path:
    """gigapy's per-user config directory (``GIGAPY_CONFIG_DIR`` overrides it)."""
    override = os.environ.get("GIGAPY_CONFIG_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "gigapy"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return Path(xdg) / "gigapy" if xdg else Path.home() / ".config" / "gigapy"


def russian_ca_path() -> Path:
    """Where ``gigapy certs install`` stores the Russian Trusted Root CA."""
    return config_dir() / "certs" / RUSSIAN_CA_FILENAME


_CACHE: dict[tuple[object, ...], ssl.SSLContext] = {}
_LOCK = threading.Lock()
_warned = False


def ssl_context(
    *,
    verify: bool = True,
    ca_bundle_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    key_password: str | SecretStr | None = None,
) -> ssl.SSLContext:
    """The shared SSLContext for this configuration (built on first use, then cached)."""
    if isinstance(key_password, str):
        key_password = SecretStr(key_password)  # kept wrapped: no plain local in a traceback
    russian = russian_ca_path()
    try:
        russian_stamp: float | None = russian.stat().st_mtime
    except OSError:
        russian_stamp = None
    secret = hashlib.sha256(key_password.get_secret_value().encode()).hexdigest() if key_password else None
    key = (verify, ca_bundle_file, cert_file, key_file, secret, russian_stamp)
    ctx = _CACHE.get(key)
    if ctx is None:
        with _LOCK:
            ctx = _CACHE.get(key)
            if ctx is None:
                ctx = _build(
                    verify,
                    ca_bundle_file,
                    cert_file,
                    key_file,
                    key_password,
                    russian if russian_stamp is not None else None,
                )
                _CACHE[key] = ctx
    if not verify:
        _warn_insecure()
    return ctx


def _build(
    verify: bool,
    ca_bundle_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    key_password: SecretStr | None,
    russian: Path | None,
) -> ssl.SSLContext:
    if verify:
        import certifi

        ctx = ssl.create_default_context(cafile=certifi.where())
        for label, path in (("installed Russian Trusted Root CA", russian), ("ca_bundle_file", ca_bundle_file)):
            if path is None:
                continue
            try:
                ctx.load_verify_locations(cafile=str(path))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(
                    "ca_bundle_file" if label == "ca_bundle_file" else str(path),
                    f"cannot load the {label} as PEM certificates: {exc}",
                ) from None
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        problem = load_client_cert(ctx, cert_file, key_file, key_password)
        if problem is not None:
            raise ConfigurationError("cert_file", problem)
    return ctx


def _no_password() -> str:
    return ""  # an encrypted key without key_file_password fails to load instead of prompting on the terminal


def load_client_cert(
    ctx: ssl.SSLContext, cert_file: str, key_file: str | None, key_password: SecretStr | None
) -> str | None:
    """Load the client certificate and key into ``ctx``; None, or what is wrong (naming the file).

    A callable hands the password over, so it is read from the SecretStr inside
    ``load_cert_chain`` only; without one an encrypted key never prompts on the terminal.
    """
    try:
        ctx.load_cert_chain(
            cert_file, key_file, password=key_password.get_secret_value if key_password else _no_password
        )
    except ssl.SSLError as exc:
        return cert_load_problem(cert_file, key_file, key_password is not None, exc)
    except OSError as exc:
        for label, path in (("cert_file", cert_file), ("key_file", key_file)):
            if path is not None:
                try:
                    _read_text(path)
                except OSError as err:
                    return f"cannot read {label} {path}: {err.strerror or err}"
        return f"cannot read the client certificate or key: {exc.strerror or exc}"
    return None


def _read_text(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read(1 << 20).decode("ascii", "replace")


def cert_load_problem(cert_file: str, key_file: str | None, has_password: bool, exc: ssl.SSLError) -> str:
    """Why ``load_cert_chain`` failed, in words that name the file (OpenSSL only says "PEM lib")."""
    key_path = key_file or cert_file
    try:
        cert_text, key_text = _read_text(cert_file), _read_text(key_path)
    except OSError as err:
        return f"cannot read {err.filename}: {err.strerror or err}"
    if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
        return f"key_file {key_path} is not the private key of cert_file {cert_file} (a mismatched pair)"
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        return f"cert_file {cert_file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    if "PRIVATE KEY-----" not in key_text:
        where = f"key_file {key_path}" if key_file else f"cert_file {cert_file} (no key_file given)"
        return f"{where} holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)"
    if "ENCRYPTED" in key_text:
        if has_password:
            return f"cannot decrypt key_file {key_path}: wrong key_file_password"
        return f"key_file {key_path} is encrypted: pass key_file_password= (GIGACHAT_KEY_FILE_PASSWORD)"
    return f"cannot load cert_file {cert_file} and key_file {key_path} as PEM: {exc.reason or exc}"


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What a client certificate says about itself (read without third-party libraries)."""

    subject: str  #: the subject's common name (its organization without one; "" without both)
    issuer: str  #: the issuer's, likewise
    not_before: float  #: Unix seconds
    not_after: float  #: Unix seconds
    sha256: str  #: the fingerprint, hex pairs joined by ':'


def cert_info(cert_file: str) -> CertInfo:
    """Read the first certificate of a PEM file (``ValueError`` when there is none or it is malformed)."""
    text = _read_text(cert_file)
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise ValueError(f"{cert_file} holds no PEM certificate")
    try:
        der = base64.b64decode("".join(text[start + len(begin) : stop].split()), validate=True)
        _, body, _ = _tlv(der, 0)  # Certificate
        tag, pos, tbs_end = _tlv(der, body)  # TBSCertificate
        parts: list[tuple[int, int, int]] = []
        while pos < tbs_end and len(parts) < 6:
            tag, content, after = _tlv(der, pos)
            parts.append((tag, content, after))
            pos = after
        if parts[0][0] == 0xA0:  # explicit version
            parts = parts[1:]
        _serial, _algorithm, issuer, validity, subject = parts[:5]
        _, _, after_first = _tlv(der, validity[1])
        not_before = _asn1_time(der, validity[1])
        not_after = _asn1_time(der, after_first)
    except (ValueError, IndexError, binascii.Error) as exc:
        raise ValueError(f"{cert_file}: malformed certificate ({exc})") from None
    fingerprint = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    return CertInfo(_common_name(der, subject), _common_name(der, issuer), not_before, not_after, fingerprint)


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[pos : pos + size], "big")
        pos += size
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _asn1_time(der: bytes, pos: int) -> float:
    tag, start, end = _tlv(der, pos)
    raw = der[start:end].decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime: YYMMDDHHMMSS, years 1950-2049
        year = int(raw[:2])
        raw = str(1900 + year if year >= 50 else 2000 + year) + raw[2:]
    stamp = datetime.datetime.strptime(raw[:14], "%Y%m%d%H%M%S").replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


def _common_name(der: bytes, name: tuple[int, int, int]) -> str:
    _, pos, end = name
    found: dict[bytes, str] = {}
    while pos < end:  # SET { SEQUENCE { OID, value } }
        _, set_start, set_end = _tlv(der, pos)
        _, seq_start, _ = _tlv(der, set_start)
        _, oid_start, oid_end = _tlv(der, seq_start)
        _, value_start, value_end = _tlv(der, oid_end)
        found[der[oid_start:oid_end]] = der[value_start:value_end].decode("utf-8", "replace")
        pos = set_end
    return found.get(b"\x55\x04\x03") or found.get(b"\x55\x04\x0a", "")  # commonName, organizationName


def _warn_insecure() -> None:
    global _warned
    if _warned:
        return
    _warned = True
    message = (
        "TLS certificate verification is OFF (verify_ssl_certs=False): anyone on the network path can "
        "read your credentials and answers. Run `gigapy certs install` to trust the Russian Trusted "
        "Root CA instead."
    )
    log.warning(message)
    warnings.warn(message, InsecureTLSWarning, stacklevel=4)


def tls_key(settings: Settings) -> tuple[object, ...]:
    """What decides a client's SSLContext (clients with equal keys can share a pool)."""
    uses_tls = settings.base_url.startswith("https:") or settings.auth_url.startswith("https:")
    password = settings.key_file_password
    digest = hashlib.sha256(password.get_secret_value().encode()).hexdigest() if password else None
    return (uses_tls, settings.verify_ssl_certs, settings.ca_bundle_file, settings.cert_file, settings.key_file, digest)


def client_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The SSLContext for a client's settings, or None when it talks plain HTTP only."""
    if not tls_key(settings)[0]:
        return None
    return ssl_context(
        verify=settings.verify_ssl_certs,
        ca_bundle_file=settings.ca_bundle_file,
        cert_file=settings.cert_file,
        key_file=settings.key_file,
        key_password=settings.key_file_password,
    )
