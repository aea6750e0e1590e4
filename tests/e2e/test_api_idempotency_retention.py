"""An Idempotency-Key's answer is kept for the retention period, then purged by the deadline
pass: found by a review, every keyed write's answer (its whole text) and marker was kept for
ever, a table growing by gigabytes a day at the bench's rate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from entrepot.config import IDEMPOTENCY_RETENTION_S as RETENTION_S
from entrepot.config import load_settings
from entrepot.entrypoints.api.app import create_app
from entrepot.entrypoints.api.deadlines import run_once
from entrepot.entrypoints.cli.output import open_app
from entrepot.kernel.clock import NS_PER_S, FakeClock
from entrepot.kernel.errors import ConfigurationError
from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.keyed import ANSWER_LOST, purge_answers
from tests.e2e.test_api_lost_answers import Api


@pytest.fixture
def api(scheme: PaymentScheme) -> Iterator[Api]:
    with TestClient(create_app(scheme)) as client:
        yield Api(scheme, client)


def _keys(scheme: PaymentScheme) -> list[tuple[str, str, int]]:
    c = st.idempotency.c
    with scheme.engine.connect() as conn:
        rows = conn.execute(sa.select(c.caller, c.key, c.status_code)).all()
    return sorted((r[0], r[1], r[2]) for r in rows)


def test_an_answer_is_replayed_within_the_retention_and_purged_after_it(
    api: Api, scheme: PaymentScheme, clock: FakeClock
) -> None:
    scheme.create_escrow(
        "mtn-rw", "e1", "bk-rw", "RWF", 1_000, "goods", 86_400 * 3, "refund", controller="hub"
    )
    part = {"amount": {"amount": "300", "currency": "RWF"}}
    first = api.post("hub", "/v1/escrows/e1/release", part, key="r1")
    assert first.status_code == 200 and first.json()["held"]["minor"] == 700
    clock.advance(RETENTION_S - 1)
    assert scheme.purge_idempotency() == {"idempotency_keys_purged": 0}
    again = api.post("hub", "/v1/escrows/e1/release", part, key="r1")  # a retry: replayed
    assert again.json() == first.json() and scheme.get_escrow("hub", "e1").held_minor == 700
    clock.advance(2)  # older than the retention period (kept for the whole of it)
    # a key written later (and its marker) stays; the first one's row goes
    later = api.post("hub", "/v1/escrows/e1/release", part, key="r2")
    assert later.json()["held"]["minor"] == 400
    assert [k for _, k, _ in _keys(scheme)] == ["r1", "r2"]
    assert scheme.purge_idempotency() == {"idempotency_keys_purged": 1}
    assert [k for _, k, _ in _keys(scheme)] == ["r2"]
    # past it, the key names a new request: another body is no 409, it acts
    other = {"amount": {"amount": "100", "currency": "RWF"}}
    reused = api.post("hub", "/v1/escrows/e1/release", other, key="r1")
    assert reused.status_code == 200 and reused.json()["held"]["minor"] == 300


def test_a_lost_answers_marker_is_purged_too_and_a_purge_works_in_batches(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    now = clock.now_ns()
    with scheme.engine.begin() as conn:
        for i in range(7):
            conn.execute(
                sa.insert(st.idempotency).values(
                    caller="mtn-rw",
                    key=f"k{i}",
                    request_hash="h",
                    status_code=ANSWER_LOST if i % 2 else 201,
                    response="",
                    created_at=now - (10 - i) * NS_PER_S,
                )
            )
    cut = now - 4 * NS_PER_S  # k0..k5 are older
    assert purge_answers(scheme.engine, cut, batch=2, most=3) == 3  # the rest next pass
    assert purge_answers(scheme.engine, cut, batch=2) == 3
    assert purge_answers(scheme.engine, cut, batch=2) == 0
    assert _keys(scheme) == [("mtn-rw", "k6", 201)]


def test_the_servers_deadline_pass_purges_keys(scheme: PaymentScheme, clock: FakeClock) -> None:
    class Idle:
        def process_deadlines(self) -> dict[str, int]:
            return {}

        def log_pending_decisions(self) -> dict[str, int]:
            return {}

    class App:
        payments = scheme
        trade = Idle()
        lending = Idle()

    with scheme.engine.begin() as conn:
        conn.execute(
            sa.insert(st.idempotency).values(
                caller="mtn-rw",
                key="old",
                request_hash="h",
                status_code=201,
                response="{}",
                created_at=clock.now_ns(),
            )
        )
    clock.advance(RETENTION_S + 1)
    done = run_once(App())
    assert done["idempotency"] == {"idempotency_keys_purged": 1}
    assert _keys(scheme) == []


def test_the_retention_is_the_operators_to_set_within_bounds(tmp_path: Path) -> None:
    assert load_settings({}).idempotency_retention_s == RETENTION_S == 86_400
    env = {"ENTREPOT_IDEMPOTENCY_RETENTION_S": "604800", "ENTREPOT_HOME": str(tmp_path)}
    assert load_settings(env).idempotency_retention_s == 604_800
    with open_app(load_settings(env)) as app:  # and the scheme the server runs keeps it
        assert app.payments.idempotency_retention_s == 604_800
    for bad in ("59", "3599", "abc", "-3600", "1e5", "31622401"):
        with pytest.raises(ConfigurationError, match="ENTREPOT_IDEMPOTENCY_RETENTION_S"):
            load_settings({"ENTREPOT_IDEMPOTENCY_RETENTION_S": bad})
