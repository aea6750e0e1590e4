"""The Idempotency-Key of the request a scheme write serves, recorded in the write's own
transaction.

The API stores a key's answer after the operation committed, in a later transaction: a
worker killed between the two left an operation done and no answer. The retry (same key)
then ran it again: a commit was answered 409 "already COMMITTED" (and that 409 kept as the
key's answer), an escrow's partial release was paid twice. Each scheme write of a keyed
request now also writes the key's row, as a marker (``ANSWER_LOST``: no answer yet), in the
same transaction; the answer fills it in. A retry that finds only the marker knows the
operation was done, and is answered from what it did (``entrypoints/api/security.py``).
An operation whose request does not name what it acts on (a window's close: the window is
the one open at the time) records that in the marker (``result``), for the retry to be
answered with it.

Two requests with one key may run at once where the API's in-progress claims do not reach
(servers with other homes sharing the database: entrypoints/api/claims.py): each found no
answer for the key and ran its operation, and one that names nothing of its own to be
refused by (an escrow's partial release, a window's close) was done twice. A request that
found no answer (``fresh``) therefore claims the key with its first marker: the marker is
inserted, never merged into a row already there, and a row already there (another request's
marker or answer, committed before this transaction could write) refuses the operation
(``KeyInUse``): its whole transaction is rolled back. (A row with the request's token,
below, is its own earlier marker.) The insert decides it whatever the
isolation level: PostgreSQL makes it wait for another transaction's uncommitted row.

A marker may be rolled back with the rest of its transaction (pay-by-QR's quote marks the
key, then its prepare is refused), and another server's request then write its own. Each
request's markers therefore carry its token (random, 63 bits; migration 0021): its answer
fills in only a marker with its token, else is stored only where the key has no row, and a
later write of the request finding a row without its token is refused as a first one is.
That includes a request of several writes whose first committed and whose marker another
server's request with the key then answered (it found the marker: done, answer lost): the
later write is refused ``KeyInUse`` after part of the request's work committed, and the
retry is answered with what the other request stored. Nothing is done twice.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from entrepot.payments import store as st
from entrepot.payments.errors import KeyInUse
from entrepot.storage.driver import Fast
from entrepot.storage.uow import UnitOfWork

#: ``status_code`` of a key's row written with its operation, before the answer is known
ANSWER_LOST = 0
#: The longest Idempotency-Key (the API's header, the CLI's ``--idempotency-key``): what the
#: ``pay_idempotency.key`` column holds
KEY_LEN_MAX = 128

#: Rows a purge deletes per transaction (each a short turn of the write lock), and at most
#: per pass: a backlog is worked off over passes, never in one long hold.
PURGE_BATCH = 5_000
PURGE_MOST = 200_000


class _Progress:
    """What a keyed request's writes did with its key (mutable; shared by the request's
    threads and the context copies it runs in)."""

    __slots__ = ("marked", "refused", "token")

    def __init__(self) -> None:
        self.marked = False  # a marker of this request's was written (the key is its own)
        self.refused = False  # another request's row was found: see ``KeyInUse``
        #: the ``token`` of every marker this request writes (random): which marker is its
        #: own, should the transaction that wrote it be rolled back and another server's
        #: request write one meanwhile
        self.token = secrets.randbits(63)


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    caller: str
    key: str
    digest: str  # of the request: method, path, query, body
    #: the key's lookup found no row: any row found later is another request's
    fresh: bool = False
    progress: _Progress = field(default_factory=_Progress, compare=False, repr=False)


#: Set by the API's security middleware while a keyed request's operation runs.
KEYED_REQUEST: ContextVar[KeyedRequest | None] = ContextVar("entrepot_keyed_request", default=None)

# A marker written without a result takes one named later in the same operation (a trade
# tracking event that pays customs: the scheme's write marks it first, then the event names
# itself); a result once named, or an answer, is never changed.
_MARK = Fast(
    "INSERT INTO pay_idempotency"
    " (caller, key, request_hash, status_code, response, created_at, headers, token)"
    f" VALUES (?, ?, ?, {ANSWER_LOST}, ?, ?, NULL, ?) ON CONFLICT (caller, key) DO UPDATE"
    " SET response = excluded.response"
    f" WHERE pay_idempotency.status_code = {ANSWER_LOST} AND pay_idempotency.response = ''"
    " AND excluded.response <> ''"
)

# A fresh request's first marker: inserted only if the key has no row yet.
_CLAIM = Fast(
    "INSERT INTO pay_idempotency"
    " (caller, key, request_hash, status_code, response, created_at, headers, token)"
    f" VALUES (?, ?, ?, {ANSWER_LOST}, ?, ?, NULL, ?) ON CONFLICT (caller, key) DO NOTHING"
)


# Whose a key's row is: a marker (no answer yet) of the same request carries its token.
_OWNER = Fast(
    "SELECT status_code, request_hash, token FROM pay_idempotency WHERE caller = ? AND key = ?"
)


#: Kinds of ``result`` a marker may name, as ``"<kind>:<id>"``
SETTLEMENT_WINDOW = "settlementWindow"
#: An alias registered in the directory: ``<type>/<alias>``
PARTY = "party"
#: An alias removed from the directory: ``<type>/<alias>`` (its retry is answered 204, not
#: run again: the alias may have been registered again since, for another customer)
PARTY_REMOVED = "partyRemoved"
#: An FX rate posted: ``<source>/<target>/<rate>/<spread bps>/<valid until, ns>`` (its
#: retry is answered with it, not posted again over a newer rate)
FX_RATE = "fxRate"
#: A credential issued (its key id: never its secret, which is stored nowhere)
CREDENTIAL = "credential"
#: What a trade create made, named by its id (a tracking event: ``<order id>/<seq>``)
TRADE_HUB = "tradeHub"
TRADE_MERCHANT = "tradeMerchant"
TRADE_BUYER = "tradeBuyer"
TRADE_ITEM = "tradeItem"
TRADE_QUOTE = "tradeQuote"
TRADE_DISPUTE = "tradeDispute"
TRADE_TRACKING = "tradeTracking"


def mark_keyed(conn: Connection, now_ns: int, result: str = "") -> None:
    """Write the marker of the keyed request being served, if any, in ``conn``'s transaction
    (once per transaction is enough; a second write changes nothing). ``result`` names what
    the operation acted on (``"settlementWindow:12"``) where its request does not."""
    keyed = KEYED_REQUEST.get()
    if keyed is None:
        return
    progress = keyed.progress
    values = (keyed.caller, keyed.key, keyed.digest, result, now_ns, progress.token)
    if keyed.fresh:
        if _CLAIM.execute(conn, values) == 1:
            progress.marked = True
            return
        # A row already there: this request's own marker (an earlier write of its, in this
        # transaction or a committed one), or another request's (also when this request's
        # marker was rolled back with its transaction and another server's written since).
        row = _OWNER.first(conn, (keyed.caller, keyed.key))
        if row is None or tuple(row) != (ANSWER_LOST, keyed.digest, progress.token):
            progress.refused = True
            raise KeyInUse(
                "another request with this Idempotency-Key was answered, or is being "
                "answered, meanwhile: nothing was done; retry to be answered as it was"
            )
    _MARK.execute(conn, values)


def purge_answers(
    engine: Engine, before_ns: int, *, batch: int = PURGE_BATCH, most: int = PURGE_MOST
) -> int:
    """Delete the keys' rows (answers and markers) written before ``before_ns``, ``batch``
    rows a transaction, at most ``most`` in all (the rest at the next pass); how many. They
    were kept for ever, every keyed write's whole answer; the retention period
    (``config.IDEMPOTENCY_RETENTION_S``, Stripe's and the IETF draft's practice) bounds them.
    A marker older than that is a lost answer's: its retry past the retention period is
    a new request, as any key's."""
    c = st.idempotency.c
    purged = 0
    while purged < most:
        old = (
            sa.select(c.caller, c.key)
            .where(c.created_at < before_ns)
            .limit(min(batch, most - purged))
        )
        with UnitOfWork(engine) as uow:
            n = uow.connection.execute(
                sa.delete(st.idempotency).where(sa.tuple_(c.caller, c.key).in_(old))
            ).rowcount
            uow.commit()
        purged += n
        if n < batch:
            break
    return purged


__all__ = [
    "ANSWER_LOST",
    "CREDENTIAL",
    "FX_RATE",
    "KEYED_REQUEST",
    "PARTY",
    "PARTY_REMOVED",
    "SETTLEMENT_WINDOW",
    "TRADE_BUYER",
    "TRADE_DISPUTE",
    "TRADE_HUB",
    "TRADE_ITEM",
    "TRADE_MERCHANT",
    "TRADE_QUOTE",
    "TRADE_TRACKING",
    "KeyInUse",
    "KeyedRequest",
    "mark_keyed",
    "purge_answers",
]
