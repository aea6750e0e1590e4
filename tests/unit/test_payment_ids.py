"""Scheme ids map to ledger ids exactly as uuid5 did, so retries and replays keep posting the
ids already stored."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from entrepot.payments.services import ID_NAMESPACE, ledger_id


@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_ledger_id_is_uuid5_of_the_joined_parts(parts: list[str]) -> None:
    assert ledger_id(*parts) == uuid.uuid5(ID_NAMESPACE, ":".join(parts)).int


def test_known_values_do_not_move() -> None:
    assert ledger_id("fee", "t1") == uuid.uuid5(ID_NAMESPACE, "fee:t1").int
    assert f"{ledger_id('bulk-1', 't-1'):032x}" == uuid.uuid5(ID_NAMESPACE, "bulk-1:t-1").hex
