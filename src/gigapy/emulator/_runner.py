"""Running the emulator: in a background thread (``Emulator``) or in the foreground (``run``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shlex
import signal
import ssl
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from ._app import create_app
from ._config import DEMO_CREDENTIALS, DEMO_PASSWORD, DEMO_USER, SCOPE_CORP, EmulatorConfig
from ._faults import FaultController
from ._state import RecordedRequest, State

log = logging.getLogger("gigapy.emulator")
T = TypeVar("T")
_START_TIMEOUT = 30.0
_DRAIN_TIMEOUT = 5.0


def ssl_context(config: EmulatorConfig) -> ssl.SSLContext | None:
    """Server TLS context from the config. With ``client_ca`` clients must present a certificate it
    signed (else the handshake fails); in mTLS-only mode a client without one completes the handshake
    and gets the gateway's 400 page, as nginx answers (a certificate another CA signed still fails the
    handshake: Python's ssl cannot defer that check)."""
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    if config.client_ca:
        context.load_verify_locations(config.client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL if config.mtls_only else ssl.CERT_REQUIRED
    return context


class _Server:
    """One listening site of the app on an event loop."""

    def __init__(self, config: EmulatorConfig, state: State) -> None:
        self.config = config
        self.state = state
        self.runner: web.AppRunner | None = None
        self.port = config.port

    async def start(self) -> None:
        app = create_app(self.config, state=self.state)
        # handler_cancellation: a client that disconnects frees its handler (a stalled one included)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=self.config.shutdown_timeout, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.port, ssl_context=ssl_context(self.config))
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.runner = runner
        server = runner.server
        self.state.connections = (lambda: len(server.connections)) if server is not None else (lambda: 0)
        self.port = _bound_port(runner)

    async def stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
            self.state.connections = lambda: 0
        await _drain_tasks()


async def _drain_tasks() -> None:
    """Cancel what is still running on this loop (stalled handlers, batches) and wait for it to end."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=_DRAIN_TIMEOUT)


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server: Any = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("emulator is not listening")


class Emulator:
    """The emulator on 127.0.0.1 in a background thread with its own event loop.

    ``Emulator(port=0)`` (the default here) picks a free port. Use as a context manager or call
    ``start()`` / ``stop()``. Keyword overrides replace fields of the config.
    """

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        base = config if config is not None else EmulatorConfig(port=0)
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self._state = State(self.config)
        self._server: _Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> Emulator:
        """Start serving (idempotent); returns self."""
        if self._server is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="gigapy-emulator", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        server = _Server(self.config, self._state)
        try:
            asyncio.run_coroutine_threadsafe(server.start(), loop).result(_START_TIMEOUT)
        except BaseException:
            self._shutdown_loop()
            raise
        self._server = server
        self.config = dataclasses.replace(self.config, port=server.port)
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._server is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(_START_TIMEOUT)
        self._server = None
        self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(_START_TIMEOUT)
        loop.close()

    def restart(self, keep_state: bool = False) -> None:
        """Stop and start on the same port; without ``keep_state`` tokens, files and stats are forgotten."""
        self.stop()
        if not keep_state:
            faults = self._state.faults
            self._state = State(self.config)
            self._state.faults = faults
        self.start()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses
    @property
    def port(self) -> int:
        """The listening port."""
        return self.config.port

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        return f"{self.config.scheme}://{self.config.host}:{self.config.port}"

    @property
    def base_url(self) -> str:
        """The API base URL (classic path style): ``url + "/api/v1"``."""
        return self.url + "/api/v1"

    @property
    def auth_url(self) -> str:
        """The OAuth URL: ``url + "/api/v2/oauth"``."""
        return self.url + "/api/v2/oauth"

    @property
    def credentials(self) -> str:
        """The demo authorization key."""
        return DEMO_CREDENTIALS

    # test hooks
    @property
    def faults(self) -> FaultController:
        """Runtime fault control: ``set(spec, routes)``, ``enqueue(*kinds, routes)``, ``clear()``."""
        return self._state.faults

    @property
    def state(self) -> State:
        """The in-memory state (advanced use)."""
        return self._state

    def _in_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (state is only touched from there)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(_START_TIMEOUT)

    def stats(self) -> dict[str, Any]:
        """Counters: oauth_requests, token_requests, api_requests per route, open_connections, inflight..."""
        return self._in_loop(self._state.snapshot)

    @property
    def requests(self) -> deque[RecordedRequest]:
        """A snapshot of the last requests received (method, path, query, headers, body)."""
        return self._in_loop(lambda: deque(self._state.log, maxlen=self._state.log.maxlen))

    def reset_stats(self) -> None:
        """Zero the counters, restart the slot peak and clear the request log."""
        self._in_loop(self._state.reset_stats)

    def reset(self) -> None:
        """Forget what the tests did, keep serving: files, batches, assistants, threads, spent
        balance, prompt caches, counters, the request log and faults. Issued tokens stay valid."""

        def fresh() -> None:
            state, new = self._state, State(self.config)
            keep = {"tokens", "oauth_rate", "cert_records", "connections", "faults", "limits"}
            for name, value in vars(new).items():
                if name not in keep:
                    setattr(state, name, value)
            state.faults.clear()
            state.reset_stats()

        self._in_loop(fresh)

    def expire_tokens(self) -> None:
        """Mark every issued token as expired now."""
        self._in_loop(self._state.tokens.expire_all)


def env_lines(config: EmulatorConfig, port: int) -> str:
    """Ready-to-paste shell lines that point GigaChat clients (``GIGACHAT_*``) at this emulator."""
    url = f"{config.scheme}://{config.host}:{port}"
    values = {"GIGACHAT_BASE_URL": f"{url}/api/v1"}
    notes = []
    if config.mtls_only:  # the certificate is the account: a key in the environment would turn OAuth on
        notes.append(
            f"# mTLS only: set GIGACHAT_CERT_FILE and GIGACHAT_KEY_FILE to a client certificate "
            f"signed by {config.client_ca}, and no GIGACHAT_CREDENTIALS"
        )
    else:
        values.update(
            GIGACHAT_AUTH_URL=f"{url}/api/v2/oauth",
            GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS,
            GIGACHAT_SCOPE="GIGACHAT_API_PERS",
        )
    if config.tls_cert:
        notes.append(f"# HTTPS: trust the CA that signed {config.tls_cert} with GIGACHAT_CA_BUNDLE_FILE")
    values["GIGAPY_EMULATOR_PID"] = str(os.getpid())
    lines = [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    return "".join(line + "\n" for line in lines + notes)


def banner(config: EmulatorConfig, port: int) -> str:
    """What ``python -m gigapy.emulator`` prints on start."""
    url = f"{config.scheme}://{config.host}:{port}"
    limits = "off" if config.limits is None else ", ".join(f"{k.split('_')[-1]} {v}" for k, v in config.limits.items())
    oauth = "off" if config.oauth_rps_limit is None else f"{config.oauth_rps_limit} per second per key"
    timing = config.generation()
    pace = (
        "instant" if timing.instant else (f"first token after {timing.ttft:g} s, {timing.tokens_per_second:g} tokens/s")
    )
    if config.mtls_only:
        accounts = ", ".join(f"{e.match} -> {e.client_id} ({e.scope})" for e in config.cert_accounts) or (
            f"any certificate it signed, as the account named by its CN ({SCOPE_CORP})"
        )
        auth = (
            f"  authentication:    client certificate only (mTLS), no token needed\n"
            f"  client CA:         {config.client_ca}\n"
            f"  accounts:          {accounts}\n"
        )
    else:
        auth = (
            f"  auth URL:          {url}/api/v2/oauth\n"
            f"  credentials:       {DEMO_CREDENTIALS}\n"
            f"  scopes:            GIGACHAT_API_PERS, GIGACHAT_API_B2B, GIGACHAT_API_CORP\n"
            f"  user / password:   {DEMO_USER} / {DEMO_PASSWORD}\n"
        )
    return (
        f"GigaChat emulator listening on {url}\n"
        f"  base URL:          {url}/api/v1\n"
        f"{auth}"
        f"  concurrency:       {limits}\n"
        f"  OAuth rate:        {oauth}\n"
        f"  generation:        {config.timing} ({pace})\n"
        f"  faults:            {config.faults or 'none'}\n"
        "Press Ctrl-C to stop.\n"
    )


async def serve(config: EmulatorConfig, ready: Callable[[int], None] | None = None) -> None:
    """Serve until cancelled or SIGINT/SIGTERM; ``ready`` gets the bound port."""
    server = _Server(config, State(config))
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            # a background job (``gigapy emulator &`` in a script) starts with SIGINT ignored: keep it so,
            # or a Ctrl-C meant for the foreground would stop the emulator too
            if signal.getsignal(sig) is not signal.SIG_IGN:
                loop.add_signal_handler(sig, stop.set)
    except (NotImplementedError, RuntimeError):  # not on the main thread, or Windows: Ctrl-C still works
        pass
    try:
        if ready is not None:
            ready(server.port)
        await stop.wait()
    finally:
        await server.stop()


def run(config: EmulatorConfig | None = None, *, env_only: bool = False) -> None:
    """Serve until Ctrl-C or SIGTERM; once listening, print the ``export GIGACHAT_...`` lines, then the banner.

    With ``env_only`` only the export lines are printed, and stdout is closed after them, so that
    ``eval "$(gigapy emulator --env &)"`` returns at once and leaves the emulator serving.
    """
    config = config or EmulatorConfig()

    def ready(port: int) -> None:
        sys.stdout.write(env_lines(config, port) + ("" if env_only else "\n" + banner(config, port)))
        sys.stdout.flush()
        if env_only:  # the reader sees end-of-file now; nothing else is ever printed to stdout
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    try:
        asyncio.run(serve(config, ready))
    except KeyboardInterrupt:
        pass
