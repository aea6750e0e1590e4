"""Service tests of the payment scheme: quotes, FX, two-phase transfers, screening holds, the
directory, and every rejection. A rejected call must leave the ledger and the payment tables
exactly as they were; the helpers below snapshot both and compare.

Amounts in the fixture's currencies: RWF has no minor unit, MYR has two (1 MYR = 100 sen).
The FX provider ``fxco`` quotes RWF->MYR at 0.0032 less 100 bps, so the effective rate is
0.003168 MYR per RWF; the scheme fee is 50 bps, half up.

The settlement and escrow scenarios live in ``test_payments_settlement.py`` and
``test_payments_escrow.py``; they import the helpers from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from typing import Any

import pytest
import sqlalchemy as sa

from entrepot.kernel.clock import NS_PER_S, FakeClock
from entrepot.kernel.limits import BATCH_EVENTS_MAX
from entrepot.kernel.money import InvalidAmount, UnknownCurrency
from entrepot.ledger import Ledger, TransferFlags
from entrepot.payments import (
    SCHEME,
    AliasType,
    AmountType,
    Party,
    PaymentScheme,
    PaymentTransfer,
    QuoteState,
    ScreeningDecision,
    TransferState,
    messages,
    qr,
)
from entrepot.payments import store as st
from entrepot.payments.bulk import BulkItem, bulk_transfers
from entrepot.payments.errors import (
    AliasTaken,
    CurrencyNotSupported,
    DuplicateWithDifferentBody,
    FxLiquidityExhausted,
    InvalidPaymentInput,
    InvalidState,
    NetDebitCapExceeded,
    NoFxRate,
    NotYours,
    ParticipantSuspended,
    PartyNotFound,
    QrAlreadyPaid,
    QuoteExpired,
    QuoteNotFound,
    TransferExpired,
    TransferNotFound,
)
from entrepot.payments.services import QUOTE_TTL_S, TRANSFER_TTL_S, ledger_id
from tests.query_plans import full_scans, recorded

RATE = Decimal("0.0032") * Decimal(10_000 - 100) / Decimal(10_000)  # fxco's effective rate
TILL = ("MERCHANT", "KL-TILL-42")  # maybank's merchant, paid in MYR
ALINE = ("MSISDN", "+250788123456")  # mtn-rw's customer, paid in RWF
BK_CUSTOMER = ("MSISDN", "+250722000111")  # bk-rw's customer (see ``join``), paid in RWF

PAY_TABLES = (
    st.participants,
    st.participant_currencies,
    st.scheme_accounts,
    st.aliases,
    st.fx_rates,
    st.quotes,
    st.transfers,
    st.escrows,
    st.escrow_events,
    st.windows,
    st.window_positions,
)
FIELDS = ("settlement_balance_minor", "net_position_minor", "position_reserved_minor")


# ---------------------------------------------------------------------------------- helpers
def fee_of(principal_minor: int) -> int:
    """The fixture's fee schedule, computed independently: 50 bps, half up."""
    return int((Decimal(principal_minor) * 50 / 10_000).quantize(Decimal(1), ROUND_HALF_UP))


def liquidity(scheme: PaymentScheme) -> dict[tuple[str, str], dict[str, int]]:
    """Every participant's liquidity in every currency it holds, read in one ledger look-up
    with ``PaymentScheme.liquidity``'s formulas (``assert_ledger_ok`` checks they agree)."""
    held = [(p.id, pc) for p in scheme.list_participants() for pc in p.currencies.values()]
    ids = [i for _, pc in held for i in (pc.position_account, pc.settlement_account)]
    accounts = {a.id: a for a in scheme.ledger.lookup_accounts(ids)}
    out = {}
    for pid, pc in held:
        pos, sett = accounts[pc.position_account], accounts[pc.settlement_account]
        out[(pid, pc.currency)] = {
            "settlement_balance_minor": sett.credits_posted - sett.debits_posted,
            "net_debit_cap_minor": pc.net_debit_cap_minor,
            "position_available_minor": pos.credits_posted - pos.debits_posted - pos.debits_pending,
            "position_reserved_minor": pos.debits_pending,
            "net_position_minor": pos.credits_posted - pos.debits_posted - pc.net_debit_cap_minor,
        }
    return out


def moves(
    before: dict[tuple[str, str], dict[str, int]], after: dict[tuple[str, str], dict[str, int]]
) -> dict[tuple[str, str, str], int]:
    """The non-zero changes of settlement balance, net position and reservation."""
    out = {}
    for key, now in after.items():
        was = before.get(key, dict.fromkeys(FIELDS, 0))
        for f in FIELDS:
            if now[f] != was[f]:
                out[(*key, f.removesuffix("_minor"))] = now[f] - was[f]
    return out


def snapshot(scheme: PaymentScheme) -> dict[str, Any]:
    """The payment tables' rows, every scheme and participant ledger account, the ledger's
    per-ledger totals and everyone's liquidity."""
    with scheme.engine.connect() as conn:
        tables = {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key)).all()]
            for t in PAY_TABLES
        }
    ids = [int.from_bytes(r[2], "big") for r in tables["pay_scheme_accounts"]]
    for r in tables["pay_participant_currencies"]:
        ids += [int.from_bytes(r[3], "big"), int.from_bytes(r[4], "big")]
    return {
        "tables": tables,
        "accounts": scheme.ledger.lookup_accounts(ids),
        "ledgers": scheme.ledger.check_invariants().ledgers,
        "liquidity": liquidity(scheme),
    }


@contextmanager
def unchanged(scheme: PaymentScheme) -> Iterator[None]:
    """``with unchanged(scheme), pytest.raises(E): ...``: the call fails and changes nothing."""
    before = snapshot(scheme)
    yield
    after = snapshot(scheme)
    for part in ("liquidity", "tables", "accounts", "ledgers"):
        assert after[part] == before[part], f"a rejected call changed {part}"


def assert_ledger_ok(scheme: PaymentScheme) -> None:
    report = scheme.ledger.check_invariants()
    assert report.ok, report.violations
    for (pid, cur), liq in liquidity(scheme).items():
        assert scheme.liquidity(pid, cur) == liq
        available = liq["net_debit_cap_minor"] + liq["net_position_minor"]
        assert liq["position_available_minor"] == available - liq["position_reserved_minor"], (
            pid,
            cur,
        )


def join(
    scheme: PaymentScheme,
    pid: str,
    currency: str,
    *,
    kind: str = "bank",
    country: str = "RW",
    deposit: int = 0,
    cap: int = 0,
    alias: tuple[str, str] | None = None,
) -> None:
    """A further participant (bank ``bk-rw`` with ``BK_CUSTOMER`` in most tests)."""
    scheme.register_participant(pid, pid.upper(), kind, country, [currency])
    if deposit:
        scheme.deposit(pid, currency, deposit, f"dep-{pid}-{currency}")
    if cap:
        scheme.set_net_debit_cap(pid, currency, cap)
    if alias:
        scheme.register_alias(pid, alias[0], alias[1], f"customer of {pid}", currency)


def join_bk(scheme: PaymentScheme) -> None:
    join(scheme, "bk-rw", "RWF", deposit=3_000_000, cap=1_000_000, alias=BK_CUSTOMER)


def pay(
    scheme: PaymentScheme,
    payer: str,
    tid: str,
    alias: tuple[str, str],
    amount: int,
    currency: str,
    amount_type: str = "SEND",
    *,
    commit: bool = True,
) -> PaymentTransfer:
    """Quote, prepare and (by the payee) commit one payment."""
    scheme.create_quote(payer, f"q-{tid}", alias[0], alias[1], amount, amount_type, currency)
    t = scheme.prepare_transfer(payer, tid, f"q-{tid}")
    if commit:
        t = scheme.commit_transfer(t.payee_participant, tid)
        assert t.state is TransferState.COMMITTED
    return t


class HoldOver:
    """Screening that holds every transfer whose payer sends more than ``threshold``."""

    def __init__(self, threshold_minor: int) -> None:
        self.threshold = threshold_minor
        self.seen: list[tuple[str, Party | None]] = []

    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
        self.seen.append((transfer.id, payee))
        if transfer.source_amount_minor > self.threshold:
            return ScreeningDecision(True, ("amount over review threshold", "new corridor"))
        return ScreeningDecision(False)


@pytest.fixture
def screened(scheme: PaymentScheme, clock: FakeClock) -> tuple[PaymentScheme, HoldOver]:
    """The same scheme (same database, ledger and clock) with a screening that holds
    transfers over 1,000,000 RWF."""
    screening = HoldOver(1_000_000)
    return (
        PaymentScheme(scheme.engine, scheme.ledger, clock, fees=scheme.fees, screening=screening),
        screening,
    )


# ---------------------------------------------------------------------------------- pricing
def test_cross_border_send_is_exact_to_the_minor_unit(scheme: PaymentScheme) -> None:
    # 100,100 RWF: the fee 500.5 rounds half up to 501; 99,599 RWF * 0.003168 = 315.529632 MYR
    # rounds down to 31,552 sen.
    fee = fee_of(100_100)
    principal = 100_100 - fee
    target = int((principal * RATE * 100).quantize(Decimal(1), ROUND_DOWN))
    assert (fee, principal, target) == (501, 99_599, 31_552)
    before = liquidity(scheme)

    q = scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    assert q.state is QuoteState.QUOTED
    assert q.amount_type is AmountType.SEND
    assert (q.source_currency, q.target_currency) == ("RWF", "MYR")
    assert (q.source_amount_minor, q.fee_minor, q.target_amount_minor) == (100_100, 501, 31_552)
    assert (q.fx_provider, q.fx_rate) == ("fxco", Decimal("0.003168"))
    assert (q.payer_participant, q.payee_participant) == ("mtn-rw", "maybank")
    assert q.expires_at_ns == q.created_at_ns + QUOTE_TTL_S * NS_PER_S
    assert scheme.get_quote("maybank", "q1") == q
    assert moves(before, liquidity(scheme)) == {}  # a quote alone moves nothing

    assert scheme.accept_quote("mtn-rw", "q1").state is QuoteState.ACCEPTED
    assert moves(before, liquidity(scheme)) == {("fxco", "MYR", "position_reserved"): 31_552}

    t = scheme.prepare_transfer("mtn-rw", "t1", "q1", note="invoice 7")
    assert t.state is TransferState.RESERVED
    assert (t.source_amount_minor, t.fee_minor, t.target_amount_minor) == (100_100, 501, 31_552)
    assert (t.fx_provider, t.note, t.window_id) == ("fxco", "invoice 7", None)
    assert scheme.get_quote("mtn-rw", "q1").state is QuoteState.USED
    # The quote's FX reservation became the transfer's MYR leg: still 31,552 sen held.
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "position_reserved"): 100_100,
        ("fxco", "MYR", "position_reserved"): 31_552,
    }

    t = scheme.commit_transfer("maybank", "t1")
    assert t.state is TransferState.COMMITTED
    assert t.window_id is not None
    assert scheme.get_transfer("mtn-rw", "t1") == t
    assert scheme.get_transfer(SCHEME, "t1") == t
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "net_position"): -100_100,
        (SCHEME, "RWF", "net_position"): 501,
        ("fxco", "RWF", "net_position"): 99_599,
        ("fxco", "MYR", "net_position"): -31_552,
        ("maybank", "MYR", "net_position"): 31_552,
    }
    assert_ledger_ok(scheme)

    w = scheme.close_window()
    assert w.id == t.window_id
    assert {(p.participant_id, p.currency): p.net_minor for p in w.positions} == {
        ("mtn-rw", "RWF"): -100_100,
        (SCHEME, "RWF"): 501,
        ("fxco", "RWF"): 99_599,
        ("fxco", "MYR"): -31_552,
        ("maybank", "MYR"): 31_552,
    }
    scheme.settle_window(SCHEME, w.id)
    # The nets moved between settlement accounts; every position is back where it began.
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "settlement_balance"): -100_100,
        (SCHEME, "RWF", "settlement_balance"): 501,
        ("fxco", "RWF", "settlement_balance"): 99_599,
        ("fxco", "MYR", "settlement_balance"): -31_552,
        ("maybank", "MYR", "settlement_balance"): 31_552,
    }
    assert scheme.liquidity("mtn-rw", "RWF")["position_available_minor"] == 10_000_000
    assert scheme.liquidity("fxco", "MYR")["position_available_minor"] == 2_000_000
    assert_ledger_ok(scheme)


def test_cross_border_receive_is_exact_to_the_minor_unit(scheme: PaymentScheme) -> None:
    # The merchant must receive 500.00 MYR: 500.00 / 0.003168 = 157,828.28... RWF, rounded up
    # to 157,829; the fee on that is 789.145, half up 789; the payer pays 158,618 RWF.
    principal = int((Decimal(50_000) / 100 / RATE).quantize(Decimal(1), ROUND_UP))
    assert (principal, fee_of(principal)) == (157_829, 789)
    before = liquidity(scheme)

    q = scheme.create_quote("mtn-rw", "q1", *TILL, 50_000, AmountType.RECEIVE, "RWF")
    assert q.amount_type is AmountType.RECEIVE
    assert (q.source_amount_minor, q.fee_minor, q.target_amount_minor) == (158_618, 789, 50_000)
    # The payee gets at least what was asked at the quoted rate, and not one RWF more is taken.
    assert (q.source_amount_minor - q.fee_minor) * RATE * 100 >= 50_000
    assert (q.source_amount_minor - q.fee_minor - 1) * RATE * 100 < 50_000

    t = pay(scheme, "mtn-rw", "t1", TILL, 50_000, "RWF", "RECEIVE")
    assert (t.source_amount_minor, t.fee_minor, t.target_amount_minor) == (158_618, 789, 50_000)
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "net_position"): -158_618,
        (SCHEME, "RWF", "net_position"): 789,
        ("fxco", "RWF", "net_position"): 157_829,
        ("fxco", "MYR", "net_position"): -50_000,
        ("maybank", "MYR", "net_position"): 50_000,
    }
    w = scheme.settle_window(SCHEME, scheme.close_window().id)
    for cur in ("RWF", "MYR"):
        assert sum(p.net_minor for p in w.positions if p.currency == cur) == 0
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "settlement_balance"): -158_618,
        (SCHEME, "RWF", "settlement_balance"): 789,
        ("fxco", "RWF", "settlement_balance"): 157_829,
        ("fxco", "MYR", "settlement_balance"): -50_000,
        ("maybank", "MYR", "settlement_balance"): 50_000,
    }
    assert_ledger_ok(scheme)


def test_receive_amount_with_a_whole_principal_is_not_rounded_up_past_it(
    scheme: PaymentScheme,
) -> None:
    # 31.68 MYR / 0.003168 is exactly 10,000 RWF: ROUND_UP must leave it at 10,000 (fee 50).
    assert Decimal(3_168) / 100 / RATE == 10_000
    q = scheme.create_quote("mtn-rw", "q1", *TILL, 3_168, "RECEIVE", "RWF")
    assert (q.source_amount_minor - q.fee_minor, q.fee_minor) == (10_000, 50)
    assert q.source_amount_minor == 10_050


def test_same_currency_payment_send_and_receive(scheme: PaymentScheme) -> None:
    join_bk(scheme)
    before = liquidity(scheme)
    # SEND 12,345 RWF: fee 61.725 -> 62, the payee gets 12,283. No FX provider is involved.
    q = scheme.create_quote("mtn-rw", "q1", *BK_CUSTOMER, 12_345, "SEND", "RWF")
    assert (q.source_amount_minor, q.fee_minor, q.target_amount_minor) == (12_345, 62, 12_283)
    assert (q.fx_provider, q.fx_rate, q.target_currency) == (None, None, "RWF")
    scheme.accept_quote("mtn-rw", "q1")
    assert moves(before, liquidity(scheme)) == {}  # nothing to reserve without FX
    scheme.prepare_transfer("mtn-rw", "t1", "q1")
    assert moves(before, liquidity(scheme)) == {("mtn-rw", "RWF", "position_reserved"): 12_345}
    scheme.commit_transfer("bk-rw", "t1")
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "net_position"): -12_345,
        ("bk-rw", "RWF", "net_position"): 12_283,
        (SCHEME, "RWF", "net_position"): 62,
    }
    # RECEIVE 10,001 RWF: the payee gets exactly that, the fee 50.005 -> 50 is added on top.
    t = pay(scheme, "bk-rw", "t2", ALINE, 10_001, "RWF", "RECEIVE")
    assert (t.source_amount_minor, t.fee_minor, t.target_amount_minor) == (10_051, 50, 10_001)
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "net_position"): -12_345 + 10_001,
        ("bk-rw", "RWF", "net_position"): 12_283 - 10_051,
        (SCHEME, "RWF", "net_position"): 62 + 50,
    }
    assert [x.id for x in scheme.list_transfers("bk-rw")] == ["t1", "t2"]
    assert scheme.list_transfers("icbc") == []
    assert_ledger_ok(scheme)


# ---------------------------------------------------------------------------------- FX
def test_accepted_quote_reserves_fx_liquidity_until_it_expires(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    before = liquidity(scheme)
    q = scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    scheme.accept_quote("mtn-rw", "q1")
    assert scheme.accept_quote("mtn-rw", "q1").state is QuoteState.ACCEPTED  # idempotent
    assert moves(before, liquidity(scheme)) == {("fxco", "MYR", "position_reserved"): 31_552}
    assert scheme.liquidity("fxco", "MYR")["position_available_minor"] == 2_000_000 - 31_552

    clock.advance(QUOTE_TTL_S - 1)
    assert scheme.process_deadlines()["quotes_expired"] == 0
    assert moves(before, liquidity(scheme)) == {("fxco", "MYR", "position_reserved"): 31_552}

    clock.advance(2)
    assert scheme.process_deadlines() == {
        "quotes_expired": 1,
        "transfers_aborted": 0,
        "escrows_resolved": 0,
        "escrows_failed": 0,
    }
    assert scheme.get_quote("mtn-rw", q.id).state is QuoteState.EXPIRED
    assert moves(before, liquidity(scheme)) == {}
    with unchanged(scheme), pytest.raises(QuoteExpired):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    with unchanged(scheme), pytest.raises(QuoteExpired):  # alike (was invalid_state here)
        scheme.accept_quote("mtn-rw", "q1")
    assert_ledger_ok(scheme)


def test_the_scheme_operators_participant_sends_no_payments(scheme: PaymentScheme) -> None:
    """Found by a review: the scheme could be quoted as a payer, and every prepare was then
    refused by the ledger (the fee leg debits and credits its own position); in a bulk each
    item failed with the ledger's raw reason. Refused up front, nothing written."""
    scheme.deposit(SCHEME, "RWF", 100_000, "dep-scheme")
    with unchanged(scheme), pytest.raises(NotYours, match="sends no payments"):
        scheme.create_quote(SCHEME, "q-op", "MSISDN", "+250788123456", 1_000, "SEND", "RWF")
    # nor is it paid by alias (found by a review: one registered was paid, and its pacs.008
    # named a creditor resident in ZZ)
    with unchanged(scheme), pytest.raises(NotYours, match="no customers"):
        scheme.register_alias(SCHEME, "MSISDN", "+250788999000", "The Operator", "RWF")
    with unchanged(scheme), pytest.raises(NotYours, match="sends no payments"):
        bulk_transfers(
            scheme, SCHEME, "bulk-op", "RWF", [BulkItem("b-op", "MSISDN", "+250788123456", 1)]
        )


def test_a_cross_currency_quote_expires_no_later_than_its_fx_rate(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: a rate posted for 5 s priced a quote asked for a day, and held: the
    quote accepted (the provider's liquidity reserved), a payer could wait for the market to
    move and prepare only if it had gone its way. The quote expires with its rate; a resend
    of the request (a day asked) is answered with it, another expiry is another request."""
    scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal("0.0032"), 100, 5)
    rate_ends = clock.now_ns() + 5 * NS_PER_S
    q = scheme.create_quote("mtn-rw", "q-day", *TILL, 100_000, "SEND", "RWF", ttl_s=86_400)
    assert q.expires_at_ns == rate_ends
    assert scheme.create_quote("mtn-rw", "q-day", *TILL, 100_000, "SEND", "RWF", ttl_s=86_400) == q
    with unchanged(scheme), pytest.raises(DuplicateWithDifferentBody):
        scheme.create_quote("mtn-rw", "q-day", *TILL, 100_000, "SEND", "RWF", ttl_s=5)
    scheme.accept_quote("mtn-rw", q.id)
    clock.advance(5)
    with unchanged(scheme), pytest.raises(QuoteExpired):
        scheme.prepare_transfer("mtn-rw", "t-day", q.id)
    assert scheme.process_deadlines()["quotes_expired"] == 1
    assert liquidity(scheme)[("fxco", "MYR")]["position_reserved_minor"] == 0
    # a rate valid longer than asked leaves the quote its own expiry
    scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal("0.0032"), 100, 3600)
    q = scheme.create_quote("mtn-rw", "q-min", *TILL, 100_000, "SEND", "RWF", ttl_s=60)
    assert q.expires_at_ns == clock.now_ns() + 60 * NS_PER_S


def test_an_accepted_quote_is_prepared_until_its_last_nanosecond(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: the FX reservation ended with the quote, on the ledger's time,
    which runs ahead of the scheme's clock (its stamps, another worker's clock): a prepare
    1 ns before the quote's expiry found it voided and was refused transfer_expired, for a
    transfer that did not exist. It now outlives the quote by a second; the deadline pass
    still frees it with the quote."""
    clock.advance(10)
    q = scheme.create_quote("mtn-rw", "q-edge", *TILL, 100_000, "SEND", "RWF", ttl_s=1)
    scheme.accept_quote("mtn-rw", q.id)
    clock.advance(1, ns=-1)
    assert clock.now_ns() < q.expires_at_ns
    t = scheme.prepare_transfer("mtn-rw", "t-edge", q.id)
    assert t.state is TransferState.RESERVED
    scheme.commit_transfer("maybank", t.id)
    # an accepted quote left alone: the deadline pass frees its liquidity with its expiry
    scheme.create_quote("mtn-rw", "q-idle", *TILL, 100_000, "SEND", "RWF", ttl_s=1)
    scheme.accept_quote("mtn-rw", "q-idle")
    clock.advance(1)
    assert scheme.process_deadlines()["quotes_expired"] == 1
    assert liquidity(scheme)[("fxco", "MYR")]["position_reserved_minor"] == 0
    assert_ledger_ok(scheme)


@pytest.mark.parametrize("accepted", [False, True])
def test_a_quote_past_its_expiry_reads_and_is_refused_expired_before_the_deadline_pass(
    scheme: PaymentScheme, clock: FakeClock, accepted: bool
) -> None:
    """Found by a review: an accepted quote accepted again after its expiry answered
    ACCEPTED (nothing was reserved again, but the payer was told its rate held), and read
    ACCEPTED until the deadline pass ran; accept and prepare now refuse it alike."""
    scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    if accepted:
        scheme.accept_quote("mtn-rw", "q1")
    clock.advance(QUOTE_TTL_S)
    assert scheme.get_quote("mtn-rw", "q1").state is QuoteState.EXPIRED
    # its create resent reads it as it is now too (it answered ACCEPTED, a review found)
    resent = scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    assert resent.state is QuoteState.EXPIRED
    assert scheme.get_quote("maybank", "q1").state is QuoteState.EXPIRED
    with unchanged(scheme), pytest.raises(QuoteExpired):
        scheme.accept_quote("mtn-rw", "q1")
    with unchanged(scheme), pytest.raises(QuoteExpired):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    assert scheme.process_deadlines()["quotes_expired"] == 1
    assert scheme.get_quote("mtn-rw", "q1").state is QuoteState.EXPIRED


def test_a_used_quote_is_refused_alike_by_accept_and_prepare(scheme: PaymentScheme) -> None:
    scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    scheme.prepare_transfer("mtn-rw", "t1", "q1")
    for refused in (
        lambda: scheme.accept_quote("mtn-rw", "q1"),
        lambda: scheme.prepare_transfer("mtn-rw", "t2", "q1"),
    ):
        with unchanged(scheme), pytest.raises(InvalidState, match="already used"):
            refused()


def test_an_accepted_same_currency_quote_holds_no_fx_liquidity(scheme: PaymentScheme) -> None:
    """Accepting a quote in one currency reserves nothing: it does not count against what the
    payer's accepted FX quotes may hold (it took 900,000 RWF of a 1,000,000 cap's room)."""
    scheme.set_net_debit_cap("mtn-rw", "RWF", 1_000_000)
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    scheme.register_alias("bk-rw", "MSISDN", "+250722000111", "Jean Mugabo", "RWF")
    same = scheme.create_quote("mtn-rw", "q-rwf", "MSISDN", "+250722000111", 900_000, "SEND", "RWF")
    assert same.fx_provider is None
    assert scheme.accept_quote("mtn-rw", "q-rwf").state is QuoteState.ACCEPTED
    scheme.create_quote("mtn-rw", "q-fx", *TILL, 300_000, "SEND", "RWF")
    assert scheme.accept_quote("mtn-rw", "q-fx").state is QuoteState.ACCEPTED


def test_a_payer_cannot_hold_more_fx_liquidity_than_it_could_pay_for(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """An accepted quote reserves the FX provider's liquidity and costs the payer nothing
    until it prepares: one payer accepting quote after quote held all of fxco's MYR, and every
    other payer's quotes were refused. Its accepted, unused quotes may come to at most what
    its position could send (mtn-rw: a 1,000,000 RWF cap here, nothing sent yet)."""
    scheme.set_net_debit_cap("mtn-rw", "RWF", 1_000_000)
    assert scheme.liquidity("mtn-rw", "RWF")["position_available_minor"] == 1_000_000
    for n in range(3):
        scheme.create_quote("mtn-rw", f"q{n}", *TILL, 300_000, "SEND", "RWF")
        scheme.accept_quote("mtn-rw", f"q{n}")
    scheme.create_quote("mtn-rw", "q3", *TILL, 100_001, "SEND", "RWF")
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded, match="900000"):
        scheme.accept_quote("mtn-rw", "q3")  # 900,000 held + 100,001 > 1,000,000
    assert scheme.get_quote("mtn-rw", "q3").state is QuoteState.QUOTED
    # Preparing one moves its amount from "held by a quote" to "reserved on the position":
    # counted once, so the rest of the room is still there.
    assert scheme.prepare_transfer("mtn-rw", "t0", "q0").state is TransferState.RESERVED
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.accept_quote("mtn-rw", "q3")
    scheme.create_quote("mtn-rw", "q4", *TILL, 100_000, "SEND", "RWF")
    assert scheme.accept_quote("mtn-rw", "q4").state is QuoteState.ACCEPTED  # exactly full
    clock.advance(QUOTE_TTL_S)  # q1, q2, q4 expire: they hold nothing any more
    scheme.create_quote("mtn-rw", "q5", *TILL, 600_000, "SEND", "RWF")
    assert scheme.accept_quote("mtn-rw", "q5").state is QuoteState.ACCEPTED
    # A suspended payer accepts nothing (it can neither send nor receive).
    scheme.create_quote("mtn-rw", "q6", *TILL, 1_000, "SEND", "RWF")
    scheme.set_active("mtn-rw", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.accept_quote("mtn-rw", "q6")
    assert_ledger_ok(scheme)


def test_quote_expiring_at_its_exact_expiry_instant_releases_its_fx_reservation(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    before = liquidity(scheme)
    q = scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    scheme.accept_quote("mtn-rw", "q1")
    clock.set_ns(q.expires_at_ns)
    assert scheme.process_deadlines()["quotes_expired"] == 1
    assert scheme.get_quote("mtn-rw", "q1").state is QuoteState.EXPIRED
    # An expired quote must not keep the FX provider's liquidity reserved.
    assert moves(before, liquidity(scheme)) == {}


def test_best_rate_wins_among_fx_providers(scheme: PaymentScheme, clock: FakeClock) -> None:
    join(scheme, "fxsg", "RWF", kind="fx_provider", country="SG")
    scheme.add_currency("fxsg", "MYR")
    scheme.deposit("fxsg", "MYR", 3_000_000, "dep-fxsg-myr")
    scheme.set_net_debit_cap("fxsg", "MYR", 1_000_000)
    # fxsg: a higher raw rate but a 300 bps spread: 0.00325 * 0.97 = 0.0031525 < 0.003168.
    scheme.post_fx_rate("fxsg", "RWF", "MYR", Decimal("0.00325"), 300, 600)
    q = scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    assert (q.fx_provider, q.fx_rate) == ("fxco", Decimal("0.003168"))

    # fxsg reposts (replacing its rate): 0.0033 * 0.98 = 0.003234 > 0.003168, so fxsg wins.
    scheme.post_fx_rate("fxsg", "RWF", "MYR", Decimal("0.0033"), 200, 600)
    before = liquidity(scheme)
    q = scheme.create_quote("mtn-rw", "q2", *TILL, 100_100, "SEND", "RWF")
    assert (q.fx_provider, q.fx_rate) == ("fxsg", Decimal("0.003234"))
    assert q.target_amount_minor == 32_210  # 99,599 * 0.003234 = 322.103166 MYR, down
    scheme.accept_quote("mtn-rw", "q2")
    assert moves(before, liquidity(scheme)) == {("fxsg", "MYR", "position_reserved"): 32_210}
    scheme.prepare_transfer("mtn-rw", "t2", "q2")
    scheme.commit_transfer("maybank", "t2")
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "net_position"): -100_100,
        (SCHEME, "RWF", "net_position"): 501,
        ("fxsg", "RWF", "net_position"): 99_599,
        ("fxsg", "MYR", "net_position"): -32_210,
        ("maybank", "MYR", "net_position"): 32_210,
    }

    # A suspended provider's rate is not offered, and neither is a lapsed one.
    scheme.set_active("fxsg", False)
    assert scheme.create_quote("mtn-rw", "q3", *TILL, 1_000, "SEND", "RWF").fx_provider == "fxco"
    scheme.set_active("fxsg", True)
    assert scheme.create_quote("mtn-rw", "q4", *TILL, 1_000, "SEND", "RWF").fx_provider == "fxsg"
    clock.advance(601)
    assert scheme.create_quote("mtn-rw", "q5", *TILL, 1_000, "SEND", "RWF").fx_provider == "fxco"
    assert_ledger_ok(scheme)


def test_a_quote_is_priced_at_the_best_rate_whose_provider_can_pay(scheme: PaymentScheme) -> None:
    """Found by a review: a provider posting the best rate without the liquidity to pay it
    (none at all, or all of it held by accepted quotes) had every payer's quote for the pair,
    each then refused fx_liquidity_exhausted, while another provider could pay. A quote is
    priced at the best rate whose provider can pay what it converts to; where none can, at
    the best rate, refused at its acceptance as before."""
    join(scheme, "fx3", "RWF", kind="fx_provider", country="SG")
    scheme.add_currency("fx3", "MYR")
    # 0.0033 * 0.99 = 0.003267 > fxco's 0.003168, and fx3 holds no MYR at all
    scheme.post_fx_rate("fx3", "RWF", "MYR", Decimal("0.0033"), 100, 3600)
    q = scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    assert (q.fx_provider, q.fx_rate) == ("fxco", Decimal("0.003168"))
    scheme.prepare_transfer("mtn-rw", "t1", "q1")
    # funded for one such payment: the best rate is fx3's again, until accepted quotes hold
    # its liquidity
    scheme.deposit("fx3", "MYR", 40_000, "dep-fx3-myr")
    scheme.set_net_debit_cap("fx3", "MYR", 40_000)
    q = scheme.create_quote("mtn-rw", "q2", *TILL, 100_100, "SEND", "RWF")
    assert (q.fx_provider, q.target_amount_minor) == ("fx3", 32_538)  # 99,599 * 0.003267
    scheme.accept_quote("mtn-rw", "q2")
    assert scheme.create_quote("mtn-rw", "q3", *TILL, 100_100, "SEND", "RWF").fx_provider == "fxco"
    # a RECEIVE amount fx3 can pay (7,462 sen left) is its; one neither can pay is priced
    # at the best rate, and refused when accepted
    assert scheme.create_quote("mtn-rw", "q4", *TILL, 7_000, "RECEIVE", "RWF").fx_provider == "fx3"
    q = scheme.create_quote("mtn-rw", "q5", *TILL, 7_000_000, "SEND", "RWF")
    assert q.fx_provider == "fx3"
    with unchanged(scheme), pytest.raises(FxLiquidityExhausted):
        scheme.accept_quote("mtn-rw", "q5")
    assert_ledger_ok(scheme)


def test_fx_refusals_change_nothing(scheme: PaymentScheme, clock: FakeClock) -> None:
    # 7,000,000 RWF -> 6,965,000 * 0.003168 = 22,065.12 MYR, more than fxco's 20,000.00 cap.
    scheme.create_quote("mtn-rw", "q1", *TILL, 7_000_000, "SEND", "RWF")
    with unchanged(scheme), pytest.raises(FxLiquidityExhausted):
        scheme.accept_quote("mtn-rw", "q1")
    with unchanged(scheme), pytest.raises(FxLiquidityExhausted):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    # Two quotes that each fit, but not together: the second cannot be accepted.
    scheme.create_quote("mtn-rw", "q2", *TILL, 4_000_000, "SEND", "RWF")
    scheme.create_quote("mtn-rw", "q3", *TILL, 4_000_000, "SEND", "RWF")
    scheme.accept_quote("mtn-rw", "q2")
    with unchanged(scheme), pytest.raises(FxLiquidityExhausted):
        scheme.accept_quote("mtn-rw", "q3")
    scheme.register_alias("icbc", "MERCHANT", "SH-TILL-1", "Shanghai shop", "CNY")
    # fxco holds RWF and CNY but posts no RWF->CNY rate.
    with unchanged(scheme), pytest.raises(NoFxRate):
        scheme.create_quote("mtn-rw", "q4", "MERCHANT", "SH-TILL-1", 10_000, "SEND", "RWF")
    clock.advance(3_600)  # fxco's RWF->MYR rate was valid for an hour
    with unchanged(scheme), pytest.raises(NoFxRate):
        scheme.create_quote("mtn-rw", "q5", *TILL, 10_000, "SEND", "RWF")
    # Only an FX provider posts rates, and only in currencies it holds.
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.post_fx_rate("maybank", "MYR", "RWF", Decimal(310), 100, 60)
    with unchanged(scheme), pytest.raises(CurrencyNotSupported):
        scheme.post_fx_rate("fxco", "RWF", "EUR", Decimal("0.0007"), 100, 60)
    assert_ledger_ok(scheme)


def test_fx_liquidity_is_reported_before_the_payers_cap(scheme: PaymentScheme) -> None:
    """A prepare that accepts its quote posts the FX reservation in the legs' ledger batch:
    when both the FX provider's liquidity and the payer's cap fall short, the refusal is
    still the FX provider's, as when the quote is accepted first. Accept checks in the same
    order: it checked the payer's cap first, so one request was refused
    ``net_debit_cap_exceeded`` by accept and ``fx_liquidity_exhausted`` by prepare."""
    scheme.set_net_debit_cap("mtn-rw", "RWF", 100_000)
    # 7,000,000 RWF: more than fxco's MYR and more than mtn-rw's cap.
    scheme.create_quote("mtn-rw", "q1", *TILL, 7_000_000, "SEND", "RWF")
    with unchanged(scheme), pytest.raises(FxLiquidityExhausted):
        scheme.accept_quote("mtn-rw", "q1")
    with unchanged(scheme), pytest.raises(FxLiquidityExhausted):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    assert scheme.get_quote("mtn-rw", "q1").state is QuoteState.QUOTED
    # Either refusal alone is the same through both paths too.
    scheme.create_quote("mtn-rw", "q2", *TILL, 200_000, "SEND", "RWF")  # fits fxco, not the cap
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.accept_quote("mtn-rw", "q2")
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.prepare_transfer("mtn-rw", "t2", "q2")
    # A suspended payer is refused as suspended by both, before the FX provider's liquidity.
    scheme.set_active("mtn-rw", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.accept_quote("mtn-rw", "q1")
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    # A suspended payee too: accept reserved the FX provider's liquidity for a payment that
    # prepare then refused (a suspended participant receives nothing).
    scheme.set_active("mtn-rw", True)
    scheme.set_active("maybank", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.accept_quote("mtn-rw", "q2")
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.prepare_transfer("mtn-rw", "t2", "q2")
    assert scheme.get_quote("mtn-rw", "q2").state is QuoteState.QUOTED
    assert_ledger_ok(scheme)


def test_a_prepare_that_accepts_its_quote_books_what_accept_then_prepare_books(
    scheme: PaymentScheme,
) -> None:
    """The FX reservation is made and released in the prepare's own ledger batch: the ledger
    holds the same transfers (reservation voided by the chain's release) and the same
    balances as when the quote is accepted first."""
    before = liquidity(scheme)
    for quote, transfer, accept in (("q1", "t1", False), ("q2", "t2", True)):
        scheme.create_quote("mtn-rw", quote, *TILL, 100_100, "SEND", "RWF")
        if accept:
            scheme.accept_quote("mtn-rw", quote)
        scheme.prepare_transfer("mtn-rw", transfer, quote)
        assert scheme.get_quote("mtn-rw", quote).state is QuoteState.USED
    ids = {q: (ledger_id("fx-reservation", q), ledger_id("fx-release", q)) for q in ("q1", "q2")}
    found = {t.id: t for t in scheme.ledger.lookup_transfers([i for p in ids.values() for i in p])}
    for reservation, release in ids.values():
        assert found[reservation].flags & TransferFlags.PENDING
        assert found[release].pending_id == reservation
        assert found[release].flags & TransferFlags.VOID_PENDING_TRANSFER
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "position_reserved"): 2 * 100_100,
        ("fxco", "MYR", "position_reserved"): 2 * 31_552,
    }
    assert_ledger_ok(scheme)


# ---------------------------------------------------------------------------------- rejections
def test_net_debit_cap_is_enforced_to_the_minor_unit(scheme: PaymentScheme) -> None:
    join_bk(scheme)
    scheme.set_net_debit_cap("mtn-rw", "RWF", 100_000)
    # Cross-currency: the whole linked chain (fee, RWF leg, FX release, MYR leg) is refused.
    scheme.create_quote("mtn-rw", "q1", *TILL, 100_001, "SEND", "RWF")
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    assert scheme.get_quote("mtn-rw", "q1").state is QuoteState.QUOTED
    # Accepting it is refused as well: the payer's accepted quotes may hold no more FX
    # liquidity than its position could pay for.
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.accept_quote("mtn-rw", "q1")
    # Accepted while the cap covered it, then the cap lowered: refused at prepare, and its
    # FX reservation stays as it was.
    scheme.set_net_debit_cap("mtn-rw", "RWF", 200_000)
    scheme.accept_quote("mtn-rw", "q1")
    scheme.set_net_debit_cap("mtn-rw", "RWF", 100_000)
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    assert scheme.liquidity("fxco", "MYR")["position_reserved_minor"] == 31_521

    # Exactly the cap passes; then not one RWF more, reserved or sent.
    pay(scheme, "mtn-rw", "t2", BK_CUSTOMER, 60_000, "RWF", commit=False)
    pay(scheme, "mtn-rw", "t3", BK_CUSTOMER, 40_000, "RWF")
    assert scheme.liquidity("mtn-rw", "RWF")["position_available_minor"] == 0
    scheme.create_quote("mtn-rw", "q4", *BK_CUSTOMER, 1, "RECEIVE", "RWF")
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.prepare_transfer("mtn-rw", "t4", "q4")
    # Receiving restores headroom: bk-rw pays Aline 5,000, mtn-rw may send 5,000 again.
    pay(scheme, "bk-rw", "t5", ALINE, 5_000, "RWF", "RECEIVE")
    pay(scheme, "mtn-rw", "t6", BK_CUSTOMER, 5_000, "RWF")
    assert scheme.liquidity("mtn-rw", "RWF")["position_available_minor"] == 0

    # A cap must be covered by the settlement balance, and cannot drop below what is in use.
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.set_net_debit_cap("mtn-rw", "RWF", 50_000_001)
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.set_net_debit_cap("mtn-rw", "RWF", 99_999)
    assert_ledger_ok(scheme)


def test_a_cap_changed_back_and_forth_within_one_clock_reading_moves_the_position_each_time(
    scheme: PaymentScheme,
) -> None:
    """The cap's ledger posting was named by the time and the new cap: A -> B -> A in one
    clock reading (a clock stepped back; the fake clock here) made an id again, and the
    ledger refused the change (exists_with_different_amount), or took a repeated A -> B for
    a retry and moved nothing while the cap row changed."""
    for cap in (100_000, 200_000, 100_000, 200_000, 7):
        scheme.set_net_debit_cap("mtn-rw", "RWF", cap)
        figures = scheme.liquidity("mtn-rw", "RWF")
        assert (figures["net_debit_cap_minor"], figures["position_available_minor"]) == (cap, cap)
    assert_ledger_ok(scheme)


def test_expired_quote_is_refused(scheme: PaymentScheme, clock: FakeClock) -> None:
    scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF", ttl_s=30)
    scheme.create_quote("mtn-rw", "q2", *TILL, 100_100, "SEND", "RWF", ttl_s=30)
    scheme.accept_quote("mtn-rw", "q2")
    clock.advance(30)
    with unchanged(scheme), pytest.raises(QuoteExpired):
        scheme.accept_quote("mtn-rw", "q1")
    with unchanged(scheme), pytest.raises(QuoteExpired):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    with unchanged(scheme), pytest.raises(QuoteExpired):
        scheme.prepare_transfer("mtn-rw", "t2", "q2")
    # The deadline moves both to EXPIRED (QUOTED -> EXPIRED, ACCEPTED -> EXPIRED).
    clock.advance(1)
    assert scheme.process_deadlines()["quotes_expired"] == 2
    assert {scheme.get_quote("mtn-rw", q).state for q in ("q1", "q2")} == {QuoteState.EXPIRED}
    assert scheme.liquidity("fxco", "MYR")["position_reserved_minor"] == 0
    assert_ledger_ok(scheme)


def test_suspended_participant_neither_sends_nor_receives(scheme: PaymentScheme) -> None:
    join_bk(scheme)
    scheme.create_quote("mtn-rw", "q-before", *TILL, 10_000, "SEND", "RWF")
    scheme.set_active("maybank", False)
    assert scheme.get_participant("maybank").active is False
    # Nobody can quote to it, nor is its party looked up as payable, and it cannot quote.
    with unchanged(scheme), pytest.raises(ParticipantSuspended, match="maybank"):
        scheme.lookup_payee(*TILL)
    assert scheme.lookup_party(*TILL).participant_id == "maybank"  # the directory's record
    party, participant = scheme.lookup_party_and_participant(*TILL)  # the operator's
    assert (party.participant_id, participant.id, participant.active) == (
        "maybank",
        "maybank",
        False,
    )
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.create_quote("mtn-rw", "q1", *TILL, 10_000, "SEND", "RWF")
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.create_quote("maybank", "q2", *ALINE, 1_000, "SEND", "MYR")
    # A quote made before the suspension cannot be prepared.
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.prepare_transfer("mtn-rw", "t1", "q-before")
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.register_alias("maybank", "MERCHANT", "KL-TILL-43", "Another shop", "MYR")
    scheme.set_active("maybank", True)

    # A transfer reserved before the suspension: the suspended payee cannot accept it.
    t = scheme.prepare_transfer("mtn-rw", "t1", "q-before")
    scheme.set_active("maybank", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.commit_transfer("maybank", t.id)
    # It may reject it, though: the payer's funds come back now, not at the expiry (they
    # waited for it: a suspended payee's rejection was refused too, found by a review).
    scheme.set_active("maybank", True)
    scheme.create_quote("mtn-rw", "q-back", *TILL, 10_000, "SEND", "RWF")
    back = scheme.prepare_transfer("mtn-rw", "t-back", "q-back")
    scheme.set_active("maybank", False)
    before = liquidity(scheme)
    rejected = scheme.reject_transfer("maybank", back.id, "merchant closed")
    assert (rejected.state, rejected.reason) == (TransferState.ABORTED, "merchant closed")
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "position_reserved"): -10_000,
        ("fxco", "MYR", "position_reserved"): -back.target_amount_minor,
    }

    # A suspended payer can neither quote, nor accept a quote (one in its own currency
    # too, which reserves no FX liquidity), nor prepare.
    scheme.create_quote("mtn-rw", "q3", *BK_CUSTOMER, 1_000, "SEND", "RWF")
    scheme.set_active("mtn-rw", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.accept_quote("mtn-rw", "q3")
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.create_quote("mtn-rw", "q4", *BK_CUSTOMER, 1_000, "SEND", "RWF")
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.prepare_transfer("mtn-rw", "t3", "q3")
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.create_quote("bk-rw", "q5", *ALINE, 1_000, "SEND", "RWF")

    # Reinstated, both work again.
    scheme.set_active("mtn-rw", True)
    scheme.set_active("maybank", True)
    assert scheme.lookup_payee(*TILL).participant_id == "maybank"
    assert scheme.commit_transfer("maybank", "t1").state is TransferState.COMMITTED
    pay(scheme, "bk-rw", "t5", ALINE, 1_000, "RWF")
    assert_ledger_ok(scheme)


def test_the_scheme_operators_own_participant_cannot_be_suspended(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: `payments suspend scheme` was taken, and every payment (its fee is
    credited to the scheme) and escrow (held at the scheme) refused from then on."""
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match="cannot be suspended"):
        scheme.set_active(SCHEME, False, "typo")
    assert scheme.get_participant(SCHEME).active is True
    assert scheme.set_active(SCHEME, True).active is True  # resuming it is a no-op
    pay(scheme, "mtn-rw", "t-after", TILL, 10_000, "RWF")


def test_an_accepted_quote_is_not_prepared_through_a_provider_suspended_since(
    scheme: PaymentScheme,
) -> None:
    scheme.create_quote("mtn-rw", "q-acc", *TILL, 10_000, "SEND", "RWF")
    scheme.accept_quote("mtn-rw", "q-acc")
    scheme.set_active("fxco", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.prepare_transfer("mtn-rw", "t-acc", "q-acc")
    # nor accepted again (it was answered ACCEPTED while prepare refused it; a review)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.accept_quote("mtn-rw", "q-acc")
    scheme.set_active("fxco", True)
    assert scheme.accept_quote("mtn-rw", "q-acc").state is QuoteState.ACCEPTED
    assert scheme.prepare_transfer("mtn-rw", "t-acc", "q-acc").state is TransferState.RESERVED
    assert_ledger_ok(scheme)


@pytest.mark.parametrize("suspended", ["mtn-rw", "maybank"])
def test_suspending_a_payer_or_payee_ends_its_accepted_quotes_and_frees_the_fx_liquidity(
    scheme: PaymentScheme, suspended: str
) -> None:
    """Noticed in a review: an accepted quote of a payer (or to a payee) suspended since held
    its FX provider's liquidity from every other payer until it expired, though no prepare
    could use it."""
    scheme.create_quote("mtn-rw", "q-acc", *TILL, 10_000, "SEND", "RWF")
    scheme.create_quote("mtn-rw", "q-open", *TILL, 10_000, "SEND", "RWF")
    q = scheme.accept_quote("mtn-rw", "q-acc")
    held = scheme.liquidity("fxco", "MYR")["position_reserved_minor"]
    assert held == q.target_amount_minor
    scheme.set_active(suspended, False, "under review")
    assert scheme.liquidity("fxco", "MYR")["position_reserved_minor"] == 0
    assert scheme.get_quote("mtn-rw", "q-acc").state is QuoteState.EXPIRED
    assert scheme.get_quote("mtn-rw", "q-open").state is QuoteState.QUOTED  # it held nothing
    for _ in range(2):  # ended, not waiting for the resumption: accept and prepare alike
        with unchanged(scheme), pytest.raises(QuoteExpired):
            scheme.accept_quote("mtn-rw", "q-acc")
        with unchanged(scheme), pytest.raises(QuoteExpired):
            scheme.prepare_transfer("mtn-rw", "t-acc", "q-acc")
        scheme.set_active(suspended, True)
    # the quote never accepted is honoured once both can act again
    assert scheme.prepare_transfer("mtn-rw", "t-open", "q-open").state is TransferState.RESERVED
    assert scheme.process_deadlines()["quotes_expired"] == 0  # nothing left for the pass
    assert_ledger_ok(scheme)


def test_a_payer_suspended_after_prepare_cannot_be_committed(scheme: PaymentScheme) -> None:
    join_bk(scheme)
    before = scheme.liquidity("mtn-rw", "RWF")
    t = pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    scheme.set_active("mtn-rw", False)
    with pytest.raises(ParticipantSuspended, match="mtn-rw suspended before commit"):
        scheme.commit_transfer("bk-rw", t.id)
    aborted = scheme.get_transfer("bk-rw", t.id)
    assert aborted.state is TransferState.ABORTED
    assert aborted.reason == "mtn-rw suspended before commit"
    assert scheme.liquidity("mtn-rw", "RWF") == before  # the reservation was released
    # a retried commit is told what the first was (a review: "already ABORTED", 409), after
    # a resumption too; a reject is told the state; a payee's reason cannot forge the scheme's
    scheme.set_active("mtn-rw", True)
    with unchanged(scheme), pytest.raises(ParticipantSuspended, match="suspended before commit"):
        scheme.commit_transfer("bk-rw", t.id)
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.reject_transfer("bk-rw", t.id)
    t2 = pay(scheme, "mtn-rw", "t2", BK_CUSTOMER, 1_000, "RWF", commit=False)
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match="records that itself"):
        scheme.reject_transfer("bk-rw", t2.id, "mtn-rw suspended before commit")
    # only the scheme's words, word for word: a payee's own that end alike are its reason
    # (they were refused), and told back to no one as the scheme's (found by a review)
    done = scheme.reject_transfer("bk-rw", t2.id, "customer account suspended before commit")
    assert (done.state, done.reason) == (
        TransferState.ABORTED,
        "customer account suspended before commit",
    )
    with unchanged(scheme), pytest.raises(InvalidState, match="already ABORTED"):
        scheme.commit_transfer("bk-rw", t2.id)
    assert_ledger_ok(scheme)


def test_an_fx_provider_reads_the_transfers_it_provides_without_the_customers_data(
    screened: tuple[PaymentScheme, HoldOver],
) -> None:
    """The FX provider of a cross-currency transfer was refused it (403) though its liquidity
    runs the payee's leg. It reads it and lists it now, as the payee sees it (no reason a
    screening held it for), without the customers' data: the payer party and the note."""
    scheme, _ = screened
    scheme.create_quote(
        "mtn-rw", "q-big", *TILL, 1_500_000, "SEND", "RWF",
        payer_alias_type="MSISDN", payer_alias="+250788123456",
    )  # fmt: skip
    held = scheme.prepare_transfer("mtn-rw", "t-big", "q-big", note="invoice 42")
    assert held.state is TransferState.HOLD and held.reason
    pay(scheme, "mtn-rw", "t-small", TILL, 100_100, "RWF")
    seen = scheme.get_transfer("fxco", "t-big")
    assert (seen.state, seen.reason, seen.note, seen.payer_alias) == (
        TransferState.HOLD,
        None,
        None,
        None,
    )
    assert (seen.fx_provider, seen.target_amount_minor) == ("fxco", held.target_amount_minor)
    payer = scheme.get_transfer("mtn-rw", "t-big")
    assert (payer.note, payer.payer_alias) == ("invoice 42", "MSISDN:+250788123456")
    assert [t.id for t in scheme.list_transfers("fxco")] == ["t-big", "t-small"]
    assert [t.id for t in scheme.list_transfers("fxco", after="t-big")] == ["t-small"]


def test_a_participants_transfers_are_listed_without_reading_the_whole_table(
    scheme: PaymentScheme,
) -> None:
    """The list is of the transfers a participant pays, is paid or provides FX for: each of
    the three found by an index of its own (a provider's without one read every transfer)."""
    if scheme.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plans (PostgreSQL's depend on its statistics)")
    pay(scheme, "mtn-rw", "t1", TILL, 100_100, "RWF")
    with recorded(scheme.engine) as statements:
        for who in ("mtn-rw", "maybank", "fxco"):
            assert [t.id for t in scheme.list_transfers(who)] == ["t1"]
        assert scheme.list_transfers("fxco", after="t1") == []
    scans = full_scans(scheme.engine, statements)
    assert [(s, step) for s, step in scans if "pay_transfers" in step] == []


def test_a_participant_sees_and_acts_on_only_its_own_transfers(scheme: PaymentScheme) -> None:
    join_bk(scheme)
    scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.get_quote("icbc", "q1")
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.accept_quote("maybank", "q1")  # the payee does not accept the payer's quote
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.prepare_transfer("bk-rw", "t1", "q1")
    t = scheme.prepare_transfer("mtn-rw", "t1", "q1")
    for intruder in ("icbc", "bk-rw"):
        with unchanged(scheme), pytest.raises(NotYours):
            scheme.get_transfer(intruder, t.id)
        with unchanged(scheme), pytest.raises(NotYours):
            scheme.commit_transfer(intruder, t.id)
        with unchanged(scheme), pytest.raises(NotYours):
            scheme.reject_transfer(intruder, t.id)
        assert scheme.list_transfers(intruder) == []
    # Its FX provider (its MYR runs the payee's leg) is a party: it reads the transfer, and
    # decides nothing of the payee's.
    assert t.fx_provider == "fxco"
    assert scheme.get_transfer("fxco", t.id).state is TransferState.RESERVED
    assert [x.id for x in scheme.list_transfers("fxco")] == [t.id]
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.commit_transfer("fxco", t.id)
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.reject_transfer("fxco", t.id)
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.review_hold("fxco", t.id, True, "looks fine")
    # Only the payee resolves: the payer can neither commit nor reject its own transfer.
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.commit_transfer("mtn-rw", t.id)
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.reject_transfer("mtn-rw", t.id)
    # Only the scheme reviews holds.
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.review_hold("maybank", t.id, True, "looks fine")
    assert scheme.get_transfer("maybank", t.id).state is TransferState.RESERVED
    assert scheme.commit_transfer("maybank", t.id).state is TransferState.COMMITTED
    assert_ledger_ok(scheme)


def test_a_resent_create_gets_the_first_result_and_another_request_with_its_id_3106(
    scheme: PaymentScheme,
) -> None:
    """Mojaloop's duplicate check: the same id and request again (a client resending after a
    timeout) -> what the first created, as it is now; the same id with any other request, by
    the same or another participant -> 3106; neither changes anything."""
    join_bk(scheme)
    q = scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    with unchanged(scheme):
        assert scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF") == q
    for other, options in (
        (("mtn-rw", "q1", *TILL, 100_000, "SEND", "RWF"), {}),
        (("mtn-rw", "q1", *TILL, 100_100, "RECEIVE", "RWF"), {}),
        (("mtn-rw", "q1", *ALINE, 100_100, "SEND", "RWF"), {}),
        (("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF"), {"ttl_s": QUOTE_TTL_S + 1}),
        (
            ("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF"),
            {"payer_alias_type": "MSISDN", "payer_alias": "+250788000001"},
        ),
        (("bk-rw", "q1", *ALINE, 5_000, "SEND", "RWF"), {}),
        (("bk-rw", "q1", *TILL, 100_100, "SEND", "RWF"), {}),
    ):
        with unchanged(scheme), pytest.raises(DuplicateWithDifferentBody) as refused:
            scheme.create_quote(*other, **options)  # type: ignore[arg-type]
        assert (refused.value.field, refused.value.mojaloop_code) == ("quoteId", "3106")
    t = scheme.prepare_transfer("mtn-rw", "t1", "q1")
    with unchanged(scheme):
        assert scheme.prepare_transfer("mtn-rw", "t1", "q1") == t
        # the quote resent after its transfer used it: as it is now
        resent = scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    assert resent == replace(q, state=QuoteState.USED) == scheme.get_quote("mtn-rw", "q1")
    scheme.create_quote("mtn-rw", "q2", *BK_CUSTOMER, 5_000, "SEND", "RWF")
    # The same transfer id with another quote, note, expiry or payer.
    for caller, tid, qid, options in (
        ("mtn-rw", "t1", "q2", {}),
        ("mtn-rw", "t1", "q1", {"note": "invoice 7"}),
        ("mtn-rw", "t1", "q1", {"ttl_s": TRANSFER_TTL_S + 1}),
        ("maybank", "t1", "q1", {}),
    ):
        with unchanged(scheme), pytest.raises(DuplicateWithDifferentBody):
            scheme.prepare_transfer(caller, tid, qid, **options)  # type: ignore[arg-type]
    # The same quote under another transfer id: the quote is spent.
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.prepare_transfer("mtn-rw", "t2", "q1")
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.register_participant("maybank", "Maybank again", "bank", "MY", ["MYR"])
    # A retried deposit is idempotent: it never credits twice.
    with unchanged(scheme):
        scheme.deposit("maybank", "MYR", 1_000_000, "dep-2")
    # Its id reused for another amount or participant is the client's conflict (3106, naming
    # the id), not a ledger refusal (a server error's 2001, in the ledger's words).
    for pid, currency, amount in (("maybank", "MYR", 5), ("mtn-rw", "RWF", 1_000_000)):
        with unchanged(scheme), pytest.raises(DuplicateWithDifferentBody) as reused:
            scheme.deposit(pid, currency, amount, "dep-2")
        assert reused.value.field == "depositId" and "dep-2" in reused.value.detail
    committed = scheme.commit_transfer("maybank", "t1")
    with unchanged(scheme):  # resent after the payee committed: the transfer as it is now
        assert scheme.prepare_transfer("mtn-rw", "t1", "q1") == committed
    assert scheme.prepare_transfer("mtn-rw", "t2", "q2").state is TransferState.RESERVED
    assert_ledger_ok(scheme)


def test_pay_by_qr_looks_the_till_up_and_checks_its_currency(scheme: PaymentScheme) -> None:
    with unchanged(scheme), pytest.raises(PartyNotFound):
        scheme.pay_by_qr(
            "mtn-rw", "q1", "t1", "NO-SUCH-TILL", 2550, "MYR", "RWF",
            merchant_name="Nobody", merchant_country="MY",
        )  # fmt: skip
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match="paid in MYR"):
        scheme.pay_by_qr(
            "mtn-rw", "q1", "t1", TILL[1], 2550, "RWF", "RWF",
            merchant_name="Kedai Kopi KL", merchant_country="MY",
        )  # fmt: skip
    party, q, t = scheme.pay_by_qr(
        "mtn-rw", "q1", "t1", TILL[1], 2550, "MYR", "RWF",
        merchant_name="On the QR", merchant_country="MY",
    )  # fmt: skip
    assert (party.participant_id, party.display_name) == ("maybank", "Kedai Kopi KL")
    assert (q.target_amount_minor, q.target_currency, t.state) == (
        2550,
        "MYR",
        TransferState.RESERVED,
    )
    assert_ledger_ok(scheme)


def kedai_qr(
    amount_minor: int | None = None,
    *,
    till: str = TILL[1],
    guid: str = qr.DEFAULT_GUID,
    currency: str = "MYR",
) -> str:
    """The QR of maybank's merchant (static without ``amount_minor``), as its text."""
    return qr.build_merchant_qr(
        merchant_alias=till, mcc="5812", currency=currency, country="MY",
        merchant_name="Kedai Kopi KL", city="Kuala Lumpur", amount_minor=amount_minor, guid=guid,
    ).text  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "sent", "error", "field", "detail"),
    [
        (kedai_qr(guid="com.other"), {}, InvalidPaymentInput, "payload", "no Entrepot merchant"),
        (kedai_qr(till="NO-SUCH-TILL"), {}, PartyNotFound, None, "MERCHANT NO-SUCH-TILL"),
        (kedai_qr(), {}, InvalidPaymentInput, "amount", "a static QR needs an amount"),
        (
            kedai_qr(),
            {"amount": "2.00", "amount_currency": "EUR"},
            InvalidPaymentInput,
            "amount.currency",
            "this QR is paid in MYR, not EUR",
        ),
        (
            kedai_qr(2550),
            {"amount": "9.00"},
            InvalidPaymentInput,
            "amount",
            "this QR is for 25.50 MYR: an amount sent with it must be the same",
        ),
        (kedai_qr(2550), {"amount": "9.001"}, InvalidAmount, "amount", "at most 2"),
        ("000201", {}, qr.QrError, "63", "CRC"),
        # what is wrong is in the QR: its till (was field "id", which the request has not),
        # its currency (was "amount.currency", with no amount sent)
        (kedai_qr(2550, till="-bad"), {}, InvalidPaymentInput, "payload", "the QR's till id"),
        (
            kedai_qr(2550, currency="RWF"),
            {},
            InvalidPaymentInput,
            "payload",
            "the QR's currency RWF: the merchant is paid in MYR",
        ),
    ],
)
def test_pay_qr_payload_refuses_a_qr_it_cannot_pay_and_changes_nothing(
    scheme: PaymentScheme,
    payload: str,
    sent: dict[str, str],
    error: type[Exception],
    field: str | None,
    detail: str,
) -> None:
    """The one flow behind POST /v1/qr/pay and ``payments qr-pay``, refusals first."""
    with unchanged(scheme), pytest.raises(error, match=detail) as caught:
        scheme.pay_qr_payload("mtn-rw", "q1", "t1", payload, "RWF", **sent)
    assert getattr(caught.value, "field", None) == field


def test_pay_qr_payload_pays_a_qr_its_amount_and_a_resend_as_it_was_made(
    scheme: PaymentScheme,
) -> None:
    party, q, t = scheme.pay_qr_payload("mtn-rw", "q1", "t1", kedai_qr(2550), "RWF")
    assert (party.participant_id, party.display_name) == ("maybank", "Kedai Kopi KL")
    assert (q.target_amount_minor, q.target_currency, t.state) == (
        2550,
        "MYR",
        TransferState.RESERVED,
    )
    with unchanged(scheme):
        again = scheme.pay_qr_payload("mtn-rw", "q1", "t1", kedai_qr(2550), "RWF", amount="25.50")
    assert again == (party, q, t)
    with unchanged(scheme), pytest.raises(DuplicateWithDifferentBody):  # 3106, not the QR's 422
        scheme.pay_qr_payload("mtn-rw", "q1", "t1", kedai_qr(2550), "RWF", amount="9.00")
    _, by_hand, _ = scheme.pay_qr_payload(
        "mtn-rw", "q2", "t2", kedai_qr(), "RWF", amount="1.00", amount_currency="MYR",
        payer_alias_type="MSISDN", payer_alias="+250788123456",
    )  # fmt: skip
    assert (by_hand.target_amount_minor, by_hand.payer_alias) == (100, "MSISDN:+250788123456")
    assert_ledger_ok(scheme)


FIXED_FEE = (qr.DataObject("55", "02"), qr.DataObject("56", "1.00"))
TIP = (qr.DataObject("55", "01"),)


def kedai_qr_with(amount_minor: int | None, *tip: qr.DataObject) -> str:
    """``kedai_qr`` with tag 55 (and 56 or 57) after its amount, where v1.1 orders them."""
    base = qr.decode(kedai_qr(amount_minor))
    head = [o for o in base.objects if o.tag < "58" and o.tag != "63"]
    tail = [o for o in base.objects if o.tag >= "58" and o.tag != "63"]
    return qr.encode(qr.QrPayload((*head, *tip, *tail)))


@pytest.mark.parametrize(
    ("tip", "sent", "paid"),
    [
        ((qr.DataObject("55", "02"), qr.DataObject("56", "1.00")), {}, 2550 + 100),
        ((qr.DataObject("55", "03"), qr.DataObject("57", "10")), {}, 2550 + 255),
        ((qr.DataObject("55", "03"), qr.DataObject("57", "2.5")), {}, 2550 + 64),  # 63.75 up
        ((qr.DataObject("55", "01"),), {"tip": "1.50"}, 2550 + 150),
        ((qr.DataObject("55", "01"),), {}, 2550),  # no tip given, none paid
    ],
    ids=["fixed-fee", "percentage-fee", "percentage-rounded-half-up", "tip", "no-tip"],
)
def test_a_qrs_convenience_fee_or_the_payers_tip_is_paid_with_it(
    scheme: PaymentScheme, tip: tuple[qr.DataObject, ...], sent: dict[str, str], paid: int
) -> None:
    """Found by a review: tags 55-57 were decoded and ignored, so a QR asking for a fixed
    (56) or percentage (57) convenience fee paid the merchant without it, and one prompting
    for a tip (55 = 01) could not be tipped. The amount (the QR's, or the payer's for a
    static QR) is the transaction's; the fee or tip is added to what the merchant gets."""
    _, q, _ = scheme.pay_qr_payload("mtn-rw", "q1", "t1", kedai_qr_with(2550, *tip), "RWF", **sent)
    assert q.target_amount_minor == paid
    _, static, _ = scheme.pay_qr_payload(
        "mtn-rw", "q2", "t2", kedai_qr_with(None, *tip), "RWF", amount="25.50", **sent
    )
    assert static.target_amount_minor == paid
    assert_ledger_ok(scheme)


@pytest.mark.parametrize(
    ("tip", "sent", "field", "detail"),
    [
        ((), {"tip": "1.00"}, "tip", "does not ask for a tip"),
        (FIXED_FEE, {"tip": "1.00"}, "tip", "does not ask"),
        (TIP, {"tip": "1.00", "tip_currency": "RWF"}, "tip.currency", "in MYR"),
        (TIP, {"tip": "0.00"}, "tip", "positive"),
        # the amount is the transaction's: the fee is added to it, not sent in it
        (FIXED_FEE, {"amount": "26.50"}, "amount", "must be the same"),
    ],
)  # fmt: skip
def test_a_tip_the_qr_does_not_ask_for_is_refused_and_changes_nothing(
    scheme: PaymentScheme,
    tip: tuple[qr.DataObject, ...],
    sent: dict[str, str],
    field: str,
    detail: str,
) -> None:
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match=detail) as refused:
        scheme.pay_qr_payload("mtn-rw", "q1", "t1", kedai_qr_with(2550, *tip), "RWF", **sent)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("tip", "sent", "detail"),
    [
        (FIXED_FEE, {"amount": "0.00"}, "must be a positive"),
        (FIXED_FEE, {"amount": "-1.00"}, "must be a positive"),
        (TIP, {"amount": "0", "tip": "2.00"}, "must be a positive"),
        (TIP, {"amount": "-1.00", "tip": "2.00"}, "must be a positive"),
        ((qr.DataObject("55", "03"), qr.DataObject("57", "1.5")), {"amount": "9" * 30},
         "exceeds the scheme's maximum"),
        (FIXED_FEE, {"amount": "9999999999999.99"}, "fee or tip 100 together exceed"),
    ],
    ids=["fee-on-zero", "fee-on-negative", "tip-on-zero", "tip-on-negative",
         "percentage-of-30-digits", "fee-past-the-maximum"],
)  # fmt: skip
def test_a_static_qrs_fee_or_tip_is_never_paid_on_an_amount_of_nothing(
    scheme: PaymentScheme, tip: tuple[qr.DataObject, ...], sent: dict[str, str], detail: str
) -> None:
    """Found by a review: the payer's amount was checked only with the QR's fee or tip added
    to it, so "0.00" on a static QR with a fixed fee paid the merchant the fee for a sale of
    nothing ("-1.00" from the CLI, the fee less 1); a percentage fee on a 30-digit amount
    raised decimal.InvalidOperation (a 500)."""
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match=detail) as refused:
        scheme.pay_qr_payload("mtn-rw", "q1", "t1", kedai_qr_with(None, *tip), "RWF", **sent)
    assert refused.value.field == "amount"


def test_a_till_on_a_qr_is_matched_as_it_was_registered_case_and_all(
    scheme: PaymentScheme,
) -> None:
    """A QR's till is looked up as it is written (docs/payments.md, QR codes): tills keep
    their case in the directory, so "kl-till-42" is not maybank's "KL-TILL-42" but a till
    nobody registered, refused by name with nothing written, not guessed at."""
    with unchanged(scheme), pytest.raises(PartyNotFound, match="MERCHANT kl-till-42"):
        scheme.pay_qr_payload("mtn-rw", "q1", "t1", kedai_qr(2550, till="kl-till-42"), "RWF")
    party, _, _ = scheme.pay_qr_payload("mtn-rw", "q1", "t1", kedai_qr(2550), "RWF")
    assert party.alias == "KL-TILL-42"


def test_a_qr_naming_its_tills_participant_pays_no_other_and_carries_its_references(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: a QR paid whoever held its till now (a till given up and registered
    by another participant's merchant was paid, the payer shown the QR's merchant), and its
    bill number and reference label were dropped (the merchant's participant could not tell
    which bill was paid). A QR names the participant its till is at (template 26, sub-tag
    02): a till moved since is refused (404) and nothing is written; the references are the
    transfer's note, and pacs.008's remittance information."""
    text = qr.build_merchant_qr(
        merchant_alias=TILL[1], mcc="5812", currency="MYR", country="MY",
        merchant_name="Kedai Kopi KL", city="Kuala Lumpur", amount_minor=1000,
        acquirer="maybank", bill_number="BILL-77", reference_label="INV-0001",
    ).text  # fmt: skip
    assert qr.decode(text).find_acquirer() == "maybank"
    _, _, t = scheme.pay_qr_payload("mtn-rw", "q1", "t1", text, "RWF")
    assert (t.payee_participant, t.note) == ("maybank", "QR bill BILL-77; reference INV-0001")
    party = messages.payee_party(scheme, t)
    assert messages.credit_transfer(scheme, t, party).remittance == t.note
    scheme.remove_alias("maybank", "MERCHANT", TILL[1])
    join(scheme, "cimb", "MYR", country="MY")
    scheme.register_alias("cimb", "MERCHANT", TILL[1], "Totally Other Shop", "MYR")
    with unchanged(scheme), pytest.raises(PartyNotFound, match="has moved"):
        scheme.pay_qr_payload("mtn-rw", "q2", "t2", text, "RWF")
    # a static QR of the moved till is refused so before it is asked an amount (a review: a
    # wallet asked its payer for one, then said the QR was dead)
    static = qr.build_merchant_qr(
        merchant_alias=TILL[1], mcc="5812", currency="MYR", country="MY",
        merchant_name="Kedai Kopi KL", city="Kuala Lumpur", acquirer="maybank",
    ).text  # fmt: skip
    with unchanged(scheme), pytest.raises(PartyNotFound, match="has moved"):
        scheme.pay_qr_payload("mtn-rw", "q2", "t2", static, "RWF")
    # moved between the lookup and the transaction: refused there, the quote undone too
    with unchanged(scheme), pytest.raises(PartyNotFound, match="has moved"):
        scheme.quote_and_prepare(
            "mtn-rw", "q2", "t2", "MERCHANT", TILL[1], 1000, "RECEIVE", "RWF",
            target_currency="MYR", payee_participant="maybank",
        )  # fmt: skip
    # the first payment resent is answered as it was made; the same ids with another QR's
    # references are another request (3106)
    assert scheme.pay_qr_payload("mtn-rw", "q1", "t1", text, "RWF")[2] == t
    other = qr.build_merchant_qr(
        merchant_alias=TILL[1], mcc="5812", currency="MYR", country="MY",
        merchant_name="Kedai Kopi KL", city="Kuala Lumpur", amount_minor=1000,
        acquirer="maybank", bill_number="BILL-78", reference_label="INV-0001",
    ).text  # fmt: skip
    with unchanged(scheme), pytest.raises(DuplicateWithDifferentBody):
        scheme.pay_qr_payload("mtn-rw", "q1", "t1", other, "RWF")
    # a QR naming no participant (made before, or elsewhere) pays the till's holder, as before
    assert scheme.pay_qr_payload("mtn-rw", "q3", "t3", kedai_qr(1000), "RWF")[2].note is None
    assert scheme.get_transfer("mtn-rw", "t3").payee_participant == "cimb"
    assert_ledger_ok(scheme)


def test_a_till_that_moves_to_another_currency_during_a_qr_payment_refuses_it_whole(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The till is looked up outside the write lock; if it moves to a payee paid in another
    currency before the transaction, the payment is refused and nothing is written."""
    join_bk(scheme)
    real = scheme._read

    @contextmanager
    def moved_after_the_lookup() -> Iterator[Any]:
        with real() as conn:
            yield conn
        monkeypatch.setattr(scheme, "_read", real)
        scheme.remove_alias("maybank", *TILL)  # other requests, committed meanwhile
        scheme.register_alias("bk-rw", *TILL, "Another shop", "RWF")

    before = liquidity(scheme)
    monkeypatch.setattr(scheme, "_read", moved_after_the_lookup)
    with pytest.raises(InvalidPaymentInput, match="paid in RWF"):
        scheme.pay_by_qr(
            "mtn-rw", "q1", "t1", TILL[1], 2550, "MYR", "RWF",
            merchant_name="Kedai Kopi KL", merchant_country="MY",
        )  # fmt: skip
    assert scheme._read == real  # the lookup ran, then the till moved
    assert liquidity(scheme) == before
    with pytest.raises(TransferNotFound):
        scheme.get_transfer("mtn-rw", "t1")
    with pytest.raises(QuoteNotFound):
        scheme.get_quote("mtn-rw", "q1")
    assert_ledger_ok(scheme)


def test_a_transfer_resent_after_its_expiry_is_shown_aborted_and_not_prepared_again(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    join_bk(scheme)
    scheme.create_quote("mtn-rw", "q1", *BK_CUSTOMER, 5_000, "SEND", "RWF")
    scheme.prepare_transfer("mtn-rw", "t1", "q1", ttl_s=5)
    clock.advance(6)
    with unchanged(scheme):
        again = scheme.prepare_transfer("mtn-rw", "t1", "q1", ttl_s=5)
    assert (again.state, again.reason) == (TransferState.ABORTED, "expired")
    assert_ledger_ok(scheme)


def test_a_quote_whose_payee_alias_moved_to_another_participant_is_not_prepared(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: prepare paid the quote's payee participant for an alias that had
    moved since to another (a number given to another bank's customer), and screened the
    new holder's name. Refused, nothing changed: the payer quotes again."""
    join_bk(scheme)
    join(scheme, "bk2", "RWF", deposit=1_000, cap=1_000)
    scheme.create_quote("mtn-rw", "q1", *BK_CUSTOMER, 5_000, "SEND", "RWF")
    scheme.remove_alias("bk-rw", *BK_CUSTOMER)
    scheme.register_alias("bk2", *BK_CUSTOMER, "Someone Else", "RWF")
    with unchanged(scheme), pytest.raises(PartyNotFound, match="no longer registered at bk-rw"):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    scheme.create_quote("mtn-rw", "q2", *BK_CUSTOMER, 5_000, "SEND", "RWF")
    assert scheme.prepare_transfer("mtn-rw", "t2", "q2").payee_participant == "bk2"
    assert_ledger_ok(scheme)


def test_a_quote_whose_payee_alias_was_registered_again_since_is_not_paid(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: an alias removed and registered again by the same participant after
    the quote (a number given to a new customer, here paid in USD) was paid at the quote the
    payer was shown for the old customer, in MYR, and pacs.008 named the new one. Refused by
    prepare and by accept alike, nothing changed: the payer quotes again."""
    scheme.enable_currency("USD")
    scheme.add_currency("maybank", "USD")
    scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    clock.advance(1)
    scheme.remove_alias("maybank", *TILL)
    scheme.register_alias("maybank", *TILL, "A New Shop", "USD")
    with unchanged(scheme), pytest.raises(PartyNotFound, match="quote again"):
        scheme.accept_quote("mtn-rw", "q1")
    with unchanged(scheme), pytest.raises(PartyNotFound, match="quote again"):
        scheme.prepare_transfer("mtn-rw", "t1", "q1")
    assert scheme.get_quote("mtn-rw", "q1").state is QuoteState.QUOTED
    assert_ledger_ok(scheme)


def test_the_registration_priced_is_compared_as_recorded_not_by_two_clocks(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: the alias's registration time was compared with the quote's, two
    clock readings (another worker's, another host's, a clock stepped back): a quote priced
    on a clock behind the registering one was refused "quote again" every time, and a
    re-registration stamped behind the quote was paid. The quote keeps the stamp it priced."""
    now = clock.now_ns()
    scheme.register_alias("maybank", AliasType.MSISDN, "+60123450001", "Siti", "MYR")
    clock.set_ns(now - 10**9)  # the next request's worker runs a second behind
    scheme.create_quote("mtn-rw", "q1", AliasType.MSISDN, "+60123450001", 10_000, "SEND", "RWF")
    assert scheme.prepare_transfer("mtn-rw", "t1", "q1").state is TransferState.RESERVED
    clock.set_ns(now + 10**9)
    scheme.create_quote("mtn-rw", "q2", AliasType.MSISDN, "+60123450001", 10_000, "SEND", "RWF")
    scheme.remove_alias("maybank", AliasType.MSISDN, "+60123450001")
    clock.set_ns(now - 5 * 10**9)  # registered again on a clock behind the quote's
    scheme.register_alias("maybank", AliasType.MSISDN, "+60123450001", "A Stranger", "MYR")
    with unchanged(scheme), pytest.raises(PartyNotFound, match="quote again"):
        scheme.prepare_transfer("mtn-rw", "t2", "q2")
    assert_ledger_ok(scheme)


def test_a_quote_whose_payee_alias_moved_holds_no_fx_liquidity(scheme: PaymentScheme) -> None:
    """Found by a review: accept never looked at the directory, so a quote whose alias had
    moved (or gone) reserved the FX provider's liquidity until it expired, for a prepare that
    would always be refused; and one short of liquidity too was refused by accept for the
    liquidity, by prepare for the alias. Both now refuse it for the alias, first; an
    accepted quote whose alias moved since is not answered ACCEPTED again."""
    before = liquidity(scheme)
    scheme.create_quote("mtn-rw", "q1", *TILL, 100_100, "SEND", "RWF")
    scheme.create_quote("mtn-rw", "q2", *TILL, 100_100, "SEND", "RWF")
    scheme.accept_quote("mtn-rw", "q2")
    reserved = moves(before, liquidity(scheme))
    scheme.remove_alias("maybank", *TILL)
    with unchanged(scheme), pytest.raises(PartyNotFound, match="quote again"):
        scheme.accept_quote("mtn-rw", "q1")
    with unchanged(scheme), pytest.raises(PartyNotFound, match="quote again"):
        scheme.accept_quote("mtn-rw", "q2")
    with unchanged(scheme), pytest.raises(PartyNotFound, match="quote again"):
        scheme.prepare_transfer("mtn-rw", "t2", "q2")
    assert moves(before, liquidity(scheme)) == reserved  # q2's, until it expires; none for q1
    assert_ledger_ok(scheme)


def test_reject_aborts_releases_and_a_transfer_resolves_once(scheme: PaymentScheme) -> None:
    join_bk(scheme)
    before = liquidity(scheme)
    t = pay(scheme, "mtn-rw", "t1", TILL, 100_100, "RWF", commit=False)
    assert moves(before, liquidity(scheme)) == {
        ("mtn-rw", "RWF", "position_reserved"): 100_100,
        ("fxco", "MYR", "position_reserved"): 31_552,
    }
    # A reason the scheme records itself is not the payee's to give (found by a review: a
    # rejection saying "expired" was reported as a timeout and refused again as one).
    for own in ("expired", "held and rejected: sanctions", "released: ok"):
        with unchanged(scheme), pytest.raises(InvalidPaymentInput, match="records that"):
            scheme.reject_transfer("maybank", t.id, own)
    t = scheme.reject_transfer("maybank", t.id, "account closed")
    assert (t.state, t.reason, t.window_id) == (TransferState.ABORTED, "account closed", None)
    assert scheme.get_transfer("mtn-rw", "t1") == t
    assert moves(before, liquidity(scheme)) == {}
    assert scheme.get_quote("mtn-rw", t.quote_id).state is QuoteState.USED
    # Once resolved, a transfer cannot be resolved again, either way.
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.commit_transfer("maybank", "t1")
    pay(scheme, "mtn-rw", "t3", TILL, 100_100, "RWF")
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.commit_transfer("maybank", "t3")
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.reject_transfer("maybank", "t3")
    pay(scheme, "mtn-rw", "t2", BK_CUSTOMER, 5_000, "RWF", commit=False)
    scheme.reject_transfer("bk-rw", "t2")
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.commit_transfer("bk-rw", "t2")
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.reject_transfer("bk-rw", "t2")
    with unchanged(scheme), pytest.raises(InvalidState):
        scheme.review_hold(SCHEME, "t2", True, "not on hold")
    assert_ledger_ok(scheme)


def test_commit_after_expiry_aborts_and_releases_the_reservation(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    before = liquidity(scheme)
    t = pay(scheme, "mtn-rw", "t1", TILL, 100_100, "RWF", commit=False)
    assert t.expires_at_ns == t.created_at_ns + TRANSFER_TTL_S * NS_PER_S
    clock.advance(TRANSFER_TTL_S + 1)
    assert scheme.get_transfer("maybank", "t1").state is TransferState.ABORTED  # view
    with pytest.raises(TransferExpired):
        scheme.commit_transfer("maybank", "t1")
    t = scheme.get_transfer("mtn-rw", "t1")
    assert (t.state, t.reason) == (TransferState.ABORTED, "expired")
    # Aborted means released: no RWF or MYR may stay reserved for it.
    assert moves(before, liquidity(scheme)) == {}
    # A reviewer is told so too, of one past its expiry the deadline pass has not recorded
    # yet: it was told the transfer "is RESERVED, not on hold" while GET read it expired.
    pay(scheme, "mtn-rw", "t4", TILL, 100_100, "RWF", commit=False)
    clock.advance(TRANSFER_TTL_S + 1)
    with unchanged(scheme), pytest.raises(TransferExpired, match="t4 expired"):
        scheme.review_hold(SCHEME, "t4", True, "not on hold")
    assert_ledger_ok(scheme)


@pytest.mark.parametrize("ledger_ahead", [False, True], ids=["one-clock", "ledger-ahead"])
@pytest.mark.parametrize("off_ns", [-1, 0, 1], ids=["1ns-before", "at-expiry", "1ns-after"])
@pytest.mark.parametrize("decision", ["commit", "reject"])
def test_a_decision_at_the_expiry_instant_is_told_expired_and_records_the_abort(
    scheme: PaymentScheme, clock: FakeClock, decision: str, off_ns: int, ledger_ahead: bool
) -> None:
    """The scheme expires a transfer at ``expires_at`` on its clock; the ledger voids its
    pending legs when their timeout passes on the ledger's time, which is its stamps: at
    least the clock, and ahead of it when another worker's clock is (or a batch's stamps
    ran on). A decision the scheme let through but the ledger found expired was refused
    ``transfer_expired`` with nothing recorded: the transfer stayed RESERVED, though it could
    never be committed. At and after the instant of expiry, and whenever the ledger has
    voided the legs, a decision is told it expired and leaves the transfer ABORTED,
    "expired", its funds released; a decision 1 ns before, on one clock, is taken."""
    before = liquidity(scheme)
    t = pay(scheme, "mtn-rw", "t1", TILL, 100_100, "RWF", commit=False)
    if ledger_ahead:  # another worker, whose clock runs 1 µs ahead, writes to the ledger
        ahead = FakeClock(t.expires_at_ns + off_ns + 1_000)
        other = PaymentScheme(scheme.engine, Ledger(scheme.engine, ahead), ahead)
        other.deposit("maybank", "MYR", 1, "dep-ahead")
        before[("maybank", "MYR")]["settlement_balance_minor"] += 1
    clock.set_ns(t.expires_at_ns + off_ns)

    def decide() -> PaymentTransfer:
        if decision == "commit":
            return scheme.commit_transfer("maybank", "t1")
        return scheme.reject_transfer("maybank", "t1")

    if off_ns < 0 and not ledger_ahead:
        done = decide()
        assert done.state is (
            TransferState.COMMITTED if decision == "commit" else TransferState.ABORTED
        )
        return
    with pytest.raises(TransferExpired):
        decide()
    t = scheme.get_transfer("mtn-rw", "t1")
    assert (t.state, t.reason) == (TransferState.ABORTED, "expired")
    with scheme.engine.connect() as conn:  # recorded, not only shown so
        row = conn.execute(
            sa.select(st.transfers.c.state, st.transfers.c.reason).where(st.transfers.c.id == "t1")
        ).one()
    assert tuple(row) == ("ABORTED", "expired")
    assert moves(before, liquidity(scheme)) == {}
    with unchanged(scheme), pytest.raises(TransferExpired):  # a retry: told alike
        decide()
    assert_ledger_ok(scheme)


def test_process_deadlines_aborts_expired_transfers_and_releases_them(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    before = liquidity(scheme)
    pay(scheme, "mtn-rw", "t1", TILL, 100_100, "RWF", commit=False)
    clock.advance(TRANSFER_TTL_S + 1)
    assert scheme.process_deadlines() == {
        "quotes_expired": 0,  # its quote is USED
        "transfers_aborted": 1,
        "escrows_resolved": 0,
        "escrows_failed": 0,
    }
    t = scheme.get_transfer("mtn-rw", "t1")
    assert (t.state, t.reason) == (TransferState.ABORTED, "expired")
    assert moves(before, liquidity(scheme)) == {}
    # a commit after the deadline pass aborted it is told it expired, as one before it is
    with unchanged(scheme), pytest.raises(TransferExpired):
        scheme.commit_transfer("maybank", "t1")
    assert_ledger_ok(scheme)


def test_a_deadline_pass_with_more_legs_than_one_ledger_batch_still_acts(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: every expired transfer's legs were voided in one ledger batch, and
    past 8,190 legs the ledger refused it (BatchTooLarge): the whole pass rolled back, every
    pass after it too (the backlog only grew), and no escrow deadline acted again."""
    pay(scheme, "mtn-rw", "t1", TILL, 100_100, "RWF", commit=False)
    with scheme.engine.begin() as conn:
        (row,) = conn.execute(sa.select(st.transfers).where(st.transfers.c.id == "t1")).all()
        conn.execute(
            sa.insert(st.transfers),
            [
                {**row._asdict(), "id": f"t-copy-{n}", "quote_id": f"q-copy-{n}", "seq": 2 + n}
                for n in range(BATCH_EVENTS_MAX)
            ],
        )
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    scheme.create_escrow("mtn-rw", "e-1", "bk-rw", "RWF", 1_000, "order o-1", 1, "refund")
    clock.advance(TRANSFER_TTL_S + 1)
    done = scheme.process_deadlines()
    assert (done["transfers_aborted"], done["escrows_resolved"]) == (BATCH_EVENTS_MAX + 1, 1)
    assert scheme.get_transfer("mtn-rw", "t1").state is TransferState.ABORTED
    assert_ledger_ok(scheme)


def test_payments_and_the_deadline_pass_read_only_the_rows_they_need(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """The deadline pass runs under the write lock, as do a quote's acceptance and a commit:
    the pass read every quote, transfer and escrow the scheme ever made (33 ms a pass at
    200,000 transfers, growing with its history), an acceptance every quote of its payer, a
    commit every settlement window there ever was. Partial indexes of the open rows serve
    them now: no statement of a payment's life or of the pass reads a whole table."""
    if scheme.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plans (PostgreSQL's depend on its statistics)")
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    with recorded(scheme.engine) as statements:
        pay(scheme, "mtn-rw", "t-done", TILL, 100_100, "RWF")
        pay(scheme, "mtn-rw", "t-open", TILL, 100_100, "RWF", commit=False)
        scheme.create_escrow("mtn-rw", "e1", "bk-rw", "RWF", 50_000, "order 1", 60)
        scheme.create_quote("mtn-rw", "q-open", *TILL, 100_100, "SEND", "RWF")
        scheme.accept_quote("mtn-rw", "q-open")
        clock.advance(TRANSFER_TTL_S + QUOTE_TTL_S + 61)
        assert scheme.process_deadlines() == {
            "quotes_expired": 1,
            "transfers_aborted": 1,
            "escrows_resolved": 1,
            "escrows_failed": 0,
        }
    scans = full_scans(scheme.engine, statements)
    tables = ("pay_quotes", "pay_transfers", "pay_escrows", "pay_settlement_windows")
    assert [(s, step) for s, step in scans if step.split()[1] in tables] == []


def test_the_scheme_has_one_open_settlement_window_at_most(scheme: PaymentScheme) -> None:
    scheme.current_window()
    with pytest.raises(sa.exc.IntegrityError), scheme.engine.begin() as conn:
        conn.execute(sa.insert(st.windows).values(state="OPEN", opened_at=1))


# ---------------------------------------------------------------------------------- screening
def test_held_transfer_approved_then_committed(
    scheme: PaymentScheme, screened: tuple[PaymentScheme, HoldOver]
) -> None:
    s, screening = screened
    s.set_endpoint("mtn-rw", "https://mtn.example/callbacks")
    s.set_endpoint("maybank", "https://maybank.example/callbacks")
    before = liquidity(s)
    small = pay(s, "mtn-rw", "t-small", TILL, 1_000_000, "RWF", commit=False)
    assert small.state is TransferState.RESERVED
    t = pay(s, "mtn-rw", "t1", TILL, 1_000_001, "RWF", commit=False)
    assert (t.state, t.reason) == (TransferState.HOLD, "amount over review threshold; new corridor")
    assert [x[0] for x in screening.seen] == ["t-small", "t1"]
    assert screening.seen[1][1] == s.lookup_party(*TILL)
    # On hold the funds stay reserved, and the payee can do nothing yet.
    myr = int((Decimal(1_000_001 - fee_of(1_000_001)) * RATE * 100).to_integral(ROUND_DOWN))
    myr_small = int((Decimal(1_000_000 - 5_000) * RATE * 100).to_integral(ROUND_DOWN))
    assert moves(before, liquidity(s)) == {
        ("mtn-rw", "RWF", "position_reserved"): 2_000_001,
        ("fxco", "MYR", "position_reserved"): myr + myr_small,
    }
    with unchanged(s), pytest.raises(InvalidState):
        s.commit_transfer("maybank", "t1")
    with unchanged(s), pytest.raises(InvalidState):
        s.reject_transfer("maybank", "t1")
    with unchanged(s), pytest.raises(NotYours):
        s.review_hold("maybank", "t1", True, "mine")
    with unchanged(s), pytest.raises(NotYours):
        s.review_hold("mtn-rw", "t1", True, "mine")
    with unchanged(s), pytest.raises(InvalidState):
        s.review_hold(SCHEME, "t-small", True, "not held")

    t = s.review_hold(SCHEME, "t1", True, "customer verified")
    assert (t.state, t.reason) == (TransferState.RESERVED, "released: customer verified")
    assert s.get_transfer("maybank", "t1").state is TransferState.RESERVED
    t = s.commit_transfer("maybank", "t1")
    # the payee's own answer carries no reviewer's words either (it did: found by a review)
    assert (t.state, t.reason) == (TransferState.COMMITTED, None)
    # The reviewer's words are the payer's and the operator's, after the commit too, and the
    # payer is told of the release (a review found it told of the hold, then nothing until
    # the commit, whose reason was null); the payee never reads them.
    words = "released: customer verified"
    assert s.get_transfer("mtn-rw", "t1").reason == words
    assert s.get_transfer(SCHEME, "t1").reason == words
    assert s.get_transfer("maybank", "t1").reason is None
    told = [
        (n["event"], n["body"]["reason"])
        for who in ("mtn-rw", "maybank")
        for n in s.notifications(who)
        if n["body"]["transferId"] == "t1"
    ]
    assert told == [
        ("transfer.hold", "amount over review threshold; new corridor"),
        ("transfer.reserved", words),
        ("transfer.committed", words),
        ("transfer.reserved", None),
    ]
    assert moves(before, liquidity(s)) == {
        ("mtn-rw", "RWF", "net_position"): -1_000_001,
        ("mtn-rw", "RWF", "position_reserved"): 1_000_000,
        (SCHEME, "RWF", "net_position"): fee_of(1_000_001),
        ("fxco", "RWF", "net_position"): 1_000_001 - fee_of(1_000_001),
        ("fxco", "MYR", "net_position"): -myr,
        ("fxco", "MYR", "position_reserved"): myr_small,
        ("maybank", "MYR", "net_position"): myr,
    }
    assert_ledger_ok(s)


def test_a_review_rejecting_a_hold_the_ledger_expired_records_the_expiry(
    screened: tuple[PaymentScheme, HoldOver], clock: FakeClock
) -> None:
    """As a payee's decision (above): the reviewer rejects 1 ns before the expiry on its
    clock, but the ledger, whose time another worker's clock moved ahead, voided the legs:
    told expired, and the transfer is ABORTED, "expired", not left on HOLD."""
    s, _ = screened
    before = liquidity(s)
    t = pay(s, "mtn-rw", "t1", TILL, 2_000_000, "RWF", commit=False)
    assert t.state is TransferState.HOLD
    ahead = FakeClock(t.expires_at_ns + 1_000)
    PaymentScheme(s.engine, Ledger(s.engine, ahead), ahead).deposit("maybank", "MYR", 1, "d")
    before[("maybank", "MYR")]["settlement_balance_minor"] += 1
    clock.set_ns(t.expires_at_ns - 1)
    with pytest.raises(TransferExpired):
        s.review_hold(SCHEME, "t1", False, "sanctions match")
    t = s.get_transfer("mtn-rw", "t1")
    assert (t.state, t.reason) == (TransferState.ABORTED, "expired")
    assert moves(before, liquidity(s)) == {}
    with unchanged(s), pytest.raises(TransferExpired):
        s.review_hold(SCHEME, "t1", False, "sanctions match")
    assert_ledger_ok(s)


@pytest.mark.parametrize("commit", [True, False])
def test_the_payees_decision_on_a_hold_past_its_expiry_is_transfer_expired_and_recorded(
    screened: tuple[PaymentScheme, HoldOver], clock: FakeClock, commit: bool
) -> None:
    """Found by a review: a commit or reject of a held transfer at or after its expiry was
    refused "on hold for review" and recorded nothing (the deadline pass would), while the
    payee's own GET read it ABORTED, expired; every decision at or after the expiry is
    ``transfer_expired`` and records the abort, this one too."""
    s, _ = screened
    before = liquidity(s)
    t = pay(s, "mtn-rw", "t1", TILL, 2_000_000, "RWF", commit=False)
    assert t.state is TransferState.HOLD
    clock.set_ns(t.expires_at_ns)
    decide = s.commit_transfer if commit else s.reject_transfer
    with pytest.raises(TransferExpired):
        decide("maybank", "t1")
    t = s.get_transfer("mtn-rw", "t1")
    assert (t.state, t.reason) == (TransferState.ABORTED, "expired")
    assert moves(before, liquidity(s)) == {}  # released
    with unchanged(s), pytest.raises(TransferExpired):  # and a retry is told the same
        decide("maybank", "t1")
    assert s.process_deadlines()["transfers_aborted"] == 0  # nothing left for the pass
    assert_ledger_ok(s)


def test_held_transfer_rejected_by_review_or_expired_is_aborted_and_released(
    scheme: PaymentScheme, screened: tuple[PaymentScheme, HoldOver], clock: FakeClock
) -> None:
    s, _ = screened
    before = liquidity(s)
    t = pay(s, "mtn-rw", "t1", TILL, 2_000_000, "RWF", commit=False)
    assert t.state is TransferState.HOLD
    assert moves(before, liquidity(s))[("mtn-rw", "RWF", "position_reserved")] == 2_000_000
    t = s.review_hold(SCHEME, "t1", False, "sanctions match")
    assert (t.state, t.reason) == (TransferState.ABORTED, "held and rejected: sanctions match")
    assert moves(before, liquidity(s)) == {}
    with unchanged(s), pytest.raises(InvalidState):
        s.review_hold(SCHEME, "t1", True, "changed my mind")
    with unchanged(s), pytest.raises(InvalidState):
        s.commit_transfer("maybank", "t1")
    # Nobody reviews t2: it expires on hold, and the deadline aborts and releases it.
    pay(s, "mtn-rw", "t2", TILL, 2_000_000, "RWF", commit=False)
    clock.advance(TRANSFER_TTL_S + 1)
    with pytest.raises(TransferExpired):  # too late: aborted, and the reservation released
        s.review_hold(SCHEME, "t2", True, "too late")
    assert s.process_deadlines()["transfers_aborted"] == 0
    assert s.get_transfer("mtn-rw", "t2").state is TransferState.ABORTED
    # A review retried, or of a held transfer the deadline pass aborted, is told that it
    # expired, as the first was (not invalid_state "ABORTED"), and changes nothing.
    pay(s, "mtn-rw", "t3", TILL, 2_000_000, "RWF", commit=False)
    clock.advance(TRANSFER_TTL_S + 1)
    assert s.process_deadlines()["transfers_aborted"] == 1
    for tid in ("t2", "t3"):
        with unchanged(s), pytest.raises(TransferExpired):
            s.review_hold(SCHEME, tid, True, "too late")
    assert moves(before, liquidity(s)) == {}
    assert_ledger_ok(s)


def test_the_payee_of_a_held_transfer_is_not_shown_why_it_is_held(
    scheme: PaymentScheme, screened: tuple[PaymentScheme, HoldOver]
) -> None:
    """Screening's reasons (a fraud score about the payer's customer, a sanctions candidate)
    are for the payer and the reviewer: the payee sees that the transfer is on hold, not why,
    in what it reads and in the refusal of its commit."""
    s, _ = screened
    t = pay(s, "mtn-rw", "t1", TILL, 1_000_001, "RWF", commit=False)
    why = "amount over review threshold; new corridor"
    assert (t.state, t.reason) == (TransferState.HOLD, why)
    for caller in ("mtn-rw", SCHEME):
        assert s.get_transfer(caller, "t1").reason == why
    assert [x.reason for x in s.list_transfers("mtn-rw")] == [why]
    seen = s.get_transfer("maybank", "t1")
    assert (seen.state, seen.reason) == (TransferState.HOLD, None)
    assert [(x.state, x.reason) for x in s.list_transfers("maybank")] == [
        (TransferState.HOLD, None)
    ]
    with unchanged(s), pytest.raises(InvalidState) as refused:
        s.commit_transfer("maybank", "t1")
    assert "on hold for review" in str(refused.value)
    assert "threshold" not in str(refused.value)
    # Released or rejected by the reviewer, the payee sees the state, not the reviewer's
    # words (which name what screening suspected, of whom) nor that a review decided: in
    # what it reads and in its notices. The payer and the operator read them.
    for who in ("mtn-rw", "maybank"):
        s.set_endpoint(who, f"http://127.0.0.1:9/{who}")
    s.review_hold(SCHEME, "t1", True, "payee name cleared against SDN-123")
    assert s.get_transfer("maybank", "t1").reason is None
    assert s.get_transfer("mtn-rw", "t1").reason == "released: payee name cleared against SDN-123"
    t2 = pay(s, "mtn-rw", "t2", TILL, 1_000_001, "RWF", commit=False)
    assert t2.state is TransferState.HOLD
    s.review_hold(SCHEME, "t2", False, "payee is SDN-123")
    seen = s.get_transfer("maybank", "t2")
    assert (seen.state, seen.reason) == (TransferState.ABORTED, None)
    assert [x.reason for x in s.list_transfers("maybank")] == [None, None]
    assert s.get_transfer(SCHEME, "t2").reason == "held and rejected: payee is SDN-123"
    told = {
        (who, n["event"], n["body"]["transferId"]): n["body"].get("reason")
        for who in ("mtn-rw", "maybank")
        for n in s.notifications(who)
    }
    assert told[("maybank", "transfer.reserved", "t1")] is None
    assert told[("maybank", "transfer.aborted", "t2")] is None
    assert told[("mtn-rw", "transfer.aborted", "t2")] == "held and rejected: payee is SDN-123"
    assert not any(reason for (who, *_), reason in told.items() if who == "maybank")


# ---------------------------------------------------------------------------------- directory
def test_ids_and_countries_are_ascii_as_the_api_takes_them(scheme: PaymentScheme) -> None:
    """Found by a review: the service (and so the CLI) took any script's letters and digits
    in ids ("bänk-١") and any two upper-case letters as a country ("ÄÖ"), which the API's
    schemas refuse: the CLI made participants, quotes and transfers the API could not name."""
    for call, field in (
        (
            lambda: scheme.register_participant("bänk-١", "B", "bank", "BE", ["EUR"]),
            "participant id",
        ),
        (lambda: scheme.register_participant("bank-x", "B", "bank", "ÄÖ", ["EUR"]), "country"),
        # shaped like a country, naming none (found by a review): only the scheme's own
        # participant, of no one country, is ZZ
        (lambda: scheme.register_participant("bank-x", "B", "bank", "ZZ", ["EUR"]), "country"),
        (lambda: scheme.register_participant("bank-x", "B", "bank", "AA", ["EUR"]), "country"),
        (lambda: scheme.create_quote("mtn-rw", "q-١", *TILL, 1_000, "SEND", "RWF"), "quote id"),
    ):
        with unchanged(scheme), pytest.raises(InvalidPaymentInput) as refused:
            call()
        assert refused.value.field == field
    assert scheme.register_participant("bank-x_1", "B", "bank", "BE", ["EUR"]).country == "BE"
    assert scheme.register_participant("bank-xk", "B", "bank", "XK", ["EUR"]).country == "XK"
    assert scheme.get_participant(SCHEME).country == "ZZ"


def test_malformed_input_and_aliases_are_refused(scheme: PaymentScheme) -> None:
    bad_calls = [
        lambda: scheme.create_quote("mtn-rw", "q1", *TILL, 0, "SEND", "RWF"),
        lambda: scheme.create_quote("mtn-rw", "q1", *TILL, 10_000, "BOTH", "RWF"),
        lambda: scheme.create_quote("mtn-rw", "q 1", *TILL, 10_000, "SEND", "RWF"),
        lambda: scheme.create_quote("mtn-rw", "q1", *TILL, 100, "SEND", "RWF", ttl_s=0),
        lambda: scheme.create_quote("mtn-rw", "q1", *TILL, 1, "SEND", "RWF"),  # 0.3168 sen
        lambda: scheme.create_quote("mtn-rw", "q1", *TILL, 10**16, "SEND", "RWF"),
        lambda: scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal(0), 100, 60),
        lambda: scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal("0.003"), 10_000, 60),
    ]
    for call in bad_calls:
        with unchanged(scheme), pytest.raises(InvalidPaymentInput):
            call()
    with unchanged(scheme), pytest.raises(CurrencyNotSupported):
        scheme.create_quote("mtn-rw", "q1", *TILL, 10_000, "SEND", "EUR")
    # Look-ups normalise, and work across countries.
    party = scheme.lookup_party("MSISDN", "+250 788-123-456")
    assert party == Party(AliasType.MSISDN, "+250788123456", "mtn-rw", "Aline Uwase", "RWF", "RW")
    assert scheme.lookup_party(*TILL).participant_id == "maybank"
    with pytest.raises(PartyNotFound):
        scheme.lookup_party("MSISDN", "+250788000000")

    bad = [
        ("MSISDN", "0788123456"),  # no country code
        ("MSISDN", "+0788123456"),  # country codes do not start with 0
        ("MSISDN", "+25078"),  # too short
        ("MSISDN", "+2507881234567890"),  # too long
        ("IBAN", "GB82WEST12345698765433"),  # check digits fail (…432 is the valid one)
        ("IBAN", "GB82WEST1234569876543"),  # GB IBANs have 22 characters
        ("IBAN", "GB82-WEST"),
        ("MERCHANT", "-till"),
        ("PASSPORT", "X123"),
        ("MSISDN", "+44 (0)20 7946 0958"),  # a trunk 0 in brackets: not E.164 as written
        ("IBAN", "XX0812345678901"),  # no such country (passes mod-97)
        ("IBAN", "US02123456789012345"),  # a country without IBANs
        ("IBAN", "NO2912345678901234567890"),  # Norway's are 15 characters
        ("IBAN", "DE00370400440532013000"),  # check digits 00 are never issued
        ("BUSINESS", "HRB/12345"),  # the API names it in its path: a slash cannot be there
        # "$" matched before a final newline: "+250788123456\n" registered as a second
        # copy of mtn-rw's number (the ")" stripped after the strip left the newline last)
        ("MSISDN", "+250788123456\n)"),
        ("MSISDN", "+250788123456\n-"),
        ("MERCHANT", "KL-TILL-42\n)"),
    ]
    for kind, value in bad:
        with unchanged(scheme), pytest.raises(InvalidPaymentInput):
            scheme.register_alias("maybank", kind, value, "Someone", "MYR")
    with unchanged(scheme), pytest.raises(InvalidPaymentInput):
        scheme.create_quote("mtn-rw", "q1", "IBAN", "GB82WEST12345698765433", 1_000, "SEND", "RWF")

    iban = scheme.register_alias("maybank", "IBAN", "gb82 west 1234 5698 7654 32", "Co", "MYR")
    assert (iban.alias_type, iban.alias, iban.country) == (
        AliasType.IBAN,
        "GB82WEST12345698765432",
        "MY",
    )
    # a Senegalese bank's IBAN: outside ISO 13616's registry, issued nationally (UEMOA), and
    # accepted on purpose (docs/payments.md, Lookup)
    sn = scheme.register_alias("maybank", "IBAN", "SN08 SN01 0015 2000 0485 0000 3035", "Co", "MYR")
    assert sn.alias == "SN08SN0100152000048500003035"
    # A display name is text another participant's messages carry: no control characters,
    # not only spaces (a NUL was a 500 on PostgreSQL; U+0001 broke the payer's pacs.008).
    for name, why in (
        ("Kedai\u0001", r"U\+0001"),
        ("a\u0000b", r"U\+0000"),
        ("   ", "only spaces"),
        # nor of joiners, selectors or marks alone: they show nothing (a review)
        ("\u200d", "only spaces"),
        ("\ufe0f\u0301", "only spaces"),
        # and none that shows a payer another name than it holds, or is no text: C1
        # controls (U+0085 ended up in a pacs.008's Cdtr/Nm), a direction override, zero-width
        # space, byte-order mark, line and paragraph separators (found by a review)
        ("Kedai\u0085Kopi", r"U\+0085"),
        ("Kedai\u009b31mKopi", r"U\+009B"),
        ("Kedai\u202eLK ipoK", r"U\+202E"),
        ("Kedai\u200bKopi", r"U\+200B"),
        ("\ufeffKedai Kopi", r"U\+FEFF"),
        ("Kedai\u2028Kopi", r"U\+2028"),
        ("Kedai\u2029Kopi", r"U\+2029"),
        # nor one that renders as nothing though it is no format character (a review)
        ("Kedai\u3164Kopi KL", r"U\+3164"),
        ("\u2800", r"U\+2800"),
        ("Ked\u034fai", r"U\+034F"),
        ("Kedai\u17b4Kopi", r"U\+17B4"),
        ("Kedai\ufdd0Kopi", r"U\+FDD0"),  # a non-character
        ("Kedai\u2065Kopi", r"U\+2065"),  # reserved default-ignorable
    ):
        with unchanged(scheme), pytest.raises(InvalidPaymentInput, match=why):
            scheme.register_alias("maybank", "MERCHANT", "KL-TILL-77", name, "MYR")
    # the joiners Persian and the Indic scripts write names with are text
    joined = scheme.register_alias(
        "maybank", "MERCHANT", "KL-TILL-78", "\u0645\u06cc\u200c\u0631", "MYR"
    )
    assert joined.display_name == "\u0645\u06cc\u200c\u0631"
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match=r"U\+0085"):
        scheme.register_participant("bk-x", "Bank\u0085X", "bank", "RW", ["RWF"])
    # A business id is typed by people from a certificate: its case and spacing name one
    # business, which registered as three parties at three participants.
    acme = scheme.register_alias("maybank", "BUSINESS", " ACME Ltd 12345 ", "Acme", "MYR")
    assert acme.alias == "ACME LTD 12345"
    for spelling in ("acme ltd 12345", "ACME  Ltd   12345"):
        assert scheme.lookup_party("BUSINESS", spelling).participant_id == "maybank"
        with unchanged(scheme), pytest.raises(AliasTaken):
            scheme.register_alias("mtn-rw", "BUSINESS", spelling, "Acme again", "RWF")
    # Taken by another participant, or already registered by the same one.
    with unchanged(scheme), pytest.raises(AliasTaken):
        scheme.register_alias("mtn-rw", *TILL, "Impostor", "RWF")
    with unchanged(scheme), pytest.raises(AliasTaken):
        scheme.register_alias("mtn-rw", "MSISDN", "+250 788 123 456", "Aline again", "RWF")
    with unchanged(scheme), pytest.raises(CurrencyNotSupported):
        scheme.register_alias("mtn-rw", "MSISDN", "+250788999999", "Euro account", "EUR")
    # Only the owner removes an alias.
    with unchanged(scheme), pytest.raises(NotYours):
        scheme.remove_alias("mtn-rw", *TILL)
    with unchanged(scheme), pytest.raises(PartyNotFound):
        scheme.remove_alias("mtn-rw", "MSISDN", "+250788000000")
    scheme.remove_alias("maybank", *TILL)
    with pytest.raises(PartyNotFound):
        scheme.lookup_party(*TILL)
    # Once free, another participant may take it.
    assert scheme.register_alias("mtn-rw", *TILL, "Kigali till", "RWF").participant_id == "mtn-rw"
    assert_ledger_ok(scheme)


def test_a_joined_unit_of_work_is_never_committed_half_way(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    from entrepot.storage.uow import UnitOfWork

    join_bk(scheme)
    t = pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    clock.advance(61)  # the transfer expired: commit aborts it, and would commit that abort
    with UnitOfWork(scheme.engine) as uow, scheme.joined(uow):
        scheme.register_alias("bk-rw", "MSISDN", "+250722000999", "Joined", "RWF")
        with pytest.raises(TransferExpired):
            scheme.commit_transfer("bk-rw", t.id)
        uow.rollback()  # the caller gives up: nothing of its work may have landed
    with pytest.raises(PartyNotFound):
        scheme.lookup_party("MSISDN", "+250722000999")
    assert scheme.get_transfer("bk-rw", t.id).state is TransferState.ABORTED  # (by expiry)


def test_quote_and_prepare_commit_together_or_leave_nothing(scheme: PaymentScheme) -> None:
    """Pay-by-QR's quote and prepare run in one transaction: a prepare the cap refuses
    leaves no quote behind; one that passes leaves the quote used and the transfer reserved."""
    join_bk(scheme)
    cap = scheme.liquidity("mtn-rw", "RWF")["position_available_minor"]
    with unchanged(scheme), pytest.raises(NetDebitCapExceeded):
        scheme.quote_and_prepare("mtn-rw", "q-big", "t-big", *BK_CUSTOMER, cap * 2, "SEND", "RWF")
    with pytest.raises(QuoteNotFound):
        scheme.get_quote("mtn-rw", "q-big")
    q, t = scheme.quote_and_prepare("mtn-rw", "q-ok", "t-ok", *TILL, 2_550, "RECEIVE", "RWF")
    assert q.fx_provider == "fxco"  # cross-currency: the FX reservation is in the same commit
    assert q.state is QuoteState.USED and t.state is TransferState.RESERVED
    assert scheme.get_quote("mtn-rw", "q-ok") == q
    assert scheme.get_transfer("mtn-rw", "t-ok") == t
    assert_ledger_ok(scheme)


def test_an_amount_in_the_wrong_currency_is_refused_before_the_quote_is_written(
    scheme: PaymentScheme,
) -> None:
    """A RECEIVE amount is in the payee's currency, a SEND amount in the source currency;
    stated otherwise, nothing is priced or written (the API checked after the write once)."""
    with unchanged(scheme):
        with pytest.raises(InvalidPaymentInput, match="RECEIVE amount is in MYR, not RWF"):
            scheme.create_quote(
                "mtn-rw", "q-cur", *TILL, 1000, "RECEIVE", "RWF", amount_currency="RWF"
            )
        with pytest.raises(InvalidPaymentInput, match="SEND amount is in RWF, not MYR"):
            scheme.create_quote(
                "mtn-rw", "q-cur", *TILL, 1000, "SEND", "RWF", amount_currency="MYR"
            )
    with pytest.raises(QuoteNotFound):
        scheme.get_quote("mtn-rw", "q-cur")
    q = scheme.create_quote("mtn-rw", "q-cur", *TILL, 1000, "RECEIVE", "RWF", amount_currency="MYR")
    assert q.target_amount_minor == 1000
    with pytest.raises(InvalidPaymentInput, match="not RWF"):  # nor in a resend
        scheme.create_quote("mtn-rw", "q-cur", *TILL, 1000, "RECEIVE", "RWF", amount_currency="RWF")


def test_an_amount_the_rate_takes_past_the_schemes_maximum_is_refused(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    with (
        unchanged(scheme),
        pytest.raises(InvalidPaymentInput, match="exceeds the scheme's maximum"),
    ):
        scheme.create_quote("mtn-rw", "q-big", *TILL, 999_999_999_999_999, "RECEIVE", "RWF")
    # the least rate: the RWF a RECEIVE amount needs would pass the scheme's maximum
    scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal("0.0000000001"), 0, 3600)
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match="exceeds"):
        scheme.create_quote("mtn-rw", "q-tiny", *TILL, 100_000_000, "RECEIVE", "RWF")


def test_a_provider_does_not_convert_a_payment_it_sends_or_receives(
    scheme: PaymentScheme,
) -> None:
    """A provider that is the payee (or payer) would have its legs debit and credit its own
    account: the next best provider converts, and with none, the quote is refused."""
    scheme.register_alias("fxco", "MSISDN", "+60123456789", "FX Co treasury", "MYR")
    treasury = ("MSISDN", "+60123456789")
    with unchanged(scheme), pytest.raises(NoFxRate):
        scheme.create_quote("mtn-rw", "q-self", *treasury, 1000, "RECEIVE", "RWF")
    join(scheme, "fx2", "MYR", kind="fx_provider", country="SG", deposit=5_000_000, cap=2_000_000)
    scheme.add_currency("fx2", "RWF")
    scheme.deposit("fx2", "RWF", 5_000_000, "dep-fx2-rwf")
    scheme.set_net_debit_cap("fx2", "RWF", 1_000_000)
    scheme.post_fx_rate("fx2", "RWF", "MYR", Decimal("0.0030"), 100, 3600)  # worse than fxco's
    assert scheme.create_quote("mtn-rw", "q-m", *TILL, 1000, "RECEIVE", "RWF").fx_provider == (
        "fxco"
    )
    t = pay(scheme, "mtn-rw", "t-self", treasury, 1000, "RWF", "RECEIVE")
    assert (t.fx_provider, t.state) == ("fx2", TransferState.COMMITTED)
    assert_ledger_ok(scheme)


def test_a_participant_refused_for_one_of_its_currencies_is_not_registered_at_all(
    scheme: PaymentScheme,
) -> None:
    """Its currencies were added one transaction each, after the participant's: a currency
    the scheme does not run left it registered without it, and registering it again said
    "already exists". A BIC was not checked outside the API either."""
    for currencies, bic in ((["RWF", "KES"], None), (["XYZ"], None), (["RWF"], "BAD")):
        refusals = (CurrencyNotSupported, InvalidPaymentInput, UnknownCurrency)
        with unchanged(scheme), pytest.raises(refusals):
            scheme.register_participant("bk-new", "New Bank", "bank", "RW", currencies, bic=bic)
    made = scheme.register_participant(
        "bk-new", "New Bank", "bank", "RW", ["RWF", "RWF", "EUR"], bic="BKRWRWRW"
    )
    assert made.currencies.keys() == {"RWF", "EUR"} and made.bic == "BKRWRWRW"
    assert_ledger_ok(scheme)


@pytest.mark.parametrize(
    ("rate", "spread_bps"),
    [
        ("1e400", 100),
        ("0.0000000000001", 100),
        ("1000000000000000000", 100),
        ("1.0000000000001", 100),
        # what a pacs.008's XchgRate (11 digits, 10 after the point) cannot state: a payment
        # made at it could not be exported (422)
        ("100000000000", 0),
        ("99999999999.5", 0),  # rounds to 10^11
        ("0.000000000099", 0),
        ("0.0000000001", 1),  # 10^-10, less its spread
    ],
)
def test_an_fx_rate_the_api_would_refuse_is_refused_by_the_scheme_too(
    scheme: PaymentScheme, rate: str, spread_bps: int
) -> None:
    """The CLI posted 1E+400 (a RECEIVE quote then paid 100 KES for 1 RWF's worth) and rates
    with 30 decimal places; the API's schema refused both, the scheme did not."""
    with unchanged(scheme), pytest.raises(InvalidPaymentInput) as refused:
        scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal(rate), spread_bps, 3600)
    assert refused.value.field == "rate"


def test_an_fx_rate_at_the_limits_is_taken(scheme: PaymentScheme) -> None:
    for rate, spread_bps in (
        ("0.0000000001", 0),
        ("0.000000000102", 100),  # 1.0098e-10 less its spread
        ("99999999999.499999999999", 0),
        ("0.003200000000000000", 100),
    ):
        fx = scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal(rate), spread_bps, 3600)
        assert fx.rate == Decimal(rate)


def test_an_fx_rate_written_with_trailing_zeros_is_kept_as_its_value(scheme: PaymentScheme) -> None:
    """Found by a review: "0.0033" and 50 zeros was taken and stored as sent (a 500 on
    PostgreSQL, whose column holds 64 characters); as the pair's best rate it priced every
    SEND past a quote's 50 digits (422 for every payer). It is its value, 0.0033."""
    fx = scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal("0.0033" + "0" * 50), 100, 3600)
    assert str(fx.rate) == "0.0033"
    with scheme.engine.connect() as conn:
        stored = conn.execute(sa.select(st.fx_rates.c.rate)).scalars().all()
    assert stored == ["0.0033"]
    q = scheme.create_quote("mtn-rw", "q-zeros", *TILL, 10_000, "SEND", "RWF")
    assert q.fx_rate == Decimal("0.003267")
    # the value is never rounded into range: 31 digits are refused, not cut to 28
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match="decimal places"):
        scheme.post_fx_rate("fxco", "RWF", "MYR", Decimal("1." + "0" * 29 + "1"), 0, 3600)


def _rate_just_under_a_sen() -> Decimal:
    """A rate (ringgit a franc) of 23 digits, 11 whole and 12 decimal, whose value less 1 bp
    is 1e-16 under a whole number: a product rounded to fewer digits rounds it up to it (a
    rate of 26 digits did at the default 28, when rates could hold 30)."""
    m = 10**16
    r = (-pow(9_999, -1, m)) % m + 9 * 10**6 * m  # 9,999 x r = -1 (mod 10^16)
    return Decimal(r).scaleb(-12)


@pytest.mark.parametrize("amount_type", ["SEND", "RECEIVE"])
def test_a_long_rate_less_its_spread_is_exact_so_the_payee_gets_no_more_than_funded(
    scheme: PaymentScheme, amount_type: str
) -> None:
    """Found by a review: the spread was taken at Decimal's default 28 digits, so a rate of
    more than 28 digits' worth after it (a rate may hold 30) rounded up: a 1 RWF SEND paid
    a sen more than it funded, and a RECEIVE was priced a sen short."""
    rate = _rate_just_under_a_sen()
    scheme.register_participant("fx2", "FX 2", "fx_provider", "SG", ["RWF", "MYR"])
    fx = scheme.post_fx_rate("fx2", "RWF", "MYR", rate, 1, 3600)
    with localcontext() as wide:  # the test's own arithmetic only: the scheme's runs outside
        wide.prec = 80
        exact = rate * 9_999 / Decimal(10_000)
        assert exact == Decimal(int(exact) + 1) - Decimal("1e-16")  # just under
        amount = 1 if amount_type == "SEND" else int(exact * 100) + 1
    assert fx.effective_rate == exact
    q = scheme.create_quote("mtn-rw", "q-long", *TILL, amount, amount_type, "RWF")
    assert q.fx_provider == "fx2"
    with localcontext() as wide:
        wide.prec = 80
        funded_sen = (q.source_amount_minor - q.fee_minor) * exact * 100  # RWF: no decimals
    assert q.target_amount_minor <= funded_sen
    if amount_type == "SEND":
        assert q.target_amount_minor == int(funded_sen)  # rounded down once


def test_a_qr_that_asks_the_payer_for_its_bill_number_is_paid_with_what_the_payer_entered(
    scheme: PaymentScheme,
) -> None:
    """Found by a review: a tag 62 value of ``***`` asks the payer's app to prompt for it
    (v1.1), but the payment went through with "QR bill ***" as its note and the payer had no
    way to send the value: the merchant could not match it to a bill. The entered values are
    needed, carried in the note; one the QR does not ask for is refused; nothing is written
    by a refusal."""
    text = qr.build_merchant_qr(
        merchant_alias=TILL[1], mcc="5812", currency="MYR", country="MY",
        merchant_name="Kedai Kopi KL", city="Kuala Lumpur", amount_minor=1000,
        bill_number="***", reference_label="***",
    ).text  # fmt: skip
    assert qr.decode(text).prompts == ("bill_number", "reference_label")
    assert qr.shown(qr.decode(text))["prompts"] == ["bill_number", "reference_label"]
    refused = (
        ({}, "prompted.bill_number", "asks the payer for its bill number"),
        ({"bill_number": "BILL-77"}, "prompted.reference_label", "reference label"),
        (
            {"bill_number": "BILL-77", "reference_label": "R", "terminal_label": "T"},
            "prompted.terminal_label",
            "does not ask the payer for its terminal label",
        ),
        ({"bill_number": "B", "reference_label": "x" * 26}, "prompted.reference_label", "1-25"),
        ({"bill_number": "***", "reference_label": "R"}, "prompted.bill_number", "not a value"),
        ({"customer_label": "C"}, "prompted", "not a value a payer enters"),
    )
    for prompted, field, why in refused:
        with unchanged(scheme), pytest.raises(InvalidPaymentInput, match=why) as exc:
            scheme.pay_qr_payload("mtn-rw", "q1", "t1", text, "RWF", prompted=prompted)
        assert exc.value.field == field
    entered = {"bill_number": "BILL-77", "reference_label": "INV-0001"}
    _, _, t = scheme.pay_qr_payload("mtn-rw", "q1", "t1", text, "RWF", prompted=entered)
    assert t.note == "QR bill BILL-77; reference INV-0001"
    # a prompt for what no note carries (a store label) is not listed, nor asked for
    store = qr.build_merchant_qr(
        merchant_alias=TILL[1], mcc="5812", currency="MYR", country="MY",
        merchant_name="Kedai Kopi KL", city="Kuala Lumpur", amount_minor=1000,
        store_label="***",
    ).text  # fmt: skip
    assert qr.decode(store).prompts == ()
    assert scheme.pay_qr_payload("mtn-rw", "q3", "t3", store, "RWF")[2].note is None
    # a QR that asks for nothing takes no entered value
    with unchanged(scheme), pytest.raises(InvalidPaymentInput, match="does not ask"):
        scheme.pay_qr_payload("mtn-rw", "q2", "t2", kedai_qr(1000), "RWF", prompted=entered)


def test_a_suspended_payees_late_commit_is_told_expired_and_records_it(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: a suspended payee's commit after the expiry was refused
    ``participant_suspended`` (as if it could retry once resumed) and left the transfer
    RESERVED; its reject was told ``transfer_expired``. Both are now told expired, and the
    abort is recorded."""
    join_bk(scheme)
    t = pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    scheme.set_active("bk-rw", False)
    clock.advance(TRANSFER_TTL_S + 1)
    with pytest.raises(TransferExpired):
        scheme.commit_transfer("bk-rw", t.id)
    done = scheme.get_transfer("mtn-rw", t.id)
    assert (done.state, done.reason) == (TransferState.ABORTED, "expired")
    with pytest.raises(TransferExpired):
        scheme.reject_transfer("bk-rw", t.id)
    assert_ledger_ok(scheme)


def test_a_suspended_payer_accepts_no_quote_it_accepted_before(scheme: PaymentScheme) -> None:
    """Found by a review: a same-currency quote accepted before the payer's suspension (which
    withdraws only cross-currency ones) was answered ACCEPTED again; a suspended payer
    accepts nothing, nor is a suspended payee paid through one."""
    join_bk(scheme)
    scheme.create_quote("mtn-rw", "q1", *BK_CUSTOMER, 1_000, "SEND", "RWF")
    scheme.accept_quote("mtn-rw", "q1")
    scheme.set_active("mtn-rw", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.accept_quote("mtn-rw", "q1")
    scheme.set_active("mtn-rw", True)
    scheme.set_active("bk-rw", False)
    with unchanged(scheme), pytest.raises(ParticipantSuspended):
        scheme.accept_quote("mtn-rw", "q1")
    scheme.set_active("bk-rw", True)
    assert scheme.accept_quote("mtn-rw", "q1").state is QuoteState.ACCEPTED


def test_paging_transfers_misses_none_written_between_pages(scheme: PaymentScheme) -> None:
    # Ids are the payers' (UUIDs): in id order, a transfer written after the first page with
    # an id below its cursor was never listed, and a payee without an endpoint, reading its
    # transfers to learn of new ones, let it expire unheard.
    join_bk(scheme)
    for tid in ("b", "d", "f"):
        pay(scheme, "mtn-rw", tid, BK_CUSTOMER, 1_000, "RWF", commit=False)
    first = scheme.list_transfers("bk-rw", limit=2)
    assert [t.id for t in first] == ["b", "d"]
    pay(scheme, "mtn-rw", "a", BK_CUSTOMER, 1_000, "RWF", commit=False)
    bulk_transfers(scheme, "mtn-rw", "bulk-1", "RWF", [BulkItem("c", *BK_CUSTOMER, 100)])
    rest = scheme.list_transfers("bk-rw", limit=10, after=first[-1].id)
    assert [t.id for t in rest] == ["f", "a", "c"]
    assert scheme.list_transfers("bk-rw", limit=10, after="c") == []
    # the cursor is one of the caller's transfers: another's is not told to exist
    with pytest.raises(InvalidPaymentInput):
        scheme.list_transfers("icbc", after="a")
    with pytest.raises(InvalidPaymentInput):
        scheme.list_transfers("bk-rw", after="zz")


def test_transfers_written_before_migration_0031_are_paged_by_creation(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    from entrepot.storage.migrate import downgrade, upgrade

    join_bk(scheme)
    pay(scheme, "mtn-rw", "b", BK_CUSTOMER, 1_000, "RWF", commit=False)
    clock.advance(1)
    for tid in ("c", "a"):
        pay(scheme, "mtn-rw", tid, BK_CUSTOMER, 1_000, "RWF", commit=False)
    downgrade(scheme.engine, "0030_quote_payee_registration")
    upgrade(scheme.engine)
    pay(scheme, "mtn-rw", "0", BK_CUSTOMER, 1_000, "RWF", commit=False)
    assert [t.id for t in scheme.list_transfers("bk-rw")] == ["b", "a", "c", "0"]
    assert [t.id for t in scheme.list_transfers("bk-rw", after="a")] == ["c", "0"]


def test_a_dynamic_qr_is_paid_once_until_its_payment_is_aborted(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: a dynamic QR (tag 01 = 12, one payment of its amount) could be paid
    again and again, each a RESERVED transfer to the merchant (a payer scanning twice, or a
    photographed receipt QR, paid the sale twice). The scheme pays it once: a second payment
    with new ids is refused ``qr_already_paid`` and changes nothing, while the first is
    RESERVED, on HOLD or COMMITTED; once that is aborted (rejected, expired) it can be paid
    again. A resend of a payment is answered as it was made; a static QR is paid any number
    of times."""
    join_bk(scheme)
    text = kedai_qr(1000)
    _, _, first = scheme.pay_qr_payload("mtn-rw", "q1", "t1", text, "RWF")
    for payer, ids in (("mtn-rw", ("q2", "t2")), ("bk-rw", ("q9", "t9"))):
        with unchanged(scheme), pytest.raises(QrAlreadyPaid, match="t1") as exc:
            scheme.pay_qr_payload(payer, *ids, text, "RWF")
        assert (exc.value.http_status, exc.value.code) == (409, "qr_already_paid")
    # the same QR with its CRC in lower case is the same QR
    with unchanged(scheme), pytest.raises(QrAlreadyPaid):
        scheme.pay_qr_payload("mtn-rw", "q2", "t2", text[:-4] + text[-4:].lower(), "RWF")
    assert scheme.pay_qr_payload("mtn-rw", "q1", "t1", text, "RWF")[2] == first  # a resend
    scheme.reject_transfer("maybank", "t1", "wrong table")
    _, _, second = scheme.pay_qr_payload("mtn-rw", "q2", "t2", text, "RWF")
    assert second.state is TransferState.RESERVED
    # the first resent after the second: still answered as it was made (ABORTED)
    assert scheme.pay_qr_payload("mtn-rw", "q1", "t1", text, "RWF")[2].state is (
        TransferState.ABORTED
    )
    scheme.commit_transfer("maybank", "t2")
    with unchanged(scheme), pytest.raises(QrAlreadyPaid, match="t2"):
        scheme.pay_qr_payload("mtn-rw", "q3", "t3", text, "RWF")
    # another dynamic QR of the same till and amount (another bill) is another payment
    other = qr.build_merchant_qr(
        merchant_alias=TILL[1], mcc="5812", currency="MYR", country="MY",
        merchant_name="Kedai Kopi KL", city="Kuala Lumpur", amount_minor=1000,
        bill_number="BILL-78",
    ).text  # fmt: skip
    _, _, third = scheme.pay_qr_payload("mtn-rw", "q3", "t3", other, "RWF")
    # an expired payment (not swept yet) frees its QR
    clock.advance(TRANSFER_TTL_S + 1)
    _, _, fourth = scheme.pay_qr_payload("mtn-rw", "q4", "t4", other, "RWF")
    assert (third.id, fourth.state) == ("t3", TransferState.RESERVED)
    # a static QR is paid as often as it is scanned
    for n in (5, 6):
        scheme.pay_qr_payload("mtn-rw", f"q{n}", f"t{n}", kedai_qr(), "RWF", amount="2.00")
    assert_ledger_ok(scheme)
