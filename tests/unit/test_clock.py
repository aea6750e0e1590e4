"""Nanosecond stamps as datetimes (kernel/clock.py): what every ISO 20022 time is made of."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from entrepot.kernel.clock import datetime_to_ns, ns_to_datetime


def test_a_stamp_in_the_last_microsecond_of_a_day_stays_in_that_day() -> None:
    """Found by a review: through a float division 23:59:59.9999998 became the next day, a
    settlement's IntrBkSttlmDt with it; the microsecond is cut, never rounded up."""
    stamp = datetime_to_ns(datetime(2026, 1, 1, 23, 59, 59, 999_999, tzinfo=UTC)) + 800
    assert ns_to_datetime(stamp).date() == date(2026, 1, 1)
    assert ns_to_datetime(stamp) == datetime(2026, 1, 1, 23, 59, 59, 999_999, tzinfo=UTC)


@given(st.integers(min_value=-(10**18), max_value=9 * 10**18))
def test_a_datetime_is_its_stamp_cut_to_the_microsecond(ns: int) -> None:
    assert datetime_to_ns(ns_to_datetime(ns)) == ns - ns % 1_000
