"""``gigapy certs install|status|path|uninstall``: the Russian Trusted Root CA for gigapy clients."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import EXIT_CONNECTION, EXIT_ERROR, EXIT_USAGE, fail, out_console, print_json

app = typer.Typer(help="The Russian Trusted Root CA (signs every GigaChat host): install, status, path.",
                  no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option("--url", hidden=True, help="Testing aid: download address.")]
PinOpt = Annotated[str | None, typer.Option("--sha256", hidden=True, help="Testing aid: expected SHA-256.")]


def _print(text: str) -> None:
    out_console().print(text, highlight=False, soft_wrap=True)


@app.command("install")
def install_cmd(
    from_file: Annotated[Path | None, typer.Option(
        "--from-file", help="Install a certificate you downloaded yourself (PEM or DER; still pin-checked).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Download and store again even when installed.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Download timeout, seconds.")] = 30.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    url: UrlOpt = None,
    sha256: PinOpt = None,
) -> None:
    """Download the CA from its official address, check its pinned SHA-256, store it for gigapy."""
    from gigapy._transports import certs as _certs
    from gigapy.errors import APIConnectionError

    current = _certs.status(sha256)
    if current.installed and current.matches_pin and not force and from_file is None:
        if json_out:
            print_json({**current.to_dict(), "action": "already installed"})
        else:
            _print(f"already installed: {current.path} (SHA-256 {current.sha256})")
        return
    data = None
    if from_file is not None:
        try:
            data = from_file.read_bytes()
        except OSError as exc:
            fail(f"cannot read {from_file}: {exc.strerror or exc}", exit_code=EXIT_USAGE)
    source = str(from_file) if from_file is not None else (url or _certs.download_url())
    try:
        result, verified = _certs.install(data, url=url, expected_sha256=sha256, timeout=timeout)
    except _certs.CertificateMismatchError as exc:
        fail(str(exc), f"download it from {_certs.OFFICIAL_URL} on a network without TLS interception, "
                       "then: gigapy certs install --from-file FILE")
    except APIConnectionError as exc:  # no network, a proxy, a firewall: bring the file by other means
        fail(f"cannot download the certificate: {exc}",
             f"download {_certs.OFFICIAL_URL} on a machine with access (or take it from your IT department), "
             "then: gigapy certs install --from-file FILE (the file is still checked against the pinned SHA-256)",
             EXIT_CONNECTION)
    if json_out:
        print_json({**result.to_dict(), "action": "installed", "source": source, "download_verified": verified})
        return
    _print(f"installed the Russian Trusted Root CA from {source}")
    _print(f"  SHA-256 {result.sha256} (matches the pinned fingerprint)")
    if result.subject:
        _print(f"  {result.subject}; valid {result.not_before} .. {result.not_after}")
    _print(f"  stored at {result.path}; gigapy clients now trust it together with certifi")
    if not verified:
        _print("  note: the download's own TLS chain could not be verified; the file is trusted because its "
               "fingerprint matches the pin")


@app.command("status")
def status_cmd(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
               sha256: PinOpt = None) -> None:
    """Show whether the CA is installed and is the pinned certificate (exit 1 when not)."""
    from gigapy._transports import certs as _certs

    result = _certs.status(sha256)
    ok = result.installed and result.matches_pin
    if json_out:
        print_json(result.to_dict())
    elif not result.installed:
        _print(f"not installed (would be {result.path}); run: gigapy certs install")
    else:
        verdict = "installed" if ok else "INSTALLED BUT NOT THE PINNED CERTIFICATE"
        _print(f"{verdict}: {result.path}")
        _print(f"  SHA-256  {result.sha256}")
        _print(f"  expected {result.expected_sha256}")
        if result.subject:
            _print(f"  {result.subject}; valid {result.not_before} .. {result.not_after}")
        for note in result.notes:
            _print(f"  {note}")
        if not ok:
            _print("  fix: gigapy certs install --force")
    if not ok:
        raise typer.Exit(EXIT_ERROR)


@app.command("path")
def path_cmd() -> None:
    """Print where the CA is (or would be) stored."""
    from gigapy._transports.tls import russian_ca_path

    _print(str(russian_ca_path()))


@app.command("uninstall")
def uninstall_cmd() -> None:
    """Remove the installed CA."""
    from gigapy._transports import certs as _certs

    _print("removed" if _certs.uninstall() else "nothing to remove: not installed")


def register(root: typer.Typer) -> None:
    """Add the ``certs`` command group."""
    root.add_typer(app, name="certs", rich_help_panel="Setup")
