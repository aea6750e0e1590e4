"""What the operator's monitoring reads (``payments.monitoring``, ``GET /v1/metrics``): each
figure exact after a known history, and read without a scan of what grows with history."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from entrepot.entrypoints.api.metrics import prometheus_text
from entrepot.kernel.clock import FakeClock
from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.monitoring import scheme_snapshot
from tests.query_plans import full_scans, recorded
from tests.service.test_payments import TILL, HoldOver, pay


def prometheus_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    return {
        (m.name, tuple(sorted(m.labels.items()))): m.value
        for family in text_string_to_metric_families(text)
        for m in family.samples
    }


@pytest.fixture
def busy(scheme: PaymentScheme, clock: FakeClock) -> PaymentScheme:
    """A committed payment, one awaiting the payee, two on hold (the first for 25 s), an
    escrow, a closed window not settled, and maybank's endpoint with three notices queued."""
    held = PaymentScheme(
        scheme.engine, scheme.ledger, clock, fees=scheme.fees, screening=HoldOver(1_000_000)
    )
    scheme.set_endpoint("maybank", "https://maybank.example/callbacks")
    pay(held, "mtn-rw", "t-done", TILL, 100_100, "RWF")
    scheme.close_window()
    pay(held, "mtn-rw", "t-open", TILL, 200_200, "RWF", commit=False)
    pay(held, "mtn-rw", "t-hold-1", TILL, 2_000_000, "RWF", commit=False)
    clock.advance(20)
    pay(held, "mtn-rw", "t-hold-2", TILL, 3_000_000, "RWF", commit=False)
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    scheme.create_escrow("mtn-rw", "e1", "bk-rw", "RWF", 50_000, "order 1", 3600)
    clock.advance(5)
    return held


def test_the_snapshot_states_the_schemes_figures(busy: PaymentScheme) -> None:
    s = scheme_snapshot(busy)
    mtn = next(p for p in s.positions if (p.participant_id, p.currency) == ("mtn-rw", "RWF"))
    assert mtn == next(p for p in s.positions if p.participant_id == "mtn-rw")  # it holds RWF only
    liquidity = busy.liquidity("mtn-rw", "RWF")
    assert (
        mtn.settlement_balance_minor,
        mtn.net_debit_cap_minor,
        mtn.position_available_minor,
        mtn.position_reserved_minor,
        mtn.net_position_minor,
    ) == (
        liquidity["settlement_balance_minor"],
        liquidity["net_debit_cap_minor"],
        liquidity["position_available_minor"],
        liquidity["position_reserved_minor"],
        liquidity["net_position_minor"],
    )
    # reserved: the three undecided payments and the escrow; sent: the committed one
    assert mtn.position_reserved_minor == 200_200 + 2_000_000 + 3_000_000
    assert mtn.position_available_minor == 10_000_000 - 100_100 - 5_200_200 - 50_000
    assert mtn.cap_used == pytest.approx((100_100 + 5_200_200 + 50_000) / 10_000_000)
    fxco_cny = next(p for p in s.positions if (p.participant_id, p.currency) == ("fxco", "CNY"))
    assert fxco_cny.cap_used is None  # no cap in CNY
    assert s.transfers_open == {"RESERVED": 1, "HOLD": 2}
    assert s.oldest_hold_age_s == pytest.approx(25.0)  # held 20 s before the last, then 5
    assert s.escrows_held == {"RWF": (1, 50_000)}
    assert s.window_open_id == 2 and s.windows_unsettled == 1
    assert s.window_open_age_s == pytest.approx(25.0)
    # maybank hears of what is reserved for it; mtn-rw registered no endpoint
    assert s.notices_pending == {"maybank": 2}
    assert set(s.oldest_notice_age_s) == {"maybank"}
    assert s.notices_abandoned == {}


def test_the_figures_follow_the_decisions(busy: PaymentScheme, clock: FakeClock) -> None:
    busy.review_hold("scheme", "t-hold-1", False, "confirmed")
    busy.commit_transfer("maybank", "t-open")
    busy.settle_window("scheme", 1)
    s = scheme_snapshot(busy)
    assert s.transfers_open == {"RESERVED": 0, "HOLD": 1}
    assert s.oldest_hold_age_s == pytest.approx(5.0)
    assert s.windows_unsettled == 0
    mtn = next(p for p in s.positions if p.participant_id == "mtn-rw")
    assert mtn.position_reserved_minor == 3_000_000


def test_the_prometheus_text_carries_the_same_figures(busy: PaymentScheme) -> None:
    text = prometheus_text(scheme_snapshot(busy)).decode()
    samples = prometheus_samples(text)
    assert samples[("entrepot_transfers_open", (("state", "HOLD"),))] == 2
    key = (("currency", "RWF"), ("participant", "mtn-rw"))
    assert samples[("entrepot_position_reserved_minor", key)] == 5_200_200
    assert samples[("entrepot_net_debit_cap_used_ratio", key)] == pytest.approx(0.53503)
    assert (
        "entrepot_net_debit_cap_used_ratio",
        (("currency", "CNY"), ("participant", "fxco")),
    ) not in samples
    assert (
        samples[("entrepot_participant_active", (("kind", "wallet"), ("participant", "mtn-rw")))]
        == 1
    )
    assert samples[("entrepot_escrow_held_minor", (("currency", "RWF"),))] == 50_000
    assert samples[("entrepot_settlement_windows_unsettled", ())] == 1
    assert samples[("entrepot_notifications_pending", (("participant", "maybank"),))] == 2
    assert samples[("entrepot_transfer_oldest_hold_age_seconds", ())] == pytest.approx(25.0)
    busy.set_active("mtn-rw", False)
    text = prometheus_text(scheme_snapshot(busy)).decode()
    assert 'entrepot_participant_active{kind="wallet",participant="mtn-rw"} 0.0' in text


def test_a_scrape_reads_no_table_that_grows_with_history(busy: PaymentScheme) -> None:
    if busy.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plans (PostgreSQL's depend on its statistics)")
    with recorded(busy.engine) as statements:
        scheme_snapshot(busy)
    growing = ("pay_transfers", "pay_quotes", "pay_escrows", "pay_outbox", "ledger_transfers")
    scans = [(s, step) for s, step in full_scans(busy.engine, statements)]
    assert [step for _, step in scans if step.split()[1] in growing] == []


def test_an_abandoned_notice_is_counted_apart(busy: PaymentScheme, clock: FakeClock) -> None:
    with busy.engine.begin() as conn:
        conn.execute(
            st.outbox.update()
            .where(st.outbox.c.participant_id == "maybank")
            .values(abandoned_at=clock.now_ns())
        )
    s = scheme_snapshot(busy)
    assert s.notices_pending == {} and s.notices_abandoned == {"maybank": 2}


def test_a_transfer_past_its_expiry_is_not_open_before_the_pass(
    busy: PaymentScheme, clock: FakeClock
) -> None:
    clock.advance(60)  # every undecided transfer expired; no deadline pass ran yet
    s = scheme_snapshot(busy)
    assert s.transfers_open == {"RESERVED": 0, "HOLD": 0} and s.oldest_hold_age_s is None


def test_an_escrow_past_its_deadline_is_not_held_before_the_pass(
    busy: PaymentScheme, clock: FakeClock
) -> None:
    """Found in review: an escrow past its deadline was counted held until the deadline pass
    ran, while reading it showed it decided (CLOSED, held 0). It is counted as it reads: not
    held where its deadline can act, held where it cannot (its recipient is suspended: the
    controller's to decide), as a transfer past its expiry is not counted open."""
    busy.create_escrow("mtn-rw", "e2", "bk-rw", "RWF", 20_000, "order 2", 60, "release")
    assert scheme_snapshot(busy).escrows_held == {"RWF": (2, 70_000)}
    clock.advance(60)  # e2's deadline: released, as read; no deadline pass ran
    assert busy.get_escrow("scheme", "e2").state.value == "CLOSED"
    assert scheme_snapshot(busy).escrows_held == {"RWF": (1, 50_000)}
    busy.set_active("bk-rw", False)  # its deadline cannot release it now: held
    assert busy.get_escrow("scheme", "e2").state.value == "HELD"
    assert scheme_snapshot(busy).escrows_held == {"RWF": (2, 70_000)}
    clock.advance(3600)  # e1's deadline refunds it to mtn-rw, which can receive
    assert busy.get_escrow("scheme", "e1").state.value == "CLOSED"
    assert scheme_snapshot(busy).escrows_held == {"RWF": (1, 20_000)}
    busy.process_deadlines()  # the pass records what the reads showed
    assert scheme_snapshot(busy).escrows_held == {"RWF": (1, 20_000)}
    busy.set_active("bk-rw", True)
    assert scheme_snapshot(busy).escrows_held == {}
