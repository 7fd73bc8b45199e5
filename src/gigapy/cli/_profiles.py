"""Profiles: named client settings in ``config.ini`` under gigapy's config directory.

The file has a ``[default]`` section and ``[profile NAME]`` sections whose keys are the
client's setting names (``credentials``, ``scope``, ``model``, ``base_url``, ...)::

    [default]
    scope = GIGACHAT_API_PERS

    [profile work]
    credentials = <authorization key>
    scope = GIGACHAT_API_CORP

    [profile bank]                   # mTLS only: the certificate identifies the account
    base_url = https://gigachat.example.bank/v1
    cert_file = /etc/gigachat/client.crt
    key_file = /etc/gigachat/client.key

Precedence: command-line options > ``--profile NAME`` > ``GIGACHAT_*`` variables >
``[default]``. Secrets are never printed: ``gigapy profile show`` masks them, and
``gigapy profile set NAME credentials`` asks for the value without echoing it.
"""

from __future__ import annotations

import configparser
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ._common import EXIT_USAGE, CliError, out_console, print_json

#: Keys a profile may set (the client's settings).
KEYS = (
    "credentials", "scope", "model", "base_url", "auth_url", "user", "password", "access_token",
    "timeout", "max_retries", "verify_ssl_certs", "ca_bundle_file", "cert_file", "key_file",
    "key_file_password", "profanity_check", "max_connections",
)
SECRET_KEYS = frozenset({"credentials", "password", "access_token", "key_file_password"})
_INT_KEYS = frozenset({"max_retries", "max_connections"})
_BOOL_KEYS = frozenset({"verify_ssl_certs", "profanity_check"})
_PATH_KEYS = frozenset({"ca_bundle_file", "cert_file", "key_file"})
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def config_path() -> Path:
    """``config.ini`` in gigapy's config directory (``GIGAPY_CONFIG_DIR`` overrides it)."""
    from gigapy._transports.tls import config_dir

    return config_dir() / "config.ini"


def _section(name: str) -> str:
    return "default" if name == "default" else f"profile {name}"


def _read(path: Path | None = None) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    target = path or config_path()
    try:
        parser.read(target, encoding="utf-8")
    except configparser.Error as exc:
        raise CliError(f"cannot read {target}: {exc}", "fix or delete the file") from None
    return parser


def profile_names() -> list[str]:
    """Names of the profiles in the config file (``default`` first when present)."""
    names: list[str] = []
    for section in _read().sections():
        if section == "default":
            names.insert(0, "default")
        elif section.startswith("profile "):
            names.append(section[len("profile "):].strip())
    return names


def _convert(key: str, raw: str) -> object:
    value = raw.strip()
    if key in _INT_KEYS:
        try:
            return int(value)
        except ValueError:
            raise CliError(f"{config_path()}: {key} = {value!r} is not an integer") from None
    if key in _BOOL_KEYS:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise CliError(f"{config_path()}: {key} = {value!r} is not true/false")
    if key == "timeout":
        try:
            return float(value)
        except ValueError:
            raise CliError(f"{config_path()}: timeout = {value!r} is not a number of seconds") from None
    return value


def load_profile(name: str | None) -> dict[str, object]:
    """Client keyword arguments from a profile.

    ``name=None`` reads ``[default]`` (values a ``GIGACHAT_*`` variable sets are left to
    the variable); a named profile must exist and wins over the environment.
    """
    parser = _read()
    section = _section(name or "default")
    if not parser.has_section(section):
        if name is None or name == "default":
            return {}
        known = ", ".join(profile_names()) or "none"
        raise CliError(f"no profile {name!r} in {config_path()} (profiles: {known})",
                       f"create it: gigapy profile set {name} credentials", EXIT_USAGE)
    values: dict[str, object] = {}
    for key, raw in parser.items(section):
        if key not in KEYS:
            raise CliError(f"{config_path()} [{section}]: unknown key {key!r}", f"known keys: {', '.join(KEYS)}")
        if name is None and os.environ.get(f"GIGACHAT_{key.upper()}", "").strip():
            continue
        if raw.strip():
            values[key] = _convert(key, raw)
    return values


def _write(parser: configparser.ConfigParser, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".ini", dir=path.parent)
    try:
        os.chmod(tmp, 0o600)  # the file may hold secrets
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            parser.write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mask(key: str, value: str) -> str:
    return "********" if key in SECRET_KEYS and value else value


app = typer.Typer(help="Manage named settings profiles (config.ini in the gigapy config directory).",
                  no_args_is_help=True)


@app.command("path")
def path_cmd() -> None:
    """Print the config file's path."""
    out_console().print(str(config_path()), highlight=False, soft_wrap=True)


@app.command("list")
def list_cmd(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the profiles."""
    names = profile_names()
    if json_out:
        print_json(names)
        return
    if not names:
        out_console().print(f"no profiles yet; create one with: gigapy profile set NAME credentials "
                            f"(file: {config_path()})", highlight=False)
        return
    for name in names:
        out_console().print(name, highlight=False)


@app.command("show")
def show_cmd(name: Annotated[str, typer.Argument(help="Profile name.")] = "default",
             json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show a profile's settings (secrets masked)."""
    parser = _read()
    section = _section(name)
    if not parser.has_section(section):
        raise CliError(f"no profile {name!r} in {config_path()}")
    items = {key: _mask(key, value) for key, value in parser.items(section)}
    if json_out:
        print_json(items)
        return
    from rich.table import Table

    table = Table(title=f"profile {name}", show_header=True)
    table.add_column("key")
    table.add_column("value")
    for key, value in items.items():
        table.add_row(key, value)
    out_console().print(table)


def _validated(key: str, value: str) -> str:
    """``value`` checked as the client checks the setting (type, range, URL, scope); the text to store."""
    from gigapy._config import _normalize
    from gigapy.errors import ConfigurationError

    try:
        converted = _convert(key, value)
    except CliError as exc:  # not a number / not true-false: name the key, not the file
        raise CliError(exc.message.split(": ", 1)[-1], exit_code=EXIT_USAGE) from None
    if key in SECRET_KEYS or key in _PATH_KEYS:  # checked above (credentials, files) or when used
        return value
    try:
        normalized = _normalize(key, converted, key)
    except ConfigurationError as exc:
        raise CliError(str(exc), exit_code=EXIT_USAGE) from None
    return str(normalized).lower() if isinstance(normalized, bool) else str(normalized)


@app.command("set", context_settings={"ignore_unknown_options": True})
def set_cmd(name: Annotated[str, typer.Argument(help="Profile name ('default' for the [default] section).")],
            key: Annotated[str, typer.Argument(help=f"Setting: {', '.join(KEYS)}.")],
            value: Annotated[str | None, typer.Argument(
                help="The value; secrets are asked for without echo when omitted.")] = None) -> None:
    """Set one setting of a profile (creates the profile and the file, mode 0600)."""
    key = key.strip().lower().replace("-", "_")
    if key not in KEYS:
        import difflib

        close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.7)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise CliError(f"unknown key {key!r}", f"{hint}known keys: {', '.join(KEYS)}", EXIT_USAGE)
    if value is None:
        value = typer.prompt(key, hide_input=key in SECRET_KEYS)
    if key == "credentials":
        from gigapy._config import check_credentials
        from gigapy.errors import ConfigurationError

        try:
            value = check_credentials(value, "credentials")
        except ConfigurationError as exc:
            raise CliError(str(exc), exit_code=EXIT_USAGE) from None
    if key in _PATH_KEYS:  # stored absolute, so the profile works from any directory
        file = Path(value).expanduser()
        if not file.is_file():
            raise CliError(f"{key}: file not found: {value}", f"give the path of the PEM file for {key}", EXIT_USAGE)
        value = str(file.resolve())
    value = _validated(key, value)
    path = config_path()
    parser = _read(path)
    section = _section(name)
    if not parser.has_section(section):
        parser.add_section(section)
    parser.set(section, key, value)
    _write(parser, path)
    out_console().print(f"{section}: {key} = {_mask(key, value)}  ({path})", highlight=False)


@app.command("unset")
def unset_cmd(name: Annotated[str, typer.Argument(help="Profile name.")],
              key: Annotated[str | None, typer.Argument(help="Setting to remove; omit to delete the profile.")] = None,
              ) -> None:
    """Remove one setting, or a whole profile."""
    path = config_path()
    parser = _read(path)
    section = _section(name)
    if not parser.has_section(section):
        raise CliError(f"no profile {name!r} in {path}")
    if key is None:
        parser.remove_section(section)
    else:
        parser.remove_option(section, key.strip().lower().replace("-", "_"))
    _write(parser, path)
    out_console().print(f"removed {section if key is None else section + ': ' + key}", highlight=False)


def register(root: typer.Typer) -> None:
    """Add the ``profile`` command group."""
    root.add_typer(app, name="profile", rich_help_panel="Setup")


__all__ = ["KEYS", "SECRET_KEYS", "config_path", "load_profile", "profile_names", "register"]
