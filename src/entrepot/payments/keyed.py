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
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import Connection

from entrepot.storage.driver import Fast

#: ``status_code`` of a key's row written with its operation, before the answer is known
ANSWER_LOST = 0


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    caller: str
    key: str
    digest: str  # of the request: method, path, query, body


#: Set by the API's security middleware while a keyed request's operation runs.
KEYED_REQUEST: ContextVar[KeyedRequest | None] = ContextVar("entrepot_keyed_request", default=None)

# A marker written without a result takes one named later in the same operation (a trade
# tracking event that pays customs: the scheme's write marks it first, then the event names
# itself); a result once named, or an answer, is never changed.
_MARK = Fast(
    "INSERT INTO pay_idempotency"
    " (caller, key, request_hash, status_code, response, created_at, headers)"
    f" VALUES (?, ?, ?, {ANSWER_LOST}, ?, ?, NULL) ON CONFLICT (caller, key) DO UPDATE"
    " SET response = excluded.response"
    f" WHERE pay_idempotency.status_code = {ANSWER_LOST} AND pay_idempotency.response = ''"
    " AND excluded.response <> ''"
)


#: Kinds of ``result`` a marker may name, as ``"<kind>:<id>"``
SETTLEMENT_WINDOW = "settlementWindow"
#: An alias registered in the directory: ``<type>/<alias>``
PARTY = "party"
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
    if keyed is not None:
        _MARK.execute(conn, (keyed.caller, keyed.key, keyed.digest, result, now_ns))


__all__ = [
    "ANSWER_LOST",
    "CREDENTIAL",
    "KEYED_REQUEST",
    "PARTY",
    "SETTLEMENT_WINDOW",
    "TRADE_BUYER",
    "TRADE_DISPUTE",
    "TRADE_HUB",
    "TRADE_ITEM",
    "TRADE_MERCHANT",
    "TRADE_QUOTE",
    "TRADE_TRACKING",
    "KeyedRequest",
    "mark_keyed",
]
