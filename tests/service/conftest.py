from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from entrepot.kernel.clock import FakeClock
from entrepot.ledger import Ledger
from entrepot.payments import FeeSchedule, PaymentScheme


@pytest.fixture
def scheme(engine: sa.Engine, clock: FakeClock) -> PaymentScheme:
    """Six-country scheme: a Rwandan wallet, a Malaysian bank, a Chinese bank, an FX provider."""
    ledger = Ledger(engine, clock)
    s = PaymentScheme(engine, ledger, clock, fees=FeeSchedule(bps=50, fixed_minor=0))
    for cur in ("RWF", "MYR", "CNY", "EUR", "ETB", "USD"):
        s.enable_currency(cur)
    s.register_participant("mtn-rw", "MTN MoMo Rwanda", "wallet", "RW", ["RWF"])
    s.register_participant("maybank", "Maybank", "bank", "MY", ["MYR"])
    s.register_participant("icbc", "ICBC", "bank", "CN", ["CNY"])
    s.register_participant("fxco", "FX Co", "fx_provider", "SG", ["RWF", "MYR", "CNY"])
    s.deposit("mtn-rw", "RWF", 50_000_000, "dep-1")
    s.set_net_debit_cap("mtn-rw", "RWF", 10_000_000)
    s.deposit("maybank", "MYR", 1_000_000, "dep-2")
    s.set_net_debit_cap("maybank", "MYR", 500_000)
    s.deposit("fxco", "MYR", 5_000_000, "dep-3")
    s.set_net_debit_cap("fxco", "MYR", 2_000_000)
    s.deposit("fxco", "RWF", 5_000_000, "dep-4")
    s.set_net_debit_cap("fxco", "RWF", 1_000_000)
    s.post_fx_rate("fxco", "RWF", "MYR", Decimal("0.0032"), 100, 3600)
    s.register_alias("maybank", "MERCHANT", "KL-TILL-42", "Kedai Kopi KL", "MYR")
    s.register_alias("mtn-rw", "MSISDN", "+250788123456", "Aline Uwase", "RWF")
    return s
