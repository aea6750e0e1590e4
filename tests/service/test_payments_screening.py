"""Sanctions screening plugged into the scheme: a payee that matches the list is held for a
person's review, never blocked on a name alone; a clear payee is reserved as usual."""

from __future__ import annotations

import pytest

from entrepot.config import shared_data_dir
from entrepot.payments import SCHEME, PaymentScheme, TransferState
from entrepot.payments.screening import SanctionsScreening

LISTS = shared_data_dir() / "sanctions"


@pytest.fixture(scope="module")
def screener():  # type: ignore[no-untyped-def]
    if not (LISTS / "ofac_sdn.csv").is_file():
        pytest.skip(f"the OFAC snapshot is not at {LISTS}")
    from entrepot.risk.sanctions import Screener

    return Screener.from_directory(LISTS)


def test_a_listed_payee_is_held_for_review_and_a_clear_one_is_not(
    scheme: PaymentScheme, screener: object
) -> None:
    scheme.screening = SanctionsScreening(screener)  # type: ignore[arg-type]
    scheme.register_participant("cimb", "CIMB", "bank", "MY", ["MYR"])
    scheme.register_alias("cimb", "MERCHANT", "KL-77", "BANCO NACIONAL DE CUBA", "MYR")
    held_quote = scheme.create_quote("mtn-rw", "q-h", "MERCHANT", "KL-77", 500, "RECEIVE", "RWF")
    held = scheme.prepare_transfer("mtn-rw", "t-h", held_quote.id)
    assert held.state is TransferState.HOLD
    assert held.reason is not None and "BANCO NACIONAL DE CUBA" in held.reason
    clear_quote = scheme.create_quote(
        "mtn-rw", "q-c", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF"
    )
    clear = scheme.prepare_transfer("mtn-rw", "t-c", clear_quote.id)
    assert clear.state is TransferState.RESERVED
    # The payee cannot take a held transfer; a reviewer decides.
    with pytest.raises(Exception, match="on hold"):
        scheme.commit_transfer("cimb", "t-h")
    rejected = scheme.review_hold(SCHEME, "t-h", False, "confirmed match")
    assert rejected.state is TransferState.ABORTED
    assert scheme.liquidity("mtn-rw", "RWF")["position_reserved_minor"] == (
        clear.source_amount_minor
    )
