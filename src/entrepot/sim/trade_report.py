"""The trade demo's report, read back from what the services stored: trade volume per
corridor, duties and taxes paid to each country's customs, clearance times by lane, disputes
and how they ended, orders by state, the settlement window's netting, and the invariant
checks. Nothing here writes; the same stored data gives the same report."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from statistics import median
from typing import Any

from entrepot.kernel.money import get_currency
from entrepot.payments import Escrow, EscrowState, PaymentScheme, SettlementWindow
from entrepot.payments.services import ledger_id
from entrepot.sim.payments_demo import USD_VALUE
from entrepot.sim.trade_network import CUSTOMS
from entrepot.trade import DisputeState, Order, OrderState, TradeNetwork
from entrepot.trade.model import HOUR_NS, TERMINAL_ORDER_STATES, derive_order_state

#: What a dispute's events say about the stage at which it ended (first match wins).
DISPUTE_STAGES = (
    ("unanswered", "unanswered"),
    ("settled", "settled"),
    ("appeal_ruled", "appealed"),
    ("final", "ruled"),
)


def usd_cents(amount_minor: int, currency: str) -> int:
    """USD-equivalent cents of an amount at the demo's reference values, half up."""
    units = Decimal(amount_minor).scaleb(-get_currency(currency).exponent)
    return int((units * USD_VALUE[currency] * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class StockWatch:
    """Stock levels sampled at every simulated day's start and at the end."""

    samples: int = 0
    rows: int = 0
    violations: list[str] = field(default_factory=list)
    lowest_available: int | None = None


@dataclass
class Tally:
    """What the simulation did (its own counts) and the ids it needs to read results back."""

    steps: int = 0  # scripted steps run
    activity: Counter[str] = field(default_factory=Counter)  # what the actors did
    rejected: Counter[str] = field(default_factory=Counter)  # quote and checkout refusals
    refused: Counter[str] = field(default_factory=Counter)  # scripted steps refused
    deadlines: Counter[str] = field(default_factory=Counter)  # process_deadlines' counts
    orders: dict[str, str] = field(default_factory=dict)  # order id -> buyer id
    disputes: dict[str, str] = field(default_factory=dict)  # dispute id -> order id
    stock: StockWatch = field(default_factory=StockWatch)


@dataclass
class TradeDemoReport:
    seed: int
    days: int
    started_ns: int
    finished_ns: int
    network: dict[str, int]
    activity: dict[str, int]
    rejected: dict[str, int]
    refused_steps: dict[str, int]
    deadlines: dict[str, int]
    orders: int
    value_usd_cents: int
    corridors: dict[str, dict[str, int]]
    duties: dict[str, dict[str, Any]]
    clearance: dict[str, dict[str, Any]]
    disputes: dict[str, dict[str, int]]
    orders_by_state: dict[str, int]
    payouts: dict[str, int]
    settlement: dict[str, Any]
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True, slots=True)
class _Facts:
    """One order as the services recorded it."""

    order: Order
    origin: str  # the merchant's hub country
    events: list[dict[str, object]]
    goods: Escrow
    tax: Escrow | None
    tracking: dict[str, Any]
    payouts: list[dict[str, object]]


def _read_orders(trade: TradeNetwork, tally: Tally) -> list[_Facts]:
    hubs = {h.id: h for h in trade.list_hubs()}
    facts = []
    for order_id, buyer_id in tally.orders.items():
        caller = f"buyer:{buyer_id}"
        order = trade.get_order(caller, order_id)
        hub = hubs[order.hub_id].participant_id  # it controls both of the order's escrows
        tax = None
        if order.tax_escrow_id is not None:
            tax = trade.scheme.get_escrow(hub, order.tax_escrow_id)
        facts.append(
            _Facts(
                order,
                hubs[order.hub_id].country,
                trade.order_events(caller, order_id),
                trade.scheme.get_escrow(hub, order.goods_escrow_id),
                tax,
                trade.tracking(caller, order_id),
                trade.payouts(caller, order_id),
            )
        )
    return facts


def _corridors(facts: list[_Facts]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for f in facts:
        entry = out.setdefault(
            f"{f.origin}->{f.order.destination}", {"orders": 0, "value_usd_cents": 0}
        )
        entry["orders"] += 1
        entry["value_usd_cents"] += usd_cents(f.order.total_minor, f.order.currency)
    return dict(sorted(out.items()))


def _duties(facts: list[_Facts]) -> dict[str, dict[str, Any]]:
    """Duties and taxes paid to each destination's customs, as the orders recorded them
    (their ``import_cleared`` events)."""
    out: dict[str, dict[str, Any]] = {}
    for f in facts:
        paid = sum(int(str(e["taxes_minor"])) for e in f.events if e["kind"] == "import_cleared")
        if not paid:
            continue
        entry = out.setdefault(
            f.order.destination,
            {"currency": f.order.currency, "collected_minor": 0, "parcels": 0},
        )
        assert entry["currency"] == f.order.currency, "one currency per destination"
        entry["collected_minor"] += paid
        entry["parcels"] += 1
    for entry in out.values():
        entry["usd_cents"] = usd_cents(entry["collected_minor"], entry["currency"])
    return dict(sorted(out.items()))


def _hours_between(events: list[dict[str, Any]], first: str, last: str) -> float | None:
    at = {e["code"]: int(e["at_ns"]) for e in events}
    if first not in at or last not in at:
        return None
    return (at[last] - at[first]) / HOUR_NS


def _clearance(facts: list[_Facts]) -> dict[str, dict[str, Any]]:
    """Import clearance, presented (EDB) to released (EDC), by the declaration's lane."""
    hours: dict[str, list[float]] = {}
    estimated: dict[str, set[int]] = {}
    for f in facts:
        lane_info = f.tracking["clearance"]
        took = _hours_between(f.tracking["events"], "EDB", "EDC")
        if lane_info is None or took is None:
            continue
        hours.setdefault(lane_info["lane"], []).append(took)
        estimated.setdefault(lane_info["lane"], set()).add(int(lane_info["estimated_hours"]))
    out = {}
    for lane, values in sorted(hours.items()):
        ordered = sorted(values)
        out[lane] = {
            "parcels": len(ordered),
            "estimated_hours": sorted(estimated[lane]),
            "median_hours": round(median(ordered), 1),
            "p90_hours": round(ordered[math.ceil(0.9 * len(ordered)) - 1], 1),
        }
    return out


def _outcome(goods: Escrow) -> str:
    if goods.refunded_minor == 0:
        return "release"
    return "refund" if goods.released_minor == 0 else "split"


def _disputes(trade: TradeNetwork, tally: Tally, facts: list[_Facts]) -> dict[str, dict[str, int]]:
    by_order = {f.order.id: f for f in facts}
    reason: Counter[str] = Counter()
    stage: Counter[str] = Counter()
    outcome: Counter[str] = Counter()
    for dispute_id, order_id in tally.disputes.items():
        f = by_order[order_id]
        caller = f"buyer:{f.order.buyer_id}"
        d = trade.get_dispute(caller, dispute_id)
        kinds = {e["kind"] for e in trade.dispute_events(caller, dispute_id)}
        reason[d.reason.value] += 1
        ended = next((name for kind, name in DISPUTE_STAGES if kind in kinds), None)
        if d.state is DisputeState.RESOLVED:
            assert ended is not None, f"dispute {dispute_id} resolved without a final step"
            stage[ended] += 1
            outcome[_outcome(f.goods)] += 1
        else:
            stage[f"open ({d.state.value.lower()})"] += 1
    return {
        "by_reason": dict(sorted(reason.items())),
        "by_stage": dict(sorted(stage.items())),
        "by_outcome": dict(sorted(outcome.items())),
    }


def _settlement(window: SettlementWindow) -> dict[str, Any]:
    """The scheme's own report of the window (``SettlementWindow.report``): gross is what
    moved one payment at a time (payouts, fees, FX legs; escrow holds, releases and refunds,
    each move once), net what moves at settlement."""
    report = window.report()
    gross = Counter({cur: int(r["gross_minor"]) for cur, r in report.items()})
    net = Counter({cur: int(r["net_minor"]) for cur, r in report.items()})
    currencies: dict[str, dict[str, Any]] = {}
    totals = {"gross_usd_cents": 0, "net_usd_cents": 0, "liquidity_saved_usd_cents": 0}
    for cur in sorted(set(gross) | set(net)):
        saved = gross[cur] - net[cur]
        currencies[cur] = {
            "gross_minor": gross[cur],
            "net_minor": net[cur],
            "liquidity_saved_minor": saved,
            "gross_to_net": report[cur]["gross_to_net"],
        }
        totals["gross_usd_cents"] += usd_cents(gross[cur], cur)
        totals["net_usd_cents"] += usd_cents(net[cur], cur)
        totals["liquidity_saved_usd_cents"] += usd_cents(saved, cur)
    return {
        "window": window.id,
        "state": window.state.value,
        "positions": len(window.positions),
        "currencies": currencies,
        **totals,
    }


def _ledger_check(scheme: PaymentScheme) -> Check:
    inv = scheme.ledger.check_invariants()
    detail = "; ".join(inv.violations) or f"{len(inv.ledgers)} ledgers: debits = credits"
    return Check("ledger balanced", inv.ok, detail)


def _escrow_check(scheme: PaymentScheme, facts: list[_Facts]) -> Check:
    """Every order's escrow is closed once the order is over, the goods escrow is held while
    it is open, and the scheme's escrow accounts hold exactly what open orders' escrows hold
    (so no escrow outside an open order holds anything)."""
    problems: list[str] = []
    held: Counter[str] = Counter()
    escrows = 0
    for f in facts:
        over = f.order.state in TERMINAL_ORDER_STATES
        for e in (f.goods, f.tax):
            if e is None:
                continue
            escrows += 1
            held[e.currency] += e.held_minor
            if over and e.state is not EscrowState.CLOSED:
                problems.append(f"{e.id} still holds {e.held_minor} ({f.order.state.value})")
        if not over and f.goods.state is not EscrowState.HELD:
            problems.append(f"{f.goods.id} is closed but order {f.order.id} is open")
    currencies = scheme.scheme_currencies()
    ids = [ledger_id("scheme-account", cur, "escrow") for cur in currencies]
    for cur, account in zip(currencies, scheme.ledger.lookup_accounts(ids), strict=True):
        balance = account.credits_posted - account.debits_posted
        if balance != held[cur]:
            problems.append(f"{cur} escrow account holds {balance}, open orders {held[cur]}")
    open_orders = sum(1 for f in facts if f.order.state not in TERMINAL_ORDER_STATES)
    detail = "; ".join(problems[:5]) or (
        f"{escrows} escrows of {len(facts)} orders: closed, or held by one of "
        f"{open_orders} open orders; the scheme's escrow accounts agree"
    )
    return Check("escrows closed or held by open orders", not problems, detail)


def _stock_check(watch: StockWatch) -> Check:
    detail = "; ".join(watch.violations[:5]) or (
        f"{watch.rows} stock rows at {watch.samples} samples; lowest available "
        f"{watch.lowest_available}"
    )
    return Check("stock never negative", not watch.violations, detail)


def _state_check(facts: list[_Facts]) -> Check:
    wrong = [
        f"{f.order.id}: {f.order.state.value}"
        for f in facts
        if derive_order_state([str(e["kind"]) for e in f.events]) is not f.order.state
    ]
    detail = "; ".join(wrong[:5]) or f"{len(facts)} orders"
    return Check("order state is the fold of its events", not wrong, detail)


def _duties_check(facts: list[_Facts], duties: dict[str, dict[str, Any]]) -> Check:
    released: Counter[str] = Counter()
    for f in facts:
        if f.tax is not None:
            released[f.order.destination] += f.tax.released_minor
    recorded = {c: int(v["collected_minor"]) for c, v in duties.items()}
    ok = recorded == {c: n for c, n in released.items() if n}
    detail = f"released to {', '.join(CUSTOMS[c] for c in sorted(recorded)) or 'no customs'}"
    return Check("duties = tax escrows released to customs", ok, detail)


def _payout_check(facts: list[_Facts]) -> tuple[Check, dict[str, int]]:
    states: Counter[str] = Counter()
    unpaid = []
    for f in facts:
        states.update(str(p["state"]) for p in f.payouts)
        owed = f.goods.released_minor > 0
        if owed and (not f.payouts or any(p["state"] == "PENDING" for p in f.payouts)):
            unpaid.append(f.order.id)
    detail = "; ".join(unpaid[:5]) or f"{sum(states.values())} payouts for released escrows"
    return Check("every release pays the merchant", not unpaid, detail), dict(
        sorted(states.items())
    )


def _steps_check(tally: Tally) -> Check:
    refused = sorted(tally.refused.items())
    detail = ", ".join(f"{n} {what}" for what, n in refused) or (f"{tally.steps} scripted steps")
    return Check("every scripted step accepted", not refused, detail)


def build_report(
    trade: TradeNetwork,
    tally: Tally,
    window: SettlementWindow,
    *,
    seed: int,
    days: int,
    started_ns: int,
    finished_ns: int,
    network: dict[str, int],
) -> TradeDemoReport:
    facts = _read_orders(trade, tally)
    corridors = _corridors(facts)
    duties = _duties(facts)
    payout_check, payouts = _payout_check(facts)
    checks = [
        _ledger_check(trade.scheme),
        _escrow_check(trade.scheme, facts),
        _stock_check(tally.stock),
        _state_check(facts),
        _duties_check(facts, duties),
        payout_check,
        _steps_check(tally),
    ]
    states = Counter(f.order.state.value for f in facts)
    return TradeDemoReport(
        seed=seed,
        days=days,
        started_ns=started_ns,
        finished_ns=finished_ns,
        network=network,
        activity=dict(sorted(tally.activity.items())),
        rejected=dict(sorted(tally.rejected.items())),
        refused_steps=dict(sorted(tally.refused.items())),
        deadlines=dict(sorted((k, v) for k, v in tally.deadlines.items() if v)),
        orders=len(facts),
        value_usd_cents=sum(usd_cents(f.order.total_minor, f.order.currency) for f in facts),
        corridors=corridors,
        duties=duties,
        clearance=_clearance(facts),
        disputes=_disputes(trade, tally, facts),
        orders_by_state={s.value: states[s.value] for s in OrderState if states[s.value]},
        payouts=payouts,
        settlement=_settlement(window),
        checks=checks,
    )
