"""Emulator settings: accounts, limits, TLS and knobs, with defaults faithful to the real service."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from ._timing import Timing
from ._timing import resolve as resolve_timing

SCOPE_PERS = "GIGACHAT_API_PERS"
SCOPE_B2B = "GIGACHAT_API_B2B"
SCOPE_CORP = "GIGACHAT_API_CORP"
ALL_SCOPES = frozenset({SCOPE_PERS, SCOPE_B2B, SCOPE_CORP})
#: Scopes with a prepaid balance (``GET /balance`` works); CORP is pay-as-you-go.
PREPAID_SCOPES = frozenset({SCOPE_PERS, SCOPE_B2B})

DEMO_CLIENT_ID = "7f3e0c52-9b1d-4a6e-8c2f-3d5b6a7e8f90"
DEMO_CLIENT_SECRET = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"  # noqa: S105 (public demo account)
DEMO_USER = "gigapy-demo"
DEMO_PASSWORD = "gigapy-demo-password"  # noqa: S105 (public demo account)


def encode_credentials(client_id: str, client_secret: str) -> str:
    """Build an authorization key: base64 of ``client_id:client_secret``."""
    return base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")


DEMO_CREDENTIALS = encode_credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)


@dataclass(frozen=True)
class Account:
    """One API client: OAuth key parts, the scopes it may request, optional user/password."""

    client_id: str
    client_secret: str
    scopes: frozenset[str] = ALL_SCOPES
    user: str | None = None
    password: str | None = None

    @property
    def credentials(self) -> str:
        """The authorization key to send as ``Authorization: Basic <key>``."""
        return encode_credentials(self.client_id, self.client_secret)


@dataclass(frozen=True)
class CertAccount:
    """In mTLS-only mode: the client certificate that identifies an account.

    ``match`` is ``CN=<subject common name>`` or the certificate's SHA-256 fingerprint (hex; colons,
    case and a ``sha256:`` prefix are ignored). ``client_id`` names the account (a configured
    :class:`Account` with that id shares its files and limits); ``scope`` is what it may use.
    """

    match: str
    client_id: str
    scope: str = SCOPE_CORP

    @property
    def key(self) -> str:
        """``cn:<name>`` or ``sha256:<hex>`` (``ValueError`` when ``match`` is neither)."""
        return cert_key(self.match)


def cert_key(match: str) -> str:
    """The lookup key of a certificate ``match`` (see :class:`CertAccount`)."""
    text = match.strip()
    if text[:3].upper() == "CN=" and text[3:].strip():
        return "cn:" + text[3:].strip()
    digest = text.lower().removeprefix("sha256:").replace(":", "")
    if len(digest) == 64 and all(ch in "0123456789abcdef" for ch in digest):
        return "sha256:" + digest
    raise ValueError(f"certificate match {match!r}: expected CN=<common name> or a SHA-256 fingerprint (64 hex digits)")


DEMO_ACCOUNT = Account(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, ALL_SCOPES, DEMO_USER, DEMO_PASSWORD)


def default_limits() -> dict[str, int]:
    """Concurrent requests per account and scope, as documented (individuals 1, companies 10)."""
    return {SCOPE_PERS: 1, SCOPE_B2B: 10, SCOPE_CORP: 10}


def default_embedding_dims() -> dict[str, int]:
    """Vector size per embedder model (1024 as recorded for ``Embeddings``)."""
    return {"Embeddings": 1024, "Embeddings-2": 1024, "EmbeddingsGigaR": 1024, "GigaEmbeddings-3B-2025-09": 1024}


@dataclass
class EmulatorConfig:
    """Everything the emulator can be told; every field has a faithful default."""

    host: str = "127.0.0.1"
    port: int = 8443
    #: Access token lifetime in seconds (the service issues 30-minute tokens).
    token_ttl: float = 1800.0
    #: Concurrent requests per account+scope; ``None`` lifts every limit.
    limits: dict[str, int] | None = field(default_factory=default_limits)
    #: Fault spec, e.g. ``"500:0.1,429:0.05,drop:0.02,latency_ms:50"``.
    faults: str = ""
    #: Changes every generated answer, vector and image (same seed, same output).
    seed: int = 0
    #: Extra accounts; the demo account is added unless ``demo_account`` is False.
    accounts: tuple[Account, ...] = ()
    demo_account: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None
    #: CA bundle for client certificates: when set, clients without a valid certificate are rejected.
    client_ca: str | None = None
    #: mTLS-only access (the GigaChat API for banks): the client certificate identifies the account, no
    #: bearer token is needed (an Authorization header is ignored). Needs tls_cert/tls_key and client_ca.
    mtls_only: bool = False
    #: Which certificate is which account in mTLS-only mode. Empty: every certificate client_ca signed is
    #: accepted, as the account named by its subject CN with the CORP scope.
    cert_accounts: tuple[CertAccount, ...] = ()
    #: ``/filter/check`` stop words (the ``blacklist`` check), besides the ``[emulator:blacklist]`` trigger.
    filter_stop_words: tuple[str, ...] = ()
    #: OAuth requests per second per authorization key before 429; ``None`` lifts the limit.
    oauth_rps_limit: int | None = 10
    #: Prompt-cache lifetime per X-Session-ID, seconds (about 30 s was measured live).
    session_cache_ttl: float = 30.0
    embedding_dims: dict[str, int] = field(default_factory=default_embedding_dims)
    #: Context window per chat model, tokens; a longer prompt gets 413.
    context_tokens: int = 128_000
    #: Generation time profile: ``"fast"`` (none, the default for tests and benchmarks) or
    #: ``"realistic"`` (about the live service's pace); ``ttft`` / ``tokens_per_second`` override it.
    timing: str = "fast"
    #: Seconds before the first token (``None``: the profile's).
    ttft: float | None = None
    #: Generation speed (``None``: the profile's; 0: every token at once). Also sizes ``update_interval``
    #: chunks (100 tokens/s when generation is instant).
    tokens_per_second: float | None = None
    #: Many SSE events per socket write (fast, for benchmarks); by default each event is its own
    #: flushed write, as the service sends them.
    pack_stream: bool = False
    #: Upper bound for a ``stall`` / ``stream_stall`` fault before the connection is closed.
    stall_seconds: float = 300.0
    #: Seconds a batch stays ``created`` before it is processed.
    batch_delay: float = 0.2
    #: Seconds a thread run (``POST /threads/run`` without ``stream``) stays ``in_progress``.
    thread_run_delay: float = 0.2
    #: Reject ``/ai/check`` and ``/batches`` for prepaid scopes (they are pay-as-you-go only).
    enforce_tariffs: bool = True
    #: Memory caps: stored tokens, sessions, files, file bytes, batches, batch lines, logged requests.
    max_tokens_stored: int = 100_000
    max_sessions: int = 10_000
    max_files: int = 10_000
    max_file_store_bytes: int = 512 * 1024 * 1024
    max_batches: int = 1_000
    max_batch_lines: int = 10_000
    request_log_size: int = 1_000
    #: Assistants and threads (oldest evicted first), messages kept per thread, stored message characters.
    max_assistants: int = 10_000
    max_threads: int = 10_000
    max_thread_messages: int = 1_000
    max_thread_store_chars: int = 128 * 1024 * 1024
    #: Largest accepted request body; above it the answer is 413.
    max_body_bytes: int = 48 * 1024 * 1024
    #: Seconds to wait for open connections when the server stops.
    shutdown_timeout: float = 1.0

    def generation(self) -> Timing:
        """The resolved generation timing (``ValueError`` for an unknown profile or a bad number)."""
        return resolve_timing(self.timing, self.ttft, self.tokens_per_second)

    def check(self) -> None:
        """``ValueError`` for settings that cannot work together (checked when the emulator is built)."""
        if self.mtls_only and not (self.tls_cert and self.tls_key and self.client_ca):
            raise ValueError("mtls_only needs tls_cert, tls_key and client_ca (the CA that signs client certificates)")
        if self.client_ca and not self.tls_cert:
            raise ValueError("client_ca needs tls_cert and tls_key")
        for entry in self.cert_accounts:
            entry.key  # noqa: B018 (raises for a bad match)
            if entry.scope not in ALL_SCOPES:
                raise ValueError(f"cert account {entry.match!r}: unknown scope {entry.scope!r}")

    def all_accounts(self) -> tuple[Account, ...]:
        """Configured accounts, demo account first when enabled."""
        return ((DEMO_ACCOUNT,) if self.demo_account else ()) + tuple(self.accounts)

    @property
    def scheme(self) -> str:
        """``https`` when a certificate is configured, else ``http``."""
        return "https" if self.tls_cert else "http"
