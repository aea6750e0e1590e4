"""Trade: the network of hubs where small businesses sell abroad.

Owns: hubs (central export and import hubs, national eHubs) with their warehouses, partner
banks and wallets, customs authority, arbitration panel, freight card and DFTZ membership;
merchants and buyers; the catalogue with HS 2022 codes and stock per warehouse; landed-cost
quotes delivered duty paid in the buyer's currency; orders paid into escrow through the
payment scheme; tracking with postal event codes; customs declarations
(:mod:`entrepot.trade.customs`); release and merchant payouts; cancellations, returns,
disputes and online arbitration.

Invariants:
- An order and its escrows commit together or not at all (the scheme joins trade's unit of
  work); stock is reserved in the same commit, never oversold (a conditional update under the
  write lock).
- Money moves only through the payment scheme's escrows and transfers: goods, freight and
  insurance are held for the merchant's hub; duties and taxes for the destination's customs,
  paid to it at import clearance (EDC). The merchant is paid its price less the hub's
  commission, in its own currency; a partial release pays the same share, rounded down.
- Order state is a fold over the order's events; every event, tracking step and dispute step
  is recorded with who and when.
- A buyer pays from a partner wallet only with that wallet's consent (a mandate the wallet
  grants and revokes; the hub that registers a buyer chooses the alias, not the wallet's
  customer): checkout refuses otherwise.
- A caller sees and acts on only what is theirs: a buyer its orders, a merchant its catalogue
  and orders, a hub operator what passes through its hub, an arbitrator its cases.
- Every deadline (hand-over, delivery, dispute window, merchant answer, negotiation, ruling,
  appeal) acts by itself when ``process_deadlines`` runs after it.
"""

from entrepot.trade.model import (
    Buyer,
    CustomsFx,
    CustomsMeasure,
    Dispute,
    DisputeReason,
    DisputeState,
    FreightCard,
    Hub,
    HubKind,
    Item,
    Merchant,
    MerchantState,
    Order,
    OrderState,
    Outcome,
    Role,
    TradeQuote,
    WalletConsent,
    Warehouse,
    principal,
)
from entrepot.trade.services import KEEP, TradeNetwork

__all__ = [
    "KEEP",
    "Buyer",
    "CustomsFx",
    "CustomsMeasure",
    "Dispute",
    "DisputeReason",
    "DisputeState",
    "FreightCard",
    "Hub",
    "HubKind",
    "Item",
    "Merchant",
    "MerchantState",
    "Order",
    "OrderState",
    "Outcome",
    "Role",
    "TradeNetwork",
    "TradeQuote",
    "WalletConsent",
    "Warehouse",
    "principal",
]
