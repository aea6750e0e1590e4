"""Business ids registered before the directory folded them (migration 0022): rewritten to
the form lookups now fold to, unless another registration holds that form already."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.errors import PartyNotFound
from entrepot.storage.migrate import downgrade, upgrade


def _registered(
    scheme: PaymentScheme, alias: str, participant: str, currency: str, at: int = 1
) -> None:
    """A row as the directory wrote it before 0022: the spelling typed, kept as it was."""
    with scheme.engine.begin() as conn:
        conn.execute(
            sa.insert(st.aliases).values(
                alias_type="BUSINESS",
                alias=alias,
                participant_id=participant,
                display_name=f"{alias} Co",
                currency=currency,
                country="MY" if currency == "MYR" else "RW",
                created_at=at,
            )
        )


def test_business_ids_typed_before_are_folded_unless_two_spellings_clash(
    scheme: PaymentScheme, caplog: pytest.LogCaptureFixture
) -> None:
    downgrade(scheme.engine, "0021_idempotency_marker_token")  # and 0023, after it
    _registered(scheme, "acme ltd 12345", "maybank", "MYR")
    _registered(scheme, "Beta  Trading", "maybank", "MYR")
    _registered(scheme, "BETA TRADING", "mtn-rw", "RWF")  # one business, two registrations
    _registered(scheme, "GAMMA-7", "mtn-rw", "RWF")  # folded already
    # neither folded: the first registered takes the folded form, whatever the collation
    # (PostgreSQL's en-US ordered "delta" first and gave it the other participant's)
    _registered(scheme, "Delta co 9", "mtn-rw", "RWF", at=5)
    _registered(scheme, "delta co 9", "maybank", "MYR", at=2)
    with caplog.at_level(logging.WARNING):
        upgrade(scheme.engine)
    with scheme.engine.connect() as conn:
        rows = conn.execute(
            sa.select(st.aliases.c.alias, st.aliases.c.participant_id).where(
                st.aliases.c.alias_type == "BUSINESS"
            )
        ).all()
    assert sorted(tuple(r) for r in rows) == [
        ("ACME LTD 12345", "maybank"),
        ("BETA TRADING", "mtn-rw"),
        ("Beta  Trading", "maybank"),  # left: the operator settles it with the two
        ("DELTA CO 9", "maybank"),
        ("Delta co 9", "mtn-rw"),
        ("GAMMA-7", "mtn-rw"),
    ]
    assert "'Beta  Trading' (maybank) left as it is" in caplog.text
    # found, and removed by its participant, however it is typed now
    assert scheme.lookup_party("BUSINESS", "Acme Ltd 12345").participant_id == "maybank"
    scheme.remove_alias("maybank", "BUSINESS", "acme  ltd 12345")
    with pytest.raises(PartyNotFound):
        scheme.lookup_party("BUSINESS", "ACME LTD 12345")
