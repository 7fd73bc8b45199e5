"""Command line of ``python -m gigapy.emulator`` (reused by the ``gigapy emulator`` CLI command)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from ._config import ALL_SCOPES, SCOPE_CORP, CertAccount, EmulatorConfig
from ._faults import FaultSpec
from ._timing import PRESETS


def _fault_spec(value: str) -> str:
    try:
        FaultSpec.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 0")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a finite number >= 0")
    return number


def _cert_account(value: str) -> CertAccount:
    match, sep, target = value.rpartition("=")
    client_id, _, scope = target.partition(":")
    entry = CertAccount(match, client_id.strip(), scope.strip() or SCOPE_CORP)
    if not sep or not entry.client_id:
        raise argparse.ArgumentTypeError(f"{value!r}: expected MATCH=CLIENT_ID[:SCOPE], e.g. CN=bank-client=bank-1")
    try:
        entry.key  # noqa: B018 (raises for a bad match)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if entry.scope not in ALL_SCOPES:
        raise argparse.ArgumentTypeError(f"{value!r}: unknown scope {entry.scope!r}")
    return entry


def build_parser(prog: str = "python -m gigapy.emulator") -> argparse.ArgumentParser:
    """The emulator's argument parser."""
    parser = argparse.ArgumentParser(prog=prog, description="Offline GigaChat API emulator (loopback only).")
    defaults = EmulatorConfig()
    parser.add_argument("--host", default=defaults.host, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=defaults.port, help="port (default %(default)s; 0 = any free)")
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=defaults.token_ttl,
        metavar="SECONDS",
        help="access token lifetime (default %(default)s)",
    )
    parser.add_argument(
        "--no-limits",
        action="store_true",
        help="lift every limit: per-scope concurrency and the OAuth requests per second",
    )
    parser.add_argument(
        "--oauth-rps",
        type=_non_negative_int,
        metavar="N",
        help=f"OAuth requests per second per key before 429 (default {defaults.oauth_rps_limit}; "
        "0 = no limit); with --no-limits, keeps just this limit",
    )
    parser.add_argument(
        "--timing",
        choices=sorted(PRESETS),
        default=defaults.timing,
        help="generation time: fast (none) or realistic (about the live pace) (default %(default)s)",
    )
    parser.add_argument(
        "--ttft",
        type=_non_negative_float,
        metavar="SECONDS",
        help="seconds before the first token (overrides --timing)",
    )
    parser.add_argument(
        "--tokens-per-second",
        type=_non_negative_float,
        metavar="N",
        help="generation speed, 0 = instant (overrides --timing)",
    )
    parser.add_argument(
        "--pack-stream",
        action="store_true",
        help="pack many SSE events per write (benchmarks); by default each event is its own write",
    )
    parser.add_argument(
        "--faults",
        type=_fault_spec,
        default="",
        metavar="SPEC",
        help='fault injection, e.g. "500:0.1,429:0.05" (every kind and delay: docs/emulator.md)',
    )
    parser.add_argument("--seed", type=int, default=0, help="changes every generated answer")
    parser.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert (PEM)")
    parser.add_argument("--client-ca", metavar="FILE", help="require client certificates signed by this CA (mTLS)")
    parser.add_argument(
        "--mtls-only",
        action="store_true",
        help="the client certificate identifies the account, no OAuth token is needed "
        "(the GigaChat API for banks); needs --client-ca",
    )
    parser.add_argument(
        "--cert-account",
        type=_cert_account,
        action="append",
        default=[],
        metavar="MATCH=CLIENT_ID[:SCOPE]",
        help="with --mtls-only: the certificate whose CN=NAME or SHA-256 fingerprint is MATCH is "
        "account CLIENT_ID (scope default GIGACHAT_API_CORP); repeatable. Without it every "
        "certificate the CA signed is the account named by its CN",
    )
    parser.add_argument(
        "--env",
        action="store_true",
        help='print only the "export GIGACHAT_..." lines once listening, then close stdout and '
        'keep serving: eval "$(%(prog)s --env --port 0 &)"',
    )
    return parser


def config_from_args(argv: Sequence[str] | None = None, prog: str = "python -m gigapy.emulator") -> EmulatorConfig:
    """Parse command-line arguments into an ``EmulatorConfig`` (argparse exits on bad input)."""
    return _parse(argv, prog)[0]


def _parse(argv: Sequence[str] | None, prog: str) -> tuple[EmulatorConfig, argparse.Namespace]:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        parser.error("--client-ca needs --tls-cert and --tls-key")
    if args.mtls_only and not args.client_ca:
        parser.error("--mtls-only needs --client-ca (and --tls-cert, --tls-key)")
    if args.cert_account and not args.mtls_only:
        parser.error("--cert-account needs --mtls-only")
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        token_ttl=args.token_ttl,
        faults=args.faults,
        seed=args.seed,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
        timing=args.timing,
        ttft=args.ttft,
        tokens_per_second=args.tokens_per_second,
        pack_stream=args.pack_stream,
        mtls_only=args.mtls_only,
        cert_accounts=tuple(args.cert_account),
    )
    if args.no_limits:
        config.limits = None
        config.oauth_rps_limit = None
    if args.oauth_rps is not None:
        config.oauth_rps_limit = args.oauth_rps or None
    return config, args


def main(argv: Sequence[str] | None = None, prog: str = "python -m gigapy.emulator") -> None:
    """Parse ``argv`` and serve in the foreground (``--env``: print only the export lines)."""
    from ._runner import run

    config, args = _parse(argv, prog)
    run(config, env_only=args.env)
