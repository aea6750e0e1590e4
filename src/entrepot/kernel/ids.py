"""Identifiers. Ledger objects use unsigned 128-bit integers chosen by the client (the id is the
idempotency key). ``new_id()`` makes time-ordered ids (ULID layout: 48-bit millisecond time,
80 random bits) so that indexes grow at their right edge."""

from __future__ import annotations

import os
import re
import time
import uuid

U128_MAX = (1 << 128) - 1
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
# ASCII only: ``str.isdigit`` and ``int`` also take other scripts' digits ("١٢" is 12) and
# ``int(s, 16)`` an underscore after "0x"
_DECIMAL = re.compile(r"^[0-9]+$")
_HEX = re.compile(r"^0[xX][0-9a-fA-F]+$")


def new_id(now_ms: int | None = None, rand: bytes | None = None) -> int:
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    tail = int.from_bytes(os.urandom(10) if rand is None else rand, "big")
    return ((ms & ((1 << 48) - 1)) << 80) | (tail & ((1 << 80) - 1))


def parse_id(text: str) -> int:
    """Accept a decimal integer, ``0x``-hex, a 32-hex-digit string or a UUID; return a u128."""
    s = text.strip()
    try:
        if _HEX.match(s):
            value = int(s, 16)
        elif _DECIMAL.match(s):
            value = int(s)
        elif _HEX32.match(s) or len(s) == 36:
            value = uuid.UUID(s).int
        else:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"malformed id {text!r}: give a decimal integer, 0x-hex, 32 hex digits or a UUID"
        ) from None
    if not 0 <= value <= U128_MAX:
        raise ValueError(f"id {text!r} is outside the unsigned 128-bit range")
    return value


def id_to_bytes(value: int) -> bytes:
    return value.to_bytes(16, "big")


def id_from_bytes(raw: bytes) -> int:
    return int.from_bytes(raw, "big")
