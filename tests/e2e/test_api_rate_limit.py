"""Each participant's request rate, limited across the workers of one home (rate_limit.py,
ADR 0016): what is admitted, what is refused and that a refusal changes nothing, and that the
workers share one count."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from entrepot.config import load_settings
from entrepot.entrypoints.api import rate_limit as rl
from entrepot.entrypoints.api.app import create_app
from entrepot.entrypoints.api.rate_limit import RateLimit, RateLimiter
from entrepot.kernel.errors import ConfigurationError
from entrepot.kernel.limits import RATE_PER_S_MAX
from entrepot.payments import PaymentScheme
from entrepot.payments.credentials import issue_credential
from tests.e2e.test_api_middleware import app_from_env

QUOTE = {
    "quoteId": "q-rate",
    "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
    "amountType": "SEND",
    "amount": {"amount": "5000", "currency": "RWF"},
    "sourceCurrency": "RWF",
}


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def mono() -> Clock:
    """The limiter's clock (``clock`` is the scheme's, conftest.py)."""
    return Clock()


def _limiter(tmp_path: Path, clock: Clock, rate: float = 2.0, burst: int = 3) -> RateLimiter:
    return RateLimiter(RateLimit(rate, burst), tmp_path / "rate-limits.table", clock=clock)


def test_a_burst_is_admitted_then_the_rate(tmp_path: Path, mono: Clock) -> None:
    limiter = _limiter(tmp_path, mono, rate=2.0, burst=3)
    try:
        assert [limiter.admit("mtn-rw") for _ in range(3)] == [None, None, None]
        wait = limiter.admit("mtn-rw")
        assert wait == pytest.approx(0.5)  # the next is due one interval (1/2 s) on
        mono.now += 0.25
        assert limiter.admit("mtn-rw") == pytest.approx(0.25)  # a refusal moved nothing
        mono.now += 0.25
        assert limiter.admit("mtn-rw") is None
        assert limiter.admit("mtn-rw") == pytest.approx(0.5)
        mono.now += 10  # idle: a whole burst again, not the idle time's worth of requests
        assert [limiter.admit("mtn-rw") for _ in range(4)][-2:] == [None, pytest.approx(0.5)]
    finally:
        limiter.close()


def test_each_participant_has_its_own_budget(tmp_path: Path, mono: Clock) -> None:
    limiter = _limiter(tmp_path, mono, rate=1.0, burst=1)
    try:
        assert limiter.admit("mtn-rw") is None
        assert limiter.admit("mtn-rw") is not None
        assert limiter.admit("maybank") is None
        assert limiter.admit("icbc") is None
    finally:
        limiter.close()


def test_the_workers_of_one_home_share_each_participants_count(tmp_path: Path, mono: Clock) -> None:
    """Two limiters on one table stand for two workers: a participant whose requests are
    spread over both gets the limit once, not once a worker."""
    one, two = _limiter(tmp_path, mono, burst=4), _limiter(tmp_path, mono, burst=4)
    try:
        admitted = [(one if i % 2 else two).admit("mtn-rw") is None for i in range(8)]
        assert admitted == [True] * 4 + [False] * 4
        assert one.admit("maybank") is None and two.admit("maybank") is None
    finally:
        one.close()
        two.close()


def test_the_table_is_the_workers_own(tmp_path: Path, mono: Clock) -> None:
    limiter = _limiter(tmp_path, mono)
    try:
        limiter.admit("mtn-rw")
        mode = stat.S_IMODE(os.stat(tmp_path / "rate-limits.table").st_mode)
        assert mode == 0o600  # another user who could lock it would stall every request
    finally:
        limiter.close()


def test_a_count_left_by_another_boot_is_read_as_idle(tmp_path: Path, mono: Clock) -> None:
    """CLOCK_MONOTONIC starts again at a reboot: a ``tat`` written before it is far ahead of
    the new clock, and would otherwise refuse the participant for as long as the host had
    been up."""
    before = _limiter(tmp_path, Clock(5_000_000.0), rate=1.0, burst=2)
    before.admit("mtn-rw")
    before.admit("mtn-rw")
    before.close()
    after = _limiter(tmp_path, mono, rate=1.0, burst=2)  # mono.now: 1,000 s since boot
    try:
        assert after.admit("mtn-rw") is None and after.admit("mtn-rw") is None
        assert after.admit("mtn-rw") == pytest.approx(1.0)
    finally:
        after.close()


def test_a_table_of_another_layout_is_cleared_never_shortened(tmp_path: Path, mono: Clock) -> None:
    path = tmp_path / "rate-limits.table"
    path.write_bytes(b"ENTRRATE" + b"\x09\x00\x00\x00" + b"\xff" * 3_000_000)
    limiter = _limiter(tmp_path, mono, rate=1.0, burst=1)
    try:
        assert limiter.admit("mtn-rw") is None  # the old bytes were not read as counts
        assert limiter.admit("mtn-rw") is not None
        assert path.stat().st_size == 3_000_012  # a worker still mapping it would fault
    finally:
        limiter.close()


def test_a_killed_workers_lock_is_let_go(tmp_path: Path, mono: Clock) -> None:
    """A worker killed while it holds the table's lock (between reading and moving a count)
    must not stall every other worker's requests: the kernel lets an open file description's
    lock go with the process."""
    path = tmp_path / "rate-limits.table"
    _limiter(tmp_path, mono).admit("mtn-rw")  # the table exists
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "from entrepot.entrypoints.api import rate_limit as rl\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
            "fcntl.fcntl(fd, rl._SETLKW, rl._FLOCK.pack(fcntl.F_WRLCK, 0, 0, 1, 0))\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        holder.kill()
        holder.wait(timeout=10)
        limiter = _limiter(tmp_path, mono)
        assert limiter.admit("maybank") is None  # returned: the lock was let go
        limiter.close()
    finally:
        holder.kill()


def test_without_a_usable_table_the_limit_holds_per_worker_and_says_so(
    tmp_path: Path, mono: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(
        RateLimit(1.0, 1), tmp_path / "no-such-dir" / "rate-limits.table", clock=mono
    )
    with caplog.at_level(logging.WARNING, logger=rl.__name__):
        assert limiter.admit("mtn-rw") is None
        assert limiter.admit("mtn-rw") is not None
        mono.now += 1
        assert limiter.admit("mtn-rw") is None
    limiter.close()
    warned = [r.message for r in caplog.records if "in each worker apart" in r.message]
    assert len(warned) == 1 and "no-such-dir" in warned[0]


def test_a_participant_whose_slots_are_all_taken_is_not_refused_for_it(
    tmp_path: Path, mono: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A table too small for its participants (here 64 slots, every one taken) admits the
    one without a slot, with a warning, rather than refusing it for the table's sake."""
    limiter = RateLimiter(RateLimit(1.0, 1), None, clock=mono, slots=rl.PROBES)
    try:
        for i in range(rl.PROBES):
            assert limiter.admit(f"p-{i}") is None
        with caplog.at_level(logging.WARNING, logger=rl.__name__):
            assert [limiter.admit("latecomer") for _ in range(3)] == [None, None, None]
        assert limiter.admit("p-0") is not None  # those with slots are still limited
        assert any("table is full" in r.message for r in caplog.records)
    finally:
        limiter.close()


def test_limits_are_positive_and_bursts_whole() -> None:
    for rate, burst in ((0.0, 1), (-1.0, 1), (float("inf"), 1), (float("nan"), 1), (1.0, 0)):
        with pytest.raises(ValueError):
            RateLimit(rate, burst)


# --- through HTTP ---


@pytest.fixture
def api(
    scheme: PaymentScheme, tmp_path: Path, mono: Clock
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    tokens = {p: issue_credential(scheme.engine, p).token for p in ("mtn-rw", "maybank", "scheme")}
    headers = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    limiter = _limiter(tmp_path, mono, rate=1.0, burst=2)
    with TestClient(create_app(scheme, rate_limiter=limiter)) as client:
        yield client, headers


def _quotes(scheme: PaymentScheme) -> int:
    with scheme.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM pay_quotes")).scalar_one())


def test_a_request_over_the_rate_is_refused_with_when_to_retry_and_changes_nothing(
    scheme: PaymentScheme, api: tuple[TestClient, dict[str, dict[str, str]]], mono: Clock
) -> None:
    client, h = api
    for _ in range(2):
        assert client.get("/v1/participants/mtn-rw", headers=h["mtn-rw"]).status_code == 200
    before = _quotes(scheme)
    refused = client.post(
        "/v1/quotes", json=QUOTE, headers={**h["mtn-rw"], "Idempotency-Key": "k-rate"}
    )
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["Retry-After"] == "1"
    problem = refused.json()
    assert problem["code"] == "rate_limited"
    assert "1 requests a second, 2 at once" in problem["detail"]
    assert "nothing was done" in problem["detail"]
    assert _quotes(scheme) == before  # nothing was done, and the key is free for the retry
    # another participant is not held back by this one
    assert client.get("/v1/participants/maybank", headers=h["maybank"]).status_code == 200
    mono.now += 1
    retried = client.post(
        "/v1/quotes", json=QUOTE, headers={**h["mtn-rw"], "Idempotency-Key": "k-rate"}
    )
    assert retried.status_code == 201, retried.text
    assert _quotes(scheme) == before + 1


def test_refused_callers_and_public_paths_are_not_counted(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """The limit is a participant's: requests without valid credentials are not counted
    against anyone (a guessed token cannot use up a participant's requests), and the
    documentation and health check are not limited."""
    client, h = api
    for _ in range(5):
        assert client.get("/v1/participants/mtn-rw").status_code == 401
        bad = {"Authorization": "Bearer nobody.nothing"}
        assert client.get("/v1/participants/mtn-rw", headers=bad).status_code == 401
        assert client.get("/health").status_code == 200
    assert client.get("/v1/participants/mtn-rw", headers=h["mtn-rw"]).status_code == 200
    assert client.get("/v1/participants/mtn-rw", headers=h["mtn-rw"]).status_code == 200
    assert client.get("/v1/participants/mtn-rw", headers=h["mtn-rw"]).status_code == 429


def test_the_limit_covers_the_direct_payment_path(
    scheme: PaymentScheme, api: tuple[TestClient, dict[str, dict[str, str]]]
) -> None:
    """The payment calls are dispatched past FastAPI (ADR 0006), inside the security
    middleware: they are counted and refused as every other route."""
    client, h = api
    for _ in range(2):
        found = client.get("/v1/parties/MERCHANT/KL-TILL-42", headers=h["mtn-rw"])
        assert found.status_code == 200
    refused = client.get("/v1/parties/MERCHANT/KL-TILL-42", headers=h["mtn-rw"])
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"


def test_the_openapi_document_declares_the_429_on_every_operation(
    api: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    """A client generated from the document expects the refusal and its Retry-After."""
    client, h = api
    spec = client.get("/openapi.json").json()
    operations = [
        op for path, ops in spec["paths"].items() if path.startswith("/v1/") for op in ops.values()
    ]
    assert operations and all("429" in op["responses"] for op in operations)
    declared = spec["paths"]["/v1/participants/{participant_id}"]["get"]["responses"]["429"]
    assert "Retry-After" in declared["headers"]
    for _ in range(3):
        refused = client.get("/v1/participants/mtn-rw", headers=h["mtn-rw"])
    assert refused.status_code == 429
    schema = declared["content"]["application/problem+json"]["schema"]
    assert set(schema["required"]) <= set(refused.json()) <= set(schema["properties"])


# --- settings ---


def test_the_limit_is_the_operators_to_set(tmp_path: Path) -> None:
    assert load_settings({}).rate_limit_per_s is None  # off unless set
    settings = load_settings({"ENTREPOT_RATE_LIMIT": "200"})
    assert (settings.rate_limit_per_s, settings.rate_burst) == (200.0, 200)
    settings = load_settings({"ENTREPOT_RATE_LIMIT": "0.5", "ENTREPOT_RATE_BURST": "3"})
    assert (settings.rate_limit_per_s, settings.rate_burst) == (0.5, 3)
    assert load_settings({"ENTREPOT_RATE_LIMIT": "0.5"}).rate_burst == 1
    assert load_settings({"ENTREPOT_RATE_LIMIT": "off"}).rate_limit_per_s is None
    for bad in ("0", "-5", "abc", "inf", "nan", "0.001", str(RATE_PER_S_MAX + 1), "２００"):
        with pytest.raises(ConfigurationError, match="ENTREPOT_RATE_LIMIT="):
            load_settings({"ENTREPOT_RATE_LIMIT": bad})
    for bad in ("0", "1.5", "-1", "x", str(RATE_PER_S_MAX + 1)):
        with pytest.raises(ConfigurationError, match="ENTREPOT_RATE_BURST="):
            load_settings({"ENTREPOT_RATE_LIMIT": "10", "ENTREPOT_RATE_BURST": bad})
    with pytest.raises(ConfigurationError, match="without ENTREPOT_RATE_LIMIT"):
        load_settings({"ENTREPOT_RATE_BURST": "10"})


def test_the_workers_of_one_home_count_through_its_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``entrepot serve``'s workers build their app from the environment: one home, one
    table, so a participant's requests reaching either worker are counted once."""
    app, security = app_from_env(
        tmp_path, monkeypatch, ENTREPOT_RATE_LIMIT="0.01", ENTREPOT_RATE_BURST="2"
    )
    limiter = security["rate_limiter"]
    other_worker = RateLimiter(RateLimit(0.01, 2), tmp_path / "home" / "rate-limits.table")
    try:
        assert limiter.admit("mtn-rw") is None
        assert other_worker.admit("mtn-rw") is None
        assert limiter.admit("mtn-rw") is not None
        assert other_worker.admit("mtn-rw") is not None
    finally:
        limiter.close()
        other_worker.close()
        app.state.scheme.engine.dispose()


# --- a participant's own limit, set by the operator ---


def _limited(scheme: PaymentScheme, mono: Clock, default: RateLimit | None, tmp_path: Path) -> Any:
    tokens = {p: issue_credential(scheme.engine, p).token for p in ("mtn-rw", "maybank", "scheme")}
    headers = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    limiter = RateLimiter(default, tmp_path / "rate-limits.table", clock=mono)
    return TestClient(create_app(scheme, rate_limiter=limiter)), headers


def _admitted(client: TestClient, h: dict[str, str], participant: str, n: int) -> int:
    """How many of ``n`` reads at once were answered (the rest refused, 429)."""
    statuses = [
        client.get(f"/v1/participants/{participant}", headers=h).status_code for _ in range(n)
    ]
    assert set(statuses) <= {200, 429}, statuses
    return statuses.count(200)


def test_the_operator_gives_a_participant_its_own_limit_applied_from_its_next_request(
    scheme: PaymentScheme, tmp_path: Path, mono: Clock
) -> None:
    client, h = _limited(scheme, mono, RateLimit(1.0, 2), tmp_path)
    with client:
        assert _admitted(client, h["mtn-rw"], "mtn-rw", 5) == 2  # the scheme's: 2 at once
        shown = client.get("/v1/participants/mtn-rw/rateLimit", headers=h["scheme"]).json()
        assert shown["source"] == "scheme" and (shown["requestsPerSecond"], shown["burst"]) == (
            1.0,
            2,
        )
        put = client.put(
            "/v1/participants/mtn-rw/rateLimit",
            json={"requestsPerSecond": 50, "burst": 10},
            headers=h["scheme"],
        )
        assert put.status_code == 200, put.text
        own = put.json()
        assert own["source"] == "participant" and own["setBy"] == "scheme"
        assert (own["requestsPerSecond"], own["burst"]) == (50.0, 10)
        assert own["setAt"].endswith("Z")
        # from its next request on, no restart: a burst of 10 (its own), not 2
        assert _admitted(client, h["mtn-rw"], "mtn-rw", 12) == 10
        assert _admitted(client, h["maybank"], "maybank", 5) == 2  # the others keep the scheme's
        # the participant reads its own limit (what it is held to), not another's
        mono.now += 60
        assert (
            client.get("/v1/participants/mtn-rw/rateLimit", headers=h["maybank"]).status_code == 403
        )
        seen = client.get("/v1/participants/mtn-rw/rateLimit", headers=h["mtn-rw"]).json()
        assert seen["source"] == "participant" and seen["burst"] == 10
        back = client.delete("/v1/participants/mtn-rw/rateLimit", headers=h["scheme"])
        assert back.status_code == 200 and back.json()["source"] == "scheme"
        mono.now += 60
        assert _admitted(client, h["mtn-rw"], "mtn-rw", 5) == 2  # back on the scheme's


def test_without_a_scheme_limit_only_those_given_one_are_limited(
    scheme: PaymentScheme, tmp_path: Path, mono: Clock
) -> None:
    client, h = _limited(scheme, mono, None, tmp_path)
    with client:
        shown = client.get("/v1/participants/mtn-rw/rateLimit", headers=h["mtn-rw"]).json()
        assert shown == {
            "participantId": "mtn-rw",
            "source": "none",
            "requestsPerSecond": None,
            "burst": None,
            "setBy": None,
            "setAt": None,
        }
        assert _admitted(client, h["mtn-rw"], "mtn-rw", 8) == 8
        put = client.put(
            "/v1/participants/mtn-rw/rateLimit",
            json={"requestsPerSecond": 0.5},
            headers=h["scheme"],
        )
        assert put.status_code == 200 and put.json()["burst"] == 1  # a second's worth, at least 1
        assert _admitted(client, h["mtn-rw"], "mtn-rw", 3) == 1
        refused = client.get("/v1/participants/mtn-rw", headers=h["mtn-rw"])
        assert refused.headers["Retry-After"] == "2"  # one request every 2 s
        assert "0.5 requests a second, 1 at once" in refused.json()["detail"]
        assert _admitted(client, h["maybank"], "maybank", 8) == 8
        back = client.delete("/v1/participants/mtn-rw/rateLimit", headers=h["scheme"])
        assert back.json()["source"] == "none"
        assert _admitted(client, h["mtn-rw"], "mtn-rw", 4) == 4


def _rate_rows(scheme: PaymentScheme) -> list[Any]:
    with scheme.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT * FROM pay_participant_rate_limits")).all())


def test_only_the_operator_sets_a_limit_and_bad_ones_change_nothing(
    scheme: PaymentScheme, tmp_path: Path, mono: Clock
) -> None:
    client, h = _limited(scheme, mono, None, tmp_path)
    with client:
        ok = client.put(
            "/v1/participants/mtn-rw/rateLimit", json={"requestsPerSecond": 5}, headers=h["scheme"]
        )
        assert ok.status_code == 200
        before = _rate_rows(scheme)
        own = client.put(
            "/v1/participants/mtn-rw/rateLimit",
            json={"requestsPerSecond": 1e6},
            headers=h["mtn-rw"],
        )
        assert own.status_code == 403 and own.json()["code"] == "forbidden"
        dropped = client.delete("/v1/participants/mtn-rw/rateLimit", headers=h["mtn-rw"])
        assert dropped.status_code == 403
        for body, field in (
            ({"requestsPerSecond": 0}, "requestsPerSecond"),
            ({"requestsPerSecond": 0.001}, "requestsPerSecond"),
            ({"requestsPerSecond": 1_000_001}, "requestsPerSecond"),
            ({"requestsPerSecond": "50"}, "requestsPerSecond"),
            ({"requestsPerSecond": True}, "requestsPerSecond"),
            ({}, "requestsPerSecond"),
            ({"requestsPerSecond": 5, "burst": 0}, "burst"),
            ({"requestsPerSecond": 5, "burst": 2.5}, "burst"),
            ({"requestsPerSecond": 5, "burst": 1_000_001}, "burst"),
            ({"requestsPerSecond": 5, "per": 1}, "per"),
        ):
            bad = client.put("/v1/participants/mtn-rw/rateLimit", json=body, headers=h["scheme"])
            assert bad.status_code == 422, (body, bad.text)
            assert bad.json()["field"] == field, (body, bad.json())
        unknown = client.put(
            "/v1/participants/nobody/rateLimit", json={"requestsPerSecond": 5}, headers=h["scheme"]
        )
        assert unknown.status_code == 404 and unknown.json()["code"] == "participant_not_found"
        assert (
            client.get("/v1/participants/nobody/rateLimit", headers=h["scheme"]).status_code == 404
        )
        assert _rate_rows(scheme) == before


def test_the_service_checks_what_no_schema_stands_before(scheme: PaymentScheme) -> None:
    """The command line reaches the service without the API's schema."""
    from entrepot.payments.errors import InvalidPaymentInput, ParticipantNotFound
    from entrepot.payments.rate_limits import clear_rate_limit, rate_limit_of, set_rate_limit

    engine = scheme.engine
    assert rate_limit_of(engine, "mtn-rw") is None
    for per_s, burst in (
        (0, None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        ("5", None),
        (5, 0),
        (5, 2.0),
        (5, True),
    ):
        with pytest.raises(InvalidPaymentInput):
            set_rate_limit(engine, "mtn-rw", per_s, burst, actor="scheme")
    with pytest.raises(ParticipantNotFound):
        set_rate_limit(engine, "nobody", 5, actor="scheme")
    assert rate_limit_of(engine, "mtn-rw") is None  # nothing was set by any of them
    first = set_rate_limit(engine, "mtn-rw", 5, actor="scheme")
    assert (first.per_s, first.burst) == (5.0, 5)
    set_rate_limit(engine, "mtn-rw", 7.5, 20, actor="scheme")  # replaces it
    got = rate_limit_of(engine, "mtn-rw")
    assert got is not None and (got.per_s, got.burst, got.set_by) == (7.5, 20, "scheme")
    assert clear_rate_limit(engine, "mtn-rw") is True
    assert clear_rate_limit(engine, "mtn-rw") is False
    assert rate_limit_of(engine, "mtn-rw") is None
    with pytest.raises(ParticipantNotFound):
        clear_rate_limit(engine, "nobody")


def test_migration_0034_goes_down_and_up(scheme: PaymentScheme) -> None:
    from entrepot.payments.rate_limits import set_rate_limit
    from entrepot.storage.migrate import downgrade, upgrade

    engine = scheme.engine
    downgrade(engine, "0033_transfer_fx_provider_index")
    assert "pay_participant_rate_limits" not in sa.inspect(engine).get_table_names()
    upgrade(engine)
    set_rate_limit(engine, "mtn-rw", 5, actor="scheme")
    assert len(_rate_rows(scheme)) == 1


def _rate_limited_counts(client: TestClient, operator: dict[str, str]) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/v1/metrics", headers=operator).text
    return {
        m.labels["participant"]: m.value
        for family in text_string_to_metric_families(text)
        for m in family.samples
        if m.name == "entrepot_rate_limited_requests_total"
    }


def test_the_operator_sees_who_is_refused_for_its_rate(
    scheme: PaymentScheme, tmp_path: Path, mono: Clock
) -> None:
    """``GET /v1/metrics`` counts the refusals by participant: which bank is being throttled,
    not only that someone is. Trade principals, buyers among them (many, and people), are
    counted by their kind, never by id."""
    client, h = _limited(scheme, mono, RateLimit(1.0, 2), tmp_path)
    with client:
        _admitted(client, h["mtn-rw"], "mtn-rw", 5)
        _admitted(client, h["maybank"], "maybank", 3)
        counts = _rate_limited_counts(client, h["scheme"])
        assert counts == {"mtn-rw": 3.0, "maybank": 1.0}
        client.app.state.request_counts.count_rate_limited("buyer:b-7")
        client.app.state.request_counts.count_rate_limited("buyer:b-8")
        counts = _rate_limited_counts(client, h["scheme"])
        assert counts["buyer"] == 2.0 and not any(":" in k for k in counts)


def test_the_database_holds_no_limit_the_api_could_not_apply(scheme: PaymentScheme) -> None:
    """The API builds each participant's limit from the row with every request: a row
    written past the service (by hand, another tool) that held no rate would make every
    request of that participant a 500."""
    with pytest.raises(sa.exc.IntegrityError), scheme.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO pay_participant_rate_limits VALUES ('mtn-rw', 0, 1, 'scheme', 1)")
        )
    with pytest.raises(sa.exc.IntegrityError), scheme.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO pay_participant_rate_limits VALUES ('mtn-rw', 5, 0, 'scheme', 1)")
        )


def test_a_trade_principal_is_held_to_the_schemes_limit_on_its_own_count(
    scheme: PaymentScheme, tmp_path: Path, mono: Clock
) -> None:
    """A merchant's credential (another context's principal) is counted apart from its
    bank's and from other principals', under the scheme's limit."""
    token = issue_credential(
        scheme.engine, "merchant:m-rate", principal_check=lambda conn: None
    ).token
    merchant = {"Authorization": f"Bearer {token}"}
    client, h = _limited(scheme, mono, RateLimit(1.0, 2), tmp_path)
    with client:
        answers = [client.get("/v1/trade/merchants/m-rate", headers=merchant) for _ in range(3)]
        assert [a.status_code == 429 for a in answers] == [False, False, True]
        assert answers[-1].json()["code"] == "rate_limited"
        assert _admitted(client, h["mtn-rw"], "mtn-rw", 2) == 2  # its own count


def test_another_worker_applies_a_new_own_limit_within_a_second(
    scheme: PaymentScheme, tmp_path: Path, mono: Clock
) -> None:
    """Each worker reads a participant's own limit again at most ``OWN_LIMIT_FRESH_S`` after
    it last did (a read with every request cost 0.6 % of a payment); the worker that set it
    applies it at once. Two apps on one database and one table stand for two workers."""
    from entrepot.payments.rate_limits import OWN_LIMIT_FRESH_S

    setter, h = _limited(scheme, mono, None, tmp_path)
    other = TestClient(
        create_app(
            scheme, rate_limiter=RateLimiter(None, tmp_path / "rate-limits.table", clock=mono)
        )
    )
    with setter, other:
        assert _admitted(other, h["mtn-rw"], "mtn-rw", 3) == 3  # read: no limit of its own
        put = setter.put(
            "/v1/participants/mtn-rw/rateLimit",
            json={"requestsPerSecond": 0.01, "burst": 1},
            headers=h["scheme"],
        )
        assert put.status_code == 200
        assert _admitted(setter, h["mtn-rw"], "mtn-rw", 2) == 1  # at once where it was set
        assert _admitted(other, h["mtn-rw"], "mtn-rw", 2) == 2  # as last read, for now
        mono.now += OWN_LIMIT_FRESH_S
        assert _admitted(other, h["mtn-rw"], "mtn-rw", 2) == 0  # read again: the shared count
