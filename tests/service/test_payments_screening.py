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


def test_load_builds_the_screeners_once_ahead_of_the_first_transfer(
    scheme: PaymentScheme, screener: object
) -> None:
    from entrepot.payments.screening import CombinedScreening, FraudScreening

    built: list[str] = []

    def sanctions() -> object:
        built.append("sanctions")
        return screener

    def fraud() -> object:
        built.append("fraud")
        return object()

    combined = CombinedScreening([SanctionsScreening(sanctions), FraudScreening(fraud)])  # type: ignore[arg-type]
    assert built == []  # nothing is built until asked
    combined.load()
    assert built == ["sanctions", "fraud"]
    combined.load()
    scheme.screening = combined.screenings[0]
    q = scheme.create_quote("mtn-rw", "q-l", "MERCHANT", "KL-TILL-42", 500, "RECEIVE", "RWF")
    assert scheme.prepare_transfer("mtn-rw", "t-l", q.id).state is TransferState.RESERVED
    assert built == ["sanctions", "fraud"]  # loaded once, used as loaded


def test_an_api_worker_loads_the_lists_before_its_first_request(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, screener: object
) -> None:
    import gc

    from entrepot.entrypoints.api.app import create_app_from_env
    from entrepot.risk.sanctions import Screener

    loads: list[object] = []

    def from_directory(*args: object, **kwargs: object) -> object:
        loads.append(args)
        return screener

    monkeypatch.setattr(Screener, "from_directory", from_directory)
    monkeypatch.setenv("ENTREPOT_DATABASE_URL", f"sqlite:///{tmp_path}/api.db")
    monkeypatch.setenv("ENTREPOT_HOME", str(tmp_path))
    monkeypatch.setenv("ENTREPOT_SCREENING", "sanctions")
    try:
        app = create_app_from_env()
    finally:
        gc.unfreeze()
    assert len(loads) == 1
    app.state.scheme.engine.dispose()
