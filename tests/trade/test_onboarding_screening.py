"""Merchants are screened against the OFAC lists at onboarding: a name alone puts a business in
review for a person at its hub, never a block."""

from __future__ import annotations

import re

import pytest

from entrepot.config import shared_data_dir
from entrepot.payments.screening import SanctionsScreening
from entrepot.risk.decisions import MemorySink, get_decision
from entrepot.risk.sanctions import Screener
from entrepot.trade import MerchantState
from tests.trade.network import Net

LISTS = shared_data_dir() / "sanctions"
pytestmark = pytest.mark.skipif(
    not (LISTS / "ofac_sdn.csv").is_file(), reason=f"no OFAC lists at {LISTS}"
)


def test_a_listed_name_goes_to_review_and_a_clean_one_is_active(net: Net) -> None:
    screening = SanctionsScreening(lambda: Screener.from_directory(LISTS))
    net.trade.onboarding_screening = screening.screen_business
    net.merchant("m-1", reg="RW-1", name="Inzozi Crafts Ltd")
    net.merchant("m-2", reg="RW-2", name="Banco Nacional de Cuba")
    clean = net.trade.get_merchant("hub-kigali", "m-1")
    listed = net.trade.get_merchant("hub-kigali", "m-2")
    assert clean.state is MerchantState.ACTIVE
    assert clean.screening is not None and clean.screening.startswith("clear:")
    assert listed.state is MerchantState.REVIEW and listed.screening is not None
    assert "BANCO NACIONAL DE CUBA" in listed.screening and "OFAC entry 306" in listed.screening


def test_the_hubs_country_is_not_taken_for_a_listed_persons_nationality(net: Net) -> None:
    """A business is screened with its hub's country: where the business is, not the
    nationality of the person its name resembles. Taken for one, a Kigali business named like
    a listed Rwandan ('MUSONI, Straton', nationality Rwanda) was a `match`, suspended on its
    name alone, its reason saying 'nationality Rwanda matches' though no nationality was
    given; and one named like a listed Chinese national was told its nationality differs."""
    screening = SanctionsScreening(lambda: Screener.from_directory(LISTS))
    net.trade.onboarding_screening = screening.screen_business
    net.merchant("m-1", reg="RW-1", name="Straton Musoni")
    held = net.trade.get_merchant("hub-kigali", "m-1")
    assert held.state is MerchantState.REVIEW, held.screening
    assert held.screening is not None and "OFAC entry 10325" in held.screening
    assert "nationality Rwanda matches" not in held.screening
    outcome, why = screening.screen_business("Wong Moon Chi", "MY")
    assert outcome == "review" and "nationality differs" not in why


def test_an_onboarding_screening_names_its_logged_decision(net: Net) -> None:
    """The hub reads why a business was held; the decision log explains a decision by its id.
    The merchant's screening note named no id (a payment's hold names its decision), so no
    one could find the onboarding decision again to explain it or link a review to it."""
    sink = MemorySink()
    screening = SanctionsScreening(lambda: Screener.from_directory(LISTS, sink=sink))
    net.trade.onboarding_screening = screening.screen_business
    net.merchant("m-1", reg="RW-1", name="Banco Nacional de Cuba")
    net.merchant("m-2", reg="RW-2", name="Inzozi Crafts Ltd")
    for merchant_id, outcome in (("m-1", "review"), ("m-2", "clear")):
        note = net.trade.get_merchant("hub-kigali", merchant_id).screening
        assert note is not None
        found = re.search(r"sanctions decision ([0-9a-f]{32})", note)
        assert found is not None, note
        assert get_decision(sink, found.group(1)).outcome == outcome
