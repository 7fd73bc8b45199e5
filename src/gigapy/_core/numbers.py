"""The one guard for numbers a server sends, before they become sleeps, deadlines, sizes or counts.

A header or JSON value can be anything: ``nan``, ``inf``, ``-5``, ``1e400``, a 5,000-digit
integer, text. ``time.sleep(nan)`` raises a bare ValueError, ``asyncio.sleep(nan)`` puts a
NaN deadline into the event loop's timer heap (other timers then fire late or never), and a
NaN usage count makes a whole answer fail validation. So every such number passes through
:func:`server_number`, which clamps it into a documented range:

========================  =====================  ==========================================
number                    range                  used for
========================  =====================  ==========================================
Retry-After(-Ms)          0 .. 1 day (seconds)   the wait before a retry (waited only up to
                                                 ``RetryPolicy.max_retry_after``)
every ``Sleep`` of a flow 0 .. 1 day             what a driver passes to (asyncio.)sleep
token lifetime            see ``_auth``          refresh and expiry of the access token
SSE ``retry:``            0 .. 1 day (ms)        kept on the event
usage, token counts,      0 .. 2**53             counts in models (``Count``)
batch counters, sizes
timestamps                0 .. 2**53 or None     ``created``, ``created_at``, ... (``Stamp``)
========================  =====================  ==========================================

The rule is the same everywhere: a value below the range (a negative number, ``-inf``)
becomes the low end, a value above it (``inf``, an absurd size) the high end, and a value
that is no number at all (NaN, a bool, empty or non-numeric text) the caller's default.
Sans-IO: no clock, no I/O.
"""

from __future__ import annotations

from typing import Any, overload

MAX_WAIT = 86_400.0  #: seconds; the longest Retry-After or Sleep a client will ever compute
MAX_COUNT = float(2**53)  #: the largest count or size a model keeps (exact in a float)


@overload
def server_number(value: Any, *, low: float, high: float, default: float) -> float: ...


@overload
def server_number(value: Any, *, low: float, high: float, default: None = None) -> float | None: ...


def server_number(value: Any, *, low: float, high: float, default: float | None = None) -> float | None:
    """``value`` (an int, a float, or a number as str/bytes) as a float clamped to [low, high];
    ``default`` when it is NaN, a bool, empty, or not a number."""
    if isinstance(value, bool):
        return default
    if isinstance(value, float):
        number = value
    elif isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the float range: absurd, so the high end
            return high if value > 0 else low
    elif isinstance(value, (str, bytes, bytearray)):
        try:
            number = float(value)
        except ValueError:
            return default
    else:
        return default
    if number != number:  # NaN
        return default
    if number < low:
        return low
    if number > high:
        return high
    return number


def count(value: Any) -> int:
    """A count or size from a server for an ``int`` field: clamped to 0 .. 2**53 and truncated;
    anything that is no number (NaN, null, text, a list) becomes 0, so a broken counter never
    costs the rest of the answer."""
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    return int(server_number(value, low=0.0, high=MAX_COUNT, default=0.0))


def opt_count(value: Any) -> int | None:
    """:func:`count` for an ``int | None`` field: anything that is no number becomes None."""
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    number = server_number(value, low=0.0, high=MAX_COUNT)
    return None if number is None else int(number)


def stamp(value: Any) -> int | None:
    """A Unix timestamp from a server for an ``int | None`` field: clamped to 0 .. 2**53;
    anything that is no number becomes None."""
    if type(value) is int and 0 <= value <= MAX_COUNT:  # every chunk of a stream has one: no second call
        return value
    return opt_count(value)


def seconds(value: Any) -> float | None:
    """A duration in seconds from a server for a ``float | None`` field: 0 .. 1 day; anything
    that is no number becomes None."""
    return server_number(value, low=0.0, high=MAX_WAIT)
