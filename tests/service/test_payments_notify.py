"""Notifications (Mojaloop's callbacks): written in the same transaction as the state change,
delivered at least once to each participant's endpoint over real HTTP, retried with backoff,
and readable by the participant when a callback was missed."""

from __future__ import annotations

import functools
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from entrepot.config import load_settings
from entrepot.kernel.clock import FakeClock
from entrepot.kernel.errors import ConfigurationError
from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.bulk import BulkItem, bulk_transfers
from entrepot.payments.errors import InvalidPaymentInput, NetDebitCapExceeded
from entrepot.payments.notify import (
    ATTEMPTS_MAX,
    BACKOFF_S_MAX,
    CallbackAddresses,
    Dispatcher,
    http_post,
)
from tests.service.test_payments import BK_CUSTOMER, join_bk, pay


class Endpoint:
    """A participant's callback server on localhost; answers ``status`` (a queue of codes)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(
                    {
                        "path": self.path,
                        "event": self.headers["X-Entrepot-Event"],
                        "id": self.headers["X-Entrepot-Event-Id"],
                        "to": self.headers["FSPIOP-Destination"],
                        "signature": self.headers.get("X-Signature"),
                        "date": self.headers.get("X-Entrepot-Date"),
                        "host": self.headers.get("Host"),
                        "raw": body,
                        "body": json.loads(body),
                    }
                )
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/callbacks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.close()


def outbox(scheme: PaymentScheme) -> list[Any]:
    with scheme.engine.connect() as conn:
        return list(conn.execute(sa.select(st.outbox).order_by(st.outbox.c.id)).all())


def test_a_transfer_notifies_payee_then_payer_over_http(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    join_bk(scheme)
    scheme.set_endpoint("mtn-rw", endpoint.url)
    scheme.set_endpoint("bk-rw", endpoint.url + "/bk")
    t = pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    scheme.commit_transfer("bk-rw", t.id)
    counts = Dispatcher(scheme.engine, clock).deliver_due()
    assert counts == {"delivered": 2, "failed": 0}
    got = [(r["path"], r["event"], r["to"], r["body"]["state"]) for r in endpoint.received]
    assert sorted(got) == [  # the two participants are served at once: in either order
        ("/callbacks", "transfer.committed", "mtn-rw", "COMMITTED"),
        ("/callbacks/bk", "transfer.reserved", "bk-rw", "RESERVED"),
    ]
    (committed,) = [r for r in endpoint.received if r["to"] == "mtn-rw"]
    assert committed["body"]["sendAmount"] == {"minor": 1_000, "currency": "RWF"}
    assert Dispatcher(scheme.engine, clock).deliver_due() == {"delivered": 0, "failed": 0}
    seen = scheme.notifications("mtn-rw")
    assert [(n["event"], n["attempts"], n["deliveredAt"] is not None) for n in seen] == [
        ("transfer.committed", 1, True)
    ]


def test_a_failed_delivery_is_retried_with_backoff_and_recorded(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    join_bk(scheme)
    scheme.set_endpoint("bk-rw", endpoint.url)
    endpoint.statuses = [503, 500]
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    dispatcher = Dispatcher(scheme.engine, clock)
    assert dispatcher.deliver_due() == {"delivered": 0, "failed": 1}
    assert dispatcher.deliver_due() == {"delivered": 0, "failed": 0}  # backing off 1 s
    clock.advance(1)
    assert dispatcher.deliver_due() == {"delivered": 0, "failed": 1}  # then 2 s
    clock.advance(2)
    assert dispatcher.deliver_due() == {"delivered": 1, "failed": 0}
    (row,) = outbox(scheme)
    assert (row.attempts, row.last_error) == (3, None) and row.delivered_at is not None
    # the same event id each time: the receiver can drop duplicates
    assert len({r["id"] for r in endpoint.received}) == 1 and len(endpoint.received) == 3


def test_an_unreachable_endpoint_keeps_the_notice_pending(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    join_bk(scheme)
    scheme.set_endpoint("bk-rw", "http://127.0.0.1:9/nobody-listens")
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    assert Dispatcher(scheme.engine, clock).deliver_due() == {"delivered": 0, "failed": 1}
    (pending,) = scheme.notifications("bk-rw", pending_only=True)
    assert pending["event"] == "transfer.reserved" and pending["lastError"]


def test_a_new_endpoint_is_tried_at_the_next_round_not_after_the_backoff(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    """Found by a review: a participant that fixed its endpoint waited out the backoff its
    broken one had earned (up to 17 minutes) before its notices were tried at the new one."""
    join_bk(scheme)
    scheme.set_endpoint("bk-rw", "http://127.0.0.1:9/nobody-listens")
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    pay(scheme, "mtn-rw", "t2", BK_CUSTOMER, 1_000, "RWF", commit=False)
    dispatcher = Dispatcher(scheme.engine, clock)
    for wait in (0, 1, 2, 4, 8, 16):  # failing, and backing off ever longer
        clock.advance(wait)
        assert dispatcher.deliver_due() == {"delivered": 0, "failed": 1}
    assert dispatcher.deliver_due() == {"delivered": 0, "failed": 0}  # 32 s to wait now
    scheme.set_endpoint("bk-rw", endpoint.url)
    assert dispatcher.deliver_due() == {"delivered": 2, "failed": 0}
    assert [r["body"]["transferId"] for r in endpoint.received] == ["t1", "t2"]  # in order


def _failed_all_but_once(scheme: PaymentScheme, clock: FakeClock) -> Dispatcher:
    """bk-rw's one notice failed at a broken endpoint all its attempts but the last."""
    join_bk(scheme)
    scheme.set_endpoint("bk-rw", "http://127.0.0.1:9/nobody-listens")
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    dispatcher = Dispatcher(scheme.engine, clock)
    for n in range(ATTEMPTS_MAX - 1):
        clock.advance(BACKOFF_S_MAX)
        assert dispatcher.deliver_due() == {"delivered": 0, "failed": 1}, n
    return dispatcher


def test_a_new_endpoint_gets_all_the_retries_not_what_the_broken_one_left(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    """Found by a review: a notice that had failed 11 times at a broken endpoint was
    abandoned at the first 503 of the endpoint the participant moved to. Attempts count at
    the current endpoint: the new one gets all of them."""
    dispatcher = _failed_all_but_once(scheme, clock)
    assert outbox(scheme)[0].attempts == ATTEMPTS_MAX - 1
    scheme.set_endpoint("bk-rw", endpoint.url)
    (waiting,) = scheme.notifications("bk-rw", pending_only=True)
    assert waiting["attempts"] == 0
    endpoint.statuses = [503]
    assert dispatcher.deliver_due() == {"delivered": 0, "failed": 1}
    (row,) = outbox(scheme)
    assert (row.abandoned_at, row.attempts) == (None, 1)  # retried, not abandoned
    clock.advance(1)
    assert dispatcher.deliver_due() == {"delivered": 1, "failed": 0}


def test_an_attempt_at_the_old_endpoint_does_not_undo_a_new_endpoints_fresh_start(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    """Found by a review: an attempt under way at the old endpoint while the participant set
    a new one was recorded from the row as read before, its attempts plus one, over the new
    endpoint's reset: a notice that had failed 11 times was abandoned, never tried there."""
    dispatcher = _failed_all_but_once(scheme, clock)
    (read_before,) = outbox(scheme)  # the 12th attempt's row, as its turn read it
    scheme.set_endpoint("bk-rw", endpoint.url)  # meanwhile: a fresh start at a new endpoint
    assert dispatcher._record(read_before, "connection refused") is False  # the old one failed
    (row,) = outbox(scheme)
    assert (row.abandoned_at, row.attempts) == (None, 0)
    assert dispatcher.deliver_due() == {"delivered": 1, "failed": 0}  # tried at the new one


def test_a_refused_request_queues_nothing_and_endpoints_are_checked(
    scheme: PaymentScheme, endpoint: Endpoint
) -> None:
    join_bk(scheme)
    scheme.set_endpoint("bk-rw", endpoint.url)
    with pytest.raises(NetDebitCapExceeded):
        pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 10**12, "RWF", commit=False)
    assert outbox(scheme) == []
    for bad in ("ftp://x", "not a url", "http://x/" + "a" * 600):
        with pytest.raises(InvalidPaymentInput):
            scheme.set_endpoint("bk-rw", bad)
    assert scheme.get_endpoint("bk-rw") == endpoint.url
    assert scheme.get_endpoint("mtn-rw") is None


def test_expiry_and_bulk_notify(scheme: PaymentScheme, clock: FakeClock) -> None:
    join_bk(scheme)
    scheme.set_endpoint("mtn-rw", "http://127.0.0.1:9/x")
    scheme.set_endpoint("bk-rw", "http://127.0.0.1:9/y")
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    clock.advance(61)
    scheme.process_deadlines()
    events = [(r.participant_id, r.event) for r in outbox(scheme)]
    assert events == [
        ("bk-rw", "transfer.reserved"),
        ("mtn-rw", "transfer.aborted"),
        ("bk-rw", "transfer.aborted"),
    ]
    items = [BulkItem(f"b{n}", *BK_CUSTOMER, 100 + n) for n in range(3)]
    bulk_transfers(scheme, "mtn-rw", "bulk-1", "RWF", items)
    (notice,) = [n for n in scheme.notifications("bk-rw") if n["event"] == "bulk.committed"]
    assert notice["body"]["credits"] == [
        {"transferId": "b0", "minor": 100},
        {"transferId": "b1", "minor": 101},
        {"transferId": "b2", "minor": 102},
    ]


def test_a_bulk_notifies_only_payees_with_an_endpoint(scheme: PaymentScheme) -> None:
    join_bk(scheme)
    items = [BulkItem(f"n{n}", *BK_CUSTOMER, 100 + n) for n in range(3)]
    bulk_transfers(scheme, "mtn-rw", "bulk-quiet", "RWF", items)
    assert [r.event for r in outbox(scheme)] == []  # bk-rw registered no endpoint
    scheme.set_endpoint("bk-rw", "http://127.0.0.1:9/y")
    bulk_transfers(scheme, "mtn-rw", "bulk-heard", "RWF", [BulkItem("n9", *BK_CUSTOMER, 100)])
    assert [(r.participant_id, r.event) for r in outbox(scheme)] == [("bk-rw", "bulk.committed")]


def test_endpoints_and_notifications_over_the_api(scheme: PaymentScheme) -> None:
    from fastapi.testclient import TestClient

    from entrepot.entrypoints.api.app import create_app
    from entrepot.payments.credentials import issue_credential

    join_bk(scheme)
    client = TestClient(create_app(scheme))
    h = {
        p: {"Authorization": f"Bearer {issue_credential(scheme.engine, p).token}"}
        for p in ("mtn-rw", "bk-rw")
    }
    url = "https://bk.example/callbacks"
    r = client.put("/v1/participants/bk-rw/endpoint", json={"url": url}, headers=h["bk-rw"])
    assert r.status_code == 200 and r.json() == {"participantId": "bk-rw", "url": url}
    other = client.put("/v1/participants/bk-rw/endpoint", json={"url": url}, headers=h["mtn-rw"])
    assert other.status_code == 403
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    listed = client.get("/v1/notifications?pending=true", headers=h["bk-rw"]).json()
    assert [(n["event"], n["resourceId"]) for n in listed["notifications"]] == [
        ("transfer.reserved", "t1")
    ]
    assert client.get("/v1/notifications", headers=h["mtn-rw"]).json()["notifications"] == []


def test_callbacks_are_signed_with_the_schemes_key(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint, tmp_path: Path
) -> None:
    import base64
    import hashlib

    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    from entrepot.payments.notify import public_key_b64, signing_key

    key = signing_key(tmp_path / "keys" / "scheme.ed25519")
    assert signing_key(tmp_path / "keys" / "scheme.ed25519").encode() == key.encode()  # kept
    assert oct((tmp_path / "keys" / "scheme.ed25519").stat().st_mode & 0o777) == "0o600"
    join_bk(scheme)
    scheme.set_endpoint("bk-rw", endpoint.url)
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    Dispatcher(scheme.engine, clock, key=key).deliver_due()
    (got,) = endpoint.received
    verify = VerifyKey(base64.b64decode(public_key_b64(key)))
    # the callback form (signing.py), built here by hand: the whole URL, the event id, and
    # whom and what it is for (found by a review: any participant may register another's URL,
    # and unsigned FSPIOP-Destination / X-Entrepot-Event headers could be rewritten)
    assert (got["to"], got["event"]) == ("bk-rw", "transfer.reserved")
    digest = hashlib.sha256(got["raw"]).hexdigest()
    signed = (
        f"entrepot-callback-v1\n{got['date']}\n{got['id']}\n{endpoint.url}\n"
        f"{got['to']}\n{got['event']}\n{digest}"
    )
    verify.verify(signed.encode(), base64.b64decode(got["signature"]))
    for forged in (
        signed.replace(f"\n{got['id']}\n", "\n999\n"),  # another event id: not a duplicate
        signed.replace(endpoint.url, endpoint.url + "?tenant=other"),  # another target
        signed.replace("\nbk-rw\n", "\nmtn-rw\n"),  # meant for another participant
        signed.replace("transfer.reserved", "transfer.committed"),  # another event
        # the request form over the same fields: a callback is no signed request
        f"entrepot-request-v1\n{got['date']}\n{got['id']}\nPOST\n{endpoint.url}\n\n{digest}",
    ):
        with pytest.raises(BadSignatureError):
            verify.verify(forged.encode(), base64.b64decode(got["signature"]))


def test_a_redirect_is_not_followed(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    join_bk(scheme)
    scheme.set_endpoint("bk-rw", endpoint.url)
    endpoint.statuses = [302]  # followed, it would become a GET to /elsewhere
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    assert Dispatcher(scheme.engine, clock).deliver_due() == {"delivered": 0, "failed": 1}
    (row,) = outbox(scheme)
    assert row.last_error == "HTTP 302" and len(endpoint.received) == 1


def test_the_operator_can_restrict_callback_hosts(scheme: PaymentScheme) -> None:
    from entrepot.config import load_settings

    scheme.callback_hosts = frozenset({"bk.example"})
    join_bk(scheme)
    assert scheme.set_endpoint("bk-rw", "https://BK.example/cb") == "https://BK.example/cb"
    for elsewhere in ("http://169.254.169.254/latest", "http://127.0.0.1:8000/v1"):
        with pytest.raises(InvalidPaymentInput, match="not one the scheme allows"):
            scheme.set_endpoint("bk-rw", elsewhere)
    assert scheme.get_endpoint("bk-rw") == "https://BK.example/cb"
    hosts = load_settings({"ENTREPOT_CALLBACK_HOSTS": " bk.example, Pay.Example "}).callback_hosts
    assert hosts == ("bk.example", "pay.example")


def test_a_notification_cursor_out_of_range_is_refused(scheme: PaymentScheme) -> None:
    for bad in (-1, 2**63, 10**30):
        with pytest.raises(InvalidPaymentInput, match="after"):
            scheme.notifications("bk-rw", after=bad)


def test_workers_starting_together_agree_on_one_signing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worker of a new home creates a key at the same moment: one is kept, all use it,
    none fails, and no candidate file is left behind."""
    import threading

    from nacl.signing import SigningKey

    from entrepot.payments import notify

    path = tmp_path / "keys" / "scheme.ed25519"
    together = threading.Barrier(6)
    generate = SigningKey.generate

    def generate_together() -> SigningKey:
        together.wait(10)  # every worker has found no key and made its own
        return generate()

    monkeypatch.setattr(notify.SigningKey, "generate", generate_together)
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            keys.append(notify.signing_key(path).encode())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=start) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert errors == [] and len(keys) == 6 and len(set(keys)) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["scheme.ed25519"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


class RawEndpoint:
    """A callback 'server' that answers what it is told to, byte by byte (``answer``), with
    ``pause`` seconds between bytes."""

    def __init__(self, answer: bytes, pause: float = 0.0) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/cb"
        self.answer, self.pause = answer, pause
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import time

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:  # the whole request, as a server would
                    request += conn.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                try:
                    for byte in self.answer:
                        conn.sendall(bytes([byte]))
                        time.sleep(self.pause)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_an_endpoint_that_answers_garbage_does_not_stop_the_others(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    """A status line that is not HTTP raised out of the round (not an OSError) before the row
    was recorded: the next round took the same row first, and nobody was served again."""
    garbage = RawEndpoint(b"GARBAGE\r\n\r\n")
    try:
        join_bk(scheme)
        scheme.set_endpoint("bk-rw", garbage.url)
        scheme.set_endpoint("mtn-rw", endpoint.url)
        t = pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
        scheme.reject_transfer("bk-rw", t.id)
        assert Dispatcher(scheme.engine, clock).deliver_due() == {"delivered": 1, "failed": 1}
        assert [r["event"] for r in endpoint.received] == ["transfer.aborted"]
        (failed,) = scheme.notifications("bk-rw", pending_only=True)[:1]
        assert "BadStatusLine" in failed["lastError"]
    finally:
        garbage.close()


def test_an_attempt_has_a_deadline_however_slowly_the_endpoint_answers(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from entrepot.payments import notify

    monkeypatch.setattr(notify, "ATTEMPT_S_MAX", 1.0)
    slow = RawEndpoint(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: 1\r\n" * 40 + b"\r\n", pause=0.1)
    try:
        join_bk(scheme)
        scheme.set_endpoint("bk-rw", slow.url)
        pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
        t0 = time.monotonic()
        assert Dispatcher(scheme.engine, clock).deliver_due() == {"delivered": 0, "failed": 1}
        assert time.monotonic() - t0 < 3  # every read came within the 5 s read timeout
        (pending,) = scheme.notifications("bk-rw", pending_only=True)
        assert pending["lastError"].startswith("TimeoutError: no answer within 1 s")
    finally:
        slow.close()


def test_a_participants_notices_arrive_in_order_and_a_dead_endpoint_costs_one_attempt(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    """The payee's endpoint is down for "reserved": "aborted" waits for it (it arrived
    first once), and a round tries the down endpoint once, not once per notice."""
    join_bk(scheme)
    scheme.set_endpoint("bk-rw", endpoint.url)
    endpoint.statuses = [503]
    t = pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    t2 = pay(scheme, "mtn-rw", "t2", BK_CUSTOMER, 1_000, "RWF", commit=False)
    scheme.reject_transfer("bk-rw", t.id)
    dispatcher = Dispatcher(scheme.engine, clock)
    assert dispatcher.deliver_due() == {"delivered": 0, "failed": 1}  # one try, two wait
    assert dispatcher.deliver_due() == {"delivered": 0, "failed": 0}  # backing off: all wait
    clock.advance(1)
    assert dispatcher.deliver_due() == {"delivered": 3, "failed": 0}
    got = [(r["body"]["transferId"], r["event"]) for r in endpoint.received[1:]]
    assert got == [
        (t.id, "transfer.reserved"),
        (t2.id, "transfer.reserved"),
        (t.id, "transfer.aborted"),
    ]


def test_a_slow_endpoint_holds_up_no_other_participants_notices(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: one thread served the participants one after another, each
    participant's notices in a row until one failed; an endpoint answering 200 just inside
    the attempt's deadline held the round for all of its notices (200 x 10 s) while every
    participant sorted after it waited, and their payees let payments expire unheard. Now
    the participants are served at once, and a participant's turn ends after ``TURN_S``."""
    from entrepot.payments import notify

    monkeypatch.setattr(notify, "TURN_S", 0.2)
    slow_s = 0.6
    arrivals: list[tuple[str, str, float]] = []
    lock = threading.Lock()

    def send(url: str, body: bytes, headers: dict[str, str]) -> int:
        if "bk.example" in url:
            time.sleep(slow_s)  # answers, slowly, every time
        with lock:
            arrivals.append((headers["FSPIOP-Destination"], body.decode(), time.monotonic()))
        return 200

    join_bk(scheme)
    scheme.set_endpoint("bk-rw", "https://bk.example/callbacks")
    scheme.set_endpoint("mtn-rw", "https://mtn.example/callbacks")
    ids = [f"t{i}" for i in range(4)]
    for tid in ids:  # four notices to bk-rw ("reserved")
        pay(scheme, "mtn-rw", tid, BK_CUSTOMER, 1_000, "RWF", commit=False)
    scheme.commit_transfer("bk-rw", "t0")  # one to mtn-rw ("committed"), written last
    dispatcher = Dispatcher(scheme.engine, clock, send=send)
    started = time.monotonic()
    # bk-rw's turn ends after one notice (0.6 s > 0.2 s); mtn-rw's is not held up by it
    assert dispatcher.deliver_due() == {"delivered": 2, "failed": 0}
    ((_, _, at),) = [a for a in arrivals if a[0] == "mtn-rw"]
    assert at - started < slow_s, "mtn-rw waited for bk-rw's slow endpoint"
    rounds = 1
    while dispatcher.deliver_due() != {"delivered": 0, "failed": 0}:
        rounds += 1
    assert rounds >= 3  # bk-rw's rest came a turn at a time
    to_bk = [json.loads(body)["transferId"] for who, body, _ in arrivals if who == "bk-rw"]
    assert to_bk == ids  # in the order written, turn after turn


def test_the_allowed_hosts_are_checked_at_every_attempt_and_odd_urls_refused(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    join_bk(scheme)
    scheme.set_endpoint("bk-rw", endpoint.url)  # registered before the operator's list
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    dispatcher = Dispatcher(scheme.engine, clock, hosts={"bk.example"})
    assert dispatcher.deliver_due() == {"delivered": 0, "failed": 1}
    assert endpoint.received == []
    (pending,) = scheme.notifications("bk-rw", pending_only=True)
    assert "'127.0.0.1' is not one the scheme allows" in pending["lastError"]
    for odd in (
        "http://127.0.0.1:abc/cb",  # not a port
        "http://127.0.0.1\\@ok.example/",  # read one way by a check, another by a connection
        "http://user@ok.example/cb",
        "http:///cb",
    ):
        with pytest.raises(InvalidPaymentInput, match="refused"):
            scheme.set_endpoint("bk-rw", odd)


def test_the_delivery_loop_outlives_a_failing_round(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher = Dispatcher(scheme.engine, clock)
    calls: list[int] = []

    def flaky() -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise sa.exc.OperationalError("SELECT pay_outbox", {}, Exception("database is locked"))
        return []

    monkeypatch.setattr(dispatcher, "_ready", flaky)
    dispatcher.run(interval_s=0.01, rounds=3)
    assert len(calls) == 3


def test_the_delivery_loop_serves_each_participant_without_waiting_for_a_slow_one(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Found by a review: the loop ran in rounds, each waiting for every participant's turn,
    so an endpoint answering 200 just inside the attempt's deadline made every round that
    long: another participant got a turn's notices a round (about 20 a second), its backlog
    grew and its payments expired unheard. A participant's turn now starts whenever its
    notices are due and no turn of its own runs: here mtn-rw's notices written while bk-rw's
    endpoint still holds its first attempt are delivered before that attempt ends."""
    held, release = threading.Event(), threading.Event()
    arrivals: list[str] = []

    def send(url: str, body: bytes, headers: dict[str, str]) -> int:
        if "bk.example" in url:
            held.set()
            assert release.wait(30)  # answers 200, once let go
        arrivals.append(headers["FSPIOP-Destination"] + ":" + json.loads(body)["transferId"])
        return 200

    join_bk(scheme)
    scheme.set_endpoint("bk-rw", "https://bk.example/callbacks")
    scheme.set_endpoint("mtn-rw", "https://mtn.example/callbacks")
    pay(scheme, "mtn-rw", "t0", BK_CUSTOMER, 1_000, "RWF", commit=False)  # to bk-rw
    stop = threading.Event()
    dispatcher = Dispatcher(scheme.engine, clock, send=send)
    loop = threading.Thread(target=dispatcher.run, kwargs={"interval_s": 0.01, "stop": stop})
    loop.start()
    try:
        assert held.wait(30)  # bk-rw's endpoint holds the first attempt
        for n in range(1, 4):  # meanwhile, three payments commit: each notifies mtn-rw
            pay(scheme, "mtn-rw", f"t{n}", BK_CUSTOMER, 1_000, "RWF", commit=False)
            scheme.commit_transfer("bk-rw", f"t{n}")
            deadline = time.monotonic() + 30
            while f"mtn-rw:t{n}" not in arrivals and time.monotonic() < deadline:
                time.sleep(0.01)
            assert f"mtn-rw:t{n}" in arrivals, arrivals
        assert not any(a.startswith("bk-rw") for a in arrivals)  # still held
    finally:
        release.set()
        stop.set()
        loop.join(30)
    assert not loop.is_alive()
    assert "bk-rw:t0" in arrivals


def test_a_notice_the_endpoint_refuses_is_abandoned_and_holds_back_no_other(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """A 400 for one notice (a body the receiver will not take) was retried hourly for ever,
    and the participant's later notices waited behind it. It is abandoned at once (still
    readable by pull); a 429 or a 5xx is retried, and abandoned after ATTEMPTS_MAX."""
    from entrepot.payments import notify

    join_bk(scheme)
    scheme.set_endpoint("bk-rw", endpoint.url)
    endpoint.statuses = [400]
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    pay(scheme, "mtn-rw", "t2", BK_CUSTOMER, 1_000, "RWF", commit=False)
    assert Dispatcher(scheme.engine, clock).deliver_due() == {"delivered": 1, "failed": 1}
    first, second = scheme.notifications("bk-rw")
    assert first["abandonedAt"] is not None and first["lastError"] == "HTTP 400"
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]  # for alerting
    assert warning.getMessage() == (
        f"notice {first['id']} ({first['event']}) to bk-rw abandoned after 1 attempt(s): HTTP 400"
    )
    assert second["deliveredAt"] is not None
    assert scheme.notifications("bk-rw", pending_only=True) == []

    endpoint.statuses = [429] + [503] * notify.ATTEMPTS_MAX
    pay(scheme, "mtn-rw", "t3", BK_CUSTOMER, 1_000, "RWF", commit=False)
    dispatcher = Dispatcher(scheme.engine, clock)
    for _ in range(notify.ATTEMPTS_MAX):
        assert dispatcher.deliver_due() == {"delivered": 0, "failed": 1}
        clock.advance(notify.BACKOFF_S_MAX)
    assert dispatcher.deliver_due() == {"delivered": 0, "failed": 0}
    (third,) = scheme.notifications("bk-rw", after=second["id"])
    assert (third["attempts"], third["lastError"]) == (notify.ATTEMPTS_MAX, "HTTP 503")
    assert third["abandonedAt"] is not None
    assert (
        caplog.records[-1]
        .getMessage()
        .endswith(f"abandoned after {notify.ATTEMPTS_MAX} attempt(s): HTTP 503")
    )


def test_a_failing_notice_is_retried_for_as_long_as_the_docs_say(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """The docs (and notify.py) promised retries for "about 68 minutes" (backoff 1 s ...
    2,048 s) before a notice is abandoned; with ATTEMPTS_MAX attempts the waits between them
    are 1 s ... 1,024 s: 2,047 s, about 34 minutes. An operator sizing alerting, or a
    participant planning an outage, on the stated window lost push delivery after half of
    it. The stated window is now the one the dispatcher keeps."""
    from entrepot.payments import notify

    calls: list[int] = []

    def down(url: str, body: bytes, headers: dict[str, str]) -> int:
        calls.append(clock.now_ns())
        return 503

    join_bk(scheme)
    scheme.set_endpoint("bk-rw", "http://bk-rw.example/callbacks")
    pay(scheme, "mtn-rw", "t-down", BK_CUSTOMER, 1_000, "RWF", commit=False)
    dispatcher = Dispatcher(scheme.engine, clock, send=down)
    while not scheme.notifications("bk-rw")[0]["abandonedAt"]:
        dispatcher.deliver_due()
        (row,) = outbox(scheme)
        clock.set_ns(max(clock.now_ns(), row.next_attempt_at))
    assert len(calls) == notify.ATTEMPTS_MAX
    span_s = (calls[-1] - calls[0]) // 1_000_000_000
    assert span_s == sum(2**k for k in range(notify.ATTEMPTS_MAX - 1)) == 2_047
    docs = (Path(__file__).parents[2] / "docs" / "payments.md").read_text()
    stated = f"after {notify.ATTEMPTS_MAX} failed attempts (about {round(span_s / 60)} minutes:"
    assert stated in " ".join(docs.split())


def test_a_slow_connect_counts_in_the_attempts_deadline(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline could not cut an attempt while it was still connecting (no socket yet):
    a connect that ran past it let the slow answer after it run unbounded."""
    import socket
    import time

    from entrepot.payments import notify

    monkeypatch.setattr(notify, "ATTEMPT_S_MAX", 0.5)
    real = socket.create_connection

    def slow_connect(*args: Any, **kwargs: Any) -> socket.socket:
        time.sleep(0.8)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", slow_connect)
    slow = RawEndpoint(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: 1\r\n" * 40 + b"\r\n", pause=0.1)
    try:
        join_bk(scheme)
        scheme.set_endpoint("bk-rw", slow.url)
        pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
        t0 = time.monotonic()
        assert Dispatcher(scheme.engine, clock).deliver_due() == {"delivered": 0, "failed": 1}
        assert time.monotonic() - t0 < 2.5
        (pending,) = scheme.notifications("bk-rw", pending_only=True)
        assert pending["lastError"].startswith("TimeoutError")
    finally:
        slow.close()


def test_a_slow_name_lookup_counts_in_the_attempts_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The callback host's name was looked up before the deadline's clock started, and a
    lookup cannot be cut: a resolver that did not answer held the attempt for its own
    retries. The lookup now runs within the attempt's time."""
    from entrepot.payments import notify

    monkeypatch.setattr(notify, "ATTEMPT_S_MAX", 1.0)
    real = socket.getaddrinfo
    release = threading.Event()
    hung = {"on": True}

    def lookup(*args: Any, **kwargs: Any) -> Any:
        if hung["on"]:
            release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    loopback = CallbackAddresses.parse(["127.0.0.0/8"])
    endpoint = RawEndpoint(b"HTTP/1.1 204 No Content\r\n\r\n")
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"resolving '127\.0\.0\.1' took more than 1 s"):
            http_post(endpoint.url, b"{}", {}, addresses=loopback)
        assert time.monotonic() - t0 < 8  # not the lookup's 10 s
        release.set()
        hung["on"] = False
        assert http_post(endpoint.url, b"{}", {}, addresses=loopback) == 204
    finally:
        release.set()
        endpoint.close()


def test_an_answer_with_a_nul_is_recorded_and_the_round_goes_on(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint
) -> None:
    """A NUL in an endpoint's status line went into last_error, which PostgreSQL's text
    refuses: the attempt was never recorded and every round stopped there."""
    nul = RawEndpoint(b"\x00HTTP/1.1 200\r\n\r\n")
    try:
        join_bk(scheme)
        scheme.set_endpoint("bk-rw", nul.url)
        scheme.set_endpoint("mtn-rw", endpoint.url)
        t = pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
        scheme.reject_transfer("bk-rw", t.id)
        assert Dispatcher(scheme.engine, clock).deliver_due() == {"delivered": 1, "failed": 1}
        (failed,) = scheme.notifications("bk-rw", pending_only=True)[:1]
        assert failed["attempts"] == 1 and "\x00" not in failed["lastError"]
    finally:
        nul.close()
    with pytest.raises(InvalidPaymentInput, match="control characters"):
        scheme.set_endpoint("bk-rw", "http://example.com/a\x00b")


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        # the operator's own network, unless it names it: a participant's endpoint could
        # POST into its services, and lastError tell which ports answer
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # shared (carrier-grade NAT)
        ("fd00::1", "private"),
        # IPv6 site-local (fec0::/10, deprecated but still routed where a network kept it):
        # Python calls it global, and an endpoint resolving to fec0::1 was called
        ("fec0::1", "site-local"),
        ("feff::9", "site-local"),
        ("::ffff:10.0.0.1", "private"),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
        # 6to4 addresses carry an IPv4 one, judged as it is (a review: Python calls 2002::/16
        # global, so 2002:a9fe:a9fe::1, 169.254.169.254, was reached); Teredo's are refused
        ("2002:a9fe:a9fe::1", "link-local"),
        ("2002:7f00:1::1", "loopback"),
        ("2002:a00:1::1", "private"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("2002:808:808::1", None),
    ],
)
def test_callbacks_reach_only_public_addresses_by_default(
    address: str, refused: str | None
) -> None:
    why = CallbackAddresses().problem(ipaddress.ip_address(address))
    assert (why is None) if refused is None else (why is not None and refused in why), why


def test_an_operators_networks_are_the_only_ones_reached() -> None:
    only = CallbackAddresses.parse(["127.0.0.0/8", " 10.0.0.0/8"])
    assert only.problem(ipaddress.ip_address("127.0.0.1")) is None
    assert only.problem(ipaddress.ip_address("10.9.9.9")) is None
    assert "outside the networks" in (only.problem(ipaddress.ip_address("8.8.8.8")) or "")
    with pytest.raises(ValueError, match="not an IP network"):
        CallbackAddresses.parse(["10.0.0.0/33"])
    with pytest.raises(ConfigurationError, match="ENTREPOT_CALLBACK_NETWORKS"):
        load_settings({"ENTREPOT_CALLBACK_NETWORKS": "10.0.0.0/8, nope"})
    settings = load_settings({"ENTREPOT_CALLBACK_NETWORKS": "10.0.0.0/8, 127.0.0.1"})
    assert settings.callback_networks == ("10.0.0.0/8", "127.0.0.1")


def test_an_allowed_name_resolving_to_an_internal_address_is_not_called(
    scheme: PaymentScheme, clock: FakeClock, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: the host allow-list holds names, whose DNS the participants
    control: an allowed name pointed at 127.0.0.1 (or a cloud's 169.254.169.254) on any port
    had the scheme POST there. The address the name resolves to is checked, and connected to
    (not looked up twice: a second answer could differ)."""
    port = endpoint.server.server_port
    name = "hooks.bk-rw.example"
    real = socket.getaddrinfo

    def dns(host: str, *args: Any, **kwargs: Any) -> Any:  # bk-rw's own DNS record
        return real("127.0.0.1" if host == name else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    join_bk(scheme)
    scheme.callback_hosts = frozenset({name})
    scheme.set_endpoint("bk-rw", f"http://{name}:{port}/internal-admin")
    pay(scheme, "mtn-rw", "t1", BK_CUSTOMER, 1_000, "RWF", commit=False)
    guarded = functools.partial(http_post, addresses=CallbackAddresses())
    sent = Dispatcher(scheme.engine, clock, send=guarded, hosts={name}).deliver_due()
    assert sent == {"delivered": 0, "failed": 1}
    assert endpoint.received == []
    (row,) = outbox(scheme)
    assert "127.0.0.1 is a loopback address" in row.last_error
    # an operator whose participants' hooks are on that network lets it be reached; the
    # connection goes to the address checked, the request still names the host
    clock.advance(60)
    allowed = functools.partial(http_post, addresses=CallbackAddresses.parse(["127.0.0.0/8"]))
    sent = Dispatcher(scheme.engine, clock, send=allowed, hosts={name}).deliver_due()
    assert sent == {"delivered": 1, "failed": 0}
    (got,) = endpoint.received
    assert (got["path"], got["host"]) == ("/internal-admin", f"{name}:{port}")


def _backlog(scheme: PaymentScheme, participants: list[str], notices: int) -> None:
    """``notices`` due notices to each participant, each with an endpoint."""
    with scheme.engine.begin() as conn:
        for pid in participants:
            conn.execute(
                sa.insert(st.endpoints).values(
                    participant_id=pid, url=f"https://{pid}.example/cb", updated_at=0
                )
            )
            for n in range(notices):
                conn.execute(
                    sa.insert(st.outbox).values(
                        participant_id=pid, event="transfer.committed", resource_id=f"{pid}-{n}",
                        body=json.dumps({"transferId": f"{pid}-{n}"}), created_at=0,
                        attempts=0, next_attempt_at=0,
                    )
                )  # fmt: skip


def test_the_delivery_loop_serves_the_least_recently_served_first(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: the loop picked the participants due in id order, so with more of
    them busy than threads the first ones took every turn and the others got none. The least
    recently served go first: one thread, two notices a turn, each in turn."""
    from entrepot.payments import notify

    monkeypatch.setattr(notify, "TURN_LIMIT", 2)
    _backlog(scheme, ["p1", "p2", "p3"], 4)
    arrivals: list[str] = []
    stop = threading.Event()

    def send(url: str, body: bytes, headers: dict[str, str]) -> int:
        arrivals.append(headers["FSPIOP-Destination"])
        if len(arrivals) == 12:
            stop.set()
        return 200

    Dispatcher(scheme.engine, clock, send=send, threads=1).run(interval_s=0.01, stop=stop)
    assert arrivals == ["p1", "p1", "p2", "p2", "p3", "p3"] * 2


def test_the_delivery_loop_rests_a_participant_whose_turn_did_nothing(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: a turn that could not record its attempt (a read-only database)
    ended at once having done nothing, and the loop started it again at once: one notice
    sent 1,834 times in 2 s. Such a participant rests a pass: at most every other pass."""
    _backlog(scheme, ["p1"], 1)
    sent: list[int] = []

    def send(url: str, body: bytes, headers: dict[str, str]) -> int:
        sent.append(1)
        return 200

    dispatcher = Dispatcher(scheme.engine, clock, send=send)

    def unrecorded(*args: Any, **kwargs: Any) -> bool:
        raise sa.exc.OperationalError("UPDATE pay_outbox", {}, Exception("readonly database"))

    monkeypatch.setattr(dispatcher, "_record", unrecorded)
    dispatcher.run(interval_s=0.01, rounds=40)
    assert 0 < len(sent) <= 21, len(sent)


def test_a_participant_with_a_long_id_is_suspended_and_resumed_with_notices(
    scheme: PaymentScheme, endpoint: Endpoint
) -> None:
    """A status change's notice names ``<participant id>/<change number>``: for an id of 62
    to 64 characters (64 are allowed) it did not fit the outbox's column, and on PostgreSQL
    the suspension or resumption failed with it (a 500; the participant kept its state)."""
    pid = "p" * 64
    # SQLite does not enforce a length: the column must hold the longest such id
    assert st.outbox.c.resource_id.type.length >= len(f"{pid}/{2**64}")  # type: ignore[attr-defined]
    scheme.register_participant(pid, "Long Bank", "bank", "RW", ["RWF"])
    scheme.set_endpoint(pid, endpoint.url)
    for n in range(11):
        assert scheme.set_active(pid, n % 2 == 1, "drill").active is (n % 2 == 1)
    notices = [n for n in outbox(scheme) if n.participant_id == pid]
    assert len(notices) == 11
    assert notices[-1].resource_id == f"{pid}/11"


def test_an_endpoint_with_a_non_ascii_path_is_refused(scheme: PaymentScheme) -> None:
    """A request line is ASCII: a URL with é in its path was accepted, then every attempt
    failed to encode it and every notice of the participant was abandoned after its
    retries. It is refused; the same URL percent-encoded (and a non-ASCII host) is taken."""
    join_bk(scheme)
    for bad in ("http://bk.example/réception", "http://bk.example/cb?q=é"):
        with pytest.raises(InvalidPaymentInput, match="not ASCII: percent-encode it"):
            scheme.set_endpoint("bk-rw", bad)
    assert scheme.get_endpoint("bk-rw") is None
    scheme.set_endpoint("bk-rw", "http://bk.example/r%C3%A9ception")
    scheme.set_endpoint("bk-rw", "http://bücher.example/cb")
    assert scheme.get_endpoint("bk-rw") == "http://bücher.example/cb"


@pytest.mark.parametrize("pinned", [False, True])
@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://[2001:db8::1]/cb", 80),
        ("https://[2001:db8::1]/cb", 443),
        ("http://[2001:db8::1]:8080/cb", 8080),
    ],
)
def test_an_ipv6_endpoint_without_a_port_is_called_on_the_schemes_port(
    monkeypatch: pytest.MonkeyPatch, url: str, port: int, pinned: bool
) -> None:
    """http.client read an IPv6 host's last group as its port when none was given:
    http://[2001:db8::1]/cb was called on port 1, every notice abandoned."""
    tried: list[tuple[str, int]] = []

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        tried.append(address)
        raise ConnectionRefusedError("probe")

    monkeypatch.setattr(socket, "create_connection", connect)
    # pinned: as the dispatcher calls it, the address checked first
    addresses = CallbackAddresses.parse(["2001:db8::/32"]) if pinned else None
    with pytest.raises(ConnectionRefusedError):
        http_post(url, b"{}", {}, addresses=addresses)
    assert tried == [("2001:db8::1", port)]
