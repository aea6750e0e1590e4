from entrepot.ledger import Account, Ledger, Transfer


def test_transfer_round_trip(ledger: Ledger) -> None:
    assert ledger.create_accounts([Account(1, 978, 1), Account(2, 978, 1)]) == ["ok", "ok"]
    assert ledger.create_transfers([Transfer(7, 1, 2, 250, ledger=978, code=1)]) == ["ok"]
    a, b = ledger.lookup_accounts([1, 2])
    assert (a.debits_posted, b.credits_posted) == (250, 250)
    assert ledger.check_invariants().ok
