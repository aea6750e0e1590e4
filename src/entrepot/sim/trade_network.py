"""The seed's trade network as a scenario: the six hubs (export hub Yiwu, import hub Hangzhou,
eHubs in Kuala Lumpur, Liège, Kigali and Addis Ababa) on top of the payment scheme's members,
with hub operators, customs authorities, arbitration panels, fulfilment centres and freight
cards. Used by ``entrepot demo``, the trade benchmark and the end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from entrepot.kernel.money import get_currency
from entrepot.payments import SCHEME, PaymentScheme
from entrepot.sim.payments_demo import FX_PROVIDER, MEMBERS, USD_VALUE, _rate, build_network
from entrepot.trade.model import FreightCard
from entrepot.trade.services import TradeNetwork

FX_SPREAD_BPS = 40
FX_VALID_S = 86_400


@dataclass(frozen=True, slots=True)
class HubSpec:
    id: str
    name: str
    kind: str
    country: str
    currency: str
    partner: str  # the payment member serving its merchants and buyers


#: The seed's six hubs; every one is a member of the Digital Free Trade Zone.
HUBS = (
    HubSpec("yiwu", "Yiwu export hub", "export", "CN", "CNY", "icbc-cn"),
    HubSpec("hangzhou", "Hangzhou import hub", "import", "CN", "CNY", "alipay-cn"),
    HubSpec("kuala-lumpur", "Kuala Lumpur eHub", "ehub", "MY", "MYR", "maybank-my"),
    HubSpec("liege", "Liège eHub", "ehub", "BE", "EUR", "kbc-be"),
    HubSpec("kigali", "Kigali eHub", "ehub", "RW", "RWF", "mtn-rw"),
    HubSpec("addis-ababa", "Addis Ababa eHub", "ehub", "ET", "ETB", "telebirr-et"),
)
CUSTOMS = {
    "CN": "customs-cn",
    "MY": "customs-my",
    "BE": "customs-be",
    "RW": "customs-rw",
    "ET": "customs-et",
}


def hub_participant(hub_id: str) -> str:
    return f"hub-{hub_id}"


def freight_card(currency: str) -> FreightCard:
    """Rates set at about USD 3 + 1/kg domestic and USD 8 + 6/kg international, in the
    hub's currency (rounded to whole units)."""

    def usd(amount: str) -> int:
        units = (Decimal(amount) / USD_VALUE[currency]).quantize(Decimal(1))
        return int(units) * int(10 ** get_currency(currency).exponent)

    return FreightCard(usd("3"), usd("1"), usd("8"), usd("6"), insurance_bps=100)


def post_rates(scheme: PaymentScheme) -> None:
    """(Re)post the FX provider's rates between every pair, valid for a day."""
    currencies = sorted({m[3] for m in MEMBERS} | {"USD"})
    for cur in currencies:
        for other in currencies:
            if other != cur:
                scheme.post_fx_rate(
                    FX_PROVIDER, cur, other, _rate(cur, other), FX_SPREAD_BPS, FX_VALID_S
                )


def build_trade_network(scheme: PaymentScheme, trade: TradeNetwork) -> None:
    """Payment members (unless they exist already: the payments demo built them on the same
    database), then customs authorities, hub operators (holding every network currency, so
    they can take escrow from any buyer) and the six hubs."""
    if FX_PROVIDER not in {p.id for p in scheme.list_participants()}:
        build_network(scheme)
    currencies = sorted({m[3] for m in MEMBERS})
    for country, pid in CUSTOMS.items():
        cur = next(h.currency for h in HUBS if h.country == country)
        scheme.register_participant(pid, f"Customs {country}", "government", country, [cur])
    for h in HUBS:
        pid = hub_participant(h.id)
        scheme.register_participant(pid, h.name, "hub", h.country, currencies)
        partners = sorted({h.partner} | {s.partner for s in HUBS if s.country == h.country})
        trade.create_hub(
            SCHEME,
            h.id,
            h.name,
            h.kind,
            h.country,
            h.currency,
            pid,
            arbitrators=[f"arb-{h.id}-{n}" for n in (1, 2, 3)],
            customs_authority=CUSTOMS[h.country],
            partners=partners,
            dftz=True,
            freight=freight_card(h.currency),
        )
        trade.add_warehouse(pid, f"{h.id}-fc1", f"{h.name} fulfilment centre")
