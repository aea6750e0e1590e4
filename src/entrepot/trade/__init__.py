"""Trade: the marketplace side of the network.

Owns (as the context grows): hubs, merchants, the catalogue, orders, logistics, customs and
disputes. Only :mod:`entrepot.trade.customs` exists yet: HS classification, dated tariff and
de-minimis data, landed cost, customs declarations and clearance decisions.

Invariants: money is an int in minor units with an ISO 4217 currency; rates are Decimal with
the rounding mode stated; trade imports only :mod:`entrepot.kernel` for now.
"""
