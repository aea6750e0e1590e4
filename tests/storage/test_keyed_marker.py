"""A key's marker (written with its operation, payments/keyed.py) is filled in only with the
answer to the request it was written for."""

from __future__ import annotations

import sqlalchemy as sa

from entrepot.payments import store as st
from entrepot.payments.keyed import ANSWER_LOST, KEYED_REQUEST, KeyedRequest, mark_keyed


def _row(engine: sa.Engine) -> tuple[str, int, str]:
    with engine.connect() as conn:
        found = st.IDEMPOTENT_ANSWER.first(conn, ("mtn-rw", "k-1"))
    assert found is not None
    return found[0], found[1], found[2]


def test_an_answer_to_another_request_does_not_fill_a_keys_marker(engine: sa.Engine) -> None:
    """Two servers of one database without a shared home may each run a request with the
    same key (the in-progress claims are per home): the one whose body differed stored its
    answer over the other's marker, and a retry of the first was answered with it."""
    token = KEYED_REQUEST.set(KeyedRequest("mtn-rw", "k-1", "hash-a"))
    try:
        with engine.begin() as conn:
            mark_keyed(conn, 1)
    finally:
        KEYED_REQUEST.reset(token)
    assert _row(engine)[:2] == ("hash-a", ANSWER_LOST)
    other = ("mtn-rw", "k-1", "hash-b", 201, '{"b": 1}', 2, None)
    with engine.begin() as conn:
        st.STORE_IDEMPOTENT_ANSWER.execute(conn, other)
    assert _row(engine)[:2] == ("hash-a", ANSWER_LOST)  # still waiting for its own answer
    own = ("mtn-rw", "k-1", "hash-a", 201, '{"a": 1}', 3, None)
    with engine.begin() as conn:
        st.STORE_IDEMPOTENT_ANSWER.execute(conn, own)
    assert _row(engine) == ("hash-a", 201, '{"a": 1}')
