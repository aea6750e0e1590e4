"""Builders for customs tests: one line, one shipment, readable defaults."""

from __future__ import annotations

from decimal import Decimal

from entrepot.trade.customs import DeclarationLine, Party, Shipment


def line(
    hs: str,
    value_minor: int,
    currency: str,
    *,
    origin: str = "CN",
    quantity: str = "1",
    unit: str = "pcs",
    net_mass_kg: str = "1",
    description: str = "goods",
) -> DeclarationLine:
    return DeclarationLine(
        hs_code=hs,
        description=description,
        origin=origin,
        quantity=Decimal(quantity),
        unit=unit,
        net_mass_kg=Decimal(net_mass_kg),
        value_minor=value_minor,
        value_currency=currency,
    )


def shipment(
    shipment_id: str,
    destination: str,
    lines: list[DeclarationLine],
    currency: str,
    *,
    freight_minor: int = 0,
    insurance_minor: int = 0,
    incoterm: str = "FOB",
    origin_hub: str | None = None,
    destination_hub: str | None = None,
    importer_aeo: bool = True,
) -> Shipment:
    return Shipment(
        shipment_id=shipment_id,
        exporter=Party("Yiwu Crafts Co", "CN", "CN-EX-1"),
        importer=Party("Buyer Ltd", destination, "IMP-1", authorised_operator=importer_aeo),
        declarant=Party("Hub Broker", destination, "DEC-1"),
        destination=destination,
        lines=tuple(lines),
        freight_minor=freight_minor,
        insurance_minor=insurance_minor,
        currency=currency,
        incoterm=incoterm,
        origin_hub=origin_hub,
        destination_hub=destination_hub,
    )
