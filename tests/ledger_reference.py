"""An independent, deliberately simple in-memory model of the ledger, for property tests.

Written from TigerBeetle's documented semantics (``create_transfer``,
``post_or_void_pending_transfer``, ``create_transfer_exists`` and
``post_or_void_pending_transfer_exists`` in TigerBeetle's ``state_machine.zig``, release
0.16) and the brief of this project, not from :mod:`entrepot.ledger.machine`. Speed is no
concern here: a linked chain is rolled back by restoring a deep copy of the whole state, every
check is written out in order of precedence, and queries scan lists.

Project-specific rules modelled on top of TigerBeetle:

* ``ledger_not_found`` when an account names a ledger that was not defined;
* amounts are at most ``AMOUNT_MAX = 2**63 - 1``; ``AMOUNT_FULL == AMOUNT_MAX`` is the "whole
  pending amount" sentinel for a post, and a void accepts ``0``, ``AMOUNT_FULL`` or exactly the
  pending amount;
* time: each batch starts at ``now = max(clock, last_timestamp + 1)``; before a
  ``create_transfers`` batch every pending transfer with a timeout whose
  ``expires_at = timestamp + timeout * 10**9`` is ``<= now`` is voided (expired), in order of
  ``(expires_at, timestamp)``, each expiry taking one timestamp; event ``i`` of the batch then
  gets ``now + expiries + i``;
* failures listed in ``TRANSIENT_TRANSFER_RESULTS`` remember the id (``id_already_failed``),
  even inside a linked chain that is rolled back (TigerBeetle records them after the rollback).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from entrepot.ledger.model import (
    AMOUNT_FULL,
    TRANSIENT_TRANSFER_RESULTS,
    Account,
    AccountBalance,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    StatementLine,
    Transfer,
    TransferFlags,
)

AMOUNT_MAX = 2**63 - 1
U128_MAX = 2**128 - 1
NS_PER_S = 1_000_000_000

A = CreateAccountResult
T = CreateTransferResult

ACCOUNT_KNOWN_FLAGS = (
    AccountFlags.LINKED
    | AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    | AccountFlags.HISTORY
)
TRANSFER_KNOWN_FLAGS = (
    TransferFlags.LINKED
    | TransferFlags.PENDING
    | TransferFlags.POST_PENDING_TRANSFER
    | TransferFlags.VOID_PENDING_TRANSFER
    | TransferFlags.BALANCING_DEBIT
    | TransferFlags.BALANCING_CREDIT
)


def has(flags: int, flag: int) -> bool:
    return flags & int(flag) != 0


@dataclass
class RefAccount:
    id: int
    ledger: int
    code: int
    flags: int
    user_data_128: int
    user_data_64: int
    user_data_32: int
    timestamp: int
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def record(self) -> Account:
        return Account(
            id=self.id,
            ledger=self.ledger,
            code=self.code,
            flags=self.flags,
            user_data_128=self.user_data_128,
            user_data_64=self.user_data_64,
            user_data_32=self.user_data_32,
            debits_pending=self.debits_pending,
            debits_posted=self.debits_posted,
            credits_pending=self.credits_pending,
            credits_posted=self.credits_posted,
            timestamp=self.timestamp,
        )


@dataclass
class RefState:
    accounts: dict[int, RefAccount] = field(default_factory=dict)
    #: Stored transfers by id, and their ids in the order they were created (= timestamp order).
    transfers: dict[int, Transfer] = field(default_factory=dict)
    created: list[int] = field(default_factory=list)
    #: Status of every pending transfer: "pending", "posted", "voided" or "expired".
    pending_status: dict[int, str] = field(default_factory=dict)
    #: Ids whose transfer failed with a transient result.
    failed: set[int] = field(default_factory=set)
    #: Balances after each change, for accounts with the history flag.
    history: dict[int, list[AccountBalance]] = field(default_factory=dict)


class ReferenceLedger:
    """The model. Methods take the clock reading the real ledger would see."""

    def __init__(self, ledgers: Iterable[int], last_timestamp: int = 0) -> None:
        self.ledgers = set(ledgers)
        self.state = RefState()
        self.last_timestamp = last_timestamp

    # ------------------------------------------------------------------------------ time
    def _start(self, clock_ns: int) -> int:
        return max(clock_ns, self.last_timestamp + 1)

    @staticmethod
    def expires_at(t: Transfer) -> int:
        return t.timestamp + t.timeout * NS_PER_S

    def _due(self, now: int) -> list[Transfer]:
        due = []
        for tid, status in self.state.pending_status.items():
            p = self.state.transfers[tid]
            if status == "pending" and p.timeout > 0 and self.expires_at(p) <= now:
                due.append(p)
        due.sort(key=lambda p: (self.expires_at(p), p.timestamp))
        return due

    def _expire(self, now: int) -> int:
        """Expire what is due at ``now``; return the next free timestamp."""
        ts = now
        for p in self._due(now):
            dr = self.state.accounts[p.debit_account_id]
            cr = self.state.accounts[p.credit_account_id]
            dr.debits_pending -= p.amount
            cr.credits_pending -= p.amount
            self.state.pending_status[p.id] = "expired"
            self._record_history(dr, cr, ts)
            ts += 1
        return ts

    def expire_pending(self, clock_ns: int) -> int:
        now = self._start(clock_ns)
        n = len(self._due(now))
        if n:
            self.last_timestamp = self._expire(now) - 1
        return n

    def _record_history(self, dr: RefAccount, cr: RefAccount, ts: int) -> None:
        for a in (dr, cr):
            if has(a.flags, AccountFlags.HISTORY):
                self.state.history.setdefault(a.id, []).append(
                    AccountBalance(
                        a.id,
                        ts,
                        a.debits_pending,
                        a.debits_posted,
                        a.credits_pending,
                        a.credits_posted,
                    )
                )

    # ------------------------------------------------------------------------- batches
    def create_accounts(self, batch: Sequence[Account], clock_ns: int) -> list[str]:
        if not batch:  # nothing happens, not even time
            return []
        now = self._start(clock_ns)
        results = self._run_batch(batch, now, self._create_account, remember_failures=False)
        self.last_timestamp = now + len(batch) - 1
        return results

    def create_transfers(self, batch: Sequence[Transfer], clock_ns: int) -> list[str]:
        if not batch:  # nothing happens, not even expiry
            return []
        now = self._start(clock_ns)
        first = self._expire(now)
        results = self._run_batch(batch, first, self._create_transfer, remember_failures=True)
        self.last_timestamp = first + len(batch) - 1
        return results

    def _run_batch(
        self,
        batch: Sequence[Any],
        first: int,
        create: Callable[[Any, int], str],
        *,
        remember_failures: bool,
    ) -> list[str]:
        """TigerBeetle's ``execute_create``: linked chains succeed or fail together."""
        ok = "ok"
        results: list[str] = []
        chain_start: int | None = None
        chain_broken = False
        saved: RefState | None = None
        n = len(batch)
        for i, event in enumerate(batch):
            linked = has(event.flags, AccountFlags.LINKED)  # bit 0 in both flag sets
            result: str
            if linked and chain_start is None:
                chain_start = i
                saved = copy.deepcopy(self.state)
            if linked and i == n - 1:
                result = "linked_event_chain_open"
            elif chain_broken:
                result = "linked_event_failed"
            else:
                result = str(create(event, first + i))
            if result != ok:
                if chain_start is not None and not chain_broken:
                    chain_broken = True
                    assert saved is not None
                    self.state = saved
                    for j in range(chain_start, i):
                        results[j] = "linked_event_failed"
                if remember_failures and result in TRANSIENT_TRANSFER_RESULTS:
                    self.state.failed.add(event.id)
            results.append(result)
            if chain_start is not None and (not linked or result == "linked_event_chain_open"):
                chain_start = None
                chain_broken = False
                saved = None
        return results

    # ------------------------------------------------------------------------ accounts
    def _create_account(self, a: Account, ts: int) -> A:
        if a.timestamp != 0:
            return A.TIMESTAMP_MUST_BE_ZERO
        if a.flags & ~int(ACCOUNT_KNOWN_FLAGS):
            return A.RESERVED_FLAG
        if a.id == 0:
            return A.ID_MUST_NOT_BE_ZERO
        if a.id == U128_MAX:
            return A.ID_MUST_NOT_BE_INT_MAX
        e = self.state.accounts.get(a.id)
        if e is not None:
            if a.flags != e.flags:
                return A.EXISTS_WITH_DIFFERENT_FLAGS
            if a.user_data_128 != e.user_data_128:
                return A.EXISTS_WITH_DIFFERENT_USER_DATA_128
            if a.user_data_64 != e.user_data_64:
                return A.EXISTS_WITH_DIFFERENT_USER_DATA_64
            if a.user_data_32 != e.user_data_32:
                return A.EXISTS_WITH_DIFFERENT_USER_DATA_32
            if a.ledger != e.ledger:
                return A.EXISTS_WITH_DIFFERENT_LEDGER
            if a.code != e.code:
                return A.EXISTS_WITH_DIFFERENT_CODE
            return A.EXISTS
        if has(a.flags, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS) and has(
            a.flags, AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
        ):
            return A.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if a.debits_pending != 0:
            return A.DEBITS_PENDING_MUST_BE_ZERO
        if a.debits_posted != 0:
            return A.DEBITS_POSTED_MUST_BE_ZERO
        if a.credits_pending != 0:
            return A.CREDITS_PENDING_MUST_BE_ZERO
        if a.credits_posted != 0:
            return A.CREDITS_POSTED_MUST_BE_ZERO
        if a.ledger == 0:
            return A.LEDGER_MUST_NOT_BE_ZERO
        if a.code == 0:
            return A.CODE_MUST_NOT_BE_ZERO
        if a.ledger not in self.ledgers:
            return A.LEDGER_NOT_FOUND
        self.state.accounts[a.id] = RefAccount(
            id=a.id,
            ledger=a.ledger,
            code=a.code,
            flags=a.flags,
            user_data_128=a.user_data_128,
            user_data_64=a.user_data_64,
            user_data_32=a.user_data_32,
            timestamp=ts,
        )
        return A.OK

    # ----------------------------------------------------------------------- transfers
    def _create_transfer(self, t: Transfer, ts: int) -> T:
        flags = t.flags
        if t.timestamp != 0:
            return T.TIMESTAMP_MUST_BE_ZERO
        if flags & ~int(TRANSFER_KNOWN_FLAGS):
            return T.RESERVED_FLAG
        if t.id == 0:
            return T.ID_MUST_NOT_BE_ZERO
        if t.id == U128_MAX:
            return T.ID_MUST_NOT_BE_INT_MAX
        e = self.state.transfers.get(t.id)
        if e is not None:
            return self._transfer_exists(t, e)
        if t.id in self.state.failed:
            return T.ID_ALREADY_FAILED
        if has(flags, TransferFlags.POST_PENDING_TRANSFER) or has(
            flags, TransferFlags.VOID_PENDING_TRANSFER
        ):
            return self._post_or_void(t, ts)

        if t.debit_account_id == 0:
            return T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if t.debit_account_id == U128_MAX:
            return T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if t.credit_account_id == 0:
            return T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if t.credit_account_id == U128_MAX:
            return T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if t.debit_account_id == t.credit_account_id:
            return T.ACCOUNTS_MUST_BE_DIFFERENT
        if t.pending_id != 0:
            return T.PENDING_ID_MUST_BE_ZERO
        pending = has(flags, TransferFlags.PENDING)
        if not pending and t.timeout != 0:
            return T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if t.ledger == 0:
            return T.LEDGER_MUST_NOT_BE_ZERO
        if t.code == 0:
            return T.CODE_MUST_NOT_BE_ZERO
        dr = self.state.accounts.get(t.debit_account_id)
        if dr is None:
            return T.DEBIT_ACCOUNT_NOT_FOUND
        cr = self.state.accounts.get(t.credit_account_id)
        if cr is None:
            return T.CREDIT_ACCOUNT_NOT_FOUND
        if dr.ledger != cr.ledger:
            return T.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if t.ledger != dr.ledger:
            return T.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS

        amount = t.amount
        if has(flags, TransferFlags.BALANCING_DEBIT):
            room = dr.credits_posted - (dr.debits_posted + dr.debits_pending)
            amount = min(amount, max(room, 0))
        if has(flags, TransferFlags.BALANCING_CREDIT):
            room = cr.debits_posted - (cr.credits_posted + cr.credits_pending)
            amount = min(amount, max(room, 0))

        if pending:
            if dr.debits_pending + amount > AMOUNT_MAX:
                return T.OVERFLOWS_DEBITS_PENDING
            if cr.credits_pending + amount > AMOUNT_MAX:
                return T.OVERFLOWS_CREDITS_PENDING
        # TigerBeetle checks the posted balances for pending transfers too.
        if dr.debits_posted + amount > AMOUNT_MAX:
            return T.OVERFLOWS_DEBITS_POSTED
        if cr.credits_posted + amount > AMOUNT_MAX:
            return T.OVERFLOWS_CREDITS_POSTED
        if dr.debits_pending + dr.debits_posted + amount > AMOUNT_MAX:
            return T.OVERFLOWS_DEBITS
        if cr.credits_pending + cr.credits_posted + amount > AMOUNT_MAX:
            return T.OVERFLOWS_CREDITS
        if ts + t.timeout * NS_PER_S > AMOUNT_MAX:
            return T.OVERFLOWS_TIMEOUT
        if has(dr.flags, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS) and (
            dr.debits_pending + dr.debits_posted + amount > dr.credits_posted
        ):
            return T.EXCEEDS_CREDITS
        if has(cr.flags, AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS) and (
            cr.credits_pending + cr.credits_posted + amount > cr.debits_posted
        ):
            return T.EXCEEDS_DEBITS

        stored = t._replace(amount=amount, timestamp=ts)
        if pending:
            dr.debits_pending += amount
            cr.credits_pending += amount
            self.state.pending_status[t.id] = "pending"
        else:
            dr.debits_posted += amount
            cr.credits_posted += amount
        self._store(stored, dr, cr)
        return T.OK

    def _store(self, stored: Transfer, dr: RefAccount, cr: RefAccount) -> None:
        self.state.transfers[stored.id] = stored
        self.state.created.append(stored.id)
        self._record_history(dr, cr, stored.timestamp)

    def _post_or_void(self, t: Transfer, ts: int) -> T:
        flags = t.flags
        post = has(flags, TransferFlags.POST_PENDING_TRANSFER)
        void = has(flags, TransferFlags.VOID_PENDING_TRANSFER)
        if post and void:
            return T.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if has(flags, TransferFlags.PENDING):
            return T.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if has(flags, TransferFlags.BALANCING_DEBIT):
            return T.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if has(flags, TransferFlags.BALANCING_CREDIT):
            return T.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if t.pending_id == 0:
            return T.PENDING_ID_MUST_NOT_BE_ZERO
        if t.pending_id == U128_MAX:
            return T.PENDING_ID_MUST_NOT_BE_INT_MAX
        if t.pending_id == t.id:
            return T.PENDING_ID_MUST_BE_DIFFERENT
        if t.timeout != 0:
            return T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        p = self.state.transfers.get(t.pending_id)
        if p is None:
            return T.PENDING_TRANSFER_NOT_FOUND
        if not has(p.flags, TransferFlags.PENDING):
            return T.PENDING_TRANSFER_NOT_PENDING
        if t.debit_account_id != 0 and t.debit_account_id != p.debit_account_id:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if t.credit_account_id != 0 and t.credit_account_id != p.credit_account_id:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if t.ledger != 0 and t.ledger != p.ledger:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if t.code != 0 and t.code != p.code:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_CODE
        if void:
            amount = p.amount if t.amount in (0, AMOUNT_FULL) else t.amount
        else:
            amount = p.amount if t.amount == AMOUNT_FULL else t.amount
        if amount > p.amount:
            return T.EXCEEDS_PENDING_TRANSFER_AMOUNT
        if void and amount < p.amount:
            return T.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        status = self.state.pending_status[p.id]
        if status == "posted":
            return T.PENDING_TRANSFER_ALREADY_POSTED
        if status == "voided":
            return T.PENDING_TRANSFER_ALREADY_VOIDED
        if status == "expired":
            return T.PENDING_TRANSFER_EXPIRED
        if p.timeout > 0 and self.expires_at(p) <= ts:
            return T.PENDING_TRANSFER_EXPIRED

        dr = self.state.accounts[p.debit_account_id]
        cr = self.state.accounts[p.credit_account_id]
        stored = Transfer(
            id=t.id,
            debit_account_id=p.debit_account_id,
            credit_account_id=p.credit_account_id,
            amount=amount,
            pending_id=t.pending_id,
            user_data_128=t.user_data_128 or p.user_data_128,
            user_data_64=t.user_data_64 or p.user_data_64,
            user_data_32=t.user_data_32 or p.user_data_32,
            timeout=0,
            ledger=p.ledger,
            code=p.code,
            flags=flags,
            timestamp=ts,
        )
        dr.debits_pending -= p.amount
        cr.credits_pending -= p.amount
        if post:
            dr.debits_posted += amount
            cr.credits_posted += amount
        self.state.pending_status[p.id] = "posted" if post else "voided"
        self._store(stored, dr, cr)
        return T.OK

    def _transfer_exists(self, t: Transfer, e: Transfer) -> T:
        if t.flags != e.flags:
            return T.EXISTS_WITH_DIFFERENT_FLAGS
        if t.pending_id != e.pending_id:
            return T.EXISTS_WITH_DIFFERENT_PENDING_ID
        if t.timeout != e.timeout:
            return T.EXISTS_WITH_DIFFERENT_TIMEOUT
        post = has(t.flags, TransferFlags.POST_PENDING_TRANSFER)
        void = has(t.flags, TransferFlags.VOID_PENDING_TRANSFER)
        if not (post or void):
            if t.debit_account_id != e.debit_account_id:
                return T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
            if t.credit_account_id != e.credit_account_id:
                return T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
            balancing = has(t.flags, TransferFlags.BALANCING_DEBIT) or has(
                t.flags, TransferFlags.BALANCING_CREDIT
            )
            # A balancing transfer's amount is an upper limit: any limit >= what moved matches.
            if (t.amount < e.amount) if balancing else (t.amount != e.amount):
                return T.EXISTS_WITH_DIFFERENT_AMOUNT
            if t.user_data_128 != e.user_data_128:
                return T.EXISTS_WITH_DIFFERENT_USER_DATA_128
            if t.user_data_64 != e.user_data_64:
                return T.EXISTS_WITH_DIFFERENT_USER_DATA_64
            if t.user_data_32 != e.user_data_32:
                return T.EXISTS_WITH_DIFFERENT_USER_DATA_32
            if t.ledger != e.ledger:
                return T.EXISTS_WITH_DIFFERENT_LEDGER
            if t.code != e.code:
                return T.EXISTS_WITH_DIFFERENT_CODE
            return T.EXISTS

        # A post or void: zero fields mean "as the pending transfer", so compare what they
        # would have resolved to.
        p = self.state.transfers[t.pending_id]
        if t.debit_account_id != 0 and t.debit_account_id != e.debit_account_id:
            return T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
        if t.credit_account_id != 0 and t.credit_account_id != e.credit_account_id:
            return T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
        whole = (0, AMOUNT_FULL) if void else (AMOUNT_FULL,)
        requested = p.amount if t.amount in whole else t.amount
        if requested != e.amount:
            return T.EXISTS_WITH_DIFFERENT_AMOUNT
        if (t.user_data_128 or p.user_data_128) != e.user_data_128:
            return T.EXISTS_WITH_DIFFERENT_USER_DATA_128
        if (t.user_data_64 or p.user_data_64) != e.user_data_64:
            return T.EXISTS_WITH_DIFFERENT_USER_DATA_64
        if (t.user_data_32 or p.user_data_32) != e.user_data_32:
            return T.EXISTS_WITH_DIFFERENT_USER_DATA_32
        if t.ledger != 0 and t.ledger != e.ledger:
            return T.EXISTS_WITH_DIFFERENT_LEDGER
        if t.code != 0 and t.code != e.code:
            return T.EXISTS_WITH_DIFFERENT_CODE
        return T.EXISTS

    # -------------------------------------------------------------------------- queries
    def account(self, account_id: int) -> Account | None:
        a = self.state.accounts.get(account_id)
        return None if a is None else a.record()

    def transfer(self, transfer_id: int) -> Transfer | None:
        return self.state.transfers.get(transfer_id)

    def account_transfers(self, account_id: int) -> list[Transfer]:
        """Every stored transfer on either side of the account, oldest first."""
        out = []
        for tid in self.state.created:
            t = self.state.transfers[tid]
            if account_id in (t.debit_account_id, t.credit_account_id):
                out.append(t)
        return out

    def account_balances(self, account_id: int) -> list[AccountBalance]:
        return list(self.state.history.get(account_id, []))

    def statement_lines(
        self, account_id: int, since_ns: int, until_ns: int, credit_normal: bool
    ) -> tuple[int, list[StatementLine], int]:
        """(opening balance, lines, closing balance) of posted movements in the range."""
        sign = 1 if credit_normal else -1
        posted = [
            t
            for t in self.account_transfers(account_id)
            if not (
                has(t.flags, TransferFlags.PENDING)
                or has(t.flags, TransferFlags.VOID_PENDING_TRANSFER)
            )
        ]

        def movement(t: Transfer) -> tuple[int, int]:
            debit = t.amount if t.debit_account_id == account_id else 0
            credit = t.amount if t.credit_account_id == account_id else 0
            return debit, credit

        opening = 0
        for t in posted:
            if t.timestamp < since_ns:
                debit, credit = movement(t)
                opening += sign * (credit - debit)
        balance = opening
        lines: list[StatementLine] = []
        for t in posted:
            if since_ns <= t.timestamp <= until_ns:
                debit, credit = movement(t)
                balance += sign * (credit - debit)
                lines.append(StatementLine(t, debit, credit, balance))
        return opening, lines, balance

    def ledger_totals(self) -> dict[int, dict[str, int]]:
        """ledger -> number of accounts and the sums of their four balances."""
        totals: dict[int, dict[str, int]] = {}
        for a in self.state.accounts.values():
            t = totals.setdefault(
                a.ledger,
                {
                    "accounts": 0,
                    "debits_pending": 0,
                    "debits_posted": 0,
                    "credits_pending": 0,
                    "credits_posted": 0,
                },
            )
            t["accounts"] += 1
            t["debits_pending"] += a.debits_pending
            t["debits_posted"] += a.debits_posted
            t["credits_pending"] += a.credits_pending
            t["credits_posted"] += a.credits_posted
        return totals
