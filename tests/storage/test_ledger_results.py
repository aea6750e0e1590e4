"""One focused example per result code, bad input, and a few rules worth their own example.

Every failing event must leave the ledger exactly as it was: the same accounts and balances,
the same number of accounts and transfers (a transient failure only remembers its id).

Codes that cannot be produced by construction: none. Every member of CreateTransferResult and
CreateAccountResult has a case below (``test_every_result_code_has_a_case`` keeps it so), and
values that cannot be encoded at all (a negative amount, an id of 2**128) are refused with
LedgerInputError before the batch is decided, as a TigerBeetle client refuses to encode them.

Expected codes follow TigerBeetle's ``state_machine.zig`` (release 0.16): see
tests/ledger_reference.py. The tests at the end under "TigerBeetle's precedence and
idempotency" pin rules where the first version of the ledger was found to differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa

from entrepot.kernel.clock import NS_PER_S, FakeClock
from entrepot.ledger import (
    AMOUNT_FULL,
    Account,
    AccountFlags,
    AccountNotFound,
    BatchTooLarge,
    CreateAccountResult,
    CreateTransferResult,
    Ledger,
    LedgerInputError,
    Transfer,
    TransferFlags,
)
from entrepot.ledger.model import TRANSIENT_TRANSFER_RESULTS
from entrepot.storage.uow import UnitOfWork

R = CreateTransferResult
A = CreateAccountResult
AMOUNT_MAX = 2**63 - 1
U128_MAX = 2**128 - 1

LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING_TRANSFER)
VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
BAL_DEBIT = int(TransferFlags.BALANCING_DEBIT)
BAL_CREDIT = int(TransferFlags.BALANCING_CREDIT)
DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
HISTORY = int(AccountFlags.HISTORY)

#: The accounts every case starts from. 1..4 and 9 are plain EUR accounts (9 keeps history),
#: 5 may not be debited beyond its credits, 6 may not be credited beyond its debits, 7 and 8
#: are on USD. 99 does not exist.
ACCOUNTS = [
    Account(1, 978, 1),
    Account(2, 978, 1),
    Account(3, 978, 1),
    Account(4, 978, 1),
    Account(5, 978, 1, DMNEC),
    Account(6, 978, 1, CMNED),
    Account(7, 840, 1),
    Account(8, 840, 1),
    Account(9, 978, 1, HISTORY),
]
ACCOUNT_IDS = [a.id for a in ACCOUNTS]
MISSING = 99


def tr(id_: int, debit: int, credit: int, amount: int, **kw: Any) -> Transfer:
    """A EUR transfer of code 1 unless told otherwise."""
    kw.setdefault("ledger", 978)
    kw.setdefault("code", 1)
    return Transfer(id_, debit, credit, amount, **kw)


def post(id_: int, pending_id: int, amount: int = AMOUNT_FULL, **kw: Any) -> Transfer:
    return Transfer(
        id_, pending_id=pending_id, amount=amount, flags=POST | kw.pop("flags", 0), **kw
    )


def void(id_: int, pending_id: int, amount: int = 0, **kw: Any) -> Transfer:
    return Transfer(
        id_, pending_id=pending_id, amount=amount, flags=VOID | kw.pop("flags", 0), **kw
    )


class State(NamedTuple):
    accounts: list[Account]
    account_count: int
    transfer_count: int


def state(ledger: Ledger) -> State:
    with ledger.engine.connect() as conn:
        accounts, transfers = ledger.store.counts(conn)
    return State(ledger.lookup_accounts([*ACCOUNT_IDS, MISSING, 20, 21]), accounts, transfers)


def ok(results: Sequence[str]) -> None:
    assert all(r == "ok" for r in results), results


@pytest.fixture
def opened(ledger: Ledger) -> Ledger:
    ok(ledger.create_accounts(ACCOUNTS))
    return ledger


# ----------------------------------------------------------------------- transfer codes
class Case(NamedTuple):
    setup: Callable[[Ledger, FakeClock], None]
    batch: list[Transfer]
    results: list[R]


TRANSFER_CASES: dict[R, Case] = {}


def transfer_case(
    code: R,
    batch: list[Transfer],
    *,
    before: Sequence[Sequence[Transfer]] = (),
    results: list[R] | None = None,
    setup: Callable[[Ledger, FakeClock], None] | None = None,
) -> None:
    """Register a case: after the batches ``before`` (each must succeed) and then ``setup``,
    ``batch`` gives ``results`` (by default ``code`` for its only event)."""

    def run_before(ledger: Ledger, clock: FakeClock) -> None:
        for b in before:
            ok(ledger.create_transfers(list(b)))
            clock.advance(1)
        if setup is not None:
            setup(ledger, clock)

    assert code not in TRANSFER_CASES, code
    TRANSFER_CASES[code] = Case(run_before, batch, results or [code])


P10 = tr(1, 1, 2, 10, flags=PENDING, user_data_128=5)  # a pending transfer of 10 from 1 to 2

transfer_case(R.OK, [tr(1, 1, 2, 5)])
transfer_case(
    R.LINKED_EVENT_FAILED,
    [tr(1, 1, 2, 5, flags=LINKED), tr(2, 1, 1, 5)],
    results=[R.LINKED_EVENT_FAILED, R.ACCOUNTS_MUST_BE_DIFFERENT],
)
transfer_case(
    R.LINKED_EVENT_CHAIN_OPEN,
    [tr(1, 1, 2, 5, flags=LINKED), tr(2, 1, 3, 5, flags=LINKED)],
    results=[R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN],
)
transfer_case(R.TIMESTAMP_MUST_BE_ZERO, [tr(1, 1, 2, 5, timestamp=1)])
transfer_case(R.RESERVED_FLAG, [tr(1, 1, 2, 5, flags=1 << 6)])
transfer_case(R.ID_MUST_NOT_BE_ZERO, [tr(0, 1, 2, 5)])
transfer_case(R.ID_MUST_NOT_BE_INT_MAX, [tr(U128_MAX, 1, 2, 5)])
transfer_case(
    R.EXISTS_WITH_DIFFERENT_FLAGS, [tr(1, 1, 2, 5, flags=PENDING)], before=[[tr(1, 1, 2, 5)]]
)
transfer_case(
    R.EXISTS_WITH_DIFFERENT_PENDING_ID,
    [post(3, 2)],
    before=[[P10, tr(2, 1, 2, 10, flags=PENDING)], [post(3, 1)]],
)
transfer_case(
    R.EXISTS_WITH_DIFFERENT_TIMEOUT,
    [tr(1, 1, 2, 5, flags=PENDING, timeout=60)],
    before=[[tr(1, 1, 2, 5, flags=PENDING)]],
)
transfer_case(R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID, [tr(1, 3, 2, 5)], before=[[tr(1, 1, 2, 5)]])
transfer_case(
    R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID, [tr(1, 1, 3, 5)], before=[[tr(1, 1, 2, 5)]]
)
transfer_case(R.EXISTS_WITH_DIFFERENT_AMOUNT, [tr(1, 1, 2, 6)], before=[[tr(1, 1, 2, 5)]])
transfer_case(
    R.EXISTS_WITH_DIFFERENT_USER_DATA_128,
    [tr(1, 1, 2, 5, user_data_128=1)],
    before=[[tr(1, 1, 2, 5)]],
)
transfer_case(
    R.EXISTS_WITH_DIFFERENT_USER_DATA_64,
    [tr(1, 1, 2, 5, user_data_64=1)],
    before=[[tr(1, 1, 2, 5)]],
)
transfer_case(
    R.EXISTS_WITH_DIFFERENT_USER_DATA_32,
    [tr(1, 1, 2, 5, user_data_32=1)],
    before=[[tr(1, 1, 2, 5)]],
)
transfer_case(
    R.EXISTS_WITH_DIFFERENT_LEDGER, [tr(1, 1, 2, 5, ledger=840)], before=[[tr(1, 1, 2, 5)]]
)
transfer_case(R.EXISTS_WITH_DIFFERENT_CODE, [tr(1, 1, 2, 5, code=2)], before=[[tr(1, 1, 2, 5)]])
transfer_case(R.EXISTS, [tr(1, 1, 2, 5)], before=[[tr(1, 1, 2, 5)]])


def _fail_transfer_1(ledger: Ledger, clock: FakeClock) -> None:
    assert ledger.create_transfers([tr(1, 1, MISSING, 5)]) == [R.CREDIT_ACCOUNT_NOT_FOUND]


def _let_pending_transfers_expire(ledger: Ledger, clock: FakeClock) -> None:
    clock.advance(2)
    assert ledger.expire_pending() == 1


transfer_case(R.ID_ALREADY_FAILED, [tr(1, 1, 2, 5)], setup=_fail_transfer_1)
transfer_case(R.FLAGS_ARE_MUTUALLY_EXCLUSIVE, [post(2, 1, flags=VOID)], before=[[P10]])
transfer_case(R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, [tr(1, 0, 2, 5)])
transfer_case(R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, [tr(1, U128_MAX, 2, 5)])
transfer_case(R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, [tr(1, 1, 0, 5)])
transfer_case(R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, [tr(1, 1, U128_MAX, 5)])
transfer_case(R.ACCOUNTS_MUST_BE_DIFFERENT, [tr(1, 1, 1, 5)])
transfer_case(R.PENDING_ID_MUST_BE_ZERO, [tr(2, 1, 2, 5, pending_id=1)], before=[[P10]])
transfer_case(R.PENDING_ID_MUST_NOT_BE_ZERO, [post(2, 0)], before=[[P10]])
transfer_case(R.PENDING_ID_MUST_NOT_BE_INT_MAX, [post(2, U128_MAX)], before=[[P10]])
transfer_case(R.PENDING_ID_MUST_BE_DIFFERENT, [post(2, 2)], before=[[P10]])
transfer_case(R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, [tr(1, 1, 2, 5, timeout=1)])
transfer_case(R.LEDGER_MUST_NOT_BE_ZERO, [tr(1, 1, 2, 5, ledger=0)])
transfer_case(R.CODE_MUST_NOT_BE_ZERO, [tr(1, 1, 2, 5, code=0)])
transfer_case(R.DEBIT_ACCOUNT_NOT_FOUND, [tr(1, MISSING, 2, 5)])
transfer_case(R.CREDIT_ACCOUNT_NOT_FOUND, [tr(1, 1, MISSING, 5)])
transfer_case(R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER, [tr(1, 1, 7, 5)])
transfer_case(R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, [tr(1, 7, 8, 5)])
transfer_case(R.PENDING_TRANSFER_NOT_FOUND, [post(2, 1)])
transfer_case(R.PENDING_TRANSFER_NOT_PENDING, [post(2, 1)], before=[[tr(1, 1, 2, 5)]])
transfer_case(
    R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
    [post(2, 1, debit_account_id=3)],
    before=[[P10]],
)
transfer_case(
    R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
    [post(2, 1, credit_account_id=3)],
    before=[[P10]],
)
transfer_case(R.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER, [post(2, 1, ledger=840)], before=[[P10]])
transfer_case(R.PENDING_TRANSFER_HAS_DIFFERENT_CODE, [post(2, 1, code=2)], before=[[P10]])
transfer_case(R.EXCEEDS_PENDING_TRANSFER_AMOUNT, [post(2, 1, 11)], before=[[P10]])
transfer_case(R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT, [void(2, 1, 9)], before=[[P10]])
transfer_case(R.PENDING_TRANSFER_ALREADY_POSTED, [post(3, 1)], before=[[P10], [post(2, 1, 4)]])
transfer_case(R.PENDING_TRANSFER_ALREADY_VOIDED, [void(3, 1)], before=[[P10], [void(2, 1)]])
transfer_case(
    R.PENDING_TRANSFER_EXPIRED,
    [post(2, 1)],
    before=[[tr(1, 1, 2, 10, flags=PENDING, timeout=1)]],
    setup=_let_pending_transfers_expire,
)
HALF = AMOUNT_MAX // 2 + 1
transfer_case(
    R.OVERFLOWS_DEBITS_PENDING,
    [tr(2, 1, 3, 10, flags=PENDING)],
    before=[[tr(1, 1, 2, AMOUNT_MAX - 5, flags=PENDING)]],
)
transfer_case(
    R.OVERFLOWS_CREDITS_PENDING,
    [tr(2, 3, 2, 10, flags=PENDING)],
    before=[[tr(1, 1, 2, AMOUNT_MAX - 5, flags=PENDING)]],
)
transfer_case(R.OVERFLOWS_DEBITS_POSTED, [tr(2, 1, 3, 10)], before=[[tr(1, 1, 2, AMOUNT_MAX - 5)]])
transfer_case(R.OVERFLOWS_CREDITS_POSTED, [tr(2, 3, 2, 10)], before=[[tr(1, 1, 2, AMOUNT_MAX - 5)]])
transfer_case(
    R.OVERFLOWS_DEBITS,
    [tr(3, 1, 4, 10)],
    before=[[tr(1, 1, 2, HALF, flags=PENDING), tr(2, 1, 3, AMOUNT_MAX - HALF)]],
)
transfer_case(
    R.OVERFLOWS_CREDITS,
    [tr(3, 4, 1, 10)],
    before=[[tr(1, 2, 1, HALF, flags=PENDING), tr(2, 3, 1, AMOUNT_MAX - HALF)]],
)
transfer_case(R.EXCEEDS_CREDITS, [tr(1, 5, 1, 1)])
transfer_case(R.EXCEEDS_DEBITS, [tr(1, 1, 6, 1)])


def _near_the_end_of_time(ledger: Ledger, clock: FakeClock) -> None:
    clock.set_ns(AMOUNT_MAX - 10 * NS_PER_S)


# The accounts are opened before ``setup`` runs, so move time only for the transfer.
transfer_case(
    R.OVERFLOWS_TIMEOUT,
    [tr(1, 1, 2, 5, flags=PENDING, timeout=20)],
    setup=_near_the_end_of_time,
)


@pytest.mark.parametrize("code", list(TRANSFER_CASES), ids=str)
def test_transfer_result_code(opened: Ledger, clock: FakeClock, code: R) -> None:
    case = TRANSFER_CASES[code]
    case.setup(opened, clock)
    before = state(opened)
    results = opened.create_transfers(case.batch)
    assert results == case.results
    after = state(opened)
    if code is R.OK:
        a1, a2 = opened.lookup_accounts([1, 2])
        assert (a1.debits_posted, a2.credits_posted) == (5, 5)
        assert after.transfer_count == before.transfer_count + 1
    else:
        assert after == before, f"{code} changed the ledger"
    if code in TRANSIENT_TRANSFER_RESULTS:
        failed_id = case.batch[-1].id
        assert opened.create_transfers([case.batch[-1]]) == [R.ID_ALREADY_FAILED], failed_id
    assert opened.check_invariants().ok


# ------------------------------------------------------------------------ account codes
ACCOUNT_CASES: dict[A, tuple[list[Account], list[A]]] = {
    A.OK: ([Account(20, 978, 1)], [A.OK]),
    A.LINKED_EVENT_FAILED: (
        [Account(20, 978, 1, int(AccountFlags.LINKED)), Account(21, 0, 1)],
        [A.LINKED_EVENT_FAILED, A.LEDGER_MUST_NOT_BE_ZERO],
    ),
    A.LINKED_EVENT_CHAIN_OPEN: (
        [Account(20, 978, 1, int(AccountFlags.LINKED))],
        [A.LINKED_EVENT_CHAIN_OPEN],
    ),
    A.TIMESTAMP_MUST_BE_ZERO: ([Account(20, 978, 1, timestamp=1)], [A.TIMESTAMP_MUST_BE_ZERO]),
    A.RESERVED_FLAG: ([Account(20, 978, 1, 1 << 4)], [A.RESERVED_FLAG]),
    A.ID_MUST_NOT_BE_ZERO: ([Account(0, 978, 1)], [A.ID_MUST_NOT_BE_ZERO]),
    A.ID_MUST_NOT_BE_INT_MAX: ([Account(U128_MAX, 978, 1)], [A.ID_MUST_NOT_BE_INT_MAX]),
    A.EXISTS_WITH_DIFFERENT_FLAGS: (
        [Account(1, 978, 1, HISTORY)],
        [A.EXISTS_WITH_DIFFERENT_FLAGS],
    ),
    A.EXISTS_WITH_DIFFERENT_USER_DATA_128: (
        [Account(1, 978, 1, user_data_128=1)],
        [A.EXISTS_WITH_DIFFERENT_USER_DATA_128],
    ),
    A.EXISTS_WITH_DIFFERENT_USER_DATA_64: (
        [Account(1, 978, 1, user_data_64=1)],
        [A.EXISTS_WITH_DIFFERENT_USER_DATA_64],
    ),
    A.EXISTS_WITH_DIFFERENT_USER_DATA_32: (
        [Account(1, 978, 1, user_data_32=1)],
        [A.EXISTS_WITH_DIFFERENT_USER_DATA_32],
    ),
    A.EXISTS_WITH_DIFFERENT_LEDGER: ([Account(1, 840, 1)], [A.EXISTS_WITH_DIFFERENT_LEDGER]),
    A.EXISTS_WITH_DIFFERENT_CODE: ([Account(1, 978, 2)], [A.EXISTS_WITH_DIFFERENT_CODE]),
    A.EXISTS: ([Account(1, 978, 1)], [A.EXISTS]),
    A.FLAGS_ARE_MUTUALLY_EXCLUSIVE: (
        [Account(20, 978, 1, DMNEC | CMNED)],
        [A.FLAGS_ARE_MUTUALLY_EXCLUSIVE],
    ),
    A.DEBITS_PENDING_MUST_BE_ZERO: (
        [Account(20, 978, 1, debits_pending=1)],
        [A.DEBITS_PENDING_MUST_BE_ZERO],
    ),
    A.DEBITS_POSTED_MUST_BE_ZERO: (
        [Account(20, 978, 1, debits_posted=1)],
        [A.DEBITS_POSTED_MUST_BE_ZERO],
    ),
    A.CREDITS_PENDING_MUST_BE_ZERO: (
        [Account(20, 978, 1, credits_pending=1)],
        [A.CREDITS_PENDING_MUST_BE_ZERO],
    ),
    A.CREDITS_POSTED_MUST_BE_ZERO: (
        [Account(20, 978, 1, credits_posted=1)],
        [A.CREDITS_POSTED_MUST_BE_ZERO],
    ),
    A.LEDGER_MUST_NOT_BE_ZERO: ([Account(20, 0, 1)], [A.LEDGER_MUST_NOT_BE_ZERO]),
    A.CODE_MUST_NOT_BE_ZERO: ([Account(20, 978, 0)], [A.CODE_MUST_NOT_BE_ZERO]),
    A.LEDGER_NOT_FOUND: ([Account(20, 999, 1)], [A.LEDGER_NOT_FOUND]),
}


@pytest.mark.parametrize("code", list(ACCOUNT_CASES), ids=str)
def test_account_result_code(opened: Ledger, code: A) -> None:
    batch, expected = ACCOUNT_CASES[code]
    before = state(opened)
    assert opened.create_accounts(batch) == expected
    after = state(opened)
    if code is A.OK:
        assert after.account_count == before.account_count + 1
        (made,) = opened.lookup_accounts([20])
        assert made._replace(timestamp=0) == batch[0]
        assert made.timestamp > 0
    else:
        assert after == before, f"{code} changed the ledger"


#: Codes that no input can produce, with the reason. Empty: every code has a case above.
IMPOSSIBLE: dict[str, str] = {}


def test_every_result_code_has_a_case() -> None:
    missing_t = [c for c in R if c not in TRANSFER_CASES and str(c) not in IMPOSSIBLE]
    missing_a = [c for c in A if c not in ACCOUNT_CASES and str(c) not in IMPOSSIBLE]
    assert (missing_t, missing_a) == ([], [])


# ----------------------------------------------------------------------------- bad input
def _bad_transfer_batches() -> list[tuple[str, Transfer, str]]:
    good = tr(1, 1, 2, 5)
    return [
        ("negative amount", good._replace(amount=-1), "amount"),
        ("amount above 2**63-1", good._replace(amount=AMOUNT_MAX + 1), "amount"),
        ("negative id", good._replace(id=-1), "id"),
        ("id of 2**128", good._replace(id=U128_MAX + 1), "id"),
        ("id as a string", good._replace(id="1"), "id"),
        ("id as a float", good._replace(id=1.0), "id"),
        ("id as a bool", good._replace(id=True), "id"),
        ("debit account as a string", good._replace(debit_account_id="1"), "debit_account_id"),
        ("negative credit account", good._replace(credit_account_id=-2), "credit_account_id"),
        ("pending id of 2**128", good._replace(pending_id=U128_MAX + 1), "pending_id"),
        ("amount as a float", good._replace(amount=5.0), "amount"),
        ("negative timeout", good._replace(timeout=-1), "timeout"),
        ("ledger above u32", good._replace(ledger=2**32), "ledger"),
    ]


@pytest.mark.parametrize(
    ("bad", "field"),
    [(b, f) for _, b, f in _bad_transfer_batches()],
    ids=[name for name, _, _ in _bad_transfer_batches()],
)
def test_malformed_transfer_is_refused_before_any_change(
    opened: Ledger, bad: Transfer, field: str
) -> None:
    ok(opened.create_transfers([tr(10, 1, 2, 1)]))
    before = state(opened)
    # A good event first: it must not be applied either.
    with pytest.raises(LedgerInputError) as info:
        opened.create_transfers([tr(11, 1, 2, 7), bad])
    assert field in str(info.value)
    assert info.value.field == f"1.{field}"
    assert state(opened) == before
    assert opened.lookup_transfers([11]) == []
    # Nothing was remembered either: the good event goes through on its own.
    ok(opened.create_transfers([tr(11, 1, 2, 7)]))


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (Account(-1, 978, 1), "id"),
        (Account(U128_MAX + 1, 978, 1), "id"),
        (Account("20", 978, 1), "id"),  # type: ignore[arg-type]
        (Account(20.0, 978, 1), "id"),  # type: ignore[arg-type]
        (Account(20, -978, 1), "ledger"),
        (Account(20, 978, 1, debits_posted=AMOUNT_MAX + 1), "debits_posted"),
    ],
    ids=[
        "negative id",
        "id of 2**128",
        "id as a string",
        "id as a float",
        "negative ledger",
        "balance above 2**63-1",
    ],
)
def test_malformed_account_is_refused_before_any_change(
    opened: Ledger, bad: Account, field: str
) -> None:
    before = state(opened)
    with pytest.raises(LedgerInputError) as info:
        opened.create_accounts([Account(21, 978, 1), bad])
    assert field in str(info.value)
    assert state(opened) == before


def test_not_a_record_is_refused(opened: Ledger) -> None:
    before = state(opened)
    with pytest.raises(LedgerInputError):
        opened.create_transfers([(1, 1, 2, 5)])  # type: ignore[list-item]
    with pytest.raises(LedgerInputError):
        opened.create_accounts([(20, 978, 1)])  # type: ignore[list-item]
    assert state(opened) == before


def test_batch_of_8191_is_too_large(opened: Ledger) -> None:
    before = state(opened)
    with pytest.raises(BatchTooLarge):
        opened.create_transfers([tr(100 + i, 1, 2, 1) for i in range(8_191)])
    with pytest.raises(BatchTooLarge):
        opened.create_accounts([Account(100 + i, 978, 1) for i in range(8_191)])
    assert state(opened) == before
    assert issubclass(BatchTooLarge, LedgerInputError)


def test_batch_of_8190_is_accepted(opened: Ledger) -> None:
    results = opened.create_transfers([tr(100 + i, 1, 2, 1) for i in range(8_190)])
    assert len(results) == 8_190
    ok(results)
    assert opened.get_account(1).debits_posted == 8_190


def test_unknown_account_and_other_ledger_change_nothing(opened: Ledger) -> None:
    before = state(opened)
    assert opened.create_transfers([tr(1, MISSING, 2, 5), tr(2, 1, MISSING, 5)]) == [
        R.DEBIT_ACCOUNT_NOT_FOUND,
        R.CREDIT_ACCOUNT_NOT_FOUND,
    ]
    assert opened.create_transfers([tr(3, 1, 7, 5), tr(4, 7, 1, 5, ledger=840)]) == [
        R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
        R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
    ]
    assert state(opened) == before
    assert opened.lookup_accounts([MISSING]) == []
    with pytest.raises(AccountNotFound):
        opened.get_account(MISSING)
    with pytest.raises(AccountNotFound):
        opened.get_account_transfers(MISSING)


# --------------------------------------------------------------- posts, voids and expiry
def test_post_of_more_than_the_pending_amount(opened: Ledger) -> None:
    ok(opened.create_transfers([P10]))
    before = state(opened)
    assert opened.create_transfers([post(2, 1, 11)]) == [R.EXCEEDS_PENDING_TRANSFER_AMOUNT]
    assert state(opened) == before
    # Not a transient failure: the same id may be used again.
    ok(opened.create_transfers([post(2, 1, 10)]))


def test_partial_post_releases_the_rest(opened: Ledger) -> None:
    ok(opened.create_transfers([P10]))
    ok(opened.create_transfers([post(2, 1, 4)]))
    a1, a2 = opened.lookup_accounts([1, 2])
    assert (a1.debits_pending, a1.debits_posted, a2.credits_pending, a2.credits_posted) == (
        0,
        4,
        0,
        4,
    )
    stored = opened.get_transfer(2)
    assert (stored.amount, stored.debit_account_id, stored.credit_account_id) == (4, 1, 2)
    assert (stored.ledger, stored.code, stored.user_data_128) == (978, 1, 5)


@pytest.mark.parametrize("amount", [0, AMOUNT_FULL, 10], ids=["zero", "full", "exact"])
def test_void_amounts(opened: Ledger, amount: int) -> None:
    ok(opened.create_transfers([P10]))
    ok(opened.create_transfers([void(2, 1, amount)]))
    assert opened.get_transfer(2).amount == 10
    a1 = opened.get_account(1)
    assert (a1.debits_pending, a1.debits_posted) == (0, 0)


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        (post(2, 1), post(3, 1), R.PENDING_TRANSFER_ALREADY_POSTED),
        (void(2, 1), void(3, 1), R.PENDING_TRANSFER_ALREADY_VOIDED),
        (post(2, 1), void(3, 1), R.PENDING_TRANSFER_ALREADY_POSTED),
        (void(2, 1), post(3, 1), R.PENDING_TRANSFER_ALREADY_VOIDED),
    ],
    ids=["post twice", "void twice", "void after post", "post after void"],
)
def test_resolving_twice(opened: Ledger, first: Transfer, second: Transfer, code: R) -> None:
    ok(opened.create_transfers([P10]))
    ok(opened.create_transfers([first]))
    before = state(opened)
    assert opened.create_transfers([second]) == [code]
    assert opened.create_transfers([first]) == [R.EXISTS]
    assert state(opened) == before


def test_resolving_twice_in_one_batch(opened: Ledger) -> None:
    ok(opened.create_transfers([P10]))
    assert opened.create_transfers([post(2, 1, 3), post(3, 1), void(4, 1)]) == [
        R.OK,
        R.PENDING_TRANSFER_ALREADY_POSTED,
        R.PENDING_TRANSFER_ALREADY_POSTED,
    ]
    assert opened.get_account(1).debits_posted == 3


def test_expiry_takes_a_timestamp_each_before_the_batch(opened: Ledger, clock: FakeClock) -> None:
    ok(
        opened.create_transfers(
            [tr(1, 1, 9, 10, flags=PENDING, timeout=2), tr(2, 1, 9, 20, flags=PENDING, timeout=1)]
        )
    )
    t1, t2 = opened.lookup_transfers([1, 2])
    clock.advance(10)
    now = clock.now_ns()
    ok(opened.create_transfers([tr(3, 1, 9, 1)]))
    # Expired in order of expiry (2 first), each taking one timestamp, then the batch.
    assert opened.get_transfer(3).timestamp == now + 2
    history = opened.get_account_balances(9)
    assert [(h.transfer_timestamp, h.credits_pending) for h in history] == [
        (t1.timestamp, 10),
        (t2.timestamp, 30),
        (now, 10),
        (now + 1, 0),
        (now + 2, 0),
    ]
    assert history[-1].credits_posted == 1
    assert opened.create_transfers([post(4, 1)]) == [R.PENDING_TRANSFER_EXPIRED]
    assert opened.check_invariants().ok


def test_expires_at_exactly_now(opened: Ledger, clock: FakeClock) -> None:
    ok(opened.create_transfers([tr(1, 1, 2, 10, flags=PENDING, timeout=1)]))
    pending = opened.get_transfer(1)
    clock.set_ns(pending.timestamp + NS_PER_S)  # the next batch starts at expires_at
    assert opened.create_transfers([post(2, 1)]) == [R.PENDING_TRANSFER_EXPIRED]
    assert opened.get_account(1).debits_pending == 0


def test_expiry_inside_a_batch(opened: Ledger, clock: FakeClock) -> None:
    """A post whose own timestamp reaches expires_at finds the transfer expired, though the
    batch started before it expired; the reservation is released by the next batch."""
    ok(opened.create_transfers([tr(1, 1, 2, 10, flags=PENDING, timeout=1)]))
    pending = opened.get_transfer(1)
    clock.set_ns(pending.timestamp + NS_PER_S - 1)  # the batch starts 1 ns before expiry
    assert opened.create_transfers([tr(2, 3, 4, 1), post(3, 1)]) == [
        R.OK,
        R.PENDING_TRANSFER_EXPIRED,
    ]
    assert opened.get_account(1).debits_pending == 10
    clock.advance(1)
    ok(opened.create_transfers([tr(4, 3, 4, 1)]))
    assert opened.get_account(1).debits_pending == 0
    assert opened.create_transfers([void(5, 1)]) == [R.PENDING_TRANSFER_EXPIRED]


def test_expire_pending_without_a_batch(opened: Ledger, clock: FakeClock) -> None:
    ok(opened.create_transfers([tr(1, 1, 2, 10, flags=PENDING, timeout=1), P10._replace(id=2)]))
    assert opened.expire_pending() == 0
    clock.advance(2)
    assert opened.expire_pending() == 1
    assert opened.expire_pending() == 0
    a1 = opened.get_account(1)
    assert a1.debits_pending == 10  # transfer 2 has no timeout
    assert opened.check_invariants().ok


# ------------------------------------------------------------------ chains and balancing
def test_failed_chain_rolls_back_everything(opened: Ledger) -> None:
    ok(opened.create_transfers([P10]))
    before = state(opened)
    results = opened.create_transfers(
        [
            tr(2, 1, 2, 5, flags=LINKED),
            post(3, 1, flags=LINKED),
            tr(4, 1, 2, 5, flags=LINKED | PENDING),
            tr(5, 5, 1, 1),  # exceeds_credits: transient
            tr(6, 1, 2, 1),  # after the chain: applied
        ]
    )
    assert results == [R.LINKED_EVENT_FAILED] * 3 + [R.EXCEEDS_CREDITS, R.OK]
    after = state(opened)
    assert after.transfer_count == before.transfer_count + 1
    assert opened.lookup_transfers([2, 3, 4, 5]) == []
    # The pending transfer is still pending: the post in the chain was undone.
    ok(opened.create_transfers([post(7, 1)]))
    # The transient failure is remembered even though its chain failed; the others are not.
    assert opened.create_transfers([tr(5, 1, 2, 1)]) == [R.ID_ALREADY_FAILED]
    ok(opened.create_transfers([tr(2, 1, 2, 5)]))


def test_chain_open_at_the_end_of_a_failed_chain(opened: Ledger) -> None:
    assert opened.create_transfers(
        [tr(1, 1, 2, 1, flags=LINKED), tr(2, 1, 1, 1, flags=LINKED), tr(3, 1, 2, 1, flags=LINKED)]
    ) == [R.LINKED_EVENT_FAILED, R.ACCOUNTS_MUST_BE_DIFFERENT, R.LINKED_EVENT_CHAIN_OPEN]


def test_balancing_debit_moves_at_most_what_the_limit_allows(opened: Ledger) -> None:
    ok(opened.create_transfers([tr(1, 1, 5, 30)]))  # 5 may now be debited up to 30
    ok(opened.create_transfers([tr(2, 5, 2, 100, flags=BAL_DEBIT)]))
    assert opened.get_transfer(2).amount == 30
    assert opened.create_transfers([tr(2, 5, 2, 100, flags=BAL_DEBIT)]) == [R.EXISTS]
    assert opened.create_transfers([tr(2, 5, 2, 29, flags=BAL_DEBIT)]) == [
        R.EXISTS_WITH_DIFFERENT_AMOUNT
    ]
    ok(opened.create_transfers([tr(3, 5, 2, 100, flags=BAL_DEBIT)]))
    assert opened.get_transfer(3).amount == 0


def test_balancing_credit(opened: Ledger) -> None:
    ok(opened.create_transfers([tr(1, 6, 1, 12)]))  # 6 may now be credited up to 12
    ok(opened.create_transfers([tr(2, 2, 6, 50, flags=BAL_CREDIT | PENDING)]))
    assert opened.get_transfer(2).amount == 12
    assert opened.create_transfers([tr(3, 2, 6, 1)]) == [R.EXCEEDS_DEBITS]


# ----------------------------------------------------- TigerBeetle's precedence and idempotency
def test_post_retried_with_full_amount_after_partial_post_is_a_different_request(
    opened: Ledger,
) -> None:
    """TigerBeetle (post_or_void_pending_transfer_exists): a retry asking for the whole pending
    amount matches only if the whole amount was posted."""
    ok(opened.create_transfers([P10]))
    ok(opened.create_transfers([post(2, 1, 4)]))
    assert opened.create_transfers([post(2, 1, AMOUNT_FULL)]) == [R.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert opened.create_transfers([post(2, 1, 4)]) == [R.EXISTS]


def test_post_retried_with_zero_user_data_means_the_pending_transfers(opened: Ledger) -> None:
    """TigerBeetle: a zero user_data in a post inherits the pending transfer's, so a retry
    with zero matches only if the post inherited it."""
    ok(opened.create_transfers([P10]))  # user_data_128=5
    ok(opened.create_transfers([post(2, 1, user_data_128=9)]))
    assert opened.create_transfers([post(2, 1)]) == [R.EXISTS_WITH_DIFFERENT_USER_DATA_128]
    assert opened.create_transfers([post(2, 1, user_data_128=9)]) == [R.EXISTS]
    ok(opened.create_transfers([P10._replace(id=3)]))
    ok(opened.create_transfers([post(4, 3)]))
    assert opened.create_transfers([post(4, 3, user_data_128=5)]) == [R.EXISTS]


def test_pending_transfer_is_checked_against_posted_overflow_too(opened: Ledger) -> None:
    """TigerBeetle checks overflows_debits_posted / overflows_credits_posted for pending
    transfers as well, before overflows_debits / overflows_credits."""
    ok(opened.create_transfers([tr(1, 1, 2, AMOUNT_MAX - 5)]))
    before = state(opened)
    assert opened.create_transfers([tr(2, 1, 3, 10, flags=PENDING)]) == [R.OVERFLOWS_DEBITS_POSTED]
    assert opened.create_transfers([tr(3, 3, 2, 10, flags=PENDING)]) == [R.OVERFLOWS_CREDITS_POSTED]
    assert state(opened) == before


def test_void_of_more_than_the_pending_amount(opened: Ledger) -> None:
    """TigerBeetle: a void's amount above the pending amount is exceeds_pending_transfer_amount
    (which precedes pending_transfer_has_different_amount); below it, has_different_amount."""
    ok(opened.create_transfers([P10]))
    assert opened.create_transfers([void(2, 1, 11)]) == [R.EXCEEDS_PENDING_TRANSFER_AMOUNT]
    assert opened.create_transfers([void(3, 1, 9)]) == [R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT]


@pytest.mark.parametrize(
    ("resolve", "code"),
    [
        (
            post(2, 1, debit_account_id=3, credit_account_id=3),
            R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
        ),
        (post(2, 1, debit_account_id=U128_MAX), R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID),
        (
            void(2, 1, credit_account_id=U128_MAX),
            R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
        ),
        (post(2, 2, debit_account_id=3, credit_account_id=3), R.PENDING_ID_MUST_BE_DIFFERENT),
    ],
    ids=["equal accounts", "debit int max", "credit int max", "equal accounts, own id"],
)
def test_post_and_void_do_not_validate_account_ids_themselves(
    opened: Ledger, resolve: Transfer, code: R
) -> None:
    """TigerBeetle's post_or_void_pending_transfer checks no account id on its own (zero,
    int max, equal): a named account only has to match the pending transfer's."""
    ok(opened.create_transfers([P10]))
    assert opened.create_transfers([resolve]) == [code]


def test_post_of_a_non_pending_transfer_made_in_the_same_batch(opened: Ledger) -> None:
    """The referenced transfer exists (created earlier in the batch) but is not pending:
    pending_transfer_not_pending, which is not transient, as it would be in a later batch."""
    assert opened.create_transfers([tr(1, 1, 2, 5), post(2, 1)]) == [
        R.OK,
        R.PENDING_TRANSFER_NOT_PENDING,
    ]
    assert opened.create_transfers([post(2, 1)]) == [R.PENDING_TRANSFER_NOT_PENDING]


@pytest.mark.parametrize("resolve", [post, void], ids=["post", "void"])
def test_a_pending_transfer_resolved_in_the_batch_that_made_it_is_stored_resolved(
    opened: Ledger, clock: FakeClock, resolve: Callable[..., Transfer]
) -> None:
    """Its row is written once, with its final status (no UPDATE after the INSERT), and a
    later batch (another process's ledger, no cache) finds it resolved."""
    statements: list[str] = []
    sqlite = opened.engine.dialect.name == "sqlite"

    def traced(dbapi: Any, *_: Any) -> None:  # whichever pooled connection the batch takes
        dbapi.set_trace_callback(statements.append)

    if sqlite:
        sa.event.listen(opened.engine, "checkout", traced)
    try:
        ok(opened.create_transfers([P10, resolve(2, 1)]))
    finally:
        if sqlite:  # (the traced connection keeps its callback: the engine is this test's)
            sa.event.remove(opened.engine, "checkout", traced)
    if sqlite:
        assert [q for q in statements if q.startswith("INSERT INTO ledger_pending")]
        assert not [q for q in statements if q.startswith("UPDATE ledger_pending")]
    other = Ledger(opened.engine, clock)
    again = (
        R.PENDING_TRANSFER_ALREADY_POSTED if resolve is post else R.PENDING_TRANSFER_ALREADY_VOIDED
    )
    assert other.create_transfers([post(3, 1)]) == [again]
    a1, a2 = other.lookup_accounts([1, 2])
    moved = 10 if resolve is post else 0
    assert (a1.debits_pending, a1.debits_posted, a2.credits_pending, a2.credits_posted) == (
        0,
        moved,
        0,
        moved,
    )


def test_invariants_hold_with_ledger_totals_above_2_63(opened: Ledger) -> None:
    """Each balance fits in 63 bits, but their sum over a ledger need not: check_invariants
    must still work (SQLite's SUM raises 'integer overflow' past 2**63 - 1)."""
    ok(opened.create_transfers([tr(1, 1, 2, AMOUNT_MAX), tr(2, 3, 4, AMOUNT_MAX)]))
    report = opened.check_invariants()
    assert report.ok, report.violations
    assert report.ledgers[978]["debits_posted"] == 2 * AMOUNT_MAX


def test_invariants_find_an_account_whose_balance_is_not_its_transfers(opened: Ledger) -> None:
    """Found in review: check_invariants compared per-ledger totals only, so balances moved
    from one account to another of the same ledger (a misapplied batch, a hand-edited row)
    passed, though it claims that every account's balances equal what its transfers add up
    to. Plain batches (segments, their balances not yet flushed) and pending transfers are
    counted per account too, with no false alarm."""
    plain = Ledger(opened.engine, opened.clock, plain_batch_min=1)
    ok(plain.create_transfers([tr(1, 1, 2, 40), tr(2, 3, 2, 5)]))  # one segment, unflushed
    ok(opened.create_transfers([tr(3, 2, 4, 7), tr(4, 1, 3, 9, flags=PENDING)]))
    plain2 = Ledger(opened.engine, opened.clock, plain_batch_min=1)
    ok(plain2.create_transfers([tr(5, 4, 1, 2), tr(6, 2, 3, 1)]))  # another, unflushed
    report = opened.check_invariants()
    assert report.ok, report.violations
    with opened.engine.begin() as conn:  # 3 of account 2's posted credits moved to account 3
        for key, delta in ((2, -3), (3, 3)):
            conn.execute(
                sa.text(
                    "UPDATE ledger_accounts SET credits_posted = credits_posted + :d WHERE id = :id"
                ),
                {"d": delta, "id": key.to_bytes(16, "big")},
            )
    report = opened.check_invariants()
    assert report.ledgers[978]["credits_posted"] == 40 + 5 + 7 + 2 + 1  # totals still agree
    assert report.violations == [
        "2 account(s) differ from what their transfers add up to (first: account 2)"
    ]


@pytest.mark.parametrize("bad", [None, "1", iter([1])])
def test_a_batch_or_ids_that_are_not_a_list_are_bad_input(opened: Ledger, bad: object) -> None:
    before = state(opened)
    with pytest.raises(LedgerInputError, match="must be a list"):
        opened.create_transfers(bad)  # type: ignore[arg-type]
    with pytest.raises(LedgerInputError, match="must be a list"):
        opened.create_accounts(bad)  # type: ignore[arg-type]
    for lookup in (opened.lookup_accounts, opened.lookup_transfers):
        with pytest.raises(LedgerInputError, match="ids must be a list of integers"):
            lookup(bad)  # type: ignore[arg-type]
    assert state(opened) == before


def test_a_fence_is_stamped_past_and_changes_no_balance(opened: Ledger, clock: FakeClock) -> None:
    """``fence()``: every transfer written after it is stamped after it, even by a clock
    behind it (another server's); balances and the cache's version stay as they were."""
    ok(opened.create_transfers([tr(100, 1, 2, 5)]))
    before = state(opened)
    with opened.engine.connect() as conn:
        version = opened.store.read_meta(conn).version
    fenced = opened.fence()
    assert fenced >= clock.now_ns() and fenced > opened.get_transfer(100).timestamp
    assert state(opened) == before
    with opened.engine.connect() as conn:
        assert opened.store.read_meta(conn).version == version
    clock.advance(-60)  # a writer whose clock is a minute behind
    ok(opened.create_transfers([tr(101, 1, 2, 5)]))
    assert opened.get_transfer(101).timestamp > fenced
    assert opened.fence() > opened.get_transfer(101).timestamp


def test_a_fence_for_a_moment_the_history_reaches_past_writes_nothing(
    opened: Ledger, clock: FakeClock
) -> None:
    """``fence(at_least)``: where the committed last stamp is already at or after the moment,
    it is final as it stands; the answer is that stamp, read, not a turn of the write lock
    (which would move the stamp to now)."""
    ok(opened.create_transfers([tr(100, 1, 2, 5)]))
    stamped = opened.get_transfer(100).timestamp
    clock.advance(60)
    assert opened.fence(stamped) == stamped
    assert opened.fence(stamped - 1) == stamped
    with opened.engine.connect() as conn:
        assert opened.store.read_meta(conn).last_timestamp == stamped  # nothing written
    assert opened.fence(stamped + 1) >= clock.now_ns()  # past it: the lock's turn, as before


def test_last_timestamp_is_the_callers_last_entry_in_its_transaction(
    opened: Ledger, clock: FakeClock
) -> None:
    """``last_timestamp(uow=)``: in the writer's transaction, the stamp of its own last entry
    (settlement dates a window by it), before it commits; a fence moves it."""
    with UnitOfWork(opened.engine) as uow:
        ok(opened.create_transfers([tr(100, 1, 2, 5), tr(101, 2, 1, 1)], uow=uow))
        last = opened.last_timestamp(uow=uow)
        uow.commit()
    assert last == opened.get_transfer(101).timestamp > opened.get_transfer(100).timestamp
    clock.advance(60)
    fenced = opened.fence()
    with UnitOfWork(opened.engine) as uow:
        assert opened.last_timestamp(uow=uow) == fenced > last


@pytest.mark.parametrize("name", ["x" * 201, "nul\x00inside", 42])
def test_a_ledger_name_no_backend_stores_is_bad_input_on_both(ledger: Ledger, name: Any) -> None:
    """Found in review: a name over the column's 200 characters or with a NUL byte was stored
    on SQLite but failed on PostgreSQL with a database error (the CLI's ``define --name``:
    exit 1 on one backend, success on the other); a name that is not text was stored as it
    came on SQLite. Refused on both, before anything is written."""
    with pytest.raises(LedgerInputError, match="name") as raised:
        ledger.define_ledger(392, "JPY", name)
    assert raised.value.field == "name"
    assert 392 not in {d.ledger for d in ledger.ledgers()}
    assert ledger.define_ledger(392, "JPY", "y" * 200).name == "y" * 200  # the most it holds
