"""Numbers from a server pass one guard: NaN, inf, negative and absurd values never become a bare
exception, an endless sleep, a poisoned event loop or a lost answer.

Against the emulator (``retry_after_ms`` and ``expires_at_shift`` faults) and a raw HTTP server
that sends any header value and any JSON number (tests/rawserver.py); hypothesis drives both
clients over Retry-After, Retry-After-Ms, Date, expires_at / exp, usage, batch counters,
Content-Length and the SSE ``retry:`` field.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gigapy import (
    APIConnectionError,
    APIResponseValidationError,
    AsyncGigaChat,
    GigaChat,
    GigaChatError,
    RateLimitError,
    Timeout,
    clear_token_cache,
)
from gigapy._core.flow import Response, Sleep, retry_after
from gigapy._core.numbers import MAX_COUNT, MAX_WAIT, server_number
from gigapy._core.tokens import FALLBACK_LIFETIME, MAX_LIFETIME, token_lifetime
from gigapy.emulator import DEMO_CREDENTIALS
from gigapy.testing import client_settings

from ..rawserver import SSE_HEAD, RawRequest, RawServer, answer, completion_body, head, sse_event

pytestmark = pytest.mark.hostile("server_numbers")

SHORT = Timeout(connect=2, read=2, write=2, pool=2)


# --- the guard itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nan", None),
        (float("nan"), None),
        ("inf", 10.0),
        (float("-inf"), 0.0),
        ("-5", 0.0),
        ("1e400", 10.0),
        ("9" * 5000, 10.0),
        (10**400, 10.0),
        (-(10**400), 0.0),
        ("3.5", 3.5),
        (b"2", 2.0),
        (" 4 ", 4.0),
        ("", None),
        ("abc", None),
        (True, None),
        (None, None),
        ([1], None),
    ],
)
def test_server_number_clamps_or_defaults(value: Any, expected: float | None) -> None:
    assert server_number(value, low=0.0, high=10.0) == expected


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0, 1e300, -float("inf")])
def test_every_sleep_action_is_finite_and_bounded(seconds: float) -> None:
    wait = Sleep(seconds).seconds
    assert math.isfinite(wait) and 0.0 <= wait <= MAX_WAIT


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "inf"}, MAX_WAIT),
        ({"retry-after-ms": "-50"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "1e999"}, MAX_WAIT),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}, 10.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT", "date": "Wed, 21 Oct 2015 07:28:10 GMT"}, 0.0),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, MAX_WAIT),
        ({"retry-after": "Mon, 99 Foo 0000 99:99:99 GMT"}, None),
    ],
)
def test_retry_after_through_the_guard(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers, now=1_445_412_480.0) == expected


def test_an_http_date_retry_after_is_measured_against_the_server_date_not_a_skewed_local_clock() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:05 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}
    for skew in (-1860.0, 0.0, 1860.0):  # the local clock 31 minutes behind, right, ahead
        assert retry_after(headers, now=1_445_412_480.0 + skew) == 5.0


# --- emulator: Retry-After-Ms nan / inf on a 429 ------------------------------------------------


def test_sync_429_with_retry_after_ms_nan_is_retried_not_a_bare_value_error(emu: Any, make_client: Any) -> None:
    emu.faults.set("retry_after_ms:nan,retry_after:0")
    emu.faults.enqueue("429", routes=["chat"])
    result = make_client().completion("Привет")
    assert result.retries_taken == 1
    assert emu.stats()["api_requests"]["chat"] == 2


def test_sync_429_with_retry_after_ms_inf_is_not_waited(emu: Any, make_client: Any) -> None:
    emu.faults.set("retry_after_ms:inf")
    emu.faults.enqueue("429", routes=["chat"])
    start = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        make_client().completion("Привет")
    assert time.monotonic() - start < 2.0
    assert info.value.retry_after == MAX_WAIT


def test_async_429_with_retry_after_ms_nan_leaves_the_loop_timers_on_time(emu: Any) -> None:
    emu.faults.set("retry_after_ms:nan,retry_after:1")
    emu.faults.enqueue("429", routes=["chat"])

    async def main() -> tuple[int, float]:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            call = asyncio.create_task(client.completion("Привет"))
            while emu.stats()["api_requests"].get("chat", 0) < 1:  # the 429 has been answered
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # the client is now waiting before its retry
            start = time.monotonic()
            await asyncio.sleep(0.05)  # an unrelated timer in the same loop
            late = time.monotonic() - start
            result = await asyncio.wait_for(call, 10)
            return result.retries_taken, late

    retries, late = asyncio.run(main())
    assert retries == 1
    assert 0.04 <= late <= 0.15, late


# --- hypothesis against a raw server: both clients ----------------------------------------------

ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=24)
NASTY = st.sampled_from(
    [
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "-1",
        "-0.5",
        "0",
        "0.0",
        "1e400",
        "-1e400",
        "9" * 400,
        "1_0",
        " 0.05 ",
        "abc",
        "",
        "0x10",
        "1e-400",
        "0.05",
        "0.1",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Mon, 01 Jan 0001 00:00:00 GMT",
    ]
)
HEADER = (
    st.none()
    | NASTY
    | ASCII
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.integers(-(10**30), 10**30).map(str)
)
JSON_NUMBER = (
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "-1",
            "0",
            "1e400",
            "-1e400",
            "1.5",
            '"12"',
            '"abc"',
            "null",
            "true",
            "[]",
            "{}",
            "9" * 50,
            "4102444800000",
            "1748797655564",
            "1748797655",
        ]
    )
    | st.integers(-(10**20), 10**20).map(str)
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
)


@dataclasses.dataclass
class Case:
    retry_after: str | None
    retry_after_ms: str | None
    date: str | None
    expires: str
    usage: str
    served: int = 0


CASES = st.builds(Case, HEADER, HEADER, st.none() | NASTY | st.just("now"), JSON_NUMBER, JSON_NUMBER)


class Hostile:
    """The raw server's behaviour for one Case: OAuth with a hostile expiry, one 429 with hostile
    wait headers, then answers whose usage numbers are hostile."""

    def __init__(self) -> None:
        self.case = Case(None, None, None, "0", "0")

    async def __call__(self, request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        case = self.case
        if request.path.endswith("/oauth"):
            writer.write(answer(200, f'{{"access_token": "tok", "expires_at": {case.expires}}}'))
            return True
        case.served += 1
        if case.served == 1:
            headers = {}
            for key, value in (
                ("Retry-After", case.retry_after),
                ("Retry-After-Ms", case.retry_after_ms),
                ("Date", case.date),
            ):
                if value is not None:
                    headers[key] = (
                        time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()) if value == "now" else value
                    )
            writer.write(answer(429, {"status": 429, "message": "Too many requests"}, headers))
            return True
        usage = f'{{"prompt_tokens": {case.usage}, "completion_tokens": {case.usage}, "total_tokens": 3}}'
        writer.write(answer(200, completion_body(usage)))
        return True


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[RawServer, Hostile]]:
    behaviour = Hostile()
    server = RawServer(behaviour).start()
    yield server, behaviour
    server.stop()


def _fast(client: Any) -> None:
    """Short waits, so a property test can try many cases: backoff of 10 ms, Retry-After honoured up
    to 0.3 s (the guard and the rule are what is tested, not the size of the constants)."""
    core = client._core
    core.policy = dataclasses.replace(core.policy, initial_delay=0.01, max_delay=0.02, max_retry_after=0.3)


def _raw_settings(server: RawServer) -> dict[str, Any]:
    return {
        "credentials": DEMO_CREDENTIALS,
        "base_url": server.base_url,
        "auth_url": server.auth_url,
        "timeout": SHORT,
        "max_retries": 1,
    }


def _check_result(result: Any) -> None:
    usage = result.usage
    assert usage is not None
    for value in (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens):
        assert isinstance(value, int) and 0 <= value <= MAX_COUNT


def _check_error(exc: BaseException) -> None:
    assert isinstance(exc, RateLimitError), repr(exc)  # never a bare ValueError / OverflowError
    ra = exc.retry_after
    assert ra is None or (math.isfinite(ra) and 0.0 <= ra <= MAX_WAIT)


PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@PROPERTY
@given(case=CASES)
def test_sync_client_survives_any_numbers_from_the_server(hostile: tuple[RawServer, Hostile], case: Case) -> None:
    server, behaviour = hostile
    behaviour.case = case
    server.requests.clear()
    clear_token_cache()
    with GigaChat(**_raw_settings(server)) as client:
        _fast(client)
        start = time.monotonic()
        try:
            _check_result(client.completion("Привет"))
        except GigaChatError as exc:
            _check_error(exc)
        assert time.monotonic() - start < 1.5  # no wait beyond the 0.3 s cap (plus slack)
        _check_result(client.completion("Ещё"))  # same token: any expiry costs at most one fetch
    assert server.count("/oauth") == 1


@PROPERTY
@given(case=CASES)
def test_async_client_survives_any_numbers_from_the_server(hostile: tuple[RawServer, Hostile], case: Case) -> None:
    server, behaviour = hostile
    behaviour.case = case
    server.requests.clear()
    clear_token_cache()

    async def probe(lateness: list[float]) -> None:
        for _ in range(5):
            start = time.monotonic()
            await asyncio.sleep(0.01)
            lateness.append(time.monotonic() - start - 0.01)

    async def main() -> list[float]:
        lateness: list[float] = []
        async with AsyncGigaChat(**_raw_settings(server)) as client:
            _fast(client)
            start = time.monotonic()
            outcome, _ = await asyncio.gather(client.completion("Привет"), probe(lateness), return_exceptions=True)
            if isinstance(outcome, BaseException):
                _check_error(outcome)
            else:
                _check_result(outcome)
            assert time.monotonic() - start < 1.5
            _check_result(await client.completion("Ещё"))
        return lateness

    lateness = asyncio.run(asyncio.wait_for(main(), 10))  # a NaN sleep would hang here
    assert max(lateness) < 0.2, lateness  # the loop's other timers kept firing on time
    assert server.count("/oauth") == 1


# --- token expiry: any number costs at most one fetch --------------------------------------------


@pytest.mark.parametrize("expires", [None, float("nan"), float("-inf"), -1.0, 0.0, 1.0, 1_799_999_999.5])
def test_token_lifetime_of_an_unusable_or_past_expiry_is_the_fallback(expires: float | None) -> None:
    assert token_lifetime(expires, now=1_800_000_000.0, server_now=None) == FALLBACK_LIFETIME


@pytest.mark.parametrize("expires", [4_102_444_800.0, 1e300, float("inf")])
def test_token_lifetime_is_clamped_to_a_day(expires: float) -> None:
    assert token_lifetime(expires, now=1_800_000_000.0, server_now=None) == MAX_LIFETIME


@pytest.mark.parametrize(
    "body",
    [
        '{"access_token": "t", "expires_at": NaN}',
        '{"access_token": "t", "expires_at": -1}',
        '{"access_token": "t", "expires_at": 1e400}',
        '{"access_token": "t", "expires_at": "soon"}',
        '{"access_token": "t"}',
        '{"tok": "t", "exp": Infinity}',
        '{"tok": "t", "exp": 99999999999999999999999}',
    ],
)
def test_a_token_with_an_unusable_expiry_is_still_a_token(body: str) -> None:
    from gigapy._core.tokens import parse_token

    token = parse_token(Response(200, {}, body.encode(), "POST", "http://127.0.0.1/oauth"), now=1_800_000_000.0)
    assert token._lifetime == FALLBACK_LIFETIME
    assert token.expires_at == int((1_800_000_000.0 + FALLBACK_LIFETIME) * 1000)


# --- batch counters, Content-Length, SSE retry -------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(total=JSON_NUMBER, completed=JSON_NUMBER, created=JSON_NUMBER)
def test_batch_counters_from_the_server_are_guarded(
    hostile: tuple[RawServer, Hostile], total: str, completed: str, created: str
) -> None:
    server, _ = hostile
    body = (
        f'{{"batches": [{{"id": "b1", "status": "in_progress", "created_at": {created}, '
        f'"request_counts": {{"total": {total}, "completed": {completed}, "failed": {completed}}}}}]}}'
    )

    async def batches(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, body))
        return True

    server.handler = batches
    try:
        with GigaChat(base_url=server.base_url, access_token="t", timeout=SHORT, max_retries=0) as client:
            batch = client.get_batch("b1")  # never lost to a broken counter
    finally:
        server.handler = hostile[1]
    counts = batch.request_counts
    for value in (counts.total, counts.completed, counts.failed):
        assert value is None or 0 <= value <= MAX_COUNT
    assert batch.created_at is None or 0 <= batch.created_at <= MAX_COUNT


CONTENT_LENGTHS = [
    "nan",
    "-1",
    "1e3",
    "99999999999999999999",
    " 5",
    "5, 5",
    "abc",
    "",
    "+5",
    "0x10",
    "inf",
    "18446744073709551617",
]


@pytest.mark.parametrize("length", CONTENT_LENGTHS)
def test_a_hostile_content_length_is_a_typed_error_or_a_result_both_clients(length: str) -> None:
    body = completion_body().encode()

    async def bad_length(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(200, {"Content-Type": "application/json", "Content-Length": length}) + body)
        await writer.drain()
        await asyncio.sleep(0.2)
        return False  # then close

    timeout = Timeout(connect=2, read=1.0, write=2, pool=2)
    server = RawServer(bad_length).start()
    try:
        for client_kind in ("sync", "async"):
            start = time.monotonic()
            try:
                if client_kind == "sync":
                    with GigaChat(base_url=server.base_url, access_token="t", timeout=timeout, max_retries=0) as client:
                        client.completion("x")
                else:

                    async def main() -> None:
                        async with AsyncGigaChat(
                            base_url=server.base_url, access_token="t", timeout=timeout, max_retries=0
                        ) as client:
                            await client.completion("x")

                    asyncio.run(main())
            except (APIConnectionError, APIResponseValidationError):
                pass  # typed: the length is refused, or the body is cut short
            assert time.monotonic() - start < 1.5, client_kind
    finally:
        server.stop()


def test_an_absurd_sse_retry_field_does_not_break_the_stream() -> None:
    async def stream(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            SSE_HEAD
            + b"retry: "
            + b"9" * 6000
            + b"\n"
            + sse_event("ok", finish="stop")
            + b"retry: -5\n"
            + b"data: [DONE]\n\n"
        )
        await writer.drain()
        return False

    server = RawServer(stream).start()
    try:
        with (
            GigaChat(base_url=server.base_url, access_token="t", timeout=SHORT, max_retries=0) as client,
            client.completion_stream("x") as s,
        ):
            assert s.get_final_completion().text == "ok"
    finally:
        server.stop()


def test_usage_that_is_nan_keeps_the_answer() -> None:
    async def nan_usage(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            answer(
                200,
                completion_body(
                    '{"prompt_tokens": NaN, "completion_tokens": -4, '
                    '"total_tokens": 1e400, "precached_prompt_tokens": Infinity}'
                ),
            )
        )
        return True

    server = RawServer(nan_usage).start()
    try:
        with GigaChat(base_url=server.base_url, access_token="t", timeout=SHORT, max_retries=0) as client:
            answer_ = client.completion("x")
    finally:
        server.stop()
    assert answer_.text == "ok"  # the answer is not lost to a broken usage field
    assert answer_.usage is not None
    assert (answer_.usage.prompt_tokens, answer_.usage.completion_tokens) == (0, 0)
    assert answer_.usage.total_tokens == answer_.usage.precached_prompt_tokens == MAX_COUNT
    assert json.loads(json.dumps(answer_.to_dict()))["usage"]["prompt_tokens"] == 0


WIRE_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([None, True, False, "12", "1e3", "nan", "", "x", [], {}]),
)


@settings(max_examples=300, deadline=None)
@given(value=WIRE_NUMBERS)
def test_the_models_fast_number_branch_agrees_with_the_guard(value: Any) -> None:
    """Counts and timestamps take pydantic-core's plain-int branch when they can and the Python
    guard otherwise: the result is always the guard's, from a dict or from JSON bytes."""
    from gigapy._core import numbers
    from gigapy.types.chat import ChatCompletionChunk, Usage

    usage = Usage.model_validate({"prompt_tokens": value, "precached_prompt_tokens": value})
    assert usage.prompt_tokens == numbers.count(value) and type(usage.prompt_tokens) is int
    assert usage.precached_prompt_tokens == numbers.opt_count(value)
    assert ChatCompletionChunk.model_validate({"created": value}).created == numbers.stamp(value)
    if value is None or isinstance(value, (int, str)) or (isinstance(value, float) and math.isfinite(value)):
        wire = json.dumps({"created": value, "usage": {"prompt_tokens": value}}).encode()
        chunk = ChatCompletionChunk.model_validate_json(wire)
        assert chunk.created == numbers.stamp(value)
        assert chunk.usage is not None and chunk.usage.prompt_tokens == numbers.count(value)


def test_the_number_fields_json_schema_is_their_own_type() -> None:
    from gigapy.types.chat import ChatCompletionChunk, Usage

    assert Usage.model_json_schema()["properties"]["prompt_tokens"] == {
        "default": 0,
        "title": "Prompt Tokens",
        "type": "integer",
    }
    assert ChatCompletionChunk.model_json_schema()["properties"]["created"]["anyOf"] == [
        {"type": "integer"},
        {"type": "null"},
    ]
