"""The Russian Trusted Root CA: download, pin check, install, status.

Every GigaChat host is signed by the Russian Trusted Root CA, which certifi does not ship.
``install()`` downloads it from the official Gosuslugi address, checks its SHA-256
fingerprint against the pinned value, and only then stores it at
``gigapy._transports.tls.russian_ca_path()``, where every gigapy client picks it up (together with
certifi). The pin is what makes the file trustworthy, so a download whose TLS chain cannot
be verified is still accepted when — and only when — the fingerprint matches.

Testing aids (not for production use): ``GIGAPY_CERTS_URL`` replaces the download address
and ``GIGAPY_CERTS_SHA256`` the pinned fingerprint, so tests can serve a test CA locally.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import APIConnectionError, InvalidArgumentError
from ..errors import CertificateMismatchError as CertificateMismatchError  # its old home
from .tls import russian_ca_path

OFFICIAL_URL = "https://gu-st.ru/content/lending/russian_trusted_root_ca_pem.crt"
#: SHA-256 of the DER certificate (valid 2022-03-01 .. 2032-02-27), checked against two public sources.
PINNED_SHA256 = "D2:6D:2D:02:31:B7:C3:9F:92:CC:73:85:12:BA:54:10:35:19:E4:40:5D:68:B5:BD:70:3E:97:88:CA:8E:CF:31"

_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.S)
_MAX_SIZE = 64 * 1024


def download_url() -> str:
    """The download address (``GIGAPY_CERTS_URL`` overrides it, for tests)."""
    return os.environ.get("GIGAPY_CERTS_URL", "").strip() or OFFICIAL_URL


def pinned_fingerprint() -> str:
    """The expected SHA-256 (``GIGAPY_CERTS_SHA256`` overrides it, for tests)."""
    return normalize_fingerprint(os.environ.get("GIGAPY_CERTS_SHA256", "").strip() or PINNED_SHA256)


def normalize_fingerprint(value: str) -> str:
    """``d26d2d...`` or ``D2:6D:...`` -> ``D2:6D:...``."""
    digits = re.sub(r"[^0-9A-Fa-f]", "", value).upper()
    if len(digits) != 64:
        raise InvalidArgumentError("fingerprint", f"expected a SHA-256 fingerprint (64 hex digits), got {value!r}")
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as ``AB:CD:...``."""
    return normalize_fingerprint(hashlib.sha256(der).hexdigest())


def to_der(data: bytes) -> bytes:
    """The first certificate of PEM or DER bytes, as DER."""
    match = _PEM_RE.search(data)
    if match:
        try:
            return ssl.PEM_cert_to_DER_cert(match.group(0).decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgumentError("certificate", "the PEM block is not valid base64") from None
    if data[:1] == b"\x30":  # an ASN.1 SEQUENCE: DER
        return data
    raise InvalidArgumentError("certificate", "neither a PEM nor a DER certificate")


def download(url: str | None = None, *, timeout: float = 30.0, ca_bundle_file: str | None = None) -> tuple[bytes, bool]:
    """Fetch the certificate; returns (bytes, whether the download's TLS chain was verified).

    Trust for the download: certifi plus ``ca_bundle_file`` (default ``GIGACHAT_CA_BUNDLE_FILE``).
    When that chain fails, the file is fetched again without verification: the caller must
    check the pinned fingerprint before using it (``install`` does).
    """
    import httpx

    target = url or download_url()
    bundle = ca_bundle_file or os.environ.get("GIGACHAT_CA_BUNDLE_FILE") or None

    def fetch(verify: Any) -> bytes:
        with (
            httpx.Client(verify=verify, timeout=timeout, follow_redirects=True, trust_env=True) as http,
            http.stream("GET", target) as response,
        ):
            if response.status_code != 200:
                raise APIConnectionError(f"GET {target}: HTTP {response.status_code}", method="GET", url=target)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > _MAX_SIZE:
                    raise APIConnectionError(
                        f"GET {target}: larger than {_MAX_SIZE} bytes; not a certificate", method="GET", url=target
                    )
                chunks.append(chunk)
            return b"".join(chunks)

    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if bundle:
        context.load_verify_locations(cafile=bundle)
    try:
        return fetch(context), True
    except httpx.ConnectError as exc:
        if not _is_cert_failure(exc):
            raise APIConnectionError(f"GET {target}: cannot connect: {exc}", method="GET", url=target) from None
    except httpx.HTTPError as exc:
        raise APIConnectionError(f"GET {target}: {exc}", method="GET", url=target) from None
    try:
        return fetch(False), False
    except httpx.HTTPError as exc:
        raise APIConnectionError(f"GET {target}: {exc}", method="GET", url=target) from None


def _is_cert_failure(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


@dataclass
class CertStatus:
    """What is installed: path, fingerprint, whether it matches the pin, subject and validity."""

    path: str
    installed: bool
    expected_sha256: str
    sha256: str | None = None
    subject: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    loadable: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def matches_pin(self) -> bool:
        """True when the installed file is the pinned certificate."""
        return self.sha256 is not None and self.sha256 == self.expected_sha256

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {
            "path": self.path,
            "installed": self.installed,
            "sha256": self.sha256,
            "expected_sha256": self.expected_sha256,
            "matches_pin": self.matches_pin,
            "subject": self.subject,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "loadable": self.loadable,
            "notes": self.notes,
        }


def _describe(pem_path: Path) -> tuple[str | None, str | None, str | None]:
    """(subject, notBefore, notAfter) as OpenSSL reads them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(pem_path))
    certs = context.get_ca_certs()
    if not certs:
        return None, None, None
    cert: dict[str, Any] = dict(certs[0])
    subject = ", ".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)
    before, after = cert.get("notBefore"), cert.get("notAfter")
    return subject or None, str(before) if before else None, str(after) if after else None


def status(expected_sha256: str | None = None) -> CertStatus:
    """The state of the installed Russian Trusted Root CA (compared with the pin)."""
    path = russian_ca_path()
    expected = normalize_fingerprint(expected_sha256) if expected_sha256 else pinned_fingerprint()
    result = CertStatus(path=str(path), installed=path.is_file(), expected_sha256=expected)
    if not result.installed:
        return result
    try:
        result.sha256 = fingerprint(to_der(path.read_bytes()))
        result.subject, result.not_before, result.not_after = _describe(path)
        result.loadable = True
    except (OSError, ssl.SSLError, InvalidArgumentError) as exc:
        result.notes.append(f"cannot read the installed file: {exc}")
    return result


def install(
    data: bytes | None = None, *, url: str | None = None, expected_sha256: str | None = None, timeout: float = 30.0
) -> tuple[CertStatus, bool]:
    """Download (or take ``data``), check the pinned fingerprint, store as PEM.

    Returns (status, whether a download's TLS chain was verified; True when ``data`` was
    given). Raises CertificateMismatchError — storing nothing — when the fingerprint differs.
    """
    verified = True
    if data is None:
        data, verified = download(url, timeout=timeout)
    der = to_der(data)
    expected = normalize_fingerprint(expected_sha256) if expected_sha256 else pinned_fingerprint()
    actual = fingerprint(der)
    if actual != expected:
        raise CertificateMismatchError(
            f"the certificate's SHA-256 is {actual}, expected {expected}: it is not the Russian Trusted Root CA "
            "(a proxy or a tampered download?); nothing was stored"
        )
    pem = ssl.DER_cert_to_PEM_cert(der).encode("ascii")
    path = russian_ca_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".russian-ca-", suffix=".pem", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return status(expected), verified


def uninstall() -> bool:
    """Remove the installed certificate; False when there was none."""
    path = russian_ca_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
