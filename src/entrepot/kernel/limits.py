"""Named limits. Each is enforced in code and tried by a test."""

from __future__ import annotations

import math

#: Events per create_accounts / create_transfers request (TigerBeetle's batch size).
BATCH_EVENTS_MAX = 8_190
#: Largest amount and balance: signed 64-bit, the widest integer both SQLite and PostgreSQL
#: store natively. ADR 0002 explains why not u128.
AMOUNT_MAX = (1 << 63) - 1
#: Ledger, code and user_data_32 are u32; code is u16 as in TigerBeetle.
U32_MAX = (1 << 32) - 1
U16_MAX = (1 << 16) - 1
U64_MAX = (1 << 64) - 1
#: user_data_64 is stored as a signed 64-bit column.
USER_DATA_64_MAX = (1 << 63) - 1
#: Rows per page of a statement or history query.
QUERY_LIMIT_MAX = 8_190
#: A participant's request rate limit (ENTREPOT_RATE_LIMIT, a participant's own): at least a
#: request every 100 seconds (a slower one would tell a refused caller to wait for hours), at
#: most a million a second; a burst from one request to a million.
RATE_PER_S_MIN = 0.01
RATE_PER_S_MAX = 1_000_000
RATE_BURST_MAX = 1_000_000


def default_burst(rate_per_s: float) -> int:
    """A rate limit's burst when none is given: a second's worth, at least one request."""
    return max(1, math.ceil(rate_per_s))
