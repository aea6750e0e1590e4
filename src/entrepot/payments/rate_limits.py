"""A participant's own request rate limit, set by the operator (migration 0034, ADR 0016).

The API limits each participant's requests to the scheme's limit (``ENTREPOT_RATE_LIMIT``);
a participant's own limit, when the operator has set one, replaces it for that participant:
higher for a large bank, lower (or at all, where the scheme sets none) for one that
misbehaves. Each API worker reads it again at most a second after it last did
(:func:`own_limit`, ``OWN_LIMIT_FRESH_S``; the worker that sets it, at once), so a change
applies within a second in every worker, without a restart."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from entrepot.kernel.clock import Clock, SystemClock
from entrepot.kernel.limits import (
    RATE_BURST_MAX,
    RATE_PER_S_MAX,
    RATE_PER_S_MIN,
    default_burst,
)
from entrepot.payments import store as st
from entrepot.payments.errors import InvalidPaymentInput, ParticipantNotFound, shown_id
from entrepot.storage.driver import Fast
from entrepot.storage.engine import read_connection

#: How long an API worker goes on with a participant's own limit as it last read it (a
#: read a request cost 0.6 % of a payment's instructions, a join on the credential's read)
OWN_LIMIT_FRESH_S = 1.0
_OWN = Fast("SELECT per_s, burst FROM pay_participant_rate_limits WHERE participant_id = ?")


@dataclass(frozen=True, slots=True)
class ParticipantRateLimit:
    """``per_s`` requests a second, ``burst`` at once; set by ``set_by`` at ``set_at`` (ns)."""

    participant_id: str
    per_s: float
    burst: int
    set_by: str
    set_at: int


@dataclass(frozen=True, slots=True)
class HeldLimit:
    """The request rate limit a participant is held to, and whose it is: ``participant``
    (``own``, set by the operator), ``scheme`` (ENTREPOT_RATE_LIMIT) or ``none``."""

    source: Literal["participant", "scheme", "none"]
    per_s: float | None
    burst: int | None
    own: ParticipantRateLimit | None = None


def held_limit(own: ParticipantRateLimit | None, scheme: tuple[float, int] | None) -> HeldLimit:
    """Its own limit where the operator set one, else the scheme's (requests a second, at
    once), else none."""
    if own is not None:
        return HeldLimit("participant", own.per_s, own.burst, own)
    if scheme is not None:
        return HeldLimit("scheme", *scheme)
    return HeldLimit("none", None, None)


def check_rate_limit(per_s: object, burst: object | None) -> tuple[float, int]:
    """A rate limit's numbers, checked: the burst defaults to a second's worth."""
    if (
        isinstance(per_s, bool)
        or not isinstance(per_s, int | float)
        or not math.isfinite(per_s)
        or not RATE_PER_S_MIN <= per_s <= RATE_PER_S_MAX
    ):
        raise InvalidPaymentInput(
            f"a rate limit is a number of requests a second from {RATE_PER_S_MIN} to "
            f"{RATE_PER_S_MAX:,}, not {per_s!r}",
            field="requests_per_second",
        )
    if burst is None:
        return float(per_s), default_burst(per_s)
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= RATE_BURST_MAX:
        raise InvalidPaymentInput(
            f"burst must be a whole number of requests from 1 to {RATE_BURST_MAX:,}, not {burst!r}",
            field="burst",
        )
    return float(per_s), burst


def _participant_must_exist(conn: Connection, participant_id: str) -> None:
    if st.load_participant(conn, participant_id) is None:
        raise ParticipantNotFound(f"participant {shown_id(participant_id)!r} does not exist")


def set_rate_limit(
    engine: Engine,
    participant_id: str,
    per_s: object,
    burst: object | None = None,
    *,
    actor: str,
    clock: Clock | None = None,
) -> ParticipantRateLimit:
    """Set the participant's own limit (replacing any it had); bad numbers or an unknown
    participant change nothing."""
    rate, whole = check_rate_limit(per_s, burst)
    now = (clock or SystemClock()).now_ns()
    values = {"per_s": rate, "burst": whole, "set_by": actor, "set_at": now}
    with engine.begin() as conn:
        _participant_must_exist(conn, participant_id)
        table = st.participant_rate_limits
        changed = conn.execute(
            sa.update(table).where(table.c.participant_id == participant_id).values(**values)
        ).rowcount
        if not changed:
            conn.execute(sa.insert(table).values(participant_id=participant_id, **values))
    return ParticipantRateLimit(participant_id, rate, whole, actor, now)


def clear_rate_limit(engine: Engine, participant_id: str) -> bool:
    """The participant back on the scheme's limit; False if it had none of its own."""
    with engine.begin() as conn:
        _participant_must_exist(conn, participant_id)
        table = st.participant_rate_limits
        removed = conn.execute(sa.delete(table).where(table.c.participant_id == participant_id))
    return bool(removed.rowcount)


def rate_limit_of(engine: Engine, participant_id: str) -> ParticipantRateLimit | None:
    """The participant's own limit, if the operator set one."""
    table = st.participant_rate_limits
    with read_connection(engine) as conn:
        _participant_must_exist(conn, participant_id)
        row = conn.execute(sa.select(table).where(table.c.participant_id == participant_id)).first()
    if row is None:
        return None
    return ParticipantRateLimit(row.participant_id, row.per_s, row.burst, row.set_by, row.set_at)


def own_limit(engine: Engine, participant_id: str) -> tuple[float, int] | None:
    """The participant's own limit (requests a second, at once), if the operator set one:
    one primary-key read, for the API's workers (no participant check: a caller's id)."""
    with read_connection(engine) as conn:
        row = _OWN.first(conn, (participant_id,))
    return None if row is None else (float(row[0]), int(row[1]))


__all__ = [
    "OWN_LIMIT_FRESH_S",
    "HeldLimit",
    "ParticipantRateLimit",
    "check_rate_limit",
    "clear_rate_limit",
    "held_limit",
    "own_limit",
    "rate_limit_of",
    "set_rate_limit",
]
