"""Injected time. Every context asks a Clock, never the system directly, so simulations,
tests and benchmarks replay exactly. All times are UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

NS_PER_S = 1_000_000_000


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


class FakeClock:
    """A manual clock for tests and simulations: time moves only when told."""

    def __init__(self, start_ns: int = 1_767_225_600 * NS_PER_S) -> None:  # 2026-01-01T00:00Z
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def advance(self, seconds: float = 0, *, ns: int = 0) -> None:
        self._now_ns += int(seconds * NS_PER_S) + ns

    def set_ns(self, now_ns: int) -> None:
        self._now_ns = now_ns


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_to_datetime(ts_ns: int) -> datetime:
    """``ts_ns`` as a UTC datetime, cut to its microsecond (never rounded up: through a float
    division, 23:59:59.9999998 became the next day, and a statement's stated end fell after
    what it had read)."""
    return _EPOCH + timedelta(microseconds=ts_ns // 1_000)


def iso_utc(ts_ns: int) -> str:
    """``ts_ns`` in ISO 8601, UTC, as the API, the CLI and the decision log write a moment
    (``2026-12-05T02:37:53.822953Z``: :func:`ns_to_datetime`'s microsecond, a ``Z``)."""
    return ns_to_datetime(ts_ns).isoformat().replace("+00:00", "Z")


def datetime_to_ns(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no time zone; give UTC")
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


#: The latest time a nanosecond timestamp holds (a signed 64-bit integer: 2262-04-11)
TIME_NS_MAX = 2**63 - 1


def parse_time(text: str) -> int:
    """ISO 8601 (``2026-01-01T00:00:00Z``) or an integer nanosecond timestamp (ASCII
    digits) -> ns, from 1970 to 2262 (what a signed 64-bit count of nanoseconds holds)."""
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit():
        ns = int(stripped)
    else:
        try:
            value = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 time or nanosecond timestamp: {text!r}") from exc
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        ns = datetime_to_ns(value)
    if not 0 <= ns <= TIME_NS_MAX:
        raise ValueError(f"{text!r} is outside 1970-01-01 to 2262-04-11 (UTC)")
    return ns
