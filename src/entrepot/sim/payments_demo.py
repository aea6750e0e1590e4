"""The payment-scheme part of ``entrepot demo``: banks and wallets in the seed's six hub
countries pay each other's merchants by QR across currencies, then a settlement window closes
and settles. Seeded randomness and an injected clock: the same seed gives the same run."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from entrepot.kernel.clock import FakeClock
from entrepot.kernel.money import get_currency
from entrepot.payments import SCHEME, PaymentScheme, SettlementWindow
from entrepot.payments import qr as qrcodes
from entrepot.payments.errors import PaymentError

#: USD value of one unit (late-2026 orders of magnitude; only ratios matter in the demo).
USD_VALUE = {
    "CNY": Decimal("0.14"),
    "MYR": Decimal("0.22"),
    "EUR": Decimal("1.08"),
    "RWF": Decimal("0.00072"),
    "ETB": Decimal("0.0077"),
    "USD": Decimal("1"),
}
#: participant, kind, country, currency, merchant till, merchant name, city
MEMBERS = (
    ("icbc-cn", "bank", "CN", "CNY", "YIWU-001", "Yiwu Crafts", "Yiwu"),
    ("alipay-cn", "wallet", "CN", "CNY", "HZ-002", "Hangzhou Tea", "Hangzhou"),
    ("maybank-my", "bank", "MY", "MYR", "KL-003", "Kedai Kopi KL", "Kuala Lumpur"),
    ("kbc-be", "bank", "BE", "EUR", "LGE-004", "Liege Waffles", "Liege"),
    ("mtn-rw", "wallet", "RW", "RWF", "KGL-005", "Kigali Coffee", "Kigali"),
    ("telebirr-et", "wallet", "ET", "ETB", "ADD-006", "Addis Spices", "Addis Ababa"),
)
FX_PROVIDER = "fx-global"
PAYMENTS_DEFAULT = 120
Progress = Callable[[int, int], None]


@dataclass
class PaymentsDemoReport:
    payments: int = 0
    committed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    window: SettlementWindow | None = None
    invariants_ok: bool = False
    sample_qr: str = ""
    corridors: dict[str, int] = field(default_factory=dict)


def _rate(source: str, target: str) -> Decimal:
    return (USD_VALUE[source] / USD_VALUE[target]).quantize(Decimal("0.00000001"))


def build_network(scheme: PaymentScheme) -> None:
    currencies = sorted({m[3] for m in MEMBERS} | {"USD"})
    for cur in currencies:
        scheme.enable_currency(cur)
    scheme.register_participant(FX_PROVIDER, "Global FX", "fx_provider", "SG", currencies)
    for pid, kind, country, cur, till, name, _city in MEMBERS:
        scheme.register_participant(pid, pid.upper(), kind, country, [cur])
        scheme.register_alias(pid, "MERCHANT", till, name, cur)
    for pid, *_ in ((m[0],) for m in MEMBERS):
        cur = next(m[3] for m in MEMBERS if m[0] == pid)
        _fund(scheme, pid, cur)
    for cur in currencies:
        _fund(scheme, FX_PROVIDER, cur)
        for other in currencies:
            if other != cur:
                scheme.post_fx_rate(FX_PROVIDER, cur, other, _rate(cur, other), 40, 86_400)


def _fund(scheme: PaymentScheme, pid: str, currency: str) -> None:
    units = int(Decimal(5_000_000) / USD_VALUE[currency])  # USD 5m of cover
    minor = units * 10 ** get_currency(currency).exponent
    scheme.deposit(pid, currency, minor, f"fund-{pid}-{currency}")
    scheme.set_net_debit_cap(pid, currency, minor // 2)


def run_payments_demo(
    scheme: PaymentScheme,
    clock: FakeClock,
    *,
    payments: int = PAYMENTS_DEFAULT,
    seed: int = 7,
    on_progress: Progress | None = None,
) -> PaymentsDemoReport:
    rnd = random.Random(seed)
    build_network(scheme)
    report = PaymentsDemoReport()
    for n in range(payments):
        payer = rnd.choice(MEMBERS)
        payee = rnd.choice([m for m in MEMBERS if m[0] != payer[0]])
        usd = Decimal(rnd.randrange(5, 500))
        cur = get_currency(payee[3])
        amount = int((usd / USD_VALUE[cur.code]) * 10**cur.exponent)
        code = qrcodes.encode(
            qrcodes.build_merchant_qr(
                merchant_alias=payee[4],
                mcc="5812",
                currency=cur,
                country=payee[2],
                merchant_name=payee[5],
                city=payee[6][:15],
                amount_minor=amount,
            )
        )
        report.sample_qr = report.sample_qr or code
        decoded = qrcodes.decode(code)
        till = decoded.find_merchant_alias()
        assert till is not None and decoded.amount_minor is not None
        report.payments += 1
        try:
            q = scheme.create_quote(
                payer[0], f"q{n}", "MERCHANT", till, decoded.amount_minor, "RECEIVE", payer[3]
            )
            t = scheme.prepare_transfer(payer[0], f"t{n}", q.id)
            clock.advance(rnd.uniform(0.5, 3))
            if rnd.random() < 0.05:
                scheme.reject_transfer(payee[0], t.id, "merchant declined")
                report.rejected["declined by payee"] = (
                    report.rejected.get("declined by payee", 0) + 1
                )
            else:
                scheme.commit_transfer(payee[0], t.id)
                report.committed += 1
                corridor = f"{payer[3]}->{payee[3]}"
                report.corridors[corridor] = report.corridors.get(corridor, 0) + 1
        except PaymentError as exc:
            report.rejected[exc.code] = report.rejected.get(exc.code, 0) + 1
        if on_progress:
            on_progress(n + 1, payments)
    window = scheme.close_window(SCHEME)
    report.window = scheme.settle_window(SCHEME, window.id)
    report.invariants_ok = scheme.ledger.check_invariants().ok
    return report
