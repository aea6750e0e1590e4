"""Kill -9 the API server mid-load on the trade and lending routes, with its deadline pass
running: after a restart every write it acknowledged (2xx) is there, in the state it was
acknowledged in or a later legal one; every decision it acknowledged is in the decision log;
a keyed request retried with its Idempotency-Key is answered as the first time (acknowledged:
the stored answer; cut off by the kill: its effect, never a second one nor a refusal of what
was done); the ledger and the escrows add up; and the server starts on what the kill left.

``ENTREPOT_CRASH_ROUNDS`` (default 1) runs that many kill-restart rounds on one database;
``ENTREPOT_CRASH_SEED`` picks the kill points (printed on failure); ``ENTREPOT_CRASH_DEBUG``
prints the progress and the requests the kill cut off."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from entrepot.config import load_settings
from entrepot.entrypoints.cli.output import open_app
from entrepot.kernel.clock import FakeClock
from entrepot.payments import EscrowState
from entrepot.payments.credentials import issue_credential
from entrepot.risk.decisions import JsonlSink
from entrepot.risk.lending import CreditPolicy
from entrepot.sim.payments_bench import _free_port, wait_ready
from entrepot.sim.trade_network import build_trade_network, post_rates
from entrepot.trade.credentials import issue_actor_credential, list_actor_credentials
from tests.e2e.test_serve import start_server
from tests.trade.network import DESTINATION, ORIGIN

pytestmark = pytest.mark.slow

ROUNDS = int(os.environ.get("ENTREPOT_CRASH_ROUNDS", "1"))
SEED = int(os.environ.get("ENTREPOT_CRASH_SEED", str(random.randrange(1 << 30))))
CLIENTS = 12
#: the kill comes after this many acknowledged writes (a random point between)
KILL_AFTER_ACKS = (150, 450)
LOAD_S_MAX = 30
PARTICIPANTS = ("scheme", "mtn-rw", "maybank-my", "hub-kigali", "hub-kuala-lumpur")
ARBITRATORS = tuple(f"arb-kigali-{n}" for n in (1, 2, 3))
BUYERS = 4
DUE_ORDERS = 30  # seeded in the past: the server's deadline pass acts on them under the load
DAY_S = 86_400

ORDER_NEXT = {
    "PAID": {"SHIPPED", "CANCELLED"},
    "SHIPPED": {"DELIVERED", "DISPUTED", "REFUNDED"},
    "DELIVERED": {"RETURN_REQUESTED", "DISPUTED", "COMPLETED"},
    "RETURN_REQUESTED": {"DELIVERED", "REFUNDED", "DISPUTED"},
    "DISPUTED": {"COMPLETED", "REFUNDED"},
}


def _later(state: str, table: dict[str, set[str]]) -> set[str]:
    """``state`` and every state reachable from it."""
    seen, todo = {state}, [state]
    while todo:
        for nxt in table.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@dataclass
class Call:
    caller: str
    method: str
    path: str
    body: dict[str, Any] | None
    key: str
    status: int = 0
    answer: Any = None


@dataclass
class Run:
    tokens: dict[str, str]
    acked: list[Call] = field(default_factory=list)
    lost: list[Call] = field(default_factory=list)  # sent; the kill cut off the answer
    refused: list[Call] = field(default_factory=list)

    def headers(self, caller: str, key: str | None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.tokens[caller]}"}
        return h if key is None else {**h, "Idempotency-Key": key}


class Killed(Exception):
    pass


# ---------------------------------------------------------------------- the world
def _policy() -> CreditPolicy:
    return CreditPolicy(
        lender_id="mtn-rw",
        currency="RWF",
        min_tenure_days=60,
        min_avg_monthly_sales_minor=10_000,
        max_refund_rate=Decimal("0.05"),
        max_dispute_rate=Decimal("0.02"),
        min_regularity=Decimal("0.2"),
        limit_multiple=Decimal("1.5"),
        limit_min_minor=10_000,
        limit_max_minor=2_000_000,
        fee_bps=300,
        term_days=90,
        repayment_share_bps=1_000,
    )


def _item(sku: str) -> dict[str, Any]:
    return {
        "sku": sku,
        "title": "Woven agaseke basket",
        "hsCode": "460219",
        "origin": "RW",
        "weightG": 800,
        "dimensionsMm": {"length": 300, "width": 300, "height": 250},
        "price": {"minor": 45_000, "currency": "RWF"},
    }


def _seed(env: dict[str, str]) -> dict[str, str]:
    """The six hubs, buyers, a merchant with a loan, and orders whose deadlines passed
    (built 20 days ago): the server's deadline pass cancels, releases and pays out (with the
    loan's share withheld) while the load runs."""
    past = FakeClock(int((time.time() - 20 * DAY_S) * 1e9))
    settings = load_settings(env)
    tokens: dict[str, str] = {}
    with open_app(settings, clock=past) as app:
        scheme, trade = app.payments, app.trade
        build_trade_network(scheme, trade)
        for p in PARTICIPANTS:
            tokens[p] = issue_credential(app.engine, p).token
        for n in range(BUYERS):
            msisdn = f"+6012345670{n}"
            scheme.register_alias("maybank-my", "MSISDN", msisdn, f"b-{n}", "MYR")
            trade.register_buyer("hub-kuala-lumpur", f"b-{n}", f"Buyer {n}", "MSISDN", msisdn)
            trade.grant_wallet_consent("maybank-my", f"b-{n}")
            issued = issue_actor_credential(trade, "hub-kuala-lumpur", f"buyer:b-{n}")
            tokens[f"buyer:b-{n}"] = issued.token
        for a in ARBITRATORS:
            tokens[f"arbitrator:{a}"] = issue_actor_credential(
                trade, "hub-kigali", f"arbitrator:{a}"
            ).token
        scheme.register_alias("mtn-rw", "BUSINESS", "RW-SEED", "Seed Ltd", "RWF")
        trade.onboard_merchant("hub-kigali", "m-seed", "Seed Ltd", "RW-SEED", "BUSINESS", "RW-SEED")
        seller = "merchant:m-seed"
        trade.add_item(
            seller,
            "sku-seed",
            "Woven agaseke basket",
            "460219",
            "RW",
            weight_g=800,
            dimensions_mm=(300, 300, 250),
            price_minor=45_000,
            currency="RWF",
        )
        trade.set_stock(seller, "sku-seed", "kigali-fc1", 1_000)
        app.lending.set_policy("mtn-rw", _policy())
        history = trade.merchant_history(seller, "m-seed", 3)
        app.lending.offer("m-seed", "off-seed", "mtn-rw", history)
        app.lending.contest("m-seed", "off-seed", "new here")
        app.lending.review(
            "mtn-rw", "off-seed", "officer-1", "overturned", "ok", new_principal_minor=500_000
        )
        app.lending.accept("m-seed", "off-seed-review")
        for n in range(DUE_ORDERS):
            buyer = f"buyer:b-{n % BUYERS}"
            trade.quote(buyer, f"q-seed-{n}", [("sku-seed", 1)])
            trade.checkout(buyer, f"o-seed-{n}", f"q-seed-{n}")
            if n % 2 == 0:  # delivered: released at the end of its dispute window
                for code in ORIGIN:
                    trade.track("hub-kigali", f"o-seed-{n}", code)
                for code in DESTINATION:
                    trade.track("hub-kuala-lumpur", f"o-seed-{n}", code)
            # else paid and never handed over: cancelled
    with open_app(settings) as app:
        post_rates(app.payments)  # today's rates, for the load's quotes
    return tokens


# ---------------------------------------------------------------------- the load
async def _call(
    client: httpx.AsyncClient,
    run: Run,
    caller: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    key: str,
    killed: asyncio.Event,
) -> Call:
    if killed.is_set():
        raise Killed
    call = Call(caller, method, path, body, key)
    try:
        r = await client.request(method, path, json=body, headers=run.headers(caller, key))
    except httpx.TransportError:
        run.lost.append(call)
        raise Killed from None
    call.status, call.answer = r.status_code, r.json()
    if 200 <= r.status_code < 300:
        run.acked.append(call)
    else:
        run.refused.append(call)
    return call


async def _chain(
    client: httpx.AsyncClient, run: Run, r: int, n: int, killed: asyncio.Event
) -> None:
    """One merchant's life: onboarding, its credential, an item and its stock, a buyer's
    quote and order paid into escrow, then (by n) delivery and receipt, a cancellation, a
    return, a settled dispute or an arbitrated one; and a loan: asked (declined), contested,
    overturned, accepted, partly repaid. Every write keyed."""
    m, reg, sku = f"m-{r}-{n}", f"RW-{r}{n:05d}", f"sku-{r}-{n}"
    q, o, d, off = f"q-{r}-{n}", f"o-{r}-{n}", f"d-{r}-{n}", f"off-{r}-{n}"
    buyer, merchant = f"buyer:b-{n % BUYERS}", f"merchant:{m}"
    step = iter(range(1000))

    async def call(caller: str, method: str, path: str, body: Any = None) -> Call:
        done = await _call(client, run, caller, method, path, body, f"{o}-{next(step)}", killed)
        if not 200 <= done.status < 300:
            raise Killed  # refused: the chain stops (reported below)
        return done

    await call(
        "mtn-rw", "POST", f"/v1/parties/BUSINESS/{reg}", {"displayName": m, "currency": "RWF"}
    )
    body = {
        "merchantId": m,
        "legalName": f"{m} Ltd",
        "registrationNumber": reg,
        "settlement": {"partyIdType": "BUSINESS", "partyIdentifier": reg},
    }
    await call("hub-kigali", "POST", "/v1/trade/merchants", body)
    issued = await call("hub-kigali", "POST", "/v1/trade/credentials", {"merchantId": m})
    run.tokens[merchant] = issued.answer["token"]
    await call(merchant, "POST", "/v1/trade/items", _item(sku))
    await call(merchant, "PUT", f"/v1/trade/items/{sku}/stock/kigali-fc1", {"onHand": 5})
    lines = [{"sku": sku, "quantity": 1}]
    await call(buyer, "POST", "/v1/trade/quotes", {"quoteId": q, "lines": lines})
    order = (await call(buyer, "POST", "/v1/trade/orders", {"orderId": o, "quoteId": q})).answer
    branch = n % 5
    if branch == 1:
        await call(buyer, "POST", f"/v1/trade/orders/{o}/cancel", {"reason": "changed my mind"})
    else:
        for code in ORIGIN:
            await call("hub-kigali", "POST", f"/v1/trade/orders/{o}/tracking", {"code": code})
        for code in DESTINATION:
            await call("hub-kuala-lumpur", "POST", f"/v1/trade/orders/{o}/tracking", {"code": code})
    half = order["goodsEscrow"]["amount"]["minor"] // 2
    if branch == 0:
        await call(buyer, "POST", f"/v1/trade/orders/{o}/confirm")
    elif branch == 2:
        await call(buyer, "POST", f"/v1/trade/orders/{o}/return", {"reason": "too small"})
        await call(merchant, "POST", f"/v1/trade/orders/{o}/return/answer", {"accept": True})
    elif branch in (3, 4):
        dispute = {"disputeId": d, "orderId": o, "reason": "not_as_described", "claim": "torn"}
        await call(buyer, "POST", "/v1/trade/disputes", dispute)
        await call(buyer, "POST", f"/v1/trade/disputes/{d}/evidence", {"text": "a photo"})
        if branch == 3:
            await call(buyer, "POST", f"/v1/trade/disputes/{d}/offer", {"refundMinor": half})
            await call(merchant, "POST", f"/v1/trade/disputes/{d}/accept?refundMinor={half}")
        else:
            await call(merchant, "POST", f"/v1/trade/disputes/{d}/escalate")
            panel = ARBITRATORS
            pick = panel[int(hashlib.sha256(d.encode()).hexdigest(), 16) % len(panel)]
            ruling = {"outcome": "split", "refundMinor": half, "reason": "half torn"}
            await call(f"arbitrator:{pick}", "POST", f"/v1/trade/disputes/{d}/ruling", ruling)
    ask = {"offerId": off, "lenderId": "mtn-rw"}
    await call(merchant, "POST", "/v1/risk/lending/offers", ask)
    await call(merchant, "POST", f"/v1/risk/lending/offers/{off}/contest", {"statement": "new"})
    review = {
        "reviewerId": "officer-1",
        "outcome": "overturned",
        "reason": "known customer",
        "newPrincipalMinor": 20_000,
    }
    await call("mtn-rw", "POST", f"/v1/risk/lending/contests/{off}/review", review)
    await call(merchant, "POST", f"/v1/risk/lending/offers/{off}-review/accept")
    repay = {"amountMinor": 5_000, "reference": f"rp-{r}-{n}"}
    await call("mtn-rw", "POST", f"/v1/risk/lending/loans/{off}-review/repayments", repay)


async def _load(base: str, run: Run, r: int, kill_at: int, pgid: int) -> None:
    killed = asyncio.Event()
    counter = iter(range(100_000))

    async def client(http: httpx.AsyncClient) -> None:
        for n in counter:
            if killed.is_set():
                return
            with contextlib.suppress(Killed):
                await _chain(http, run, r, n, killed)

    async def killer() -> None:
        # at the kill point, or after LOAD_S_MAX on a machine too busy to get there
        started = time.monotonic()
        while len(run.acked) < kill_at and time.monotonic() - started < LOAD_S_MAX:
            if os.environ.get("ENTREPOT_CRASH_DEBUG"):
                print(len(run.acked), len(run.refused), flush=True)
                await asyncio.sleep(1)
            await asyncio.sleep(0.005)
        killed.set()
        os.killpg(pgid, signal.SIGKILL)

    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        tasks = [asyncio.create_task(client(http)) for _ in range(CLIENTS)]
        await killer()
        failed = [e for e in await asyncio.gather(*tasks, return_exceptions=True) if e]
    assert not failed, failed  # a client's own error, not the server's
    if os.environ.get("ENTREPOT_CRASH_DEBUG"):
        for c in run.lost:
            print("LOST", c.caller, c.method, c.path, c.body, flush=True)


# ---------------------------------------------------------------------- after the restart
def _resend(base: str, run: Run, call: Call) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=60) as http:
        return http.request(
            call.method, call.path, json=call.body, headers=run.headers(call.caller, call.key)
        )


def _check_retries(base: str, run: Run) -> None:
    """An acknowledged keyed request is answered as it was; one the kill cut off is answered
    with what it did, or does it now: never refused for having been done."""
    for call in run.acked:
        r = _resend(base, run, call)
        if call.path == "/v1/trade/credentials":  # a secret, shown once: not replayed
            assert (r.status_code, r.json()["code"]) == (409, "not_replayable"), call
            continue
        assert (r.status_code, r.json()) == (call.status, call.answer), (call, r.text)
    wrong = []
    for call in run.lost:
        r = _resend(base, run, call)
        if call.path == "/v1/trade/credentials" and r.status_code == 409:
            assert r.json()["code"] == "not_replayable", r.text  # issued, its answer lost
            continue
        again = _resend(base, run, call)
        if not 200 <= r.status_code < 300:
            wrong.append((call.caller, call.method, call.path, call.body, r.status_code, r.text))
            continue
        if call.path == "/v1/trade/credentials":  # not done before the kill: issued now, once
            assert (again.status_code, again.json()["code"]) == (409, "not_replayable"), call
            continue
        assert (again.status_code, again.json()) == (r.status_code, r.json()), (call, again.text)
        call.status, call.answer = r.status_code, r.json()
        run.acked.append(call)
    assert not wrong, (SEED, len(run.lost), wrong)


def _check_state(env: dict[str, str], run: Run) -> None:
    """What each acknowledged write made is there, as acknowledged or later; decisions are in
    the log; the ledger and every order's escrows add up."""
    settings = load_settings(env)
    logged = {d.decision_id for d in JsonlSink(settings.home / "decisions")}
    with open_app(settings) as app:
        trade, lending = app.trade, app.lending
        tracked: dict[str, int] = {}
        for call in run.acked:
            path, a = call.path, call.answer
            if path == "/v1/trade/merchants":
                assert trade.get_merchant("hub-kigali", a["merchantId"]).state.value == "active"
            elif path == "/v1/trade/credentials":
                principal = a["principal"]
                creds = {
                    c.key_id: c for c in list_actor_credentials(trade, "hub-kigali", principal)
                }
                assert a["keyId"] in creds and not creds[a["keyId"]].revoked, a
            elif path == "/v1/trade/items":
                assert [i.sku for i in trade.catalogue(a["merchantId"])] == [a["sku"]]
            elif path.endswith("/stock/kigali-fc1"):
                (level,) = trade.stock(a["sku"])
                assert level.on_hand in (4, 5), level
            elif path == "/v1/trade/quotes":
                trade.get_quote(call.caller, a["quoteId"])
            elif path.startswith("/v1/trade/orders") and "state" in a:
                now = trade.get_order("hub-kigali", a["orderId"]).state.value
                assert now in _later(a["state"], ORDER_NEXT), (call, now)
            elif path.endswith("/tracking"):
                oid = path.split("/")[4]
                tracked[oid] = tracked.get(oid, 0) + 1
            elif path.startswith("/v1/trade/disputes"):
                got = trade.get_dispute("hub-kigali", a["disputeId"])
                assert got.state.value == a["state"] or a["state"] != "RULED", (call, got)
            elif path == "/v1/risk/lending/offers":
                assert lending.get_offer("mtn-rw", a["offerId"]).log_id == a["decisionId"]
                assert a["decisionId"] in logged, call
            elif path.endswith("/review"):
                assert a["decisionId"] in logged, call
                assert lending.get_offer("mtn-rw", a["newOfferId"]).state.value in (
                    "open",
                    "accepted",
                )
            elif path.endswith("/accept") and "loanId" in a:
                assert lending.get_loan("mtn-rw", a["loanId"]).principal_minor == 20_000
            elif path.endswith("/repayments"):
                loan = lending.get_loan("mtn-rw", a["loanId"])
                assert loan.repaid_minor >= 5_000, loan
        for oid, count in tracked.items():
            assert len(trade.tracking("hub-kigali", oid)["events"]) >= count, oid
        # every offer stored has its decision in the log (logged before it is stored)
        for offer in lending.list_offers("mtn-rw"):
            assert offer.log_id in logged, offer
        report = app.ledger.check_invariants()
        assert report.ok, report.violations
        _check_escrows(app)


def _check_escrows(app: Any) -> None:
    """Each order's goods escrow holds what an open order holds and paid out what a closed
    one paid; its taxes escrow is held, paid to customs, or refunded."""
    trade, scheme = app.trade, app.payments
    for order in trade.list_orders("hub-kigali", None, 1000):
        goods = scheme.get_escrow("hub-kigali", order.goods_escrow_id)
        assert goods.amount_minor == order.goods_escrow_minor
        state = order.state.value
        if state in ("COMPLETED", "CANCELLED", "REFUNDED"):
            assert goods.held_minor == 0 and goods.state is EscrowState.CLOSED, (order, goods)
            if state == "CANCELLED":
                assert goods.refunded_minor == goods.amount_minor, (order, goods)
        else:
            assert goods.held_minor == goods.amount_minor, (order, goods)


# ---------------------------------------------------------------------- the test
@contextlib.contextmanager
def _serving(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_server(env, port, 2, "--deadlines-every", "0.3", new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=120)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def test_kill_minus_nine_keeps_every_acknowledged_trade_and_lending_write(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "ENTREPOT_DATABASE_URL": f"sqlite:///{tmp_path / 'crash.db'}",
        "ENTREPOT_HOME": str(tmp_path),
    }
    rng = random.Random(SEED)
    run = Run(_seed(env))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    for r in range(ROUNDS):
        kill_at = rng.randint(*KILL_AFTER_ACKS)
        with _serving(env, port) as proc:
            asyncio.run(_load(base, run, r, kill_at, proc.pid))
        assert len(run.acked) >= 50, (SEED, len(run.acked), run.refused[:3])
        assert not [c for c in run.refused if c.status >= 500], (SEED, run.refused)
        with _serving(env, port):  # it starts on what the kill left
            _check_retries(base, run)
            _check_state(env, run)
        run.lost.clear()
