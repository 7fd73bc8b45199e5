"""TLS: the SSLContext every client uses, built once per configuration and reused.

Trust = certifi's bundle + the Russian Trusted Root CA (which signs every GigaChat host)
when ``gigapy certs install`` has stored it + ``ca_bundle_file`` when given. mTLS adds
the client certificate. Turning verification off works but warns, once per process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from ._config import Settings

from .errors import ConfigurationError

log = logging.getLogger("gigapy")

RUSSIAN_CA_FILENAME = "russian_trusted_root_ca.pem"


class InsecureTLSWarning(UserWarning):
    """TLS certificate verification is turned off."""


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
                ctx = _build(verify, ca_bundle_file, cert_file, key_file, key_password,
                             russian if russian_stamp is not None else None)
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
        try:
            # a callable: the password is read from the SecretStr inside load_cert_chain only
            ctx.load_cert_chain(cert_file, key_file, password=key_password.get_secret_value if key_password else None)
        except ssl.SSLError:
            hint = "wrong key_file_password?" if key_password else "is the key encrypted? pass key_file_password="
            raise ConfigurationError(
                "cert_file", f"cannot load the client certificate and key as PEM ({hint})"
            ) from None
        except OSError as exc:
            raise ConfigurationError("cert_file", f"cannot read the client certificate or key: {exc}") from None
    return ctx


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
    return (uses_tls, settings.verify_ssl_certs, settings.ca_bundle_file, settings.cert_file,
            settings.key_file, digest)


def client_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The SSLContext for a client's settings, or None when it talks plain HTTP only."""
    if not tls_key(settings)[0]:
        return None
    return ssl_context(verify=settings.verify_ssl_certs, ca_bundle_file=settings.ca_bundle_file,
                       cert_file=settings.cert_file, key_file=settings.key_file,
                       key_password=settings.key_file_password)
