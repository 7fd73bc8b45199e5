"""``gigapy doctor``: check a setup step by step, with a verdict and a fix for each failure.

Steps: settings, the authentication mode, credentials format, scope, the client certificate
and key (mTLS), then per host (auth, API) DNS, TCP and the TLS chain (and whether the Russian
Trusted Root CA is installed), then a token fetch, the model list and the balance. A failed
step skips the steps that depend on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import ssl
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from ._common import EXIT_ERROR, State, get_state, out_console, print_json

if TYPE_CHECKING:
    from gigapy import GigaChat
    from gigapy._config import Settings

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
_MARKS = {OK: "[green]✔[/]", WARN: "[yellow]![/]", FAIL: "[bold red]✘[/]", SKIP: "[dim]-[/]"}

#: OAuth error codes -> what to do.
OAUTH_ADVICE = {
    1: "the scope is malformed: use GIGACHAT_API_PERS, GIGACHAT_API_B2B or GIGACHAT_API_CORP (--scope)",
    4: "the authorization key cannot be decoded: copy the 'Authorization key' from GigaChat Studio as is",
    5: "the scope is empty: set GIGACHAT_SCOPE (or --scope) to GIGACHAT_API_PERS, _B2B or _CORP",
    6: "the authorization key is wrong or revoked: copy it again from GigaChat Studio (or create a new one)",
    7: "this key is not enabled for that scope: individuals use GIGACHAT_API_PERS; companies "
       "GIGACHAT_API_B2B (prepaid) or GIGACHAT_API_CORP (pay-as-you-go). Check the project's scope in GigaChat "
       "Studio and pass it with --scope / GIGACHAT_SCOPE",
}


_MODES = {
    "oauth": "OAuth: the authorization key buys access tokens",
    "password": "user and password buy access tokens (/token)",
    "token": "a fixed access token",
    "mtls": "mTLS only: the client certificate identifies the account, no OAuth and no token",
}


@dataclass
class Step:
    """One check: name, verdict (ok, warn, fail, skip), what was found, and the fix."""

    name: str
    verdict: str
    detail: str
    fix: str | None = None


def _with_timeout(fn: Any, timeout: float) -> Any:
    """Run a blocking call (getaddrinfo has no timeout) in a thread, bounded in time."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


class Doctor:
    """Runs the checks for one invocation's settings."""

    def __init__(self, state: State, timeout: float) -> None:
        self.state = state
        self.timeout = timeout
        self.steps: list[Step] = []

    def add(self, name: str, verdict: str, detail: str, fix: str | None = None) -> Step:
        step = Step(name, verdict, detail, fix)
        self.steps.append(step)
        return step

    # --- settings --------------------------------------------------------------------------

    def settings(self) -> tuple[Settings | None, dict[str, Any]]:
        from gigapy._config import DEFAULT_AUTH_URL, DEFAULT_BASE_URL, load_settings
        from gigapy.errors import ConfigurationError

        from ._common import CliError

        try:
            kwargs = self.state.client_kwargs()
        except CliError as exc:
            self.add("settings", FAIL, exc.message, exc.fix)
            return None, {}
        raw = {"base_url": kwargs.get("base_url") or os.environ.get("GIGACHAT_BASE_URL") or DEFAULT_BASE_URL,
               "auth_url": kwargs.get("auth_url") or os.environ.get("GIGACHAT_AUTH_URL") or DEFAULT_AUTH_URL}
        try:
            settings = load_settings(kwargs)
        except ConfigurationError as exc:
            field = exc.field.removeprefix("GIGACHAT_").lower()
            if field == "credentials" and "no way to authenticate" not in exc.reason:
                self._credentials_format(kwargs, exc)
            elif field == "scope":
                self.add("scope", FAIL, exc.reason, self._config_fix(exc))
            else:
                self.add("settings", FAIL, str(exc), self._config_fix(exc))
            return None, raw
        source = "the emulator (--emulator)" if self.state.emulator else (
            f"profile {self.state.profile}" if self.state.profile else "environment and config.ini")
        self.add("settings", OK, f"from {source}: API {settings.base_url}, auth {settings.auth_url}, "
                                 f"model {settings.model}")
        self._credentials(settings)
        if settings.auth_mode == "mtls":  # no token is fetched: the auth host plays no part
            self.add("scope", SKIP, "not used: the client certificate decides the account and its scope")
            return settings, {"base_url": settings.base_url}
        self.add("scope", OK, settings.scope)
        return settings, {"base_url": settings.base_url, "auth_url": settings.auth_url}

    @staticmethod
    def _config_fix(exc: Any) -> str | None:
        if exc.field == "credentials" and "no way to authenticate" in exc.reason:
            return ("set GIGACHAT_CREDENTIALS to the authorization key from GigaChat Studio, or store it: "
                    "gigapy profile set default credentials; for mTLS-only access set GIGACHAT_CERT_FILE and "
                    "GIGACHAT_KEY_FILE (or gigapy profile set default cert_file PATH)")
        if exc.field.removeprefix("GIGACHAT_").lower() == "scope":
            return "use GIGACHAT_API_PERS (individuals), GIGACHAT_API_B2B or GIGACHAT_API_CORP (companies)"
        return None

    def _credentials_format(self, kwargs: dict[str, Any], exc: Any) -> None:
        """The credentials are not an authorization key: say what they look like instead."""
        source = "--profile" if "credentials" in kwargs and self.state.profile else "GIGACHAT_CREDENTIALS"
        self.add("credentials", FAIL, f"{source}: {exc.reason}",
                 "use the 'Authorization key' from GigaChat Studio (base64 of client_id:client_secret); "
                 "an access token goes to GIGACHAT_ACCESS_TOKEN")

    def _credentials(self, settings: Settings) -> None:
        import base64

        mode = settings.auth_mode
        self.add("auth mode", OK, _MODES[mode] + (" over mTLS (client certificate)" if settings.cert_file and
                                                  mode != "mtls" else ""))
        if mode == "mtls":
            self.add("credentials", SKIP, "none needed: the client certificate identifies the account (no OAuth)")
        elif mode == "oauth" and settings.credentials is not None:
            key = settings.credentials.get_secret_value()
            client_id = base64.b64decode(key + "=" * (-len(key) % 4)).decode("utf-8", "replace").partition(":")[0]
            shown = client_id[:8] + "…" if len(client_id) > 8 else client_id
            self.add("credentials", OK, f"authorization key for client {shown} (base64 of client_id:client_secret)")
        elif mode == "password":
            self.add("credentials", OK, f"user {settings.user} with a password")
        else:
            self.add("credentials", WARN, "a fixed access token: it expires after 30 minutes and cannot be refreshed",
                     "prefer GIGACHAT_CREDENTIALS (the authorization key) so gigapy can refresh tokens")

    def client_certificate(self, settings: Settings) -> bool:
        """The mTLS certificate and key: readable, a matching pair, the password right, in date."""
        from gigapy._transports.tls import cert_info, load_client_cert

        cert = settings.cert_file
        if cert is None:
            return True
        key = settings.key_file or cert
        name = "client certificate"
        fix = "fix GIGACHAT_CERT_FILE / GIGACHAT_KEY_FILE / GIGACHAT_KEY_FILE_PASSWORD (or the profile's keys)"
        try:
            info = cert_info(cert)
        except OSError as exc:
            self.add(name, FAIL, f"cannot read cert_file {cert}: {exc.strerror or exc}", fix)
            return False
        except ValueError as exc:
            self.add(name, FAIL, f"cert_file {exc}", "cert_file must hold the PEM certificate (-----BEGIN "
                                                   "CERTIFICATE-----) issued for this service")
            return False
        problem = load_client_cert(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert, settings.key_file,
                                   settings.key_file_password)
        if problem is not None:
            self.add(name, FAIL, problem, fix)
            return False
        now = time.time()
        until = time.strftime("%Y-%m-%d", time.gmtime(info.not_after))
        who = f"{cert}: CN={info.subject or '-'}, issued by {info.issuer or '-'}"
        if info.not_after <= now:
            self.add(name, FAIL, f"{who}: expired on {until}", "ask for a new certificate; the server refuses an "
                                                             "expired one")
            return False
        if info.not_before > now:
            since = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.not_before))
            self.add(name, FAIL, f"{who}: not valid before {since} UTC", "check the clock, or wait")
            return False
        days = int((info.not_after - now) // 86400)
        detail = f"{who}; key {key} matches; valid until {until} ({days} days); SHA-256 {info.sha256[:23]}…"
        if days < 30:
            self.add(name, WARN, detail, "renew it soon: it expires in less than 30 days")
        else:
            self.add(name, OK, detail)
        return True

    # --- network -----------------------------------------------------------------------------

    def network(self, urls: dict[str, str], settings: Settings | None) -> bool:
        """DNS, TCP and TLS for each distinct host; False when a host is unreachable."""
        seen: set[tuple[str, int]] = set()
        healthy = True
        for label, key in (("auth host", "auth_url"), ("API host", "base_url")):
            url = urls.get(key)
            if not url:
                continue
            parts = urlsplit(url)
            host, tls = parts.hostname or "", parts.scheme == "https"
            port = parts.port or (443 if tls else 80)
            if (host, port) in seen:
                continue
            seen.add((host, port))
            healthy = self._host(label, host, port, tls, settings) and healthy
        return healthy

    def _host(self, label: str, host: str, port: int, tls: bool, settings: Settings | None) -> bool:
        where = f"{host}:{port}"
        try:
            infos = _with_timeout(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), self.timeout)
        except (OSError, TimeoutError) as exc:
            self.add(f"DNS {label}", FAIL, f"{host}: {exc}", "check the host name (--base-url/--auth-url), DNS and "
                     "VPN; corporate networks may need a proxy (HTTPS_PROXY)")
            return False
        addresses = sorted({info[4][0] for info in infos})
        self.add(f"DNS {label}", OK, f"{host} -> {', '.join(addresses[:3])}")
        start = time.monotonic()
        try:
            sock = socket.create_connection((host, port), timeout=self.timeout)
        except OSError as exc:
            self.add(f"TCP {label}", FAIL, f"{where}: {exc}", f"check that port {port} of {host} is reachable "
                     f"(firewalls, proxies: HTTPS_PROXY) and that the service is up"
                     + ("; port 9443 is blocked on some networks" if port == 9443 else ""))
            return False
        with sock:
            self.add(f"TCP {label}", OK, f"{where} connected in {1000 * (time.monotonic() - start):.0f} ms")
            if not tls:
                self.add(f"TLS {label}", SKIP, "plain HTTP (no TLS)")
                return True
            return self._tls(label, host, sock, settings)

    def _tls(self, label: str, host: str, sock: socket.socket, settings: Settings | None) -> bool:
        from gigapy._transports.certs import status as ca_status
        from gigapy._transports.tls import ssl_context

        installed = ca_status()
        verify = settings.verify_ssl_certs if settings is not None else True
        bundle = settings.ca_bundle_file if settings is not None else None
        if not verify:
            self.add(f"TLS {label}", WARN, "certificate verification is OFF (verify_ssl_certs=False)",
                     "turn it on and run `gigapy certs install` instead")
            return True
        try:
            # with the client certificate, as the client will connect (a cert-only server may want it)
            context = ssl_context(verify=True, ca_bundle_file=bundle,
                                  cert_file=settings.cert_file if settings is not None else None,
                                  key_file=settings.key_file if settings is not None else None,
                                  key_password=settings.key_file_password if settings is not None else None)
            sock.settimeout(self.timeout)
            with context.wrap_socket(sock, server_hostname=host) as tls_sock:
                cert: dict[str, Any] = dict(tls_sock.getpeercert() or {})
                version = tls_sock.version()
        except ssl.SSLCertVerificationError as exc:
            if not installed.installed:
                fix = "run `gigapy certs install` (GigaChat hosts are signed by the Russian Trusted Root CA)"
            else:
                fix = ("the Russian Trusted Root CA is installed, so something else signed this certificate: "
                       "a TLS-intercepting proxy? Give its CA with GIGACHAT_CA_BUNDLE_FILE")
            self.add(f"TLS {label}", FAIL, f"{host}: {exc.verify_message or exc}", fix)
            return False
        except (OSError, ssl.SSLError) as exc:
            self.add(f"TLS {label}", FAIL, f"{host}: handshake failed: {exc}", "check proxies and the port")
            return False
        except Exception as exc:  # a ConfigurationError from a bad ca_bundle_file
            self.add(f"TLS {label}", FAIL, str(exc), "fix GIGACHAT_CA_BUNDLE_FILE")
            return False
        issuer = ", ".join(f"{k}={v}" for rdn in cert.get("issuer", ()) for k, v in rdn if k in ("commonName",
                                                                                                "organizationName"))
        self.add(f"TLS {label}", OK, f"{version}, chain verified (issuer: {issuer or 'unknown'})")
        return True

    def russian_ca(self, urls: dict[str, str]) -> None:
        from gigapy._transports.certs import status as ca_status

        st = ca_status()
        uses_tls = any(u.startswith("https:") for u in urls.values())
        if st.installed and st.matches_pin:
            self.add("Russian Trusted Root CA", OK, f"installed and trusted ({st.path})")
        elif st.installed:
            self.add("Russian Trusted Root CA", FAIL, f"{st.path} is not the pinned certificate",
                     "gigapy certs install --force")
        elif uses_tls:
            self.add("Russian Trusted Root CA", WARN, "not installed (GigaChat hosts need it unless a CA bundle "
                     "is given)", "gigapy certs install")
        else:
            self.add("Russian Trusted Root CA", SKIP, "not installed; not needed for plain HTTP")

    # --- API ---------------------------------------------------------------------------------

    def api(self, client: GigaChat, settings: Settings) -> None:
        from gigapy import errors

        mtls = settings.auth_mode == "mtls"
        if settings.auth_mode == "token":
            self.add("token", SKIP, "a fixed access token is used")
        elif mtls:
            self.add("token", SKIP, "mTLS-only: no token, the client certificate identifies the account")
        else:
            try:
                token = client.create_token()
            except errors.AuthenticationError as exc:
                self.add("token", FAIL, exc.server_message or str(exc), self._token_fix(exc))
                return
            except errors.GigaChatError as exc:
                self.add("token", FAIL, str(exc), self._token_fix(exc))
                return
            self.add("token", OK, f"fetched; valid for {max(token.expires_in, 0) / 60:.0f} more minutes")
        try:
            models = client.all_models()
        except errors.GigaChatError as exc:
            fix = ("the service did not accept the client certificate for the API: check cert_file and --base-url"
                   if mtls else "the token works for OAuth but not for the API: check --base-url")
            self.add("models", FAIL, str(exc), fix)
            return
        names = models.names
        if settings.model in names:
            self.add("models", OK, f"{len(names)} models; {settings.model} is available")
        else:
            self.add("models", WARN, f"{len(names)} models, but not {settings.model}",
                     f"pick one of: {', '.join(n for n in names if n.startswith('GigaChat'))[:200]}")
        try:
            balance = client.get_balance()
        except errors.PermissionDeniedError:
            self.add("balance", SKIP, f"{settings.scope} is pay-as-you-go: no prepaid balance")
            return
        except errors.GigaChatError as exc:
            self.add("balance", FAIL, str(exc))
            return
        left = ", ".join(f"{b.usage} {b.value:,.0f}" for b in balance.balance) or "empty"
        low = [b.usage for b in balance.balance if b.value <= 0]
        if low:
            self.add("balance", WARN, left, f"top up: no tokens left for {', '.join(low)}")
        else:
            self.add("balance", OK, left)

    @staticmethod
    def _token_fix(exc: Any) -> str | None:
        code = getattr(exc, "code", None)
        if code in OAUTH_ADVICE:
            return OAUTH_ADVICE[code]
        status = getattr(exc, "status_code", None)
        if status == 401:
            return OAUTH_ADVICE[6]
        if status == 429:
            return "too many token requests: wait a second and retry"
        return None

    def coordinator(self, settings: Settings) -> None:
        """Reach the fleet coordinator and take and give back one lease on an unused key."""
        from gigapy.coordinator import connect
        from gigapy.coordinator._hook import split_limit
        from gigapy.coordinator._redis import redacted

        assert settings.coordinator is not None
        url, _ = split_limit(settings.coordinator.get_secret_value())
        shown = redacted(url)
        try:
            coord = connect(url, lease_ttl=5.0)
        except Exception as exc:
            self.add("coordinator", FAIL, f"{shown}: {exc}", "install the extra: pip install 'gigapy[redis]'"
                     if "redis-py" in str(exc) else "check GIGACHAT_COORDINATOR")
            return
        try:
            facts = _with_timeout(coord.check, self.timeout)
        except Exception as exc:  # any failure of the store is reported, not raised
            text = redacted(str(exc))
            if "password" in text or "credentials" in text:
                fix = "check the password (or ACL user) in GIGACHAT_COORDINATOR"
            elif "TLS" in text:
                fix = "give the server's CA with ?ssl_ca_certs=/path/to/ca.pem, or check the scheme (redis:// or rediss://)"
            else:
                fix = "is the server running and reachable from here (host, port, firewall)?"
            self.add("coordinator", FAIL, text if text.startswith("coordinator ") else f"{shown}: {text}", fix)
            return
        finally:
            with contextlib.suppress(Exception):
                coord.close()
        detail = ", ".join(f"{k} {v}" for k, v in facts.items() if k not in ("url", "path"))
        self.add("coordinator", OK, f"{shown}: {detail}")

    def run(self) -> list[Step]:
        settings, urls = self.settings()
        if settings is not None and settings.coordinator is not None:
            self.coordinator(settings)
        cert_ok = settings is None or self.client_certificate(settings)
        if urls:
            self.russian_ca(urls)
            # the handshake presents the client certificate only when it loads (its step said why not)
            checked = settings if cert_ok or settings is None else dataclasses.replace(
                settings, cert_file=None, key_file=None, key_file_password=None)
            reachable = self.network(urls, checked)
        else:
            reachable = False
        if settings is None:
            self.add("token", SKIP, "needs valid settings")
        elif not cert_ok:
            self.add("token", SKIP, "needs a usable client certificate")
        elif not reachable:
            self.add("token", SKIP, "needs a reachable host")
        else:
            from gigapy import GigaChat

            kwargs = self.state.client_kwargs()
            kwargs.setdefault("max_retries", 0)
            kwargs.setdefault("timeout", self.timeout * 2)
            with GigaChat(**kwargs) as client:
                self.api(client, settings)
        return self.steps


def doctor(ctx: typer.Context,
           timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per network check.")] = 5.0,
           json_out: Annotated[bool, typer.Option("--json", help="Print the steps as JSON.")] = False) -> None:
    """Check DNS, TCP, TLS, the auth mode, credentials or client certificate, scope, token, models and balance;
    print a fix for each failure."""
    from rich.markup import escape

    steps = Doctor(get_state(ctx), timeout).run()
    failed = any(s.verdict == FAIL for s in steps)
    if json_out:
        print_json({"ok": not failed, "steps": [asdict(s) for s in steps]})
    else:
        console = out_console()
        width = max(len(s.name) for s in steps)
        for s in steps:
            console.print(f"{_MARKS[s.verdict]} {s.name.ljust(width)}  {escape(s.detail)}", highlight=False,
                          soft_wrap=True)
            if s.fix and s.verdict in (FAIL, WARN):
                console.print(f"  {' ' * width}  [yellow]fix:[/] {escape(s.fix)}", highlight=False, soft_wrap=True)
        console.print("all checks passed" if not failed else "[bold red]some checks failed[/]", highlight=False)
    if failed:
        raise typer.Exit(EXIT_ERROR)


def register(app: typer.Typer) -> None:
    """Add ``doctor``."""
    app.command("doctor", rich_help_panel="Setup")(doctor)
